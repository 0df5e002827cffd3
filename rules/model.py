"""The topic-rule model: AWS's ``TopicRulePayload`` JSON parsed and validated into a :class:`TopicRule`.

Shapes and required fields follow botocore's ``iot`` 2015-05-28 model. Supported actions: republish,
kinesis, firehose, sqs, s3. Each action may also carry ``endpointUrl`` (an edgeloop extension): the
base URL of a remote AWS-compatible endpoint to ship the action to instead of the local sink.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from rules.actions import (
    ENDPOINT_FIELD,
    Action,
    FirehoseAction,
    KinesisAction,
    RepublishAction,
    RepublishHeaders,
    S3Action,
    SqsAction,
)
from rules.compiler import CompiledQuery, check_version, compile_sql
from rules.errors import RuleValidationError, SqlSemanticError
from rules.regexes import regex_budget
from rules.templates import Template, compile_template

RULE_NAME_RE = re.compile(r"[a-zA-Z0-9_]{1,128}")
MAX_ACTIONS = 10
# Every member of botocore's Action shape; only some run on the edge.
AWS_ACTION_KINDS = (
    "dynamoDB", "dynamoDBv2", "lambda", "sns", "sqs", "kinesis", "republish", "s3", "firehose", "cloudwatchMetric",
    "cloudwatchAlarm", "cloudwatchLogs", "elasticsearch", "salesforce", "iotAnalytics", "iotEvents", "iotSiteWise",
    "stepFunctions", "timestream", "http", "kafka", "openSearch", "location", "influxDB",
)  # fmt: skip
SUPPORTED_ACTION_KINDS = ("republish", "kinesis", "firehose", "sqs", "s3")
FIREHOSE_SEPARATORS = (",", "\n", "\t", "\r\n")
CANNED_ACLS = (
    "private", "public-read", "public-read-write", "aws-exec-read", "authenticated-read", "bucket-owner-read",
    "bucket-owner-full-control", "log-delivery-write",
)  # fmt: skip
PAYLOAD_FORMATS = ("UNSPECIFIED_BYTES", "UTF8_DATA")
_PAYLOAD_FIELDS = ("sql", "description", "ruleDisabled", "awsIotSqlVersion", "actions", "errorAction")


def validate_rule_name(name: object) -> str:
    """A rule name must match ``^[a-zA-Z0-9_]+$`` and have 1-128 characters."""
    if not isinstance(name, str) or not RULE_NAME_RE.fullmatch(name):
        raise RuleValidationError(
            f"invalid rule name {name!r}: use 1-128 characters from a-z, A-Z, 0-9 and '_' (pattern ^[a-zA-Z0-9_]+$)"
        )
    return name


class _Fields:
    """Typed access to one JSON object with messages that name the field path."""

    def __init__(self, data: object, path: str, allowed: tuple[str, ...]) -> None:
        if not isinstance(data, dict):
            raise RuleValidationError(f"{path}: expected an object, got {_json_type(data)}")
        unknown = [k for k in data if k not in allowed]
        if unknown:
            raise RuleValidationError(f"{path}: unknown field {unknown[0]!r}; allowed: {', '.join(allowed)}")
        self.data: dict[str, Any] = data
        self.path = path

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def string(self, name: str, required: bool = False, max_len: int | None = None) -> str | None:
        v = self.data.get(name)
        if v is None:
            if required:
                raise RuleValidationError(f"{self.path}.{name} is required")
            return None
        if not isinstance(v, str):
            raise RuleValidationError(f"{self.path}.{name}: expected a string, got {_json_type(v)}")
        if required and not v:
            raise RuleValidationError(f"{self.path}.{name} must not be empty")
        if max_len is not None and len(v) > max_len:
            raise RuleValidationError(f"{self.path}.{name}: longer than {max_len} characters")
        return v

    def boolean(self, name: str, default: bool = False) -> bool:
        v = self.data.get(name)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise RuleValidationError(f"{self.path}.{name}: expected true or false, got {_json_type(v)}")
        return v

    def choice(self, name: str, allowed: tuple[str, ...]) -> str | None:
        v = self.string(name)
        if v is not None and v not in allowed:
            shown = ", ".join(json.dumps(a) for a in allowed)
            raise RuleValidationError(f"{self.path}.{name}: {json.dumps(v)} is not allowed; use one of {shown}")
        return v


def _json_type(v: object) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return "null"


@dataclass(frozen=True)
class _Ctx:
    version: str
    variables: frozenset[str]

    @overload
    def template(self, f: _Fields, name: str, required: Literal[True], max_len: int | None = None) -> Template: ...

    @overload
    def template(self, f: _Fields, name: str, required: bool = False,
                 max_len: int | None = None) -> Template | None: ...

    def template(self, f: _Fields, name: str, required: bool = False, max_len: int | None = None) -> Template | None:
        text = f.string(name, required=required, max_len=max_len)
        if text is None:
            return None
        return compile_template(text, self.version, self.variables, field=f"{f.path}.{name}")


def _common(f: _Fields) -> dict[str, Any]:
    role = f.string("roleArn", required=True)
    if not role.startswith("arn:"):  # type: ignore[union-attr]
        raise RuleValidationError(f"{f.path}.roleArn: expected an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    endpoint = f.string(ENDPOINT_FIELD)
    if endpoint is not None and not re.match(r"https?://[^/\s]+", endpoint):
        raise RuleValidationError(f"{f.path}.{ENDPOINT_FIELD}: expected an http:// or https:// URL, got {endpoint!r}")
    return {"role_arn": role, "endpoint_url": endpoint}


def _republish(f: _Fields, ctx: _Ctx) -> Action:
    qos = f.data.get("qos", 0)
    if isinstance(qos, bool) or qos not in (0, 1):
        raise RuleValidationError(f"{f.path}.qos: expected 0 or 1, got {json.dumps(qos)}")
    headers = None
    if f.has("headers"):
        h = _Fields(f.data["headers"], f.path + ".headers", RepublishHeaders.FIELDS)
        fmt = h.string("payloadFormatIndicator", max_len=1024)
        if fmt is not None and "${" not in fmt and fmt not in PAYLOAD_FORMATS:
            raise RuleValidationError(f"{h.path}.payloadFormatIndicator: use UNSPECIFIED_BYTES or UTF8_DATA")
        props = h.data.get("userProperties")
        user: list[tuple[Template, Template]] = []
        if props is not None:
            if not isinstance(props, list) or not 1 <= len(props) <= 100:
                raise RuleValidationError(f"{h.path}.userProperties: expected an array of 1 to 100 key/value objects")
            for i, p in enumerate(props):
                pf = _Fields(p, f"{h.path}.userProperties[{i}]", ("key", "value"))
                key = ctx.template(pf, "key", required=True, max_len=1024)
                value = ctx.template(pf, "value", required=False, max_len=1024) or Template("", [])
                if pf.string("value") is None:
                    raise RuleValidationError(f"{pf.path}.value is required")
                user.append((key, value))
        headers = RepublishHeaders(
            payload_format_indicator=ctx.template(h, "payloadFormatIndicator", max_len=1024),
            content_type=ctx.template(h, "contentType", max_len=1024),
            response_topic=ctx.template(h, "responseTopic", max_len=1024),
            correlation_data=ctx.template(h, "correlationData", max_len=1024),
            message_expiry=ctx.template(h, "messageExpiry", max_len=1024),
            user_properties=tuple(user),
        )
    return RepublishAction(
        **_common(f),
        topic=ctx.template(f, "topic", required=True),
        qos=qos,
        headers=headers,
    )


def _kinesis(f: _Fields, ctx: _Ctx) -> Action:
    return KinesisAction(
        **_common(f),
        stream_name=ctx.template(f, "streamName", required=True),
        partition_key=ctx.template(f, "partitionKey"),
    )


def _firehose(f: _Fields, ctx: _Ctx) -> Action:
    sep = f.data.get("separator")
    if sep is not None and sep not in FIREHOSE_SEPARATORS:
        raise RuleValidationError(
            f'{f.path}.separator: {json.dumps(sep)} is not allowed; use one of ",", "\\n", "\\t", "\\r\\n"'
        )
    return FirehoseAction(
        **_common(f),
        delivery_stream_name=ctx.template(f, "deliveryStreamName", required=True),
        separator=sep,
        batch_mode=f.boolean("batchMode"),
    )


def _sqs(f: _Fields, ctx: _Ctx) -> Action:
    return SqsAction(
        **_common(f),
        queue_url=ctx.template(f, "queueUrl", required=True),
        use_base64=f.boolean("useBase64"),
    )


def _s3(f: _Fields, ctx: _Ctx) -> Action:
    return S3Action(
        **_common(f),
        bucket_name=ctx.template(f, "bucketName", required=True),
        key=ctx.template(f, "key", required=True),
        canned_acl=f.choice("cannedAcl", CANNED_ACLS),
    )


_PARSERS = {"republish": _republish, "kinesis": _kinesis, "firehose": _firehose, "sqs": _sqs, "s3": _s3}
_FIELDS: dict[str, tuple[str, ...]] = {
    "republish": ("roleArn", "topic", "qos", "headers", ENDPOINT_FIELD),
    "kinesis": ("roleArn", "streamName", "partitionKey", ENDPOINT_FIELD),
    "firehose": ("roleArn", "deliveryStreamName", "separator", "batchMode", ENDPOINT_FIELD),
    "sqs": ("roleArn", "queueUrl", "useBase64", ENDPOINT_FIELD),
    "s3": ("roleArn", "bucketName", "key", "cannedAcl", ENDPOINT_FIELD),
}


def parse_action(data: object, path: str, version: str, variables: frozenset[str] = frozenset()) -> Action:
    """One ``Action`` object (exactly one key) -> a validated :class:`Action`."""
    if not isinstance(data, dict) or len(data) != 1:
        raise RuleValidationError(f'{path}: an action is an object with exactly one key such as "kinesis"')
    ((kind, body),) = data.items()
    if kind not in AWS_ACTION_KINDS:
        raise RuleValidationError(f"{path}: unknown action {kind!r}; supported: {', '.join(SUPPORTED_ACTION_KINDS)}")
    if kind not in _PARSERS:
        raise RuleValidationError(
            f"{path}: action {kind!r} is not supported on the edge; supported: {', '.join(SUPPORTED_ACTION_KINDS)}"
        )
    fields = _Fields(body, f"{path}.{kind}", _FIELDS[kind])
    return _PARSERS[kind](fields, _Ctx(version, variables))


@dataclass(frozen=True)
class TopicRule:
    """A validated, compiled topic rule."""

    name: str
    sql: str
    query: CompiledQuery
    actions: tuple[Action, ...]
    error_action: Action | None = None
    description: str = ""
    disabled: bool = False
    sql_version_given: str | None = None  # as written in the payload (None: omitted)
    payload: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def sql_version(self) -> str:
        return self.query.version

    @property
    def topic_filter(self) -> str | None:
        """The FROM filter (None for a Basic-Ingest-only rule)."""
        return self.query.source

    def describe(self) -> dict[str, Any]:
        """The ``rule`` object of GetTopicRule (without ``createdAt``, which the registry owns)."""
        out: dict[str, Any] = {
            "ruleName": self.name,
            "sql": self.sql,
            "description": self.description,
            "actions": self.payload.get("actions", []),
            "ruleDisabled": self.disabled,
            "awsIotSqlVersion": self.sql_version,
        }
        if "errorAction" in self.payload:
            out["errorAction"] = self.payload["errorAction"]
        return out


def parse_topic_rule(
    name: str, payload: dict[str, Any] | str | bytes, *, regex_budget_ms: float | None = None
) -> TopicRule:
    """Validate and compile a ``TopicRulePayload`` (a dict or its JSON text) for rule ``name``.

    Raises :class:`RuleValidationError` (fields), :class:`SqlSyntaxError` / :class:`SqlSemanticError` /
    :class:`TopicFilterError` (the SQL) or :class:`TemplateError` (``${...}`` in a field).
    ``regex_budget_ms``: the time each regexp call of the SQL and templates may take (see compile_sql).
    """
    with regex_budget(regex_budget_ms):
        return _parse_topic_rule(name, payload)


def _parse_topic_rule(name: str, payload: dict[str, Any] | str | bytes) -> TopicRule:
    validate_rule_name(name)
    if isinstance(payload, str | bytes):
        try:
            payload = json.loads(payload)
        except ValueError as exc:
            raise RuleValidationError(f"topicRulePayload is not valid JSON: {exc}") from exc
    f = _Fields(payload, "topicRulePayload", _PAYLOAD_FIELDS)
    sql = f.string("sql", required=True)
    version_given = f.string("awsIotSqlVersion")
    try:
        version = check_version(version_given)
    except SqlSemanticError as exc:
        raise RuleValidationError(f"topicRulePayload.awsIotSqlVersion: {exc}") from exc
    if "actions" not in f.data:
        raise RuleValidationError("topicRulePayload.actions is required (use [] for none)")
    actions_data = f.data["actions"]
    if not isinstance(actions_data, list) or len(actions_data) > MAX_ACTIONS:
        raise RuleValidationError(f"topicRulePayload.actions: expected an array of 0 to {MAX_ACTIONS} actions")
    query = compile_sql(sql, version)  # type: ignore[arg-type]
    variables = frozenset(n for n, _ in query.query.sets)
    actions = tuple(
        parse_action(a, f"topicRulePayload.actions[{i}]", version, variables) for i, a in enumerate(actions_data)
    )
    error_action = None
    if f.has("errorAction"):
        error_action = parse_action(f.data["errorAction"], "topicRulePayload.errorAction", version, variables)
    description = f.string("description") or ""
    return TopicRule(
        name=name,
        sql=sql,  # type: ignore[arg-type]
        query=query,
        actions=actions,
        error_action=error_action,
        description=description,
        disabled=f.boolean("ruleDisabled"),
        sql_version_given=version_given,
        payload=dict(f.data),
    )
