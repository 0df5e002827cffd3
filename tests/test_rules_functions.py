"""Golden tests for the IoT SQL functions.

Cases marked "doc" are the examples of the AWS IoT SQL reference, Functions page
(https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html) unless another page is named.
The other cases pin the argument-type tables of the same page (bad types give Undefined).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re

import pytest

from rules import UNDEFINED, MessageContext, SqlSemanticError, compile_sql


def ev(expr: str, payload: object = None, version: str = "2016-03-23", **ctx: object) -> object:
    """Evaluate ``SELECT VALUE <expr>`` against a JSON payload (``bytes`` are sent as is)."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload if payload is not None else {}).encode()
    q = compile_sql(f"SELECT VALUE {expr} FROM 'topic/subtopic'", version)
    return q.evaluate(MessageContext(ctx.pop("topic", "topic/subtopic"), raw, **ctx))  # type: ignore[arg-type]


DOC_CASES = [
    # math (doc)
    ("abs(-5)", 5),
    ("acos(0)", 1.5707963267948966),
    ("asin(0)", 0.0),
    ("atan(0)", 0.0),
    ("atan2(1, 0)", 1.5707963267948966),
    ("bitand(13, 5)", 5),
    ("bitor(12, 5)", 13),
    ("bitxor(12, 5)", 9),
    ("bitnot(13)", -14),
    ("ceil(1.2)", 2),
    ("ceil(-1.2)", -1),
    ("cos(0)", 1.0),
    ("cosh(2.3)", 5.037220649268761),
    ("exp(1)", math.e),
    ("floor(1.2)", 1),
    ("floor(-1.2)", -2),
    ("ln(2.718281828459045)", 1.0),
    ("log(100)", 2.0),
    ("mod(8, 3)", 2),
    ("remainder(8, 3)", 2),
    ("nanvl(8, 3)", 8),
    ("power(2, 5)", 32.0),
    ("round(1.2)", 1),
    ("round(1.5)", 2),
    ("round(1.7)", 2),
    ("round(-1.1)", -1),
    ("round(-1.5)", -2),
    ("round(2.5)", 3),
    ("round(0.49999999999999994)", 0),
    ("sign(-7)", -1),
    ("sin(0)", 0.0),
    ("sinh(2.3)", 4.936961805545957),
    ("sqrt(9)", 3.0),
    ("tan(3)", -0.1425465430742778),
    ("tanh(2.3)", 0.9800963962661914),
    ("trunc(2.3, 0)", 2),
    ("trunc(2.3123, 2)", 2.31),
    ("trunc(2.888, 2)", 2.88),
    ("trunc(2.00, 5)", 2),
    # strings (doc)
    ("chr(65)", "A"),
    ("concat()", UNDEFINED),
    ("concat(1)", 1),
    ("concat([1, 2, 3], 4)", [1, 2, 3, 4]),
    ("concat([1, 2, 3], 'hello')", [1, 2, 3, "hello"]),
    ("concat('con', 'cat')", "concat"),
    ("concat(1, 'hello')", "1hello"),
    ("concat('he', 'is', 'man')", "heisman"),
    ("concat([1, 2, 3], 'hello', [4, 5, 6])", [1, 2, 3, "hello", 4, 5, 6]),
    ("endswith('cat', 'at')", True),
    ("indexof('abcd', 'bc')", 1),
    ("length('hi')", 2),
    ("length(false)", 5),
    ("lower('HELLO')", "hello"),
    ("lower(['HELLO'])", '["hello"]'),
    ("lpad('hello', 2)", "  hello"),
    ("lpad(1, 3)", "   1"),
    ("lpad('hello', -3)", "hello"),
    ("ltrim('  h i  ')", "h i  "),
    ("numbytes('unicode ☃')", 11),
    ("regexp_matches('aaaa', 'a{2,}')", True),
    ("regexp_matches('aaaa', 'b')", False),
    ("regexp_replace('abcd', 'bc', 'x')", "axd"),
    ("regexp_replace('abcd', 'b(.*)d', '$1')", "ac"),
    ("regexp_substr('hihihello', 'hi')", "hi"),
    ("regexp_substr('hihihello', '(hi)*')", "hihi"),
    ("replace('abcd', 'bc', 'x')", "axd"),
    ("replace('abcdabcd', 'b', 'x')", "axcdaxcd"),
    ("rpad('hello', 2)", "hello  "),
    ("rpad(1, 3)", "1   "),
    ("rtrim('  h i  ')", "  h i"),
    ("startswith('cat', 'ca')", True),
    ("substring('012345', 0)", "012345"),
    ("substring('012345', 2)", "2345"),
    ("substring('012345', 2.745)", "2345"),
    ("substring(123, 2)", "3"),
    ("substring('012345', -1)", "012345"),
    ("substring(true, 1.2)", "rue"),
    ("substring(false, -2.411E5)", "false"),
    ("substring('012345', 1, 3)", "12"),
    ("substring('012345', -50, 50)", "012345"),
    ("substring('012345', 3, 1)", ""),
    ("trim('  hi  ')", "hi"),
    ("upper('hello')", "HELLO"),
    ("upper(['hello'])", '["HELLO"]'),
    # collections and types (doc)
    ("get(['a', 'b', 'c'], 1)", "b"),
    ("get({'a': 'b'}, 'a')", "b"),
    ("get('abc', 1)", "b"),
    ("isNull(NULL)", True),
    ("isNull(5)", False),
    ("isUndefined(nothing_here)", True),
    ("isUndefined(5)", False),
    # time (doc)
    ("parse_time('yyyy-MM-dd HH:mm:ss z', 1520276156000)", "2018-03-05 18:55:56 UTC"),
    ("parse_time('yyyy-MM-dd HH:mm:ss z', 1520276156000, 'America/Belize')", "2018-03-05 12:55:56 CST"),
    ("time_to_epoch('2020-04-03 09:45:18 UTC+01:00', 'yyyy-MM-dd HH:mm:ss VV')", 1585903518000),
    ("time_to_epoch('18 December 2015', 'dd MMMM yyyy')", 1450396800000),
    ("time_to_epoch('2007-12-03 10:15:30.592 America/Los_Angeles', 'yyyy-MM-dd HH:mm:ss.SSS z')", 1196705730592),
    # hashing (doc: JSON extensions page, md5(deviceid) with deviceid "iot123")
    ("md5('iot123')", "e37f81fb397e595c4aeb5645b8cbbbd1"),
    ("md2('')", "8350e5a3e24c153df2275c9f80692773"),  # RFC 1319 test suite
    ("md2('abc')", "da853b0d3f88d99b30283a69e6ded6bb"),
]


