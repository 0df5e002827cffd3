"""IAM condition operators for the `Condition` block of a policy statement.

Every condition key of an AWS IoT data-plane policy describes the connection, so conditions are evaluated once
per principal (when a session binds the policies), never per request. Semantics follow IAM: several values of
one key are OR-ed (NOR for negated operators), keys and operators are AND-ed, a missing key makes a positive
operator false and a negated one true, `...IfExists` turns a missing key into true, `ForAllValues:` is true for
an empty or missing set and `ForAnyValue:` false.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.identity.policy_glob import ONE, STAR, Glob, compile_globs
from gateway.identity.policy_principal import Principal
from gateway.identity.policy_variables import KeyRef, Template, parse_key, parse_template

FOR_ALL = "ForAllValues"
FOR_ANY = "ForAnyValue"


@dataclass(frozen=True, slots=True)
class _Operator:
    """How one base operator prepares a policy value and tests a context value against it."""

    prepare: Callable[[Any], Any]
    test: Callable[[str, Any], bool]
    negated: bool = False
    uses_glob: bool = False


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None


def _numeric_test(compare: Callable[[float, float], bool]) -> Callable[[str, float], bool]:
    def test(context: str, expected: float) -> bool:
        try:
            return compare(float(context), expected)
        except ValueError:
            return False

    return test


def _bool_value(value: str) -> str:
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"{value!r} is not a boolean; use true or false")
    return lowered


def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR block") from None


def _in_network(context: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(context) in network
    except ValueError:
        return False


def _arn_regex(glob: Glob) -> Callable[[str], bool]:
    """ARN match: wildcards stay inside one of the six colon-separated segments (the last may hold colons)."""
    colons = 0
    parts: list[str] = []
    for token in glob:
        last = colons >= 5
        if token is STAR:
            parts.append(".*" if last else "[^:]*")
        elif token is ONE:
            parts.append("." if last else "[^:]")
        else:
            parts.append(re.escape(token))
            colons += token.count(":")
    regex = re.compile("".join(parts), re.DOTALL).fullmatch
    return lambda s: regex(s) is not None


def _glob_test(context: str, predicate: Callable[[str], bool]) -> bool:
    return predicate(context)


def _string(value: str) -> str:
    return value


_POSITIVE = {
    "StringEquals": _Operator(_string, str.__eq__),
    "StringEqualsIgnoreCase": _Operator(str.casefold, lambda c, v: c.casefold() == v),
    "StringLike": _Operator(lambda g: compile_globs([g]), _glob_test, uses_glob=True),
    "NumericEquals": _Operator(_number, _numeric_test(float.__eq__)),
    "NumericLessThan": _Operator(_number, _numeric_test(float.__lt__)),
    "NumericLessThanEquals": _Operator(_number, _numeric_test(float.__le__)),
    "NumericGreaterThan": _Operator(_number, _numeric_test(float.__gt__)),
    "NumericGreaterThanEquals": _Operator(_number, _numeric_test(float.__ge__)),
    "Bool": _Operator(_bool_value, lambda c, v: c.lower() == v),
    "IpAddress": _Operator(_network, _in_network),
    "ArnEquals": _Operator(_arn_regex, _glob_test, uses_glob=True),
    "ArnLike": _Operator(_arn_regex, _glob_test, uses_glob=True),
}
_NEGATIONS = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "NotIpAddress": "IpAddress",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}
OPERATORS: dict[str, _Operator] = {
    **_POSITIVE,
    **{name: _Operator(_POSITIVE[base].prepare, _POSITIVE[base].test, True, _POSITIVE[base].uses_glob)
       for name, base in _NEGATIONS.items()},
}  # fmt: skip
NULL = "Null"
ALLOWED_OPERATORS_HELP = (
    ", ".join([*OPERATORS, NULL]) + " (each may end in IfExists, except Null, and start with ForAllValues: or "
    "ForAnyValue:)"
)


@dataclass(frozen=True, slots=True)
class Condition:
    """One (operator, key, values) triple of a statement's `Condition` block."""

    operator: str
    key: KeyRef
    values: tuple[Template, ...]
    base: str
    qualifier: str | None = None
    if_exists: bool = False

    def evaluate(self, principal: Principal) -> bool:
        """Whether the condition holds for `principal`; an unresolved variable in a value makes it false."""
        context = self.key.values(principal) or None
        if self.base == NULL:
            texts = [t.text(principal) for t in self.values]
            return None not in texts and any((t.lower() == "true") == (context is None) for t in texts if t)
        operator = OPERATORS[self.base]
        prepared = []
        for template in self.values:
            resolved = template.glob(principal) if operator.uses_glob else template.text(principal)
            if resolved is None:
                return False
            try:
                prepared.append(operator.prepare(resolved))
            except ValueError:
                return False
        if context is None:
            if self.if_exists or self.qualifier == FOR_ALL:
                return True
            return operator.negated if self.qualifier is None else False

        def holds(value: str) -> bool:
            hit = any(operator.test(value, expected) for expected in prepared)
            return not hit if operator.negated else hit

        if self.qualifier == FOR_ALL:
            return all(holds(v) for v in context)
        if self.qualifier == FOR_ANY:
            return any(holds(v) for v in context)
        return holds(context[0])


