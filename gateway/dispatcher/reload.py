"""Hot reload of the rule folder: scan file stamps about once a second, apply what changed.

A file that fails validation is logged with its error and skipped; the previous version of that rule
(if any) keeps running. A removed file removes its rule.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.dispatcher.errors import RuleNotFoundError
from gateway.dispatcher.store import FileStamp, RuleFiles, StoredRule
from rules import RuleIndex, RulesError

log = logging.getLogger("edgeloop.dispatcher")


@dataclass
class ScanResult:
    """What one scan changed."""

    loaded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class RuleReloader:
    """Keeps a RuleIndex in step with a RuleFiles folder."""

    def __init__(self, files: RuleFiles, index: RuleIndex) -> None:
        self.files = files
        self.index = index
        self.stored: dict[str, StoredRule] = {}
        self.errors: dict[str, str] = {}  # rule name -> why its current file is not loaded
        self._stamps: dict[str, FileStamp] = {}
        self._lock = asyncio.Lock()
        self._scanned = asyncio.Condition()
        self.metrics = {"rules_loaded": 0, "rule_files_rejected": 0, "rules_removed": 0}

    async def scan(self) -> ScanResult:
        """Read what changed since the last scan (in a worker thread) and apply it to the index."""
        async with self._lock:
            changed, parsed, gone = await asyncio.to_thread(self._read_changes)
            result = self._apply(changed, parsed, gone)
        async with self._scanned:
            self._scanned.notify_all()
        return result

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds after some scan (e.g. "rule X is loaded")."""
        async with self._scanned:
            await self._scanned.wait_for(predicate)

    def _read_changes(self) -> tuple[dict[str, FileStamp], dict[str, StoredRule | str], list[str]]:
        stamps = self.files.stamps()
        changed = {n: s for n, s in stamps.items() if self._stamps.get(n) != s}
        parsed: dict[str, StoredRule | str] = {}
        for name in changed:
            try:
                parsed[name] = self.files.read(name)
            except (RulesError, RuleNotFoundError) as exc:
                parsed[name] = str(exc)
            except OSError as exc:
                parsed[name] = f"cannot read the rule file: {exc}"
        gone = [n for n in self._stamps if n not in stamps]
        return changed, parsed, gone

    def _apply(self, changed: dict[str, FileStamp], parsed: dict[str, StoredRule | str],
               gone: list[str]) -> ScanResult:
        result = ScanResult()
        for name, outcome in parsed.items():
            self._stamps[name] = changed[name]
            if isinstance(outcome, str):
                self.errors[name] = outcome
                result.failed[name] = outcome
                self.metrics["rule_files_rejected"] += 1
                kept = "keeping the previous version" if name in self.stored else "rule not loaded"
                log.error("event=rule_file_rejected rule=%s error=%s (%s)", name, outcome, kept)
                continue
            self.errors.pop(name, None)
            self.stored[name] = outcome
            self.index.put(outcome.rule)
            result.loaded.append(name)
            self.metrics["rules_loaded"] += 1
            log.info("event=rule_loaded rule=%s disabled=%s from=%s", name, outcome.rule.disabled,
                     outcome.rule.topic_filter)
        for name in gone:
            del self._stamps[name]
            self.errors.pop(name, None)
            if self.stored.pop(name, None) is not None:
                self.index.remove(name)
                result.removed.append(name)
                self.metrics["rules_removed"] += 1
                log.info("event=rule_removed rule=%s", name)
        return result

    async def run(self, interval: float) -> None:
        """Scan forever (cancel to stop); a failing scan is logged and retried on the next tick."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.scan()
            except OSError as exc:
                log.warning("event=rule_scan_failed error=%s", exc)
