"""Running rules: evaluate a rule against a message, build the errorAction message, index rules by topic."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable

from rules.actions import Action, ActionFailure, ActionInvocation
from rules.context import MessageContext
from rules.errors import RuleEvaluationError
from rules.model import TopicRule
from rules.templates import Template
from rules.topics import TopicIndex, basic_ingest
from rules.values import dumps


def evaluate_rule(rule: TopicRule, msg: MessageContext) -> list[ActionInvocation]:
    """The actions to run for ``msg`` (empty when WHERE is false or Undefined). Never raises.

    Every invocation carries the exact data to send; the SELECT output is serialised once and shared.
    Substitution templates see the original message, not the SELECT output. When the message cannot be
    evaluated (:class:`RuleEvaluationError`: a regexp call out of its time budget), every action comes
    back failed with that error, so the dispatcher sends the message to the rule's errorAction.
    """
    try:
        found = rule.query.run(msg)
        if found is None:
            return []
        env, output = found
        payload = output if type(output) is bytes else dumps(output).encode("utf-8")  # to_payload_bytes, inline
        return [action.render(env, output, payload) for action in rule.actions]
    except RuleEvaluationError as exc:
        return [_unevaluated(action, str(exc)) for action in rule.actions]


# The field naming each action's resource, reported as written (templates unrendered) when evaluation failed.
_RESOURCE_FIELDS = ("topic", "stream_name", "queue_url", "bucket_name", "delivery_stream_name")


def _unevaluated(action: Action, error: str) -> ActionInvocation:
    """A failed invocation for an action whose message could not be evaluated."""
    resource = ""
    for name in _RESOURCE_FIELDS:
        template = getattr(action, name, None)
        if isinstance(template, Template):
            resource = template.static if template.static is not None else template.source
            break
    return ActionInvocation(action, {}, b"", resource, error)


def error_message(rule_name: str, msg: MessageContext, failures: Iterable[ActionFailure]) -> dict[str, object]:
    """AWS's errorAction document: one per rule per triggering message, all failed actions together."""
    doc: dict[str, object] = {
        "ruleName": rule_name,
        "topic": msg.topic,
        "cloudwatchTraceId": msg.trace_id or "",
        "clientId": msg.client_id or "n/a",
        "base64OriginalPayload": base64.b64encode(msg.payload).decode("ascii"),
        "failures": [f.to_json() for f in failures],
    }
    return doc


def render_error_action(
    rule: TopicRule, msg: MessageContext, failures: Iterable[ActionFailure]
) -> ActionInvocation | None:
    """The errorAction invocation carrying the error document, or None when the rule has no errorAction.

    Its templates are rendered against the original message, like the rule's actions; when that fails
    (RuleEvaluationError), the invocation carries the error instead.
    """
    if rule.error_action is None:
        return None
    doc = error_message(rule.name, msg, failures)
    payload = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    try:
        return rule.error_action.render(rule.query.env(msg), doc, payload)
    except RuleEvaluationError as exc:  # SET variables or its templates ran out of a regex budget
        failed = _unevaluated(rule.error_action, f"the errorAction could not be rendered: {exc}")
        failed.payload = payload
        return failed


class RuleIndex:
    """The enabled rules, looked up by topic (FROM filter match, or Basic Ingest ``$aws/rules/<name>/...``)."""

    def __init__(self, hash_matches_parent: bool = False) -> None:
        """``hash_matches_parent``: see :class:`TopicIndex` (default: AWS IoT, ``a/#`` does not match ``a``)."""
        self._rules: dict[str, TopicRule] = {}
        self._index: TopicIndex[TopicRule] = TopicIndex(hash_matches_parent=hash_matches_parent)

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, name: object) -> bool:
        return name in self._rules

    def get(self, name: str) -> TopicRule | None:
        return self._rules.get(name)

    def put(self, rule: TopicRule) -> None:
        """Add or replace a rule (a disabled rule is kept but never matched)."""
        self._rules[rule.name] = rule
        if rule.disabled or rule.topic_filter is None:
            self._index.discard(rule.name)
        else:
            self._index.put(rule.name, rule.topic_filter, rule)

    def remove(self, name: str) -> None:
        self._rules.pop(name, None)
        self._index.discard(name)

    def route(self, topic: str) -> tuple[list[TopicRule], str]:
        """The enabled rules for a message published on ``topic``, and the topic that ``topic()`` must
        report (for Basic Ingest the ``$aws/rules/<name>/`` prefix is removed)."""
        ingest = basic_ingest(topic)
        if ingest is not None:
            name, inner = ingest
            rule = self._rules.get(name)
            return ([rule] if rule is not None and not rule.disabled else []), inner
        return self._index.match(topic), topic
