"""Compile an IoT SQL AST into Python closures, once per rule; evaluate them per message.

Each expression becomes ``fn(env) -> value``. Every check that can be made without a message (unknown
function, arity, cloud-only function, SQL-version feature, undefined variable, a literal regex pattern too
large to compile) is made here and raises; the closures themselves raise only RuleEvaluationError (a
regexp call out of its time budget).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Final, cast

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
from rules.context import Env, MessageContext
from rules.errors import SqlSemanticError
from rules.functions import CLOUD_FUNCTIONS, MQTT_PROPERTY_NAMES, VOLATILE, get_item, lookup
from rules.operators import BINARY_OPS, op_neg, op_not
from rules.parser import parse_sql
from rules.regexes import regex_budget
from rules.topics import validate_filter
from rules.values import UNDEFINED, Value, sql_equals, to_bool, to_decimal, to_int, to_string

V2015: Final = "2015-10-08"
V2016: Final = "2016-03-23"
BETA: Final = "beta"
SQL_VERSIONS: Final = (V2015, V2016, BETA)
DEFAULT_SQL_VERSION: Final = V2015

Fn = Callable[[Env], Value]


class _NoMatch:
    """Returned by :meth:`CompiledQuery.evaluate` when WHERE is false or Undefined."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_MATCH"

    def __bool__(self) -> bool:
        return False


NO_MATCH: Final = _NoMatch()


def check_version(version: str | None) -> str:
    """The effective SQL version (default 2015-10-08), or an error naming the allowed ones."""
    if version is None:
        return DEFAULT_SQL_VERSION
    if version not in SQL_VERSIONS:
        raise SqlSemanticError(f"unknown awsIotSqlVersion {version!r}; allowed: {', '.join(SQL_VERSIONS)}")
    return version


def _cast(v: Value, target: str) -> Value:
    """cast(v AS target) per the AWS cast() table."""
    t = type(v)
    if target in ("INT", "INTEGER"):
        if t is bool:
            return int(v)
        return to_int(v)
    if target in ("DECIMAL", "DOUBLE"):
        if t is bool:
            return 1.0 if v else 0.0
        return to_decimal(v)
    if target in ("BOOL", "BOOLEAN"):
        if t is int or t is float:
            return v != 0
        return to_bool(v)
    return to_string(v)


