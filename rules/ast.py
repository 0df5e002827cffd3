"""The IoT SQL syntax tree. Nodes are immutable and compare by value (used by round-trip tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

Scalar = Union[int, float, str, bool, None]  # noqa: UP007 - a runtime alias


@dataclass(frozen=True, slots=True)
class Literal:
    value: Scalar


@dataclass(frozen=True, slots=True)
class Field:
    """A top-level attribute of the current document (the payload, or an element in a nested query)."""

    name: str


@dataclass(frozen=True, slots=True)
class Star:
    """``*``: the whole current document (raw bytes for a non-JSON payload)."""


@dataclass(frozen=True, slots=True)
class Var:
    """``@name``: a variable defined by SET."""

    name: str


@dataclass(frozen=True, slots=True)
class Member:
    """``obj.name``."""

    obj: Expr
    name: str


@dataclass(frozen=True, slots=True)
class Index:
    """``obj[index]``: array element, object member or string character."""

    obj: Expr
    index: Expr


@dataclass(frozen=True, slots=True)
class Call:
    name: str  # canonical (documented) spelling
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Cast:
    """``cast(expr AS Type)``; ``type_name`` is upper-case."""

    expr: Expr
    type_name: str


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "-" or "NOT"
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # AND OR = <> < > <= >= + - * / % IN CONTAINS
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Case:
    """Simple CASE: ``CASE subject WHEN v THEN r ... [ELSE e] END``."""

    subject: Expr
    whens: tuple[tuple[Expr, Expr], ...]
    default: Expr | None


@dataclass(frozen=True, slots=True)
class ObjectLit:
    items: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class ArrayLit:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Subquery:
    """A nested ``(SELECT ... FROM <array expression> [WHERE ...])``; its value is an Array."""

    query: Query


Expr = Union[Literal, Field, Star, Var, Member, Index, Call, Cast, Unary, Binary, Case, ObjectLit, ArrayLit, Subquery]  # noqa: UP007


@dataclass(frozen=True, slots=True)
class SelectItem:
    expr: Expr
    alias: tuple[str, ...] | None = None  # dotted alias segments, e.g. ("a", "b") for AS a.b


@dataclass(frozen=True, slots=True)
class Query:
    """A SELECT statement. ``source`` is the FROM topic filter (str) at top level, an Expr when nested."""

    items: tuple[SelectItem, ...] = ()
    value: Expr | None = None  # SELECT VALUE expr
    source: str | Expr | None = None
    where: Expr | None = None
    sets: tuple[tuple[str, Expr], ...] = ()
