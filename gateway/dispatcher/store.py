"""Rule files: ``<home>/rules/<ruleName>.json`` holds AWS's ``topicRulePayload`` JSON.

The file may also carry ``createdAt`` (seconds since the epoch, written by edgeloop; when absent the
file's modification time is used). Every write validates the rule first and replaces the file
atomically, so the gateway's reloader never sees half a file. The CLI, the ``iot`` control plane and
users editing files by hand all go through this one format.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeloop.config import Config
from gateway.dispatcher.errors import RuleExistsError, RuleNotFoundError
from gateway.storage.durable import atomic_write
from rules import RulesError, RuleValidationError, TopicRule, parse_topic_rule, validate_rule_name

RULES_DIR = "rules"
SUFFIX = ".json"
CREATED_AT = "createdAt"

FileStamp = tuple[int, int]  # (mtime_ns, size): what the reloader compares


@dataclass(frozen=True)
class StoredRule:
    """A parsed rule file."""

    rule: TopicRule
    payload: dict[str, Any]  # the topicRulePayload as written (without createdAt)
    created_at: float

    @property
    def name(self) -> str:
        return self.rule.name


def parse_rule_file(name: str, data: bytes, mtime: float, regex_budget_ms: float | None = None) -> StoredRule:
    """Validate one rule file's bytes; raises a RulesError subclass saying what is wrong."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise RuleValidationError(f"rule file {name}{SUFFIX} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise RuleValidationError(f"rule file {name}{SUFFIX} must hold a topicRulePayload JSON object")
    created = doc.pop(CREATED_AT, None)
    if created is not None and (isinstance(created, bool) or not isinstance(created, int | float)):
        raise RuleValidationError(f"rule file {name}{SUFFIX}: createdAt must be seconds since the epoch")
    rule = parse_topic_rule(name, doc, regex_budget_ms=regex_budget_ms)
    return StoredRule(rule, doc, float(created) if created is not None else mtime)


class RuleFiles:
    """The rule folder. Safe to use from several processes: every write is validate-then-rename."""

    def __init__(self, directory: Path, regex_budget_ms: float | None = None) -> None:
        self.directory = directory
        self.regex_budget_ms = regex_budget_ms  # None: the rules library's default

    @classmethod
    def for_home(cls, home: Path) -> RuleFiles:
        return cls(home / RULES_DIR)

    @classmethod
    def for_config(cls, config: Config) -> RuleFiles:
        """The rule folder of `config.home`, compiled with the configured regexp budget."""
        return cls(config.home / RULES_DIR, config.rules.regex_budget_ms)

    def parse(self, name: str, payload: dict[str, Any]) -> TopicRule:
        """Validate and compile a topicRulePayload as the files' rules are."""
        return parse_topic_rule(name, payload, regex_budget_ms=self.regex_budget_ms)

    def path(self, name: str) -> Path:
        return self.directory / f"{validate_rule_name(name)}{SUFFIX}"

    def stamps(self) -> dict[str, FileStamp]:
        """Every ``*.json`` file in the folder by rule name (the file name without ``.json``)."""
        out: dict[str, FileStamp] = {}
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return out
        for entry in entries:
            if not entry.name.endswith(SUFFIX) or entry.name.startswith("."):
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            if entry.is_file():
                out[entry.name[:-len(SUFFIX)]] = (st.st_mtime_ns, st.st_size)
        return out

    def names(self) -> list[str]:
        return sorted(self.stamps())

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def read(self, name: str) -> StoredRule:
        """Parse one rule file; RuleNotFoundError when it does not exist, RulesError when it is invalid."""
        path = self.path(name)
        try:
            data = path.read_bytes()
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            raise RuleNotFoundError(f"no rule named {name!r} (no file {path})") from None
        return parse_rule_file(name, data, mtime, self.regex_budget_ms)

    def read_all(self) -> tuple[list[StoredRule], dict[str, RulesError]]:
        """Every valid rule, and the error of every invalid file by name."""
        good: list[StoredRule] = []
        bad: dict[str, RulesError] = {}
        for name in self.names():
            try:
                good.append(self.read(name))
            except RulesError as exc:
                bad[name] = exc
            except RuleNotFoundError:
                continue  # deleted between listing and reading
        return good, bad

    def create(self, name: str, payload: dict[str, Any] | str | bytes, replace: bool = False) -> StoredRule:
        """Validate and write a new rule (RuleExistsError when it exists, unless `replace`)."""
        created = time.time()
        if self.exists(name):
            if not replace:
                raise RuleExistsError(f"rule {name!r} already exists; replace it instead")
            with contextlib.suppress(RulesError):  # replacing an invalid file: it gets a fresh creation time
                created = self.read(name).created_at
        return self._write(name, payload, created)

    def replace(self, name: str, payload: dict[str, Any] | str | bytes) -> StoredRule:
        """Replace an existing rule's payload, keeping its creation time."""
        if not self.exists(name):
            raise RuleNotFoundError(f"no rule named {name!r}")
        return self.create(name, payload, replace=True)

    def set_disabled(self, name: str, disabled: bool) -> StoredRule:
        """Enable or disable a rule (rewrites ``ruleDisabled``)."""
        stored = self.read(name)
        payload = dict(stored.payload)
        payload["ruleDisabled"] = disabled
        return self._write(name, payload, stored.created_at)

    def delete(self, name: str) -> None:
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            raise RuleNotFoundError(f"no rule named {name!r}") from None

    def _write(self, name: str, payload: dict[str, Any] | str | bytes, created_at: float) -> StoredRule:
        if not isinstance(payload, dict):
            try:
                payload = json.loads(payload)
            except ValueError as exc:
                raise RuleValidationError(f"topicRulePayload is not valid JSON: {exc}") from exc
            if not isinstance(payload, dict):
                raise RuleValidationError("topicRulePayload must be a JSON object")
        payload = {k: v for k, v in payload.items() if k != CREATED_AT}
        rule = self.parse(name, payload)
        self.directory.mkdir(parents=True, exist_ok=True)
        doc = {**payload, CREATED_AT: round(created_at, 3)}
        atomic_write(self.path(name), (json.dumps(doc, indent=2) + "\n").encode("utf-8"))
        return StoredRule(rule, payload, created_at)
