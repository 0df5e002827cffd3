"""The IoT SQL built-in functions (AWS "Functions" reference page), minus those that call a cloud service.

Every implementation is total: bad argument types give Undefined, never an exception — except that a
regexp function that runs out of its time budget raises RuleEvaluationError (see rules/regexes.py).
Functions that read the message (topic(), clientid(), ...) take the evaluation :class:`~rules.context.Env`
first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from rules import regexes, timefmt
from rules.context import Env
from rules.md2 import md2_hex
from rules.values import (
    UNDEFINED,
    Value,
    normalize_number,
    parse_json,
    to_decimal,
    to_int,
    to_number,
    to_string,
)

# Functions that reach a cloud service: rejected at rule creation on the edge.
CLOUD_FUNCTIONS = frozenset(
    {"aws_lambda", "get_dynamodb", "get_secret", "get_thing_shadow", "get_registry_data", "machinelearning_predict"}
)


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    name: str  # documented spelling
    min_args: int
    max_args: int | None  # None: variadic
    impl: Callable[..., Value]
    uses_env: bool = False
    # Specialises ``impl`` for one call site, given its literal arguments by position (regexp functions:
    # the pattern compiled at creation, the regex budget in force). Called by the compiler.
    bind: Callable[[Mapping[int, Value]], Callable[..., Value]] | None = None

    def arity_text(self) -> str:
        if self.max_args is None:
            return f"at least {self.min_args} argument{'s' * (self.min_args != 1)}"
        if self.min_args == self.max_args:
            return f"{self.min_args} argument{'s' * (self.min_args != 1)}"
        return f"{self.min_args} to {self.max_args} arguments"


# -- math -----------------------------------------------------------------------------------------


def _float_fn(fn: Callable[..., float]) -> Callable[..., Value]:
    """Wrap a math function of Decimals: args converted To Decimal, domain errors -> Undefined."""

    def impl(*args: Value) -> Value:
        nums = [to_decimal(a) for a in args]
        if UNDEFINED in nums:
            return UNDEFINED
        try:
            return normalize_number(fn(*nums))
        except (ValueError, OverflowError, ZeroDivisionError):
            return UNDEFINED

    return impl


def _abs(x: Value) -> Value:
    n = to_number(x)
    return UNDEFINED if n is UNDEFINED else abs(n)


def _ceil(x: Value) -> Value:
    n = to_number(x)
    return n if type(n) is not float else math.ceil(n)


def _floor(x: Value) -> Value:
    n = to_number(x)
    return n if type(n) is not float else math.floor(n)


def _round(x: Value) -> Value:
    """Nearest Int, halves away from zero (round(-1.5) = -2). ``a - floor(a)`` is exact for doubles."""
    n = to_number(x)
    if type(n) is not float:
        return n
    a = abs(n)
    r = math.floor(a)
    if a - r >= 0.5:
        r += 1
    return r if n >= 0 else -r


def _sign(x: Value) -> Value:
    n = to_number(x)
    if n is UNDEFINED:
        return UNDEFINED
    return (n > 0) - (n < 0)


def _trunc(x: Value, places: Value) -> Value:
    n, p = to_number(x), to_int(places)
    if n is UNDEFINED or p is UNDEFINED:
        return UNDEFINED
    try:
        d = Decimal(repr(n) if type(n) is float else n).quantize(Decimal(1).scaleb(-p), rounding=ROUND_DOWN)
    except (InvalidOperation, ValueError, OverflowError):
        return UNDEFINED
    return int(d) if d == d.to_integral_value() else float(d)


def remainder(a: Value, b: Value) -> Value:
    """mod()/remainder()/%: Java semantics, the result has the sign of the dividend; x % 0 is Undefined."""
    x, y = to_number(a), to_number(b)
    if x is UNDEFINED or y is UNDEFINED or y == 0:
        return UNDEFINED
    if type(x) is int and type(y) is int:
        r = abs(x) % abs(y)
        return -r if x < 0 else r
    return normalize_number(math.fmod(x, y))


def _strict_int(v: Value) -> Value:
    if type(v) is int:
        return v
    if type(v) is str:
        n = to_number(v)
        return n if type(n) is int else UNDEFINED
    return UNDEFINED


def _bit_fn(fn: Callable[..., int]) -> Callable[..., Value]:
    def impl(*args: Value) -> Value:
        ints = [_strict_int(a) for a in args]
        return UNDEFINED if UNDEFINED in ints else fn(*ints)

    return impl


def _power(a: Value, b: Value) -> Value:
    return _float_fn(math.pow)(a, b)


# -- strings --------------------------------------------------------------------------------------

# Java's String.trim() removes every char <= U+0020.
_JAVA_SPACE = "".join(chr(c) for c in range(33))


def _str_fn(fn: Callable[..., Value], arity: int = 0) -> Callable[..., Value]:
    """Wrap a function of strings: every argument converted To String (Undefined if impossible)."""

    def impl(*args: Value) -> Value:
        strs = [to_string(a) for a in args]
        return UNDEFINED if UNDEFINED in strs else fn(*strs)

    def impl1(a: Value) -> Value:
        s = to_string(a)
        return UNDEFINED if s is UNDEFINED else fn(s)

    return impl1 if arity == 1 else impl


def _concat(*args: Value) -> Value:
    if not args:
        return UNDEFINED
    if len(args) == 1:
        return args[0]
    if any(type(a) is list for a in args):
        out: list[Value] = []
        for a in args:
            if a is UNDEFINED:
                continue
            if type(a) is list:
                out.extend(a)
            else:
                out.append(a)
        return out
    strs = [to_string(a) for a in args]
    return UNDEFINED if UNDEFINED in strs else "".join(strs)  # type: ignore[arg-type]


def _substring(s: Value, start: Value, end: Value = None) -> Value:
    text, i = to_string(s), to_int(start)
    j = len(text) if end is None and text is not UNDEFINED else to_int(end)
    if text is UNDEFINED or i is UNDEFINED or j is UNDEFINED:
        return UNDEFINED
    n = len(text)
    i = min(max(i, 0), n)
    j = min(max(j, 0), n)
    return text[i:j] if i <= j else ""


def _pad(left: bool) -> Callable[[Value, Value], Value]:
    def impl(s: Value, count: Value) -> Value:
        text, n = to_string(s), to_int(count)
        if text is UNDEFINED or n is UNDEFINED:
            return UNDEFINED
        spaces = " " * min(max(n, 0), 1000)
        return spaces + text if left else text + spaces

    return impl


def _chr(code: Value) -> Value:
    n = to_int(code)
    if n is UNDEFINED or not 0 <= n <= 0x10FFFF:
        return UNDEFINED
    return chr(n)


# -- collections and types ------------------------------------------------------------------------


def get_item(coll: Value, key: Value) -> Value:
    """get(): Array element / Object member / String character; anything else is Undefined."""
    t = type(coll)
    if t is dict:
        return coll.get(key, UNDEFINED) if type(key) is str else UNDEFINED
    if t is list or t is str:
        i = key if type(key) is int else (to_int(key) if type(key) is str else UNDEFINED)
        if i is UNDEFINED or not 0 <= i < len(coll):
            return UNDEFINED
        return coll[i]
    return UNDEFINED


def _get_or_default(v: Value, default: Value) -> Value:
    return default if v is UNDEFINED or v is None else v


def _nanvl(v: Value, other: Value) -> Value:
    return other if v is UNDEFINED or (type(v) is float and math.isnan(v)) else v


def _transform(mode: Value, obj: Value, arr: Value) -> Value:
    if mode != "enrichArray" or type(obj) is not dict or type(arr) is not list:
        return UNDEFINED
    return [{**e, **obj} if type(e) is dict else e for e in arr]


# -- hashing and encoding -------------------------------------------------------------------------


def _hash_fn(algorithm: str) -> Callable[[Value], Value]:
    def impl(v: Value) -> Value:
        s = to_string(v)
        if s is UNDEFINED:
            return UNDEFINED
        data = s.encode("utf-8")
        return md2_hex(data) if algorithm == "md2" else hashlib.new(algorithm, data).hexdigest()

    return impl


def as_bytes(v: Value) -> bytes | None:
    if type(v) is bytes:
        return v
    s = to_string(v)
    return None if s is UNDEFINED else s.encode("utf-8")


def _encode(v: Value, scheme: Value) -> Value:
    data = as_bytes(v)
    if data is None or type(scheme) is not str or scheme.lower() != "base64":
        return UNDEFINED
    return base64.b64encode(data).decode("ascii")


def _decode(env: Env, v: Value, scheme: Value) -> Value:
    if type(v) is not str or type(scheme) is not str or scheme.lower() != "base64":
        return UNDEFINED
    try:
        text = base64.b64decode(v, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return UNDEFINED
    parsed = parse_json(text.encode("utf-8"), env.version != "2015-10-08")
    return text if parsed is UNDEFINED else parsed


# -- message context ------------------------------------------------------------------------------


def _topic(env: Env, n: Value = UNDEFINED) -> Value:
    if n is UNDEFINED:
        return env.msg.topic
    i = to_int(n)
    levels = env.msg.topic_levels()
    if i is UNDEFINED or not 1 <= i <= len(levels):
        return UNDEFINED
    return levels[i - 1]


def _optional(v: str | None) -> Value:
    return UNDEFINED if v is None else v


_MQTT_PROPERTIES: dict[str, Callable[[Env], Value]] = {
    "content_type": lambda env: _optional(env.msg.content_type),
    "response_topic": lambda env: _optional(env.msg.response_topic),
    "format_indicator": lambda env: (
        UNDEFINED
        if env.msg.payload_format_indicator is None
        else ("UTF8_DATA" if env.msg.payload_format_indicator == 1 else "UNSPECIFIED_BYTES")
    ),
    "correlation_data": lambda env: (
        UNDEFINED if env.msg.correlation_data is None else base64.b64encode(env.msg.correlation_data).decode("ascii")
    ),
    "message_expiry": lambda env: UNDEFINED if env.msg.message_expiry_s is None else env.msg.message_expiry_s,
}
MQTT_PROPERTY_NAMES = frozenset(_MQTT_PROPERTIES)


def _get_mqtt_property(env: Env, name: Value) -> Value:
    getter = _MQTT_PROPERTIES.get(name) if type(name) is str else None
    return UNDEFINED if getter is None else getter(env)


def _get_user_properties(env: Env, key: Value = UNDEFINED) -> Value:
    props = env.msg.user_properties
    if key is UNDEFINED:
        return [{k: v} for k, v in props] if props else UNDEFINED
    values = [v for k, v in props if k == key]
    return values if values else UNDEFINED


def _parse_time(pattern: Value, epoch: Value, tz: Value = "UTC") -> Value:
    ms = to_int(epoch)
    if type(pattern) is not str or ms is UNDEFINED or type(tz) is not str:
        return UNDEFINED
    try:
        return timefmt.format_epoch_ms(pattern, ms, tz)
    except (ValueError, OverflowError, OSError, KeyError):
        return UNDEFINED


def _time_to_epoch(text: Value, pattern: Value) -> Value:
    if type(text) is not str or type(pattern) is not str:
        return UNDEFINED
    try:
        return timefmt.parse_to_epoch_ms(text, pattern)
    except (ValueError, OverflowError, OSError, KeyError):
        return UNDEFINED


def _specs() -> list[FunctionSpec]:
    f = FunctionSpec
    specs = [
        # math
        f("abs", 1, 1, _abs), f("ceil", 1, 1, _ceil), f("floor", 1, 1, _floor), f("round", 1, 1, _round),
        f("sign", 1, 1, _sign), f("trunc", 2, 2, _trunc), f("mod", 2, 2, remainder),
        f("remainder", 2, 2, remainder), f("power", 2, 2, _power), f("sqrt", 1, 1, _float_fn(math.sqrt)),
        f("exp", 1, 1, _float_fn(math.exp)), f("ln", 1, 1, _float_fn(math.log)),
        f("log", 1, 1, _float_fn(math.log10)), f("sin", 1, 1, _float_fn(math.sin)),
        f("cos", 1, 1, _float_fn(math.cos)), f("tan", 1, 1, _float_fn(math.tan)),
        f("asin", 1, 1, _float_fn(math.asin)), f("acos", 1, 1, _float_fn(math.acos)),
        f("atan", 1, 1, _float_fn(math.atan)), f("atan2", 2, 2, _float_fn(math.atan2)),
        f("sinh", 1, 1, _float_fn(math.sinh)), f("cosh", 1, 1, _float_fn(math.cosh)),
        f("tanh", 1, 1, _float_fn(math.tanh)),
        f("bitand", 2, 2, _bit_fn(lambda a, b: a & b)), f("bitor", 2, 2, _bit_fn(lambda a, b: a | b)),
        f("bitxor", 2, 2, _bit_fn(lambda a, b: a ^ b)), f("bitnot", 1, 1, _bit_fn(lambda a: ~a)),
        f("rand", 0, 0, random.random), f("nanvl", 2, 2, _nanvl),
        # strings
        f("concat", 0, None, _concat), f("lower", 1, 1, _str_fn(str.lower, 1)), f("upper", 1, 1, _str_fn(str.upper, 1)),
        f("trim", 1, 1, _str_fn(lambda s: s.strip(_JAVA_SPACE), 1)),
        f("ltrim", 1, 1, _str_fn(lambda s: s.lstrip(_JAVA_SPACE), 1)),
        f("rtrim", 1, 1, _str_fn(lambda s: s.rstrip(_JAVA_SPACE), 1)),
        f("length", 1, 1, _str_fn(len, 1)), f("numbytes", 1, 1, _str_fn(lambda s: len(s.encode("utf-8")), 1)),
        f("substring", 2, 3, _substring), f("replace", 3, 3, _str_fn(str.replace)),
        f("startswith", 2, 2, _str_fn(str.startswith)), f("endswith", 2, 2, _str_fn(str.endswith)),
        f("indexof", 2, 2, _str_fn(str.find)), f("chr", 1, 1, _chr),
        f("lpad", 2, 2, _pad(left=True)), f("rpad", 2, 2, _pad(left=False)),
        f("regexp_matches", 2, 2, regexes.bind_regexp_matches(), bind=regexes.bind_regexp_matches),
        f("regexp_replace", 3, 3, regexes.bind_regexp_replace(), bind=regexes.bind_regexp_replace),
        f("regexp_substr", 2, 2, regexes.bind_regexp_substr(), bind=regexes.bind_regexp_substr),
        # collections, types
        f("get", 2, 2, get_item), f("get_or_default", 2, 2, _get_or_default), f("transform", 3, 3, _transform),
        f("isNull", 1, 1, lambda v: v is None), f("isUndefined", 1, 1, lambda v: v is UNDEFINED),
        # hashing, encoding, time
        f("encode", 2, 2, _encode), f("decode", 2, 2, _decode, uses_env=True),
        f("parse_time", 2, 3, _parse_time), f("time_to_epoch", 2, 2, _time_to_epoch),
        # message context
        f("topic", 0, 1, _topic, uses_env=True),
        f("clientid", 0, 0, lambda env: env.msg.client_id or "n/a", uses_env=True),
        f("principal", 0, 0, lambda env: _optional(env.msg.principal), uses_env=True),
        f("traceid", 0, 0, lambda env: _optional(env.msg.trace_id), uses_env=True),
        f("timestamp", 0, 0, lambda env: env.msg.now_ms(), uses_env=True),
        f("accountid", 0, 0, lambda env: env.msg.account_id, uses_env=True),
        f("sql_version", 0, 0, lambda env: env.version, uses_env=True),
        f("sourceip", 0, 0, lambda env: _optional(env.msg.source_ip), uses_env=True),
        f("newuuid", 0, 0, lambda: str(uuid.uuid4())),
        f("get_mqtt_property", 1, 1, _get_mqtt_property, uses_env=True),
        f("get_user_properties", 0, 1, _get_user_properties, uses_env=True),
    ]  # fmt: skip
    specs += [f(a, 1, 1, _hash_fn(a)) for a in ("md2", "md5", "sha1", "sha224", "sha256", "sha384", "sha512")]
    return specs


FUNCTIONS: dict[str, FunctionSpec] = {s.name.lower(): s for s in _specs()}

# Functions whose result differs per call: never constant-folded.
VOLATILE = frozenset({"rand", "newuuid", "timestamp"})


def lookup(name: str) -> FunctionSpec | None:
    """The function called ``name`` (case-insensitive), or None."""
    return FUNCTIONS.get(name.lower())