@pytest.mark.parametrize(("expr", "expected"), DOC_CASES, ids=[c[0] for c in DOC_CASES])
def test_documented_examples(expr: str, expected: object) -> None:
    got = ev(expr)
    if isinstance(expected, float):
        assert type(got) is float
        assert got == pytest.approx(expected, rel=1e-15)
    else:
        assert got == expected
        assert type(got) is type(expected)


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"])
def test_hash_functions_hex_digest_of_utf8(algorithm: str) -> None:
    assert ev(f"{algorithm}('hello ☃')") == hashlib.new(algorithm, "hello ☃".encode()).hexdigest()
    assert ev(f"{algorithm}(12)") == hashlib.new(algorithm, b"12").hexdigest()  # converted To String
    assert ev(f"{algorithm}(missing)") is UNDEFINED


BAD_TYPE_CASES = [
    "abs(true)", "abs('x')", "abs([1])", "abs({'a': 1})", "abs(NULL)", "abs(missing)", "sqrt(-1)", "ln(0)",
    "acos(2)", "power('a', 2)", "mod(5, 0)", "bitand(1.5, 1)", "chr(-1)", "lower(NULL)", "substring(NULL, 1)",
    "lpad('a', 'x')", "get(5, 0)", "get([1], 1)", "get([1], -1)", "get({'a': 1}, 1)", "regexp_matches('a', '(')",
    "decode('not base64!', 'base64')", "encode(missing, 'base64')", "topic(0)", "topic(3)", "topic('x')",
    "parse_time('yyyy qq', 0)", "time_to_epoch('nope', 'yyyy')", "transform('enrichArray', 1, [1])",
]  # fmt: skip


