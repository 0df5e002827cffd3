"""Provisioning templates: AWS's CloudFormation-like template language for fleet provisioning.

Supported: `Parameters` (Type, Default), `Mappings`, `Conditions` (Fn::Equals, Fn::And, Fn::Or, Fn::Not),
the intrinsic functions Ref, Fn::Join, Fn::Select, Fn::Split, Fn::FindInMap, Fn::Sub, Fn::If, resources of
type AWS::IoT::Thing (with OverrideSettings), AWS::IoT::Certificate and AWS::IoT::Policy (with an optional
`Condition`), and `DeviceConfiguration`. Evaluation is pure: it yields a `Plan` that the service applies.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from gateway.provisioning.errors import TemplateError

CERTIFICATE_ID_PARAMETER = "AWS::IoT::Certificate::Id"
THING, CERTIFICATE, POLICY = "AWS::IoT::Thing", "AWS::IoT::Certificate", "AWS::IoT::Policy"
OVERRIDES = {"AttributePayload": ("MERGE", "REPLACE", "FAIL", "DO_NOTHING"),
             "ThingTypeName": ("REPLACE", "FAIL", "DO_NOTHING"),
             "ThingGroups": ("MERGE", "REPLACE", "FAIL", "DO_NOTHING")}
_SUB = re.compile(r"\$\{([^}!][^}]*)\}")


@dataclass
class ThingSpec:
    name: str
    thing_type: str | None = None
    attributes: dict[str, str] | None = None
    groups: list[str] = field(default_factory=list)
    overrides: dict[str, str] = field(default_factory=dict)


@dataclass
class PolicySpec:
    name: str | None
    document: str | None


@dataclass
class Plan:
    """What a template asks for, with every function evaluated."""

    thing: ThingSpec | None = None
    certificate_status: str | None = None  # ACTIVE / INACTIVE, None without a certificate resource
    policies: list[PolicySpec] = field(default_factory=list)
    device_configuration: dict[str, Any] = field(default_factory=dict)


def parse(body: str) -> dict[str, Any]:
    """Check a template body's structure (at most 10240 characters of JSON with a Resources object)."""
    if not isinstance(body, str) or not body:
        raise TemplateError("templateBody is required: the template as a JSON string")
    if len(body) > 10240:
        raise TemplateError(f"templateBody is {len(body)} characters; at most 10240 are allowed")
    try:
        template = json.loads(body)
    except ValueError as exc:
        raise TemplateError(f"templateBody is not valid JSON: {exc}") from exc
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TemplateError("a template is a JSON object with a Resources object")
    for logical, resource in template["Resources"].items():
        kind = resource.get("Type") if isinstance(resource, dict) else None
        if kind not in (THING, CERTIFICATE, POLICY):
            raise TemplateError(f"resource {logical!r} has type {kind!r}; allowed: {THING}, {CERTIFICATE}, {POLICY}")
    for name, spec in (template.get("Parameters") or {}).items():
        if not isinstance(spec, dict) or spec.get("Type", "String") not in ("String", "Number", "CommaDelimitedList"):
            raise TemplateError(f"parameter {name!r} needs a Type of String, Number or CommaDelimitedList")
    return template


