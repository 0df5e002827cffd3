"""The admin API's topic-rule endpoints: list, read, create or replace, enable, disable, delete, test.

Writes go through the rule files (`RuleFiles`: validate, then replace atomically) and then make the running
gateway apply them at once (`RulesService.rescan`), as the ``iot`` control plane does. Tests run the rule on
one message with `run_trial`, the same function ``edgeloop rules test`` uses.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.admin.errors import AdminError, BadRequest, Conflict, NotFound
from gateway.admin.router import Call, Router
from gateway.dispatcher.api import SQL_ERRORS
from gateway.dispatcher.errors import DispatchError, RuleExistsError, RuleNotFoundError
from gateway.dispatcher.store import RuleFiles, StoredRule
from gateway.dispatcher.trial import run_trial
from rules import RulesError, SqlSyntaxError, TopicRule

if TYPE_CHECKING:
    from gateway.app import Gateway

T = TypeVar("T")
UNNAMED_RULE = "test"  # the name an unnamed test rule gets (Basic Ingest topics name it)


def rule_error(exc: Exception) -> AdminError:
    """The admin error for a rules or dispatcher exception (SQL errors carry line and column)."""
    if isinstance(exc, SqlSyntaxError):
        return BadRequest(str(exc), "SqlParseError", line=exc.line, column=exc.column)
    if isinstance(exc, SQL_ERRORS):
        return BadRequest(str(exc), "SqlParseError")
    if isinstance(exc, RulesError):
        return BadRequest(str(exc), "InvalidRule")
    if isinstance(exc, RuleExistsError):
        return Conflict(str(exc), "RuleExists")
    if isinstance(exc, RuleNotFoundError):
        return NotFound(str(exc), "RuleNotFound")
    if isinstance(exc, DispatchError):
        return BadRequest(str(exc))
    raise exc


def json_body(body: bytes, what: str) -> dict[str, Any]:
    """A JSON-object request body; BadRequest naming `what` otherwise."""
    if not body:
        raise BadRequest(f"the body must be {what} (a JSON object); it is empty")
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", "InvalidJson") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"the body must be {what} (a JSON object), not {type(doc).__name__}", "InvalidJson")
    return doc


class RuleViews:
    """Rule endpoints over one gateway's rule folder and (when rules run) its dispatcher."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.files = RuleFiles.for_config(gateway.config)

    def add_to(self, router: Router) -> None:
        router.add("GET", "rules", self.list)
        router.add("POST", "rules/test", self.test_unnamed)
        router.add("GET", "rules/{name}", self.get)
        router.add("PUT", "rules/{name}", self.put)
        router.add("DELETE", "rules/{name}", self.delete)
        router.add("POST", "rules/{name}/enable", lambda call: self._set_disabled(call, False))
        router.add("POST", "rules/{name}/disable", lambda call: self._set_disabled(call, True))
        router.add("POST", "rules/{name}/test", self.test_named)

    async def _files(self, op: Callable[[], T]) -> T:
        """Run a blocking rule-file operation in a worker thread, with its errors as admin errors."""
        try:
            return await asyncio.to_thread(op)
        except (RulesError, DispatchError) as exc:
            raise rule_error(exc) from exc

    async def _apply(self) -> None:
        """Make the running dispatcher pick up what was just written (no-op when rules are off)."""
        if self.gateway.rules is not None:
            await self.gateway.rules.rescan()

    def _counters(self) -> dict[str, Any]:
        """Every rule's counters by name (empty when rules are off)."""
        service = self.gateway.rules
        return service.metrics()["rules"] if service is not None else {}

    @staticmethod
    def _counters_of(counters: dict[str, Any], name: str) -> dict[str, Any]:
        """One rule's counters, zero for a rule that has not matched yet."""
        return {"matched": 0, "actions": {}, **counters.get(name, {})}

    def _state(self, name: str) -> dict[str, Any]:
        """How the running gateway sees rule `name`: loaded or not, why not, and its counters."""
        service = self.gateway.rules
        if service is None:
            return {"loaded": False, "counters": {}}
        state: dict[str, Any] = {"loaded": name in service.reloader.stored,
                                 "counters": self._counters_of(self._counters(), name)}
        error = service.reloader.errors.get(name)
        if error is not None:
            state["fileError"] = error
        return state

    def _describe(self, stored: StoredRule) -> dict[str, Any]:
        rule = stored.rule
        return {"ruleName": rule.name, "enabled": not rule.disabled, "topicFilter": rule.topic_filter,
                "createdAt": round(stored.created_at, 3), "topicRulePayload": stored.payload,
                **self._state(rule.name)}

    async def list(self, call: Call) -> dict[str, Any]:
        good, bad = await self._files(self.files.read_all)
        counters = self._counters()
        rules = [{"ruleName": s.name, "enabled": not s.rule.disabled, "topicFilter": s.rule.topic_filter,
                  "actions": [a.kind for a in s.rule.actions], "createdAt": round(s.created_at, 3),
                  "counters": self._counters_of(counters, s.name)} for s in good]
        invalid = [{"ruleName": name, "error": str(exc)} for name, exc in sorted(bad.items())]
        return {"rules": rules, "invalid": invalid, "dispatcher": self.gateway.rules is not None}

    async def get(self, call: Call) -> dict[str, Any]:
        name = call.path["name"]
        return self._describe(await self._files(lambda: self.files.read(name)))

    async def put(self, call: Call) -> tuple[int, dict[str, Any]]:
        name = call.path["name"]
        payload = json_body(call.body, "a topicRulePayload")
        created = not await self._files(lambda: self.files.exists(name))
        stored = await self._files(lambda: self.files.create(name, payload, replace=True))
        await self._apply()
        return (201 if created else 200), self._describe(stored)

    async def delete(self, call: Call) -> dict[str, Any]:
        name = call.path["name"]
        await self._files(lambda: self.files.delete(name))
        await self._apply()
        return {"ruleName": name, "deleted": True}

    async def _set_disabled(self, call: Call, disabled: bool) -> dict[str, Any]:
        name = call.path["name"]
        stored = await self._files(lambda: self.files.set_disabled(name, disabled))
        await self._apply()
        return self._describe(stored)

    async def test_named(self, call: Call) -> dict[str, Any]:
        name = call.path["name"]
        stored = await self._files(lambda: self.files.read(name))
        return self._trial(stored.rule, json_body(call.body, "a test message"))

    async def test_unnamed(self, call: Call) -> dict[str, Any]:
        doc = json_body(call.body, "a test message with its rule")
        payload = doc.get("rule")
        if not isinstance(payload, dict):
            raise BadRequest('"rule" is required: the topicRulePayload to test (a JSON object)')
        try:
            rule = self.files.parse(UNNAMED_RULE, payload)
        except RulesError as exc:
            raise rule_error(exc) from exc
        return self._trial(rule, doc)

    def _trial(self, rule: TopicRule, doc: dict[str, Any]) -> dict[str, Any]:
        topic = doc.get("topic")
        if not isinstance(topic, str) or not topic:
            raise BadRequest('"topic" is required: the topic the message is published on (a string)')
        client_id, principal = _optional_text(doc, "clientId"), _optional_text(doc, "principal")
        try:
            trial = run_trial(rule, topic, _message_payload(doc), client_id=client_id, principal=principal,
                              account_id=self.gateway.config.aws.account_id)
        except DispatchError as exc:
            raise rule_error(exc) from exc
        return trial.to_dict()


def _optional_text(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f'"{key}" must be a string')
    return value


def _message_payload(doc: dict[str, Any]) -> bytes:
    """The test message's bytes: "payload" (text, sent as UTF-8) or "payloadBase64", exactly one."""
    text, encoded = doc.get("payload"), doc.get("payloadBase64")
    if (text is None) == (encoded is None):
        raise BadRequest('give exactly one of "payload" (the message as text) or "payloadBase64"')
    if text is not None:
        if not isinstance(text, str):
            raise BadRequest('"payload" must be a string (the message text, e.g. "{\\"temp\\": 7}")')
        return text.encode("utf-8")
    if not isinstance(encoded, str):
        raise BadRequest('"payloadBase64" must be a base64 string')
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest('"payloadBase64" is not valid base64') from None
