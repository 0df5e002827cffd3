"""Parsing and validation of AWS IoT policy documents (IAM JSON grammar, `iot:` actions and ARNs)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from gateway.identity.errors import PolicyError
from gateway.identity.policy_conditions import Condition, parse_conditions
from gateway.identity.policy_glob import compile_globs, parse_glob
from gateway.identity.policy_variables import Template, parse_template

VERSION_2012 = "2012-10-17"
VERSION_2008 = "2008-10-17"  # IAM's old grammar: `${...}` is literal text, not a variable
VERSIONS = (VERSION_2012, VERSION_2008)

# Supported actions and the resource type each is checked against (None: only a `*` resource matches).
ACTION_RESOURCE_TYPES: dict[str, str | None] = {
    "iot:Connect": "client",
    "iot:Publish": "topic",
    "iot:Receive": "topic",
    "iot:RetainPublish": "topic",
    "iot:Subscribe": "topicfilter",
    "iot:GetRetainedMessage": "topic",
    "iot:ListRetainedMessages": None,
    "iot:GetThingShadow": "thing",
    "iot:UpdateThingShadow": "thing",
    "iot:DeleteThingShadow": "thing",
    "iot:ListNamedShadowsForThing": "thing",
    "iot:DescribeJobExecution": "thing",
    "iot:GetPendingJobExecutions": "thing",
    "iot:UpdateJobExecution": "thing",
    "iot:StartNextPendingJobExecution": "thing",
    "iot:AssumeRoleWithCertificate": "rolealias",
    "greengrass:Discover": "thing",
}
ACTIONS = tuple(ACTION_RESOURCE_TYPES)
_ACTIONS_BY_LOWER = {a.lower(): a for a in ACTIONS}
RESOURCE_TYPES = ("client", "topic", "topicfilter", "thing", "thinggroup", "rolealias", "cert")
PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
STATEMENT_KEYS = ("Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition")
DOCUMENT_KEYS = ("Version", "Id", "Statement")
EFFECTS = ("Allow", "Deny")
ARN_HELP = "a resource is '*' or arn:aws:iot:REGION:ACCOUNT:TYPE/NAME with TYPE one of " + ", ".join(RESOURCE_TYPES)


@dataclass(frozen=True, slots=True)
class ResourcePattern:
    """One `Resource` entry: `*`, or an `arn:aws:iot:` ARN split into region, account and `type/name` parts."""

    source: str
    region: Template | None = None  # None: the bare `*` resource
    account: Template | None = None
    rest: Template | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    """A validated statement; `actions` lists the supported actions it applies to (after NotAction)."""

    effect: str
    action_patterns: tuple[str, ...]
    resources: tuple[ResourcePattern, ...]
    actions: frozenset[str]
    not_action: bool = False
    not_resource: bool = False
    conditions: tuple[Condition, ...] = ()
    sid: str | None = None

    @property
    def is_deny(self) -> bool:
        return self.effect == "Deny"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.sid is None else {"Sid": self.sid}
        out["Effect"] = self.effect
        out["NotAction" if self.not_action else "Action"] = _one_or_list(self.action_patterns)
        out["NotResource" if self.not_resource else "Resource"] = _one_or_list([r.source for r in self.resources])
        if self.conditions:
            block: dict[str, dict[str, Any]] = {}
            for c in self.conditions:
                block.setdefault(c.operator, {})[c.key.name] = _one_or_list([t.source for t in c.values])
            out["Condition"] = block
        return out


def _one_or_list(items: Any) -> Any:
    items = list(items)
    return items[0] if len(items) == 1 else items


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    """A parsed, validated AWS IoT policy document."""

    statements: tuple[Statement, ...]
    version: str = VERSION_2012
    id: str | None = None

    @classmethod
    def parse(cls, text: str | bytes | dict) -> PolicyDocument:
        """Parse JSON text (or an already decoded object); PolicyError names what is wrong and what is allowed."""
        if isinstance(text, dict):
            return _parse_object(text)
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PolicyError(f"invalid policy document: not UTF-8 ({exc.reason} at byte {exc.start})") from None
        if not isinstance(text, str):
            raise PolicyError(f"invalid policy document: expected JSON text or an object, got {type(text).__name__}")
        return _parse_text(text)

    def to_json(self) -> str:
        """Canonical JSON text of the document (parses back to an equal document)."""
        out: dict[str, Any] = {"Version": self.version}
        if self.id is not None:
            out["Id"] = self.id
        out["Statement"] = [s.to_dict() for s in self.statements]
        return json.dumps(out, separators=(",", ":"))


@functools.lru_cache(maxsize=1024)
def _parse_text(text: str) -> PolicyDocument:
    """Parse JSON text; cached because registries re-read the same documents at every connect."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(
            f"invalid policy document: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "a policy is a JSON object with Version and Statement"
        ) from None
    return _parse_object(obj)