class _Evaluator:
    def __init__(self, template: dict[str, Any], parameters: dict[str, str]) -> None:
        self.template = template
        self.values: dict[str, Any] = {}
        missing = []
        for name, spec in (template.get("Parameters") or {}).items():
            if name in parameters:
                value: Any = parameters[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                missing.append(name)
                continue
            self.values[name] = value.split(",") if spec.get("Type") == "CommaDelimitedList" and isinstance(
                value, str) else value
        if missing:
            raise TemplateError(f"missing template parameters: {', '.join(sorted(missing))}")
        for name, value in parameters.items():
            self.values.setdefault(name, value)
        self.conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            spec = (self.template.get("Conditions") or {}).get(name)
            if spec is None:
                raise TemplateError(f"condition {name!r} is not defined in Conditions")
            self.conditions[name] = bool(self.value(spec))
        return self.conditions[name]

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.value(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                if arg not in self.values:
                    raise TemplateError(f"Ref to {arg!r}, which is not a parameter")
                return self.values[arg]
            if key == "Condition":
                return self.condition(str(arg))
            if key.startswith("Fn::"):
                return self._function(key, arg)
        return {k: self.value(v) for k, v in node.items()}

    def _function(self, name: str, arg: Any) -> Any:
        args = self.value(arg) if name not in ("Fn::If", "Fn::Sub") else arg
        if name == "Fn::Join":
            _shape(name, args, 2)
            return str(args[0]).join(str(x) for x in args[1])
        if name == "Fn::Select":
            _shape(name, args, 2)
            index, items = int(args[0]), args[1]
            if not isinstance(items, list) or not 0 <= index < len(items):
                raise TemplateError(f"Fn::Select index {index} is out of range")
            return items[index]
        if name == "Fn::Split":
            _shape(name, args, 2)
            return str(args[1]).split(str(args[0]))
        if name == "Fn::FindInMap":
            _shape(name, args, 3)
            try:
                return self.template["Mappings"][args[0]][args[1]][args[2]]
            except (KeyError, TypeError) as exc:
                raise TemplateError(f"Fn::FindInMap: no mapping {args[0]}/{args[1]}/{args[2]}") from exc
        if name == "Fn::Sub":
            return self._sub(arg)
        if name == "Fn::If":
            _shape(name, arg, 3)
            return self.value(arg[1] if self.condition(str(arg[0])) else arg[2])
        if name == "Fn::Equals":
            _shape(name, args, 2)
            return str(args[0]) == str(args[1])
        if name == "Fn::And":
            return all(bool(x) for x in args)
        if name == "Fn::Or":
            return any(bool(x) for x in args)
        if name == "Fn::Not":
            _shape(name, args, 1)
            return not args[0]
        raise TemplateError(f"unsupported function {name}")

    def _sub(self, arg: Any) -> str:
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1]) if (
            isinstance(arg, list) and len(arg) == 2) else (None, None)
        if not isinstance(text, str) or not isinstance(extra, dict):
            raise TemplateError("Fn::Sub takes a string, or [string, {name: value}]")
        names = {**self.values, **{k: self.value(v) for k, v in extra.items()}}

        def substitute(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                raise TemplateError(f"Fn::Sub: ${{{match.group(1)}}} is not a parameter")
            return str(names[match.group(1)])

        return _SUB.sub(substitute, text).replace("${!", "${")


def _shape(name: str, args: Any, count: int) -> None:
    if not isinstance(args, list) or len(args) != count:
        raise TemplateError(f"{name} takes a list of {count} arguments")


def evaluate(template: dict[str, Any], parameters: dict[str, str], certificate_id: str) -> Plan:
    """Evaluate `template` for a device's `parameters` (and the certificate it claims)."""
    ev = _Evaluator(template, {**parameters, CERTIFICATE_ID_PARAMETER: certificate_id})
    plan = Plan()
    for logical, resource in template["Resources"].items():
        if "Condition" in resource and not ev.condition(str(resource["Condition"])):
            continue
        props = ev.value(resource.get("Properties") or {})
        kind = resource["Type"]
        if kind == THING:
            plan.thing = _thing(logical, props, resource.get("OverrideSettings") or {})
        elif kind == CERTIFICATE:
            if props.get("CertificateId", certificate_id) != certificate_id:
                raise TemplateError(f"resource {logical!r}: CertificateId must be the claimed certificate "
                                    f"(Ref {CERTIFICATE_ID_PARAMETER})")
            status = str(props.get("Status", "Active")).upper()
            if status not in ("ACTIVE", "INACTIVE"):
                raise TemplateError(f"resource {logical!r}: Status must be Active or Inactive, not {status!r}")
            plan.certificate_status = status
        else:
            name, document = props.get("PolicyName"), props.get("PolicyDocument")
            if name is None and document is None:
                raise TemplateError(f"resource {logical!r}: give PolicyName or PolicyDocument")
            if document is not None and not isinstance(document, str):
                document = json.dumps(document)
            plan.policies.append(PolicySpec(None if name is None else str(name), document))
    plan.device_configuration = ev.value(template.get("DeviceConfiguration") or {})
    return plan


def _thing(logical: str, props: dict[str, Any], overrides: dict[str, Any]) -> ThingSpec:
    name = props.get("ThingName")
    if not isinstance(name, str) or not name:
        raise TemplateError(f"resource {logical!r}: ThingName is required")
    for key, value in overrides.items():
        if key not in OVERRIDES or value not in OVERRIDES[key]:
            raise TemplateError(f"resource {logical!r}: invalid OverrideSettings {key}={value!r}")
    attributes = (props.get("AttributePayload") or {})
    groups = props.get("ThingGroups") or []
    if not isinstance(attributes, dict) or not isinstance(groups, list):
        raise TemplateError(f"resource {logical!r}: AttributePayload is an object and ThingGroups a list")
    return ThingSpec(name, props.get("ThingTypeName"), {k: str(v) for k, v in attributes.items()} or None,
                     [str(g) for g in groups], dict(overrides))