@pytest.mark.parametrize("expr", BAD_TYPE_CASES)
def test_bad_argument_types_give_undefined(expr: str) -> None:
    assert ev(expr) is UNDEFINED


def test_string_arguments_convert_to_numbers() -> None:
    # Data types page, "Conversions": abs("-5.123") is treated as abs(-5.123).
    assert ev("abs('-5.123')") == 5.123
    assert ev("ceil('1.2')") == 2
    assert ev("bitand('13', 5)") == 5


def test_mod_follows_the_sign_of_the_dividend() -> None:
    assert ev("mod(-8, 3)") == -2
    assert ev("-8 % 3") == -2
    assert ev("mod(8.5, 3)") == 2.5


def test_lpad_clamps_to_1000_spaces() -> None:
    assert ev("lpad('x', 5000)") == " " * 1000 + "x"


def test_chr_and_regexp_replace_with_java_named_groups() -> None:
    assert ev("chr('66')") == "B"
    assert ev("regexp_replace('2024-05', '(?<y>\\\\d+)-(?<m>\\\\d+)', '${m}/${y}')") == "05/2024"
    assert ev("regexp_matches('ab', '(?<=a)b')") is True


def test_regexp_replace_java_backreferences() -> None:
    assert ev("regexp_replace('a1b22', '(\\\\d+)', '<$1>')") == "a<1>b<22>"
    assert ev("regexp_replace('cost', 'cost', '\\\\$5')") == "$5"


def test_transform_enrich_array() -> None:
    payload = {"attributes": {"data1": 1, "data2": 2}, "values": [{"a": 3}, {"b": 4}, {"c": 5}]}
    assert ev("transform('enrichArray', attributes, values)", payload) == [
        {"a": 3, "data1": 1, "data2": 2},
        {"b": 4, "data1": 1, "data2": 2},
        {"c": 5, "data1": 1, "data2": 2},
    ]


def test_get_or_default() -> None:
    assert ev("get_or_default(missing, 'd')") == "d"
    assert ev("get_or_default(x, 'd')", {"x": None}) == "d"
    assert ev("get_or_default(x, 'd')", {"x": 0}) == 0


def test_encode_and_decode_base64() -> None:
    assert ev("encode('hello', 'base64')") == "aGVsbG8="
    assert ev("decode('aGVsbG8=', 'base64')") == "hello"
    assert ev("decode(encode({'a': 1}, 'base64'), 'base64')") == {"a": 1}  # JSON text decodes to a value
    raw = bytes(range(256))
    assert ev("encode(*, 'base64')", raw) == base64.b64encode(raw).decode()
    # encode(*) of a JSON payload encodes the bytes as published, not a re-serialisation.
    assert ev("encode(*, 'base64')", b'{ "a" : 1 }') == base64.b64encode(b'{ "a" : 1 }').decode()


def test_message_context_functions() -> None:
    ctx = {
        "topic": "a/b/c",
        "client_id": "dev-1",
        "principal": "ab" * 32,
        "trace_id": "11111111-2222-3333-4444-555555555555",
        "timestamp_ms": 1700000000123,
        "account_id": "123456789012",
        "source_ip": "10.0.0.7",
    }
    assert ev("topic()", **ctx) == "a/b/c"
    assert ev("topic(1)", **ctx) == "a"
    assert ev("topic(3)", **ctx) == "c"
    assert ev("clientid()", **ctx) == "dev-1"
    assert ev("clientid()") == "n/a"
    assert ev("principal()", **ctx) == "ab" * 32
    assert ev("traceid()", **ctx) == ctx["trace_id"]
    assert ev("traceid()") is UNDEFINED
    assert ev("timestamp()", **ctx) == 1700000000123
    assert ev("accountid()", **ctx) == "123456789012"
    assert ev("sourceip()", **ctx) == "10.0.0.7"
    assert ev("sql_version()") == "2016-03-23"
    assert ev("sql_version()", version="2015-10-08") == "2015-10-08"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", ev("newuuid()"))
    r = ev("rand()")
    assert type(r) is float and 0.0 <= r < 1.0


