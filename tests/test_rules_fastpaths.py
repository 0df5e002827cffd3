"""The per-message fast paths give exactly what the general paths give (property tests):
JSON in (scanner called directly) and out (C encoder made once), SELECT of plain attributes,
single-expression templates, and `CompiledQuery.run` against `evaluate`."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from rules import NO_MATCH, UNDEFINED, MessageContext, compile_sql, compile_template
from rules.context import Env
from rules.values import Value, dumps, parse_json

KEYS = st.sampled_from(["a", "b", "c", "d", "e", "k"])
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
SCALARS = st.none() | st.booleans() | st.integers(-(10**20), 10**20) | FLOATS | st.text(max_size=8)
DOCS = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
                    max_leaves=20)
OBJECTS = st.dictionaries(KEYS, DOCS, max_size=6)
WHITESPACE = st.sampled_from(["", " ", "\n\t", "\r ", "\u00a0", "\ufeff"])
TRAILERS = st.sampled_from(["", "x", "}", " 1", "\x00", ","])


def _float_v1(text: str) -> Value:
    f = float(text)
    return f if math.isfinite(f) else UNDEFINED


def _float_v2(text: str) -> Value:
    f = float(text)
    if not math.isfinite(f):
        return UNDEFINED
    return int(f) if f.is_integer() and abs(f) < 1e34 else f


def _reject(name: str) -> Value:
    raise ValueError(name)


def reference_parse(payload: bytes, v2: bool) -> Value:
    """What the decoders did before the fast path: the standard decoder with the same hooks."""
    decoder = json.JSONDecoder(parse_float=_float_v2 if v2 else _float_v1, parse_constant=_reject)
    try:
        return decoder.decode(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return UNDEFINED


def _same(a: Value, b: Value) -> bool:
    return type(a) is type(b) and repr(a) == repr(b)


@settings(max_examples=200, deadline=None)
@given(DOCS, WHITESPACE, WHITESPACE, TRAILERS, st.booleans())
def test_parse_json_accepts_exactly_what_the_decoder_accepts(doc: Value, lead: str, tail: str, junk: str,
                                                              v2: bool) -> None:
    payload = (lead + json.dumps(doc, ensure_ascii=False) + tail + junk).encode("utf-8")
    assert _same(parse_json(payload, v2), reference_parse(payload, v2))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=24), st.booleans())
def test_parse_json_of_arbitrary_bytes(payload: bytes, v2: bool) -> None:
    assert _same(parse_json(payload, v2), reference_parse(payload, v2))


@settings(max_examples=200, deadline=None)
@given(DOCS)
def test_dumps_is_compact_json(doc: Value) -> None:
    assert dumps(doc) == json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@given(st.dictionaries(KEYS, DOCS | st.just(UNDEFINED) | st.binary(max_size=2), max_size=4))
def test_dumps_leaves_out_what_json_cannot_carry(doc: dict[str, Value]) -> None:
    kept = {k: v for k, v in doc.items() if v is not UNDEFINED and type(v) is not bytes}
    assert json.loads(dumps(doc)) == json.loads(json.dumps(kept))


PLAIN = st.lists(st.tuples(st.lists(KEYS, min_size=1, max_size=3), st.none() | KEYS), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None)
@given(PLAIN, OBJECTS | DOCS, st.sampled_from(["2015-10-08", "2016-03-23"]))
def test_select_of_plain_attributes_matches_the_general_select(items: list[tuple[list[str], str | None]],
                                                               doc: Value, version: str) -> None:
    """`SELECT a, b.c AS x` (fast path) against the same list plus a computed item (general path)."""
    select = ", ".join(".".join(path) + (f" AS {alias}" if alias else "") for path, alias in items)
    fast = compile_sql(f"SELECT {select} FROM 't'", version)
    general = compile_sql(f"SELECT {select}, 1 + 1 AS zz FROM 't'", version)
    msg = MessageContext("t", json.dumps(doc).encode())
    expected = general.evaluate(msg)
    assert isinstance(expected, dict)
    expected.pop("zz")
    assert fast.evaluate(msg) == expected


EXPRESSIONS = st.sampled_from(["topic(2)", "a", "b.c", "a + 1", "k", "clientid()", "upper(k)", "get(b, 0)"])


@settings(max_examples=150, deadline=None)
@given(EXPRESSIONS, OBJECTS, st.sampled_from(["t", "t/dev-1/x"]))
def test_a_single_expression_template_renders_like_the_joined_form(expr: str, doc: dict[str, Value],
                                                                    topic: str) -> None:
    msg = MessageContext(topic, json.dumps(doc).encode(), client_id="c-1")
    env = Env(msg.document(True), msg, {}, "2016-03-23")
    single = compile_template("${" + expr + "}", "2016-03-23")
    joined = compile_template("${" + expr + "}${''}", "2016-03-23")
    assert single.render(env) == joined.render(env)


@settings(max_examples=100, deadline=None)
@given(OBJECTS, st.sampled_from([
    "SELECT * FROM 't'", "SELECT a, b FROM 't' WHERE a > 0", "SELECT VALUE b FROM 't'",
    "SET @x = a SELECT @x AS x, k FROM 't' WHERE k <> 'no'", "SELECT *, topic() AS t FROM 't' WHERE b <> 0",
]))
def test_run_agrees_with_evaluate(doc: dict[str, Value], sql: str) -> None:
    query = compile_sql(sql, "2016-03-23")
    found = query.run(MessageContext("t", json.dumps(doc).encode()))
    expected = query.evaluate(MessageContext("t", json.dumps(doc).encode()))
    if found is None:
        assert expected is NO_MATCH
    else:
        assert _same(found[1], expected)
