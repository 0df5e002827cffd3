"""IoT SQL values: the Undefined marker, type names, AWS's implicit conversions and JSON I/O.

Representation (Python value -> IoT SQL type):

- ``int`` (never ``bool``) -> Int, kept exact (arbitrary precision; AWS allows 34 digits);
- ``float`` -> Decimal. AWS uses 34-digit decimals; we use IEEE doubles, which is what AWS itself
  uses for every math function ("Decimal with double precision") and is exact for all doc examples;
- ``bool`` -> Boolean, ``str`` -> String, ``list`` -> Array, ``dict`` -> Object, ``None`` -> Null;
- :data:`UNDEFINED` -> Undefined (a missing key, a failed conversion, a bad function argument);
- ``bytes`` only as the ``*`` of a payload that is not JSON.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    import enum

    class _Undefined(enum.Enum):
        """How the type checker sees the marker: a one-member enum, so ``v is UNDEFINED`` narrows ``v``."""

        UNDEFINED = enum.auto()

        def __bool__(self) -> Literal[False]: ...

    UNDEFINED: Final = _Undefined.UNDEFINED
else:
    class _Undefined:
        """The IoT SQL Undefined value: absent from JSON output, "" when serialised alone."""

        __slots__ = ()
        _instance: _Undefined | None = None

        def __new__(cls) -> _Undefined:
            if cls._instance is None:
                cls._instance = super().__new__(cls)
            return cls._instance

        def __repr__(self) -> str:
            return "Undefined"

        def __bool__(self) -> bool:
            return False

        def __reduce__(self) -> str:
            return "UNDEFINED"

    UNDEFINED: Final = _Undefined()

Value = Any  # any of the representations listed in the module docstring

# AWS's String -> Decimal rule (iot-sql-data-types "Conversions").
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_INT_RE = re.compile(r"-?\d+")


def type_name(v: Value) -> str:
    """The IoT SQL type name of a value (as used in the AWS docs)."""
    t = type(v)
    if t is bool:
        return "Boolean"
    if t is int:
        return "Int"
    if t is float:
        return "Decimal"
    if t is str:
        return "String"
    if t is list:
        return "Array"
    if t is dict:
        return "Object"
    if v is None:
        return "Null"
    if t is bytes:
        return "Binary"
    return "Undefined"


def is_number(v: Value) -> bool:
    """True for Int and Decimal (not Boolean)."""
    t = type(v)
    return t is int or t is float


_MAX_PRINTABLE_BITS = 14000  # below Python's 4300-digit int/str conversion limit
_INT_LIMIT = 10**34  # AWS Int has at most 34 digits; beyond that a result becomes a Decimal


def normalize_number(v: int | float) -> Value:
    """Undefined for NaN/infinity (not representable in IoT SQL); an Int past 34 digits becomes a Decimal."""
    if type(v) is float:
        return v if math.isfinite(v) else UNDEFINED
    if type(v) is not int:
        return v
    if -_INT_LIMIT < v < _INT_LIMIT:
        return v
    try:
        return normalize_number(float(v))
    except OverflowError:
        return UNDEFINED


def parse_number(s: str) -> int | float | _Undefined:
    """AWS String -> number: an Int when the text is an integer, else a Decimal, else Undefined."""
    s = s.strip()
    if _INT_RE.fullmatch(s):
        return int(s)
    if _NUMBER_RE.fullmatch(s):
        return normalize_number(float(s))
    return UNDEFINED


def to_number(v: Value) -> int | float | _Undefined:
    """Conversion to Int/Decimal for arithmetic: numbers pass, strings are parsed, the rest is Undefined."""
    t = type(v)
    if t is int or t is float:
        return v
    if t is str:
        return parse_number(v)
    return UNDEFINED


def to_decimal(v: Value) -> float | _Undefined:
    """AWS "To Decimal": Int and numeric strings convert; Boolean, Array, Object, Null -> Undefined."""
    n = to_number(v)
    if n is UNDEFINED:
        return UNDEFINED
    return float(n)


def to_int(v: Value) -> int | _Undefined:
    """AWS "To Int": Decimals (and numeric strings) are truncated toward zero; other types -> Undefined."""
    n = to_number(v)
    if type(n) is int:
        return n
    if type(n) is float:
        return int(n)
    return UNDEFINED


def to_bool(v: Value) -> bool | _Undefined:
    """AWS "To Boolean": Booleans pass, "true"/"false" (any case) convert, the rest is Undefined."""
    if v is True or v is False:
        return v
    if type(v) is str:
        low = v.lower()
        if low == "true":
            return True
        if low == "false":
            return False
    return UNDEFINED


def format_decimal(f: float) -> str:
    """Text of a Decimal as AWS prints it (``1.5``, ``10.0``, ``1.0E+20``-like exponents kept short)."""
    return repr(f)


def to_string(v: Value) -> str | _Undefined:
    """AWS "To String": scalars print, Arrays and Objects serialise as JSON, Null and Undefined -> Undefined."""
    t = type(v)
    if t is str:
        return v
    if t is bool:
        return "true" if v else "false"
    if t is int:
        try:
            return str(v)
        except ValueError:  # more digits than Python prints
            return UNDEFINED
    if t is float:
        return format_decimal(v)
    if t is list or t is dict:
        return dumps(v)
    return UNDEFINED


def render_text(v: Value) -> str:
    """A value as text for substitution templates and ``${...}``: Undefined and Null are empty."""
    s = to_string(v)
    return "" if s is UNDEFINED else s


def prune(v: Value) -> Value:
    """Drop Undefined members and elements (and bytes, which JSON cannot carry) from a value."""
    t = type(v)
    if t is dict:
        return {k: prune(x) for k, x in v.items() if x is not UNDEFINED and type(x) is not bytes}
    if t is list:
        return [prune(x) for x in v if x is not UNDEFINED and type(x) is not bytes]
    if t is int and v.bit_length() > _MAX_PRINTABLE_BITS:
        return None
    return v


def _not_serialisable(o: object) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _compact_encoder() -> Any:
    """``json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False)`` without the per-call set-up
    of ``JSONEncoder.encode`` (which builds a new C encoder every time): the C encoder itself, made once.

    Circular-reference markers are off (a shared markers dict keeps stale entries after a failed encode);
    values here are trees made from parsed JSON, so a cycle cannot occur.
    """
    make = json.encoder.c_make_encoder  # type: ignore[attr-defined]  # CPython's, not in typeshed
    if make is None:  # no C accelerator: the standard encoder
        encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return lambda v, _level: [encoder.encode(v)]
    return make(None, _not_serialisable, json.encoder.encode_basestring, None, ":", ",", False, False, False)


_ENCODE: Final = _compact_encoder()


def dumps(v: Value) -> str:
    """Compact JSON text of a value; Undefined members are left out, Undefined alone is ``""``."""
    if v is UNDEFINED:
        return ""
    try:
        return "".join(_ENCODE(v, 0))
    except (TypeError, ValueError):
        return json.dumps(prune(v), separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)


def to_payload_bytes(v: Value) -> bytes:
    """The bytes an action sends for a SELECT result: raw bytes pass through, the rest is JSON (UTF-8)."""
    if type(v) is bytes:
        return v
    return dumps(v).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _float_v1(text: str) -> Value:
    return normalize_number(float(text))


def _float_v2(text: str) -> Value:
    f = float(text)
    if not math.isfinite(f):
        return UNDEFINED
    if f.is_integer() and abs(f) < 1e34:
        return int(f)
    return f


# The decoders' scanners, called directly: ``JSONDecoder.decode`` minus two Python frames per call.
# (`scan_once`, `WHITESPACE` and `WHITESPACE_STR` are CPython's own, not in typeshed.)
_SCANNERS: Final = {
    False: json.JSONDecoder(parse_float=_float_v1, parse_constant=_reject_constant).scan_once,  # type: ignore[attr-defined]
    True: json.JSONDecoder(parse_float=_float_v2, parse_constant=_reject_constant).scan_once,  # type: ignore[attr-defined]
}
_SKIP_WHITESPACE: Final = json.decoder.WHITESPACE.match  # type: ignore[attr-defined]
_JSON_WHITESPACE: Final = json.decoder.WHITESPACE_STR  # type: ignore[attr-defined]


def parse_json(payload: bytes, whole_decimals_as_int: bool) -> Value:
    """Parse a UTF-8 JSON payload; ``UNDEFINED`` when it is not JSON (then ``*`` is the raw bytes).

    With SQL 2016-03-23 whole-number decimals such as ``10.0`` become Int (``10``). Accepts exactly what
    ``JSONDecoder.decode`` accepts: one value, surrounded by optional JSON whitespace.
    """
    try:
        text = payload.decode("utf-8")
        n = len(text)
        start = _SKIP_WHITESPACE(text, 0).end() if text[:1] in _JSON_WHITESPACE else 0
        value, end = _SCANNERS[whole_decimals_as_int](text, start)
        if end != n and _SKIP_WHITESPACE(text, end).end() != n:
            return UNDEFINED  # extra data after the value
        return value
    except (UnicodeDecodeError, ValueError, RecursionError, StopIteration):
        return UNDEFINED


def sql_equals(a: Value, b: Value) -> bool | _Undefined:
    """The ``=`` operator: Undefined if either side is; numbers compare numerically; other types strictly."""
    if a is UNDEFINED or b is UNDEFINED:
        return UNDEFINED
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is list:
            return len(a) == len(b) and all(sql_equals(x, y) is True for x, y in zip(a, b, strict=True))
        if ta is dict:
            return a.keys() == b.keys() and all(sql_equals(x, b[k]) is True for k, x in a.items())
        return a == b
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a == b
    return False