class _Compiler:
    def __init__(self, version: str, variables: frozenset[str] = frozenset()) -> None:
        self.version = version
        self.v2 = version != V2015
        self.variables = set(variables)

    # -- expressions ---------------------------------------------------------------------------
    def expr(self, node: Expr, nested: bool = False) -> Fn:
        method = getattr(self, "_" + type(node).__name__.lower())
        fn: Fn = method(node, nested)
        return fn

    def _const(self, value: Value) -> Fn:
        return lambda env: value

    def _literal(self, node: Literal, nested: bool) -> Fn:
        value = node.value
        if self.v2 and type(value) is float and value.is_integer() and abs(value) < 1e34:
            value = int(value)
        return self._const(value)

    def _field(self, node: Field, nested: bool) -> Fn:
        return self._path((node.name,))

    def _path(self, keys: tuple[str, ...]) -> Fn:
        if len(keys) == 1:
            (k,) = keys

            def get1(env: Env) -> Value:
                d = env.doc
                return d.get(k, UNDEFINED) if type(d) is dict else UNDEFINED

            return get1
        if len(keys) == 2:
            k1, k2 = keys

            def get2(env: Env) -> Value:
                d = env.doc
                if type(d) is not dict:
                    return UNDEFINED
                d = d.get(k1, UNDEFINED)
                return d.get(k2, UNDEFINED) if type(d) is dict else UNDEFINED

            return get2

        def get_n(env: Env) -> Value:
            d = env.doc
            for k in keys:
                if type(d) is not dict:
                    return UNDEFINED
                d = d.get(k, UNDEFINED)
            return d

        return get_n

    def _member(self, node: Member, nested: bool) -> Fn:
        keys: list[str] = [node.name]
        obj: Expr = node.obj
        while isinstance(obj, Member):
            keys.append(obj.name)
            obj = obj.obj
        if isinstance(obj, Field):
            keys.append(obj.name)
            return self._path(tuple(reversed(keys)))
        base = self.expr(obj, nested)
        name = node.name

        def member(env: Env) -> Value:
            o = base(env)
            return o.get(name, UNDEFINED) if type(o) is dict else UNDEFINED

        return member

    def _star(self, node: Star, nested: bool) -> Fn:
        if nested:
            return lambda env: env.doc

        def star(env: Env) -> Value:
            d = env.doc
            return env.msg.payload if d is UNDEFINED else d

        return star

    def _var(self, node: Var, nested: bool) -> Fn:
        if node.name not in self.variables:
            raise SqlSemanticError(f"variable @{node.name} is not defined; define it with SET @{node.name} = ...")
        name = node.name
        return lambda env: env.variables.get(name, UNDEFINED)

    def _index(self, node: Index, nested: bool) -> Fn:
        obj, idx = self.expr(node.obj, nested), self.expr(node.index, nested)
        return lambda env: get_item(obj(env), idx(env))

    def _unary(self, node: Unary, nested: bool) -> Fn:
        operand = self.expr(node.operand, nested)
        op = op_not if node.op == "NOT" else op_neg
        if isinstance(node.operand, Literal):
            return self._const(op(operand(None)))  # type: ignore[arg-type]
        return lambda env: op(operand(env))

    def _binary(self, node: Binary, nested: bool) -> Fn:
        left, right = self.expr(node.left, nested), self.expr(node.right, nested)
        op = BINARY_OPS[node.op]
        if isinstance(node.left, Literal) and isinstance(node.right, Literal):
            return self._const(op(left(None), right(None)))  # type: ignore[arg-type]
        if node.op in _FAST_COMPARE and isinstance(node.right, Literal):
            const = right(None)  # type: ignore[arg-type]
            if type(const) is int or type(const) is float:
                return _compare_with_number(left, _FAST_COMPARE[node.op], op, const)
        return lambda env: op(left(env), right(env))

    def _case(self, node: Case, nested: bool) -> Fn:
        subject = self.expr(node.subject, nested)
        whens = [(self.expr(w, nested), self.expr(r, nested)) for w, r in node.whens]
        default = self.expr(node.default, nested) if node.default is not None else None

        def case(env: Env) -> Value:
            v = subject(env)
            if v is UNDEFINED:
                return UNDEFINED
            for match, result in whens:
                if sql_equals(v, match(env)) is True:
                    return result(env)
            return default(env) if default is not None else UNDEFINED

        return case

    def _cast(self, node: Cast, nested: bool) -> Fn:
        inner, target = self.expr(node.expr, nested), node.type_name
        return lambda env: _cast(inner(env), target)

    def _objectlit(self, node: ObjectLit, nested: bool) -> Fn:
        self._require_v2("object literals")
        items = [(k, self.expr(v, nested)) for k, v in node.items]

        def build(env: Env) -> Value:
            out = {}
            for k, fn in items:
                v = fn(env)
                if v is not UNDEFINED:
                    out[k] = v
            return out

        return build

    def _arraylit(self, node: ArrayLit, nested: bool) -> Fn:
        self._require_v2("array literals")
        items = [self.expr(v, nested) for v in node.items]

        def build(env: Env) -> Value:
            return [v for v in (fn(env) for fn in items) if v is not UNDEFINED]

        return build

    def _subquery(self, node: Subquery, nested: bool) -> Fn:
        self._require_v2("nested SELECT queries")
        query = node.query
        source = self.expr(query.source, nested)  # type: ignore[arg-type]
        select = self.select(query, nested=True)
        where = self.condition(query.where, nested=True)

        def run(env: Env) -> Value:
            elements = source(env)
            if type(elements) is not list:
                return UNDEFINED
            out = []
            for element in elements:
                inner = Env(element, env.msg, env.variables, env.version)
                if where is None or where(inner):
                    v = select(inner)
                    if v is not UNDEFINED:
                        out.append(v)
            return out

        return run

    def _call(self, node: Call, nested: bool) -> Fn:
        name = node.name.lower()
        if name in CLOUD_FUNCTIONS:
            raise SqlSemanticError(f"{node.name}() is not available on the edge: it calls a cloud service")
        if name == "cast":
            raise SqlSemanticError("cast() takes the form cast(expression AS Type)")
        spec = lookup(name)
        if spec is None:
            raise SqlSemanticError(f"unknown function {node.name}(); see docs/rules.md for the supported functions")
        n = len(node.args)
        if n < spec.min_args or (spec.max_args is not None and n > spec.max_args):
            raise SqlSemanticError(f"{spec.name}() takes {spec.arity_text()}, got {n}")
        self._check_literal_args(spec.name, node.args)
        args = [self.expr(a, nested) for a in node.args]
        if spec.name == "encode" and isinstance(node.args[0], Star) and not nested:
            args[0] = lambda env: env.msg.payload  # encode(*, ...) encodes the payload bytes as received
        impl = spec.impl
        if spec.bind is not None:  # e.g. a regexp function: its literal pattern compiled now, its time budget
            impl = spec.bind({i: a.value for i, a in enumerate(node.args) if isinstance(a, Literal)})
        constant = all(isinstance(a, Literal) for a in node.args)
        if spec.name == "topic" and n == 1 and isinstance(node.args[0], Literal) and type(node.args[0].value) is int:
            return _topic_level(node.args[0].value)
        if spec.uses_env:
            return self._call_env(impl, args)
        if constant and spec.name not in VOLATILE:
            return self._const(impl(*(a(None) for a in args)))  # type: ignore[arg-type]
        if n == 0:
            return lambda env: impl()
        if n == 1:
            (a0,) = args
            return lambda env: impl(a0(env))
        if n == 2:
            a0, a1 = args
            return lambda env: impl(a0(env), a1(env))
        return lambda env: impl(*[a(env) for a in args])

    @staticmethod
    def _call_env(impl: Callable[..., Value], args: list[Fn]) -> Fn:
        if not args:
            return lambda env: impl(env)
        if len(args) == 1:
            (a0,) = args
            return lambda env: impl(env, a0(env))
        return lambda env: impl(env, *[a(env) for a in args])

    @staticmethod
    def _check_literal_args(name: str, args: tuple[Expr, ...]) -> None:
        """Errors that a literal argument makes certain at creation time."""
        lit = [a.value if isinstance(a, Literal) else None for a in args]
        if name in ("encode", "decode") and isinstance(lit[1], str) and lit[1].lower() != "base64":
            if lit[1].lower() == "proto":
                raise SqlSemanticError(f"{name}(..., 'proto') needs a descriptor file in S3: not available on the edge")
            raise SqlSemanticError(f"{name}() supports the scheme 'base64' only, got {lit[1]!r}")
        if name == "get_mqtt_property" and isinstance(lit[0], str) and lit[0] not in MQTT_PROPERTY_NAMES:
            allowed = ", ".join(sorted(MQTT_PROPERTY_NAMES))
            raise SqlSemanticError(f"get_mqtt_property() does not know {lit[0]!r}; allowed: {allowed}")
        if name == "transform" and isinstance(lit[0], str) and lit[0] != "enrichArray":
            raise SqlSemanticError(f"transform() supports the mode 'enrichArray' only, got {lit[0]!r}")

    def _require_v2(self, what: str) -> None:
        if not self.v2:
            raise SqlSemanticError(f"{what} require awsIotSqlVersion {V2016} or later (the rule uses {V2015})")

    # -- clauses -------------------------------------------------------------------------------
    def condition(self, node: Expr | None, nested: bool = False) -> Callable[[Env], bool] | None:
        if node is None:
            return None
        fn = self.expr(node, nested)

        def where(env: Env) -> bool:
            v = fn(env)
            return v is True or (type(v) is str and v.lower() == "true")

        return where

    def select(self, query: Query, nested: bool = False) -> Fn:
        if query.value is not None:
            return self.expr(query.value, nested)
        items = query.items
        if len(items) == 1 and isinstance(items[0].expr, Star) and not items[0].alias:
            return self._star(Star(), nested)
        parts = [self._select_part(i, n, nested) for n, i in enumerate(items, 1)]
        paths = [_plain_path(i.expr) for i in items]
        if all(p[0] == "flat" for p in parts) and all(path is not None for path in paths):
            return _select_paths([(p[1], path) for p, path in zip(parts, paths, strict=True)])  # type: ignore[misc]
        if all(p[0] == "flat" for p in parts):
            flat = cast(list[tuple[str, Fn]], [(p[1], p[2]) for p in parts])  # a "flat" part has a key and a function

            def select_flat(env: Env) -> Value:
                out = {}
                for key, fn in flat:
                    v = fn(env)
                    if v is not UNDEFINED:
                        out[key] = v
                return out

            return select_flat

        def select_general(env: Env) -> Value:
            out: dict[str, Value] = {}
            for kind, key, fn in parts:
                if kind == "star":
                    d = env.doc
                    if type(d) is dict:
                        out.update(d)
                    continue
                assert fn is not None  # only a "star" part has no function
                v = fn(env)
                if v is UNDEFINED:
                    continue
                if kind == "flat":
                    out[key] = v  # type: ignore[index]
                else:
                    _set_path(out, key, v)  # type: ignore[arg-type]
            return out

        return select_general

    def _select_part(self, item: SelectItem, position: int, nested: bool) -> tuple[str, object, Fn | None]:
        if isinstance(item.expr, Star) and not item.alias:
            return ("star", None, None)
        fn = self.expr(item.expr, nested)
        if item.alias:
            if len(item.alias) == 1:
                return ("flat", item.alias[0], fn)
            return ("path", item.alias, fn)
        return ("flat", default_name(item.expr, position), fn)