def _parse_object(obj: object) -> PolicyDocument:
    if not isinstance(obj, dict):
        raise PolicyError("invalid policy document: must be a JSON object with Version and Statement")
    unknown = [k for k in obj if k not in DOCUMENT_KEYS]
    if unknown:
        raise PolicyError(f"invalid policy document: unknown key {unknown[0]!r}; allowed: {', '.join(DOCUMENT_KEYS)}")
    version = obj.get("Version", VERSION_2012)
    if version not in VERSIONS:
        raise PolicyError(f"invalid policy document: Version {version!r} is not supported; use {VERSION_2012!r}")
    doc_id = obj.get("Id")
    if doc_id is not None and not isinstance(doc_id, str):
        raise PolicyError("invalid policy document: Id must be a string")
    if "Statement" not in obj:
        raise PolicyError("invalid policy document: missing Statement (an object or a list of objects)")
    raw = obj["Statement"]
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise PolicyError("invalid policy document: Statement is empty; give at least one statement")
    variables = version == VERSION_2012
    statements = tuple(_parse_statement(i, item, variables) for i, item in enumerate(items))
    return PolicyDocument(statements, version, doc_id)


def _parse_statement(index: int, raw: object, variables: bool) -> Statement:
    def fail(field: str, problem: str) -> PolicyError:
        return PolicyError(f"invalid policy document: Statement[{index}].{field}: {problem}")

    if not isinstance(raw, dict):
        raise PolicyError(f"invalid policy document: Statement[{index}] must be an object, not {type(raw).__name__}")
    for key in raw:
        if key in ("Principal", "NotPrincipal"):
            raise fail(key, "not allowed in AWS IoT policies (the principal is the certificate the policy is "
                            "attached to)")  # fmt: skip
        if key not in STATEMENT_KEYS:
            raise fail(key, f"unknown key; allowed: {', '.join(STATEMENT_KEYS)}")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise fail("Sid", "must be a string")
    effect = raw.get("Effect")
    if effect is None:
        raise fail("Effect", 'missing; use "Allow" or "Deny"')
    if effect not in EFFECTS:
        raise fail("Effect", f'{effect!r} is not allowed; use "Allow" or "Deny"')
    action_field = _exactly_one(raw, "Action", "NotAction", fail)
    resource_field = _exactly_one(raw, "Resource", "NotResource", fail)
    patterns = _strings(raw[action_field], action_field, fail)
    resources = _strings(raw[resource_field], resource_field, fail)
    matched: set[str] = set()
    for pattern in patterns:
        try:
            matched.update(match_actions(pattern))
        except ValueError as exc:
            raise fail(action_field, str(exc)) from None
    actions = frozenset(ACTIONS) - matched if action_field == "NotAction" else frozenset(matched)
    parsed_resources: list[ResourcePattern] = []
    for resource in resources:
        try:
            parsed_resources.append(parse_resource(resource, variables=variables))
        except ValueError as exc:
            raise fail(resource_field, str(exc)) from None
    conditions: tuple[Condition, ...] = ()
    if "Condition" in raw:
        try:
            conditions = parse_conditions(raw["Condition"], variables=variables)
        except ValueError as exc:
            raise fail("Condition", str(exc)) from None
    return Statement(
        effect, tuple(patterns), tuple(parsed_resources), actions,
        action_field == "NotAction", resource_field == "NotResource", conditions, sid,
    )  # fmt: skip