def test_timestamp_is_stable_within_one_message() -> None:
    q = compile_sql("SELECT timestamp() AS a, timestamp() AS b FROM 't'")
    out = q.evaluate(MessageContext("t", b"{}"))
    assert out["a"] == out["b"] > 1_600_000_000_000  # type: ignore[index]


def test_mqtt5_property_functions() -> None:
    ctx = {
        "user_properties": (("k", "v1"), ("k", "v2"), ("other", "x")),
        "content_type": "application/json",
        "payload_format_indicator": 1,
        "response_topic": "reply/here",
        "correlation_data": b"\x01\x02",
    }
    assert ev("get_user_properties('k')", **ctx) == ["v1", "v2"]
    assert ev("get_user_properties('none')", **ctx) is UNDEFINED
    assert ev("get_user_properties()", **ctx) == [{"k": "v1"}, {"k": "v2"}, {"other": "x"}]
    assert ev("get_mqtt_property('content_type')", **ctx) == "application/json"
    assert ev("get_mqtt_property('format_indicator')", **ctx) == "UTF8_DATA"
    assert ev("get_mqtt_property('response_topic')", **ctx) == "reply/here"
    assert ev("get_mqtt_property('correlation_data')", **ctx) == "AQI="
    assert ev("get_mqtt_property('content_type')") is UNDEFINED


def test_cast() -> None:
    assert ev("cast(true AS Int)") == 1
    assert ev("cast('5.7' AS Int)") == 5
    assert ev("cast(5.7 AS Integer)") == 5
    assert ev("cast(5 AS Decimal)") == 5.0 and type(ev("cast(5 AS Decimal)")) is float
    assert ev("cast(false AS Double)") == 0.0
    assert ev("cast(0 AS Boolean)") is False
    assert ev("cast(2.5 AS Bool)") is True
    assert ev("cast('TRUE' AS Boolean)") is True
    assert ev("cast(12 AS String)") == "12"
    assert ev("cast([1, 2] AS Varchar)") == "[1,2]"
    assert ev("cast('abc' AS Int)") is UNDEFINED


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT nosuchfn(1) FROM 't'", "unknown function nosuchfn()"),
        ("SELECT substring('a') FROM 't'", "substring() takes 2 to 3 arguments, got 1"),
        ("SELECT abs(1, 2) FROM 't'", "abs() takes 1 argument, got 2"),
        ("SELECT topic(1, 2) FROM 't'", "topic() takes 0 to 1 arguments, got 2"),
        ("SELECT aws_lambda('arn:aws:lambda:x', *) FROM 't'", "aws_lambda() is not available on the edge"),
        ("SELECT get_dynamodb('t', 'k', 'v', 'arn') FROM 't'", "get_dynamodb() is not available on the edge"),
        ("SELECT get_secret('s', 'SecretString', 'k', 'arn') FROM 't'", "get_secret() is not available on the edge"),
        ("SELECT get_thing_shadow('t', 'arn') FROM 't'", "get_thing_shadow() is not available on the edge"),
        ("SELECT machinelearning_predict('m', 'arn', *) FROM 't'", "not available on the edge"),
        ("SELECT decode(x, 'proto') FROM 't'", "not available on the edge"),
        ("SELECT encode(x, 'hex') FROM 't'", "supports the scheme 'base64' only"),
        ("SELECT get_mqtt_property('bogus') FROM 't'", "does not know 'bogus'"),
    ],
)
def test_function_errors_at_creation(sql: str, message: str) -> None:
    with pytest.raises(SqlSemanticError, match=re.escape(message)):
        compile_sql(sql, "2016-03-23")


def test_function_names_are_case_insensitive() -> None:
    assert ev("ISNULL(NULL)") is True
    assert ev("Upper('a')") == "A"
