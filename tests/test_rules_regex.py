"""Bounded regular expressions: regexp_matches / regexp_replace / regexp_substr cannot stall the gateway.

A catastrophic pattern on a hostile payload raises RuleEvaluationError within its budget (plus slack for a
loaded machine); evaluate_rule turns that into failed actions, which the dispatcher sends to the rule's
errorAction while other messages and rules keep flowing. Normal patterns behave as they did on Python's re.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import (
    DEFAULT_REGEX_BUDGET_MS,
    UNDEFINED,
    MessageContext,
    RuleEvaluationError,
    RuleValidationError,
    SqlSemanticError,
    TemplateError,
    compile_sql,
    evaluate_rule,
    parse_topic_rule,
    render_error_action,
)
from rules.regexes import MAX_EXPANDED_SIZE, MAX_PATTERN_CHARS, compile_cached, expanded_size
from tests.test_dispatch_support import ROLE, Publisher, rule_payload, running_gateway

CATASTROPHIC = "(a|aa)+$"  # exponential backtracking even on the regex engine
HOSTILE = "a" * 64 + "!"  # unbounded, the match above would run for years
SLACK_S = 1.5  # the machine is shared: wall-clock time may exceed the CPU time the budget counts
CALLS = {
    "regexp_matches": "regexp_matches(s, {p})",
    "regexp_substr": "regexp_substr(s, {p})",
    "regexp_replace": "regexp_replace(s, {p}, 'x')",
}


def run(expr: str, payload: object, budget_ms: float | None = None) -> object:
    q = compile_sql(f"SELECT VALUE {expr} FROM 't/#'", "2016-03-23", regex_budget_ms=budget_ms)
    return q.evaluate(MessageContext("t/1", json.dumps(payload).encode()))


def raises_within(budget_ms: float, expr: str, payload: object) -> str:
    """Evaluate, expect RuleEvaluationError within budget + slack; return its message."""
    start = time.monotonic()
    with pytest.raises(RuleEvaluationError) as caught:
        run(expr, payload, budget_ms)
    assert time.monotonic() - start < budget_ms / 1000 + SLACK_S
    return str(caught.value)


# -- the budget ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("function", sorted(CALLS))
def test_catastrophic_literal_pattern_raises_within_budget(function: str) -> None:
    message = raises_within(50, CALLS[function].format(p=repr(CATASTROPHIC)), {"s": HOSTILE})
    assert message.startswith(f"{function}(): ")
    assert repr(CATASTROPHIC) in message and "50 ms budget" in message and "65-character input" in message


@pytest.mark.parametrize("function", sorted(CALLS))
def test_catastrophic_pattern_from_the_payload_raises_within_budget(function: str) -> None:
    message = raises_within(50, CALLS[function].format(p="p"), {"s": HOSTILE, "p": CATASTROPHIC})
    assert message.startswith(f"{function}(): ") and repr(CATASTROPHIC) in message


def test_default_budget_is_100_ms() -> None:
    assert DEFAULT_REGEX_BUDGET_MS == 100
    message = raises_within(DEFAULT_REGEX_BUDGET_MS, f"regexp_matches(s, '{CATASTROPHIC}')", {"s": HOSTILE})
    assert "100 ms budget" in message


def test_the_budget_is_fixed_at_creation_per_rule() -> None:
    short = compile_sql(f"SELECT VALUE regexp_matches(s, '{CATASTROPHIC}') FROM 't'", regex_budget_ms=20)
    long = compile_sql(f"SELECT VALUE regexp_matches(s, '{CATASTROPHIC}') FROM 't'", regex_budget_ms=300)
    msg = MessageContext("t", json.dumps({"s": HOSTILE}).encode())
    for query, text in ((short, "20 ms"), (long, "300 ms")):
        with pytest.raises(RuleEvaluationError, match=text):
            query.evaluate(msg)


@pytest.mark.parametrize("budget", [0, -5, float("nan"), float("inf"), "100", True])
def test_invalid_budgets_are_refused(budget: object) -> None:
    with pytest.raises(RuleValidationError, match="positive number of milliseconds"):
        compile_sql("SELECT VALUE regexp_matches(s, 'a') FROM 't'", regex_budget_ms=budget)  # type: ignore[arg-type]


def test_nested_plus_from_the_report_is_harmless_on_this_engine() -> None:
    """`(a+)+$` backtracks exponentially on Java and re; the regex engine answers at once."""
    start = time.monotonic()
    assert run("regexp_matches(s, '(a+)+$')", {"s": "a" * 32 + "!"}) is False
    assert run("regexp_matches(s, '(a+)+$')", {"s": "a" * 32}) is True
    assert time.monotonic() - start < SLACK_S


def test_a_catastrophic_constant_call_is_a_creation_error() -> None:
    with pytest.raises(RuleEvaluationError, match="regexp_matches"):
        compile_sql(f"SELECT VALUE regexp_matches('{HOSTILE}', '{CATASTROPHIC}') FROM 't'", regex_budget_ms=20)


# -- evaluate_rule and the errorAction ----------------------------------------------------------------


def _rule(sql: str, budget_ms: float = 30, **fields: object) -> object:
    return parse_topic_rule("r", {
        "sql": sql, "awsIotSqlVersion": "2016-03-23",
        "actions": [{"kinesis": {"roleArn": ROLE, "streamName": "s-${topic(2)}", "partitionKey": "k"}},
                    {"sqs": {"roleArn": ROLE, "queueUrl": "http://q/000000000000/plain"}}],
        "errorAction": {"republish": {"roleArn": ROLE, "topic": "errors/${topic(2)}"}}, **fields,
    }, regex_budget_ms=budget_ms)


def test_evaluate_rule_reports_a_timeout_as_failed_actions() -> None:
    rule = _rule(f"SELECT * FROM 'dev/+' WHERE regexp_matches(s, '{CATASTROPHIC}')")
    msg = MessageContext("dev/7", json.dumps({"s": HOSTILE}).encode(), client_id="c7")
    kinesis, sqs = evaluate_rule(rule, msg)  # type: ignore[arg-type]
    for inv in (kinesis, sqs):
        assert inv.error is not None and inv.error.startswith("regexp_matches(): ") and "30 ms budget" in inv.error
        assert inv.params == {}
    assert kinesis.resource == "s-${topic(2)}" and sqs.resource == "http://q/000000000000/plain"
    err = render_error_action(rule, msg, [kinesis.failure(), sqs.failure()])  # type: ignore[arg-type]
    assert err is not None and err.error is None and err.params["topic"] == "errors/7"
    doc = json.loads(err.payload)
    assert [f["failedAction"] for f in doc["failures"]] == ["KinesisAction", "SqsAction"]
    assert "regexp_matches()" in doc["failures"][0]["errorMessage"]
    benign = MessageContext("dev/8", json.dumps({"s": "aaa"}).encode())
    assert [inv.error for inv in evaluate_rule(rule, benign)] == [None, None]  # type: ignore[arg-type]


def test_a_timeout_in_a_template_fails_the_actions_too() -> None:
    rule = parse_topic_rule("t", {
        "sql": "SELECT * FROM 'dev/+'",
        "actions": [{"kinesis": {"roleArn": ROLE, "streamName": "s",
                                 "partitionKey": f"${{regexp_replace(s, '{CATASTROPHIC}', 'x')}}"}}],
    }, regex_budget_ms=30)
    (inv,) = evaluate_rule(rule, MessageContext("dev/1", json.dumps({"s": HOSTILE}).encode()))
    assert inv.error is not None and inv.error.startswith("regexp_replace(): ") and inv.resource == "s"


def test_an_error_action_that_cannot_render_carries_the_error() -> None:
    rule = _rule(f"SET @v = regexp_substr(s, '{CATASTROPHIC}') SELECT @v AS v FROM 'dev/+'")
    msg = MessageContext("dev/1", json.dumps({"s": HOSTILE}).encode())
    invocations = evaluate_rule(rule, msg)  # type: ignore[arg-type]
    assert all(inv.error and "regexp_substr()" in inv.error for inv in invocations)
    err = render_error_action(rule, msg, [inv.failure() for inv in invocations])  # type: ignore[arg-type]
    assert err is not None and err.error is not None
    assert err.error.startswith("the errorAction could not be rendered: regexp_substr(): ")
    assert json.loads(err.payload)["ruleName"] == "r"


# -- creation: literal patterns compiled once, size limits -----------------------------------------------


def test_literal_pattern_is_compiled_at_creation_not_per_message() -> None:
    query = compile_sql("SELECT VALUE regexp_replace(s, '(\\\\d+)-(?<w>\\\\w+)', '${w}:$1') FROM 't'")
    before = compile_cached.cache_info()
    for i in range(50):
        assert query.evaluate(MessageContext("t", json.dumps({"s": f"{i}-ab"}).encode())) == f"ab:{i}"
    after = compile_cached.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)


def test_runtime_patterns_share_a_bounded_cache() -> None:
    query = compile_sql("SELECT VALUE regexp_substr(s, p) FROM 't'")
    pattern = "z[0-9]+q-unique-to-this-test"
    before = compile_cached.cache_info()
    for i in range(20):
        msg = MessageContext("t", json.dumps({"s": f"z{i}q-unique-to-this-test", "p": pattern}).encode())
        assert query.evaluate(msg) == f"z{i}q-unique-to-this-test"
    after = compile_cached.cache_info()
    assert after.misses - before.misses == 1 and after.hits - before.hits == 19
    assert after.maxsize is not None and after.maxsize > 0


def test_a_literal_pattern_too_large_to_compile_is_refused_at_creation() -> None:
    start = time.monotonic()
    with pytest.raises(SqlSemanticError, match=r"regexp_matches\(\): .* expands to 1000000000 items"):
        compile_sql("SELECT VALUE regexp_matches(s, '((a{1000}){1000}){1000}') FROM 't'")
    with pytest.raises(TemplateError, match="partitionKey"):
        parse_topic_rule("big", {"sql": "SELECT * FROM 'a'", "actions": [{"kinesis": {
            "roleArn": ROLE, "streamName": "s", "partitionKey": "${regexp_substr(s, '(?:x{200}){200}')}"}}]})
    assert time.monotonic() - start < SLACK_S


def test_a_runtime_pattern_too_large_to_compile_raises() -> None:
    before = compile_cached.cache_info()
    for _ in range(3):  # refused once, then from the cache
        with pytest.raises(RuleEvaluationError, match=r"regexp_substr\(\): .* expands to 10100 items.* at most 10000"):
            run("regexp_substr(s, p)", {"s": "x", "p": "(?:x{101}){100}"})
    after = compile_cached.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 2)
    with pytest.raises(RuleEvaluationError, match=f"at most {MAX_PATTERN_CHARS}"):
        run("regexp_matches(s, p)", {"s": "x", "p": "x" * (MAX_PATTERN_CHARS + 1)})


@pytest.mark.parametrize(("pattern", "size"), [
    ("abc", 3), (r"\d{4}-\d{2}", 7), ("(?:a{100}){100}", 10_000), ("(?:a{1,1000}){1,1000}", 1),
    ("(?:a{300,}){2}", 600), ("(?i)(?:ab){3}", 6), ("a(?x)b {3}  # (\n", 4), ("(?:a{10}(?#()){10}", 100),
    ("[abcdefghijklmnopqrstuvwxyz]{500}", 500), ("(a|bc){3}", 9),
])  # fmt: skip
def test_expanded_size_follows_the_engine_parser(pattern: str, size: int) -> None:
    assert expanded_size(pattern) == size
    assert size <= MAX_EXPANDED_SIZE


def test_invalid_patterns_still_give_undefined() -> None:
    assert run("regexp_matches(s, '(')", {"s": "a"}) is UNDEFINED
    assert run("regexp_replace(s, 'a', '$2')", {"s": "a"}) is UNDEFINED  # no group 2
    assert run("regexp_substr(s, '\\\\p{javaLowerCase}')", {"s": "a"}) is UNDEFINED
    assert compile_sql("SELECT VALUE regexp_matches(s, '(') FROM 't'") is not None  # not a creation error


# -- semantics: what worked on re works the same ---------------------------------------------------------


@pytest.mark.parametrize(("expr", "payload", "expected"), [
    ("regexp_matches(s, '(?i)HELLO')", {"s": "say hello"}, True),
    ("regexp_matches(s, '^[A-Z][a-z]+$')", {"s": "Sensor"}, True),
    ("regexp_matches(s, '^[A-Z][a-z]+$')", {"s": "sensor"}, False),
    ("regexp_substr(s, '[0-9]+\\\\.[0-9]+')", {"s": "t=21.5C"}, "21.5"),
    ("regexp_substr(s, '(?<=id:)\\\\w+')", {"s": "id:abc9 x"}, "abc9"),
    ("regexp_substr(s, 'a.*?b')", {"s": "aXbYb"}, "aXb"),
    ("regexp_substr(s, 'zzz')", {"s": "abc"}, ""),
    ("regexp_replace(s, '(\\\\w+)@(\\\\w+)', '$2 at $1')", {"s": "me@host"}, "host at me"),
    ("regexp_replace(s, '(?<user>\\\\w+)@', '${user}/')", {"s": "me@host"}, "me/host"),
    ("regexp_replace(s, '\\\\s+', ' ')", {"s": "a  b\t\tc"}, "a b c"),
    ("regexp_replace(s, 'x*', '-')", {"s": "abxd"}, "-a-b--d-"),
    ("regexp_replace(s, '(a)(b)?', '[$2]')", {"s": "ac"}, "[]c"),
    ("regexp_matches(s, '\\\\bfoo\\\\b')", {"s": "a foo b"}, True),
    ("regexp_matches(n, '^4')", {"n": 42}, True),  # numbers convert To String
    ("regexp_matches(s, 3)", {"s": "3"}, UNDEFINED),  # a pattern must be a String
    # Java constructs Python's re lacked, which the regex engine reads like Java does
    ("regexp_matches(s, '^\\\\p{Lu}')", {"s": "Éa"}, True),
    ("regexp_matches(s, 'a++a')", {"s": "aaa"}, False),  # possessive
    ("regexp_matches(s, 'a(?i)b')", {"s": "aB"}, True),  # flags in mid-pattern
    ("regexp_substr(s, '(?<=a+)b')", {"s": "aaab"}, "b"),  # variable-length look-behind
])  # fmt: skip
def test_normal_patterns(expr: str, payload: object, expected: object) -> None:
    assert run(expr, payload) == expected


_atoms = st.sampled_from(["a", "b", "1", " ", ".", "[ab]", "[^a]", r"\d", r"\w", r"\s", r"\b"])
_quantifiers = st.sampled_from(["", "", "*", "+", "?", "{1,2}", "*?", "+?", "{2}"])


@st.composite
def _patterns(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        if depth < 2 and draw(st.booleans()):
            inner = draw(_patterns(depth + 1))
            group = draw(st.sampled_from(["({})", "(?:{})", "({}|{})"]))
            atom = group.format(inner, draw(_patterns(depth + 1))) if "|" in group else group.format(inner)
            quantifier = draw(st.sampled_from(["", "?", "{1,2}"]))  # no nested * / +: linear on both engines
        else:
            atom, quantifier = draw(_atoms), draw(_quantifiers)
        if atom == r"\b":
            quantifier = ""
        parts.append(atom + quantifier)
    if depth:
        return "".join(parts)
    return draw(st.sampled_from(["", "^", "(?i)"])) + "".join(parts) + draw(st.sampled_from(["", "$"]))


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@settings(max_examples=150, deadline=None)
@given(_patterns(), st.text(alphabet="ab1 A", max_size=12), st.sampled_from(["<$1>", "-", ""]))
def test_same_results_as_python_re(pattern: str, text: str, repl: str) -> None:
    rx = re.compile(pattern)
    payload = {"s": text, "p": pattern}
    assert run(f"regexp_matches(s, {_sql_string(pattern)})", payload) is (rx.search(text) is not None)
    assert run("regexp_matches(s, p)", payload) is (rx.search(text) is not None)
    m = rx.search(text)
    assert run(f"regexp_substr(s, {_sql_string(pattern)})", payload) == (m.group(0) if m else "")
    if rx.groups == 0 and "$1" in repl:
        expected: object = UNDEFINED if m else text  # a reference to a missing group
    else:
        expected = rx.sub(lambda mm: repl.replace("$1", mm.group(1) or "") if "$1" in repl else repl, text)
    assert run(f"regexp_replace(s, p, {_sql_string(repl)})", payload) == expected


# -- end to end: the dispatcher routes the timeout to the errorAction ---------------------------------------


def test_a_hostile_message_goes_to_the_error_action_and_the_rest_keeps_flowing(home: Path) -> None:
    with running_gateway(home) as gw:
        sqs, iot = gw.client("sqs"), gw.client("iot")
        matched, everything, errors = (sqs.create_queue(QueueName=n)["QueueUrl"] for n in ("matched", "all", "errs"))
        iot.create_topic_rule(ruleName="pattern", topicRulePayload=rule_payload(
            f"SELECT n, s FROM 'dev/+' WHERE regexp_matches(s, '{CATASTROPHIC}')",
            {"sqs": {"roleArn": ROLE, "queueUrl": matched}},
            error_action={"sqs": {"roleArn": ROLE, "queueUrl": errors}}))
        iot.create_topic_rule(ruleName="copy", topicRulePayload=rule_payload(
            "SELECT n FROM 'dev/+'", {"sqs": {"roleArn": ROLE, "queueUrl": everything}}))
        bodies = [{"n": i, "s": HOSTILE if i == 3 else "a" * (i + 1)} for i in range(8)]
        pub = Publisher(gw.dev_port, "sensor-9")
        started = time.monotonic()
        pub.wait_acked([pub.publish("dev/x", json.dumps(b)) for b in bodies])
        assert gw.drained()
        elapsed = time.monotonic() - started
        pub.close()

        def drain(url: str) -> list[dict[str, object]]:
            out: list[dict[str, object]] = []
            while True:
                got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
                if not got:
                    return out
                out += [json.loads(m["Body"]) for m in got]

        assert sorted(int(b["n"]) for b in drain(matched)) == [0, 1, 2, 4, 5, 6, 7]  # type: ignore[call-overload]
        assert sorted(int(b["n"]) for b in drain(everything)) == list(range(8))  # type: ignore[call-overload]
        (doc,) = drain(errors)
        metrics = gw.rules.metrics()
    assert doc["ruleName"] == "pattern" and doc["clientId"] == "sensor-9" and doc["topic"] == "dev/x"
    (failure,) = doc["failures"]  # type: ignore[misc]
    assert failure["failedAction"] == "SqsAction" and failure["failedResource"] == matched
    assert failure["errorMessage"].startswith("regexp_matches(): ") and "100 ms budget" in failure["errorMessage"]
    assert metrics["rules"]["pattern"]["error_actions"] == 1 and metrics["dead_lettered"] == 0
    assert elapsed < 20


def test_the_configured_budget_reaches_the_rule_files(home: Path) -> None:
    """`rules.regex_budget_ms` is what rules loaded from the rule folder (gateway, CLI, admin API) run with."""
    from edgeloop.config import load_config
    from gateway.dispatcher.store import RuleFiles

    config = load_config(overrides={"data_dir": str(home), "rules.regex_budget_ms": 7.0})
    files = RuleFiles.for_config(config)
    files.create("slow", {"sql": "SELECT regexp_matches(s, '(a|aa)+$') AS m FROM 't'",
                          "actions": [{"republish": {"topic": "out", "roleArn": ROLE}}]})
    rule = files.read("slow").rule
    (inv,) = evaluate_rule(rule, MessageContext("t", json.dumps({"s": HOSTILE}).encode()))
    assert inv.error is not None and "7 ms budget" in inv.error
