"""The topic-rule operations of the AWS IoT control plane (boto3 ``iot`` client), on the rule files.

CreateTopicRule ``POST /rules/{ruleName}``, GetTopicRule / ReplaceTopicRule (``PATCH``) / DeleteTopicRule
on ``/rules/{ruleName}``, ListTopicRules ``GET /rules``, EnableTopicRule / DisableTopicRule
``POST /rules/{ruleName}/enable|disable``. A rule that does not exist is ``UnauthorizedException`` (401),
as AWS answers for topic rules (the botocore model lists no ResourceNotFoundException for them).
Handlers run in a worker thread; after writing a file they make the running gateway apply it at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.awsapi.errors import AwsError
from gateway.dispatcher.errors import RuleExistsError, RuleNotFoundError
from gateway.dispatcher.service import RulesService
from gateway.dispatcher.store import StoredRule
from gateway.identity.iot_api import IotControlPlane, Params
from rules import RulesError, SqlSemanticError, SqlSyntaxError, TopicFilterError, filter_matches

SQL_ERRORS = (SqlSyntaxError, SqlSemanticError, TopicFilterError)
MAX_LIST_RESULTS = 10000


def aws_error_for(exc: Exception) -> AwsError:
    """The AWS error a rule operation answers for one of our exceptions."""
    if isinstance(exc, SQL_ERRORS):
        return AwsError("SqlParseException", str(exc), 400)
    if isinstance(exc, RulesError):
        return AwsError("InvalidRequestException", str(exc), 400)
    if isinstance(exc, RuleExistsError):
        return AwsError("ResourceAlreadyExistsException", str(exc), 409)
    if isinstance(exc, RuleNotFoundError):
        return AwsError("UnauthorizedException", str(exc), 401)
    raise exc


class TopicRuleApi:
    """Handlers bound to one RulesService and the event loop it runs on."""

    def __init__(self, service: RulesService, loop: asyncio.AbstractEventLoop) -> None:
        self.service = service
        self.files = service.files
        self.loop = loop
        aws = service.config.aws
        self.arn_prefix = f"arn:aws:iot:{aws.region}:{aws.account_id}:rule/"

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", "/rules/{ruleName}/enable", lambda p: self._write(lambda: self.files.set_disabled(
                p.path["ruleName"], False))),
            ("POST", "/rules/{ruleName}/disable", lambda p: self._write(lambda: self.files.set_disabled(
                p.path["ruleName"], True))),
            ("POST", "/rules/{ruleName}", lambda p: self._write(lambda: self.files.create(
                p.path["ruleName"], dict(p.body)))),
            ("PATCH", "/rules/{ruleName}", lambda p: self._write(lambda: self.files.replace(
                p.path["ruleName"], dict(p.body)))),
            ("DELETE", "/rules/{ruleName}", lambda p: self._write(lambda: self.files.delete(p.path["ruleName"]))),
            ("GET", "/rules/{ruleName}", self.get),
            ("GET", "/rules", self.list),
        ]

    def _write(self, op: Any) -> dict[str, Any]:
        try:
            op()
        except (RulesError, RuleExistsError, RuleNotFoundError) as exc:
            raise aws_error_for(exc) from exc
        asyncio.run_coroutine_threadsafe(self.service.rescan(), self.loop).result(30)
        return {}

    def _read(self, name: str) -> StoredRule:
        try:
            return self.files.read(name)
        except (RulesError, RuleNotFoundError) as exc:
            raise aws_error_for(exc) from exc

    def get(self, p: Params) -> dict[str, Any]:
        stored = self._read(p.path["ruleName"])
        return {"ruleArn": self.arn_prefix + stored.name,
                "rule": {**stored.rule.describe(), "createdAt": stored.created_at}}

    def list(self, p: Params) -> dict[str, Any]:
        topic = p.query.get("topic")
        disabled = p.query.get("ruleDisabled")
        limit = p.number("maxResults") or MAX_LIST_RESULTS
        if not 1 <= limit <= MAX_LIST_RESULTS:
            raise AwsError("InvalidRequestException", f"maxResults must be 1 to {MAX_LIST_RESULTS}, not {limit}")
        names = self.files.names()
        token = p.query.get("nextToken")
        if token:
            names = [n for n in names if n > token]
        items: list[dict[str, Any]] = []
        next_token = None
        for name in names:
            try:
                stored = self.files.read(name)
            except (RulesError, RuleNotFoundError):
                continue  # an invalid file is not a rule
            rule = stored.rule
            if disabled is not None and rule.disabled != (disabled.lower() == "true"):
                continue
            pattern = rule.topic_filter
            if topic and (pattern is None or not (pattern == topic or filter_matches(pattern, topic))):
                continue
            if len(items) == limit:
                next_token = items[-1]["ruleName"]
                break
            items.append({"ruleArn": self.arn_prefix + name, "ruleName": name, "topicPattern": pattern or "",
                          "createdAt": stored.created_at, "ruleDisabled": rule.disabled})
        out: dict[str, Any] = {"rules": items}
        if next_token is not None:
            out["nextToken"] = next_token
        return out


def add_rule_routes(iot: IotControlPlane, service: RulesService) -> None:
    """Mount the topic-rule operations on the gateway's `iot` control plane (call on the event loop)."""
    api = TopicRuleApi(service, asyncio.get_running_loop())
    for method, template, handler in api.routes():
        iot.add_route(method, template, handler)
