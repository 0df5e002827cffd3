"""Dispatcher counters: totals, and per rule and per action (``<kind>#<index>``, ``errorAction``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

ACTION_COUNTERS = ("dispatched", "retried", "failed")


class RuleStats:
    """Counters of one rule."""

    __slots__ = ("actions", "counts")

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.actions: dict[str, Counter[str]] = {}

    def action(self, label: str) -> Counter[str]:
        c = self.actions.get(label)
        if c is None:
            c = self.actions[label] = Counter({k: 0 for k in ACTION_COUNTERS})
        return c

    def to_dict(self) -> dict[str, Any]:
        return {**self.counts, "actions": {k: dict(v) for k, v in sorted(self.actions.items())}}


class DispatchMetrics:
    """Totals (``matched``, ``dispatched``, ``retried``, ``failed``, ``error_actions``, ``dead_lettered``,
    ``qos0_dispatched``, ``qos0_dropped``, ``filtered``, ``skipped``) plus per-rule counters."""

    def __init__(self) -> None:
        self.totals: Counter[str] = Counter({k: 0 for k in (
            "matched", "dispatched", "retried", "failed", "error_actions", "error_action_failed", "dead_lettered",
            "qos0_dispatched", "qos0_dropped", "filtered", "skipped", "journaled")})
        self.rules: dict[str, RuleStats] = {}

    def rule(self, name: str) -> RuleStats:
        stats = self.rules.get(name)
        if stats is None:
            stats = self.rules[name] = RuleStats()
        return stats

    def count(self, rule: str, counter: str, n: int = 1) -> None:
        self.totals[counter] += n
        self.rule(rule).counts[counter] += n

    def count_action(self, rule: str, label: str, counter: str, n: int = 1) -> None:
        self.totals[counter] += n
        self.rule(rule).action(label)[counter] += n

    def to_dict(self) -> dict[str, Any]:
        return {**self.totals, "rules": {k: v.to_dict() for k, v in sorted(self.rules.items())}}