def _scalar(value: object, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    raise ValueError(f"{where}: condition values must be strings, numbers or booleans, not {type(value).__name__}")


def _split_operator(name: str) -> tuple[str, str | None, bool]:
    qualifier: str | None = None
    base = name
    if ":" in base:
        qualifier, _, base = base.partition(":")
        if qualifier not in (FOR_ALL, FOR_ANY):
            raise ValueError(f"unknown set qualifier {qualifier!r} in {name!r}; allowed: {FOR_ALL}:, {FOR_ANY}:")
    if_exists = base.endswith("IfExists") and base != "IfExists"
    if if_exists:
        base = base[: -len("IfExists")]
    if base == NULL and (if_exists or qualifier):
        raise ValueError(f"{name!r}: Null takes neither IfExists nor a set qualifier")
    if base not in OPERATORS and base != NULL:
        raise ValueError(f"unknown condition operator {name!r}; allowed: {ALLOWED_OPERATORS_HELP}")
    return base, qualifier, if_exists


def parse_conditions(block: object, *, variables: bool = True) -> tuple[Condition, ...]:
    """Parse a `Condition` block; ValueError says which operator or key is wrong and what is allowed."""
    if not isinstance(block, dict):
        raise ValueError("must be an object mapping operators to {key: value(s)}")
    conditions: list[Condition] = []
    for operator_name, keys in block.items():
        base, qualifier, if_exists = _split_operator(operator_name)
        if not isinstance(keys, dict) or not keys:
            raise ValueError(f"{operator_name}: must be a non-empty object mapping condition keys to value(s)")
        for key_name, raw in keys.items():
            where = f"{operator_name}.{key_name}"
            try:
                key = parse_key(key_name)
            except ValueError as exc:
                raise ValueError(f"{operator_name}: {exc}") from None
            if key.is_list and qualifier is None and base != NULL:
                raise ValueError(f"{where}: {key_name} has several values; prefix the operator with ForAllValues: "
                                 "or ForAnyValue:")  # fmt: skip
            items = raw if isinstance(raw, list) else [raw]
            if not items:
                raise ValueError(f"{where}: needs at least one value")
            texts = [_scalar(item, where) for item in items]
            templates = tuple(parse_template(t, variables=variables) for t in texts)
            _check_static_values(base, templates, where)
            conditions.append(Condition(operator_name, key, templates, base, qualifier, if_exists))
    return tuple(conditions)


def _check_static_values(base: str, templates: tuple[Template, ...], where: str) -> None:
    """Reject values that can never be valid for the operator (numbers, booleans, CIDRs) at parse time."""
    for template in templates:
        if template.has_variables:
            continue
        text = template.text() or ""
        try:
            if base == NULL:
                _bool_value(text)
            elif not OPERATORS[base].uses_glob:
                OPERATORS[base].prepare(text)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
