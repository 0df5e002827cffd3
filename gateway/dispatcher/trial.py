"""A dry run of one topic rule on one message: does it match, what does SELECT produce, what would each action
send. Shared by ``edgeloop rules test`` and the admin API's ``rules/…/test`` endpoints, so both report alike.

Nothing is sent anywhere: the actions are rendered, not run.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from gateway.dispatcher.errors import DispatchError
from rules import (
    NO_MATCH,
    UNDEFINED,
    ActionInvocation,
    MessageContext,
    RulesError,
    TopicRule,
    basic_ingest,
    dumps,
    evaluate_rule,
    filter_matches,
)


@dataclass(frozen=True)
class TrialAction:
    """One action as the rule would run it for the message."""

    index: int
    kind: str
    endpoint_url: str | None
    params: dict[str, Any]  # rendered request fields, JSON-ready (bytes as text, or {"base64": …})
    error: str | None  # why rendering failed (the message would go to the errorAction)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "kind": self.kind}
        if self.endpoint_url:
            out["endpointUrl"] = self.endpoint_url
        if self.error is not None:
            out["error"] = self.error
        else:
            out["params"] = self.params
        return out

    def line(self) -> str:
        where = f" -> {self.endpoint_url}" if self.endpoint_url else ""
        if self.error is not None:
            return f"action[{self.index}] {self.kind}{where}: ERROR {self.error} (would go to the errorAction)"
        return f"action[{self.index}] {self.kind}{where}: {json.dumps(self.params, ensure_ascii=False)}"


@dataclass(frozen=True)
class Trial:
    """What a rule makes of one message."""

    rule: str
    topic: str  # as published
    topic_filter: str | None  # the FROM filter; None for a Basic-Ingest-only rule
    via_basic_ingest: bool  # published on $aws/rules/<this rule>/…
    topic_matches: bool  # the rule would be triggered by this topic
    where: bool  # WHERE held (or there is none)
    output: Any  # the SELECT result (rules value); meaningful only when `where`
    actions: tuple[TrialAction, ...]

    @property
    def matched(self) -> bool:
        """The rule runs its actions for this message: topic matches and WHERE holds."""
        return self.topic_matches and self.where

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (what the admin API answers and ``rules test --json`` prints), with the report's lines."""
        out: dict[str, Any] = {
            "rule": self.rule, "topic": self.topic, "topicFilter": self.topic_filter,
            "basicIngest": self.via_basic_ingest, "topicMatches": self.topic_matches, "where": self.where,
            "matched": self.matched,
        }
        if self.where:
            if isinstance(self.output, bytes):
                out["outputBase64"] = base64.b64encode(self.output).decode("ascii")
            elif self.output is not UNDEFINED:
                out["output"] = json.loads(dumps(self.output))
        out["actions"] = [a.to_dict() for a in self.actions]
        out["report"] = self.lines()
        return out

    def lines(self) -> list[str]:
        """The human-readable report (what ``rules test`` prints)."""
        if self.via_basic_ingest:
            lines = [f"Basic Ingest: {self.topic!r} goes straight to rule {self.rule}"]
        elif self.topic_filter is None:
            lines = ["FROM: none (the rule runs only through Basic Ingest $aws/rules/<name>/...)"]
        elif self.topic_matches:
            lines = [f"FROM '{self.topic_filter}': matches {self.topic!r}"]
        else:
            lines = [f"FROM '{self.topic_filter}': does NOT match {self.topic!r} "
                     "(the rule would not run; evaluated anyway)"]
        if not self.where:
            return [*lines, "WHERE: false or undefined -> no actions run"]
        return [*lines, f"output: {_show(self.output)}", *(a.line() for a in self.actions)]


def run_trial(rule: TopicRule, topic: str, payload: bytes, client_id: str | None = None,
              principal: str | None = None, account_id: str = "000000000000") -> Trial:
    """Evaluate `rule` on a message published on `topic` (evaluated even when the topic does not match).
    Raises DispatchError when evaluation itself fails."""
    ingest = basic_ingest(topic)
    via_ingest = ingest is not None and ingest[0] == rule.name
    inner = ingest[1] if via_ingest and ingest is not None else topic
    pattern = rule.topic_filter
    matches = via_ingest or (pattern is not None and filter_matches(pattern, topic))
    msg = MessageContext(inner, payload, client_id=client_id, principal=principal, account_id=account_id)
    try:
        output = rule.query.evaluate(msg)
    except RulesError as exc:
        raise DispatchError(f"evaluation failed: {exc}") from exc
    if output is NO_MATCH:
        return Trial(rule.name, topic, pattern, via_ingest, matches, False, UNDEFINED, ())
    actions = tuple(_action(i, inv) for i, inv in enumerate(evaluate_rule(rule, msg)))
    return Trial(rule.name, topic, pattern, via_ingest, matches, True, output, actions)


def _action(index: int, inv: ActionInvocation) -> TrialAction:
    params = {} if inv.error is not None else {k: _jsonable(v) for k, v in inv.params.items()}
    return TrialAction(index, inv.kind, inv.endpoint_url, params, inv.error)


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return f"(raw bytes, base64) {base64.b64encode(value).decode('ascii')}"
    text = dumps(value)
    return text if text else "(undefined: empty payload)"


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value