def _exactly_one(raw: dict, name: str, negated: str, fail: Any) -> str:
    if name in raw and negated in raw:
        raise fail(negated, f"give either {name} or {negated}, not both")
    if name not in raw and negated not in raw:
        raise fail(name, f"missing; give {name} (or {negated}) as a string or a list of strings")
    return name if name in raw else negated


def _strings(value: object, field: str, fail: Any) -> list[str]:
    items: list[Any] = value if isinstance(value, list) else [value]
    if not items:
        raise fail(field, "is empty; give a string or a non-empty list of strings")
    for item in items:
        if not isinstance(item, str):
            raise fail(field, f"must be a string or a list of strings, found {type(item).__name__}")
    return items


def match_actions(pattern: str) -> set[str]:
    """The supported actions an Action entry names (case-insensitive, `*`/`?` wildcards allowed)."""
    if pattern != "*" and ":" not in pattern:
        raise ValueError(f"{pattern!r} is not an action; write service:Name, e.g. iot:Publish")
    lowered = pattern.lower()
    if "*" not in pattern and "?" not in pattern:
        if lowered in _ACTIONS_BY_LOWER:
            return {_ACTIONS_BY_LOWER[lowered]}
        raise ValueError(f"unknown action {pattern!r}; allowed: {', '.join(ACTIONS)} (or wildcards like iot:*)")
    predicate = compile_globs([parse_glob(lowered)])
    found = {a for lower, a in _ACTIONS_BY_LOWER.items() if predicate(lower)}
    if not found:
        raise ValueError(f"{pattern!r} matches no supported action; allowed: {', '.join(ACTIONS)}")
    return found


def _split_arn(text: str) -> list[str]:
    """Split at the first five colons that are not inside a `${...}` variable."""
    parts: list[str] = []
    start = i = 0
    while i < len(text) and len(parts) < 5:
        if text.startswith("${", i):
            close = text.find("}", i)
            i = len(text) if close < 0 else close + 1
            continue
        if text[i] == ":":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def parse_resource(source: str, *, variables: bool = True) -> ResourcePattern:
    """Parse one Resource entry; ValueError says what is wrong and what is allowed."""
    if source == "*":
        return ResourcePattern(source)
    parts = _split_arn(source)
    if len(parts) != 6 or parts[0] != "arn":
        raise ValueError(f"malformed resource {source!r}; {ARN_HELP}")
    _, partition, service, region, account, rest = parts
    if not _is_pattern(partition) and partition not in PARTITIONS:
        raise ValueError(f"unknown partition {partition!r} in {source!r}; allowed: {', '.join(PARTITIONS)}")
    if not _is_pattern(service) and service != "iot":
        raise ValueError(f"{source!r} is an ARN of service {service!r}; AWS IoT policies take arn:aws:iot: ARNs")
    if not region or not account:
        raise ValueError(f"empty region or account in {source!r}; give them or use * to match any")
    type_part, slash, _name = rest.partition("/")
    if not _is_pattern(type_part):
        if not slash:
            raise ValueError(f"malformed resource {source!r}; {ARN_HELP}")
        if type_part not in RESOURCE_TYPES:
            raise ValueError(f"unknown resource type {type_part!r} in {source!r}; allowed: {', '.join(RESOURCE_TYPES)}")
    return ResourcePattern(
        source,
        parse_template(region, variables=variables),
        parse_template(account, variables=variables),
        parse_template(rest, variables=variables),
    )


def _is_pattern(text: str) -> bool:
    return "*" in text or "?" in text or "${" in text
