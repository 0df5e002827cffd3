"""IoT SQL operators (AWS "Operators" reference page) as total functions of two values."""

from __future__ import annotations

from collections.abc import Callable

from rules.functions import remainder
from rules.values import UNDEFINED, Value, normalize_number, sql_equals, to_bool, to_number, to_string


def op_and(a: Value, b: Value) -> Value:
    x, y = to_bool(a), to_bool(b)
    return UNDEFINED if x is UNDEFINED or y is UNDEFINED else (x and y)


def op_or(a: Value, b: Value) -> Value:
    x, y = to_bool(a), to_bool(b)
    return UNDEFINED if x is UNDEFINED or y is UNDEFINED else (x or y)


def op_not(a: Value) -> Value:
    x = to_bool(a)
    return UNDEFINED if x is UNDEFINED else not x


def op_neg(a: Value) -> Value:
    n = to_number(a)
    return UNDEFINED if n is UNDEFINED else -n


def op_eq(a: Value, b: Value) -> Value:
    return sql_equals(a, b)


def op_ne(a: Value, b: Value) -> Value:
    r = sql_equals(a, b)
    return UNDEFINED if r is UNDEFINED else not r


def _ordering(test: Callable[[Value, Value], bool]) -> Callable[[Value, Value], Value]:
    """< > <= >=: both operands converted to numbers (numeric strings allowed), else Undefined."""

    def op(a: Value, b: Value) -> Value:
        ta, tb = type(a), type(b)
        if (ta is int or ta is float) and (tb is int or tb is float):
            return test(a, b)
        x, y = to_number(a), to_number(b)
        if x is UNDEFINED or y is UNDEFINED:
            return UNDEFINED
        return test(x, y)

    return op


op_lt = _ordering(lambda a, b: a < b)
op_gt = _ordering(lambda a, b: a > b)
op_le = _ordering(lambda a, b: a <= b)
op_ge = _ordering(lambda a, b: a >= b)


def op_add(a: Value, b: Value) -> Value:
    """Int + Int = Int; numbers add as Decimal; if either side is a String both concatenate as text."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return normalize_number(a + b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return normalize_number(a + b)
    if ta is str or tb is str:
        x, y = to_string(a), to_string(b)
        return UNDEFINED if x is UNDEFINED or y is UNDEFINED else x + y
    return UNDEFINED


def _arith(fn: Callable[[Value, Value], Value]) -> Callable[[Value, Value], Value]:
    def op(a: Value, b: Value) -> Value:
        x, y = to_number(a), to_number(b)
        if x is UNDEFINED or y is UNDEFINED:
            return UNDEFINED
        try:
            return normalize_number(fn(x, y))
        except (OverflowError, ZeroDivisionError):
            return UNDEFINED

    return op


def _divide(x: Value, y: Value) -> Value:
    if y == 0:
        return UNDEFINED
    if type(x) is int and type(y) is int:
        q = abs(x) // abs(y)  # Int / Int = Int, truncated toward zero (Java)
        return q if (x < 0) == (y < 0) else -q
    return x / y


op_sub = _arith(lambda x, y: x - y)
op_mul = _arith(lambda x, y: x * y)
op_div = _arith(_divide)
op_mod = remainder


def op_in(a: Value, b: Value) -> Value:
    """``x IN array``: true when an element equals x."""
    if a is UNDEFINED or type(b) is not list:
        return UNDEFINED
    return any(sql_equals(a, e) is True for e in b)


def op_contains(a: Value, b: Value) -> Value:
    """``array CONTAINS x`` or ``string CONTAINS substring``."""
    if b is UNDEFINED:
        return UNDEFINED
    if type(a) is list:
        return any(sql_equals(e, b) is True for e in a)
    if type(a) is str and type(b) is str:
        return b in a
    return UNDEFINED


BINARY_OPS: dict[str, Callable[[Value, Value], Value]] = {
    "AND": op_and, "OR": op_or, "=": op_eq, "<>": op_ne, "<": op_lt, ">": op_gt, "<=": op_le, ">=": op_ge,
    "+": op_add, "-": op_sub, "*": op_mul, "/": op_div, "%": op_mod, "IN": op_in, "CONTAINS": op_contains,
}  # fmt: skip