def _plain_path(expr: Expr) -> tuple[str, ...] | None:
    """The keys of ``a`` / ``a.b.c`` (attributes of the current document), else None."""
    keys: list[str] = []
    while isinstance(expr, Member):
        keys.append(expr.name)
        expr = expr.obj
    if not isinstance(expr, Field):
        return None
    keys.append(expr.name)
    return tuple(reversed(keys))


def _select_paths(items: list[tuple[str, tuple[str, ...]]]) -> Fn:
    """SELECT of plain attributes (``SELECT a, b.c AS x``): the lookups inline, no closure per item.
    Same result as the general flat SELECT: Undefined (missing, or under a non-object) is left out."""
    if all(len(path) == 1 for _, path in items):
        flat = [(key, path[0]) for key, path in items]

        def select_attributes(env: Env) -> Value:
            d = env.doc
            out: dict[str, Value] = {}
            if type(d) is not dict:
                return out
            for key, k in flat:
                v = d.get(k, UNDEFINED)
                if v is not UNDEFINED:
                    out[key] = v
            return out

        return select_attributes

    def select_paths(env: Env) -> Value:
        doc = env.doc
        out = {}
        for key, path in items:
            v = doc
            for k in path:
                if type(v) is not dict:
                    v = UNDEFINED
                    break
                v = v.get(k, UNDEFINED)
            if v is not UNDEFINED:
                out[key] = v
        return out

    return select_paths


