"""AST -> IoT SQL text. ``parse_sql(to_sql(q)) == q`` for every tree the parser can produce."""

from __future__ import annotations

import re

from rules.ast import (
    ArrayLit,
    Binary,
    Call,
    Case,
    Cast,
    Expr,
    Field,
    Index,
    Literal,
    Member,
    ObjectLit,
    Query,
    SelectItem,
    Star,
    Subquery,
    Unary,
    Var,
)
from rules.lexer import KEYWORDS

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VALUE_START = re.compile(r"(?i)value\b")  # a first select item starting with the contextual keyword VALUE

# Binding strength; higher binds tighter.
_PREC = {"OR": 1, "AND": 2, "NOT": 3, "CMP": 4, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6, "NEG": 7, "POSTFIX": 8}
_CMP = frozenset({"=", "<>", "<", ">", "<=", ">=", "IN", "CONTAINS"})


def quote_string(s: str) -> str:
    """A single-quoted IoT SQL string literal."""
    out = []
    for ch in s:
        if ch == "'":
            out.append("\\'")
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def _name(s: str) -> str:
    """An identifier as written after '.' or AS (quoted when it is not a plain identifier)."""
    return s if _IDENT_RE.fullmatch(s) else quote_string(s)


def _precedence(node: Expr) -> int:
    if isinstance(node, Binary):
        return _PREC["CMP"] if node.op in _CMP else _PREC[node.op]
    if isinstance(node, Unary):
        return _PREC["NOT"] if node.op == "NOT" else _PREC["NEG"]
    if isinstance(node, Literal) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return _PREC["NEG"] if node.value < 0 else _PREC["POSTFIX"]
    return _PREC["POSTFIX"]


def _wrap(node: Expr, minimum: int) -> str:
    text = to_expr_sql(node)
    return f"({text})" if _precedence(node) < minimum else text


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if value is True:
        return "TRUE"
    if value is False:
        return "FALSE"
    if isinstance(value, str):
        return quote_string(value)
    return repr(value)


def to_expr_sql(node: Expr) -> str:
    """SQL text of an expression."""
    if isinstance(node, Literal):
        return _literal(node.value)
    if isinstance(node, Field):
        if _IDENT_RE.fullmatch(node.name) and node.name.upper() not in KEYWORDS:
            return node.name
        return f"get(*, {quote_string(node.name)})"
    if isinstance(node, Star):
        return "*"
    if isinstance(node, Var):
        return "@" + node.name
    if isinstance(node, Member):
        if not _IDENT_RE.fullmatch(node.name):
            return f"get({to_expr_sql(node.obj)}, {quote_string(node.name)})"
        return f"{_wrap(node.obj, _PREC['POSTFIX'])}.{node.name}"
    if isinstance(node, Index):
        return f"{_wrap(node.obj, _PREC['POSTFIX'])}[{to_expr_sql(node.index)}]"
    if isinstance(node, Call):
        return f"{node.name}({', '.join(to_expr_sql(a) for a in node.args)})"
    if isinstance(node, Cast):
        return f"cast({to_expr_sql(node.expr)} AS {node.type_name})"
    if isinstance(node, Unary):
        if node.op == "NOT":
            return f"NOT {_wrap(node.operand, _PREC['NOT'])}"
        operand = _wrap(node.operand, _PREC["NEG"] + 1 if isinstance(node.operand, Unary) else _PREC["NEG"])
        return f"-{operand}"
    if isinstance(node, Binary):
        prec = _precedence(node)
        # Left-associative: the right operand needs parentheses at equal precedence.
        return f"{_wrap(node.left, prec)} {node.op} {_wrap(node.right, prec + 1)}"
    if isinstance(node, Case):
        parts = [f"CASE {to_expr_sql(node.subject)}"]
        parts += [f"WHEN {to_expr_sql(w)} THEN {to_expr_sql(r)}" for w, r in node.whens]
        if node.default is not None:
            parts.append(f"ELSE {to_expr_sql(node.default)}")
        parts.append("END")
        return " ".join(parts)
    if isinstance(node, ObjectLit):
        return "{" + ", ".join(f"{quote_string(k)}: {to_expr_sql(v)}" for k, v in node.items) + "}"
    if isinstance(node, ArrayLit):
        return "[" + ", ".join(to_expr_sql(v) for v in node.items) + "]"
    if isinstance(node, Subquery):
        return f"({to_sql(node.query)})"
    raise TypeError(f"not an IoT SQL node: {node!r}")


def _item(item: SelectItem) -> str:
    text = to_expr_sql(item.expr)
    if item.alias:
        text += " AS " + ".".join(_name(p) for p in item.alias)
    return text


def to_sql(query: Query) -> str:
    """SQL text of a statement (or of a nested query, whose source is an expression)."""
    parts = []
    if query.sets:
        parts.append("SET " + ", ".join(f"@{n} = {to_expr_sql(e)}" for n, e in query.sets))
    if query.value is not None:
        parts.append(f"SELECT VALUE {to_expr_sql(query.value)}")
    else:
        items = [_item(i) for i in query.items]
        if items and _VALUE_START.match(items[0]):
            items[0] = f"({to_expr_sql(query.items[0].expr)})" + items[0][len(to_expr_sql(query.items[0].expr)) :]
        parts.append("SELECT " + ", ".join(items))
    if isinstance(query.source, str):
        parts.append(f"FROM {quote_string(query.source)}")
    elif query.source is not None:
        parts.append(f"FROM {_wrap(query.source, _PREC['POSTFIX'])}")
    if query.where is not None:
        parts.append(f"WHERE {to_expr_sql(query.where)}")
    return " ".join(parts)