def _topic_level(n: int) -> Fn:
    """topic(n) with a literal n: the 1-based topic level, Undefined when out of range."""
    if n < 1:
        return lambda env: UNDEFINED
    i = n - 1

    def level(env: Env) -> Value:
        levels = env.msg.topic_levels()
        return levels[i] if i < len(levels) else UNDEFINED

    return level


_FAST_COMPARE: dict[str, Callable[[Value, Value], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "=": operator.eq,
}  # fmt: skip


def _compare_with_number(left: Fn, test: Callable[[Value, Value], bool], op: Callable[[Value, Value], Value],
                         const: int | float) -> Fn:  # fmt: skip
    """``expr <op> <number literal>``: the common WHERE shape, with a fast path for numeric operands."""

    def compare(env: Env) -> Value:
        v = left(env)
        t = type(v)
        if t is int or t is float:
            return test(v, const)
        return op(v, const)

    return compare


def _set_path(out: dict[str, Value], path: tuple[str, ...], v: Value) -> None:
    """``AS a.b.c`` builds nested objects."""
    d = out
    for k in path[:-1]:
        nxt = d.get(k)
        if type(nxt) is not dict:
            nxt = d[k] = {}
        d = nxt
    d[path[-1]] = v


def default_name(expr: Expr, position: int) -> str:
    """The output key of an un-aliased select item: the attribute/function/variable name, else ``_N``."""
    if isinstance(expr, Field | Member):
        return expr.name
    if isinstance(expr, Var):
        return expr.name
    if isinstance(expr, Call):
        spec = lookup(expr.name)
        return spec.name if spec else expr.name
    return f"_{position}"


_MISSING = object()
_NO_VARIABLES: dict[str, Value] = {}  # shared by statements without SET; never written to


class CompiledQuery:
    """A compiled statement. :meth:`evaluate` runs it against one message."""

    __slots__ = ("_select", "_sets", "_where", "query", "source", "sql", "version", "whole_decimals_as_int")

    def __init__(self, query: Query, version: str, sql: str) -> None:
        self.query = query
        self.version = version
        self.sql = sql
        self.source: str | None = validate_filter(query.source) if isinstance(query.source, str) else None
        self.whole_decimals_as_int = version != V2015
        defined: set[str] = set()
        sets: list[tuple[str, Fn]] = []
        for name, e in query.sets:
            if name in defined:
                raise SqlSemanticError(f"variable @{name} is set twice; SET variables are immutable")
            sets.append((name, _Compiler(version, frozenset(defined)).expr(e)))
            defined.add(name)
        compiler = _Compiler(version, frozenset(defined))
        self._sets = tuple(sets)
        self._where = compiler.condition(query.where)
        self._select = compiler.select(query)

    def env(self, msg: MessageContext) -> Env:
        """The evaluation environment of a message (SET variables evaluated)."""
        doc = msg._documents.get(self.whole_decimals_as_int, _MISSING)
        if doc is _MISSING:
            doc = msg.document(self.whole_decimals_as_int)
        if not self._sets:
            return Env(doc, msg, _NO_VARIABLES, self.version)
        env = Env(doc, msg, {}, self.version)
        for name, fn in self._sets:
            env.variables[name] = fn(env)
        return env

    def run(self, msg: MessageContext) -> tuple[Env, Value] | None:
        """The environment and the SELECT result, or None when WHERE is false or Undefined (one call
        instead of ``env`` + ``matches`` + ``select`` on the per-message path)."""
        if self._sets:
            env = self.env(msg)
        else:
            doc = msg._documents.get(self.whole_decimals_as_int, _MISSING)
            if doc is _MISSING:
                doc = msg.document(self.whole_decimals_as_int)
            env = Env(doc, msg, _NO_VARIABLES, self.version)
        where = self._where
        if where is not None and not where(env):
            return None
        return env, self._select(env)

    def matches(self, env: Env) -> bool:
        return self._where is None or self._where(env)

    def select(self, env: Env) -> Value:
        return self._select(env)

    def evaluate(self, msg: MessageContext) -> Value:
        """The SELECT result (dict / list / scalar / raw bytes / UNDEFINED), or ``NO_MATCH``."""
        env = self.env(msg)
        if self._where is not None and not self._where(env):
            return NO_MATCH
        return self._select(env)


def compile_sql(sql: str, version: str | None = None, *, regex_budget_ms: float | None = None) -> CompiledQuery:
    """Parse and compile a statement for an SQL version (default 2015-10-08). Raises RulesError subclasses.

    ``regex_budget_ms``: the time each regexp function call may take (default: the budget in force, see
    :func:`rules.regexes.regex_budget`, normally ``DEFAULT_BUDGET_MS``)."""
    v = check_version(version)
    with regex_budget(regex_budget_ms):
        return CompiledQuery(parse_sql(sql), v, sql)


def compile_expression(node: Expr, version: str, variables: frozenset[str] = frozenset()) -> Fn:
    """Compile one expression (used by substitution templates)."""
    return _Compiler(check_version(version), variables).expr(node)
