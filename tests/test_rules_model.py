"""Topic-rule payloads, actions, substitution templates, errorAction documents and the rule index."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import botocore.session
import pytest

from rules import (
    MessageContext,
    RuleIndex,
    RuleValidationError,
    SqlSemanticError,
    SqlSyntaxError,
    TemplateError,
    TopicFilterError,
    compile_sql,
    compile_template,
    error_message,
    evaluate_rule,
    parse_topic_rule,
    render_error_action,
    validate_rule_name,
)
from rules.model import _FIELDS, ENDPOINT_FIELD

ROLE = "arn:aws:iam::123456789012:role/rules"


def rule(sql: str = "SELECT * FROM 'sensors/+/data'", *actions: dict[str, Any], **extra: Any) -> Any:
    return parse_topic_rule("R1", {"sql": sql, "actions": list(actions), **extra})


def kinesis(**kw: Any) -> dict[str, Any]:
    return {"kinesis": {"roleArn": ROLE, "streamName": "s", **kw}}


def msg(payload: bytes = b'{"temp": 31}', topic: str = "sensors/d1/data", **kw: Any) -> MessageContext:
    return MessageContext(topic, payload, **kw)


# -- rule names and payload fields -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "Rule_1", "x" * 128])
def test_valid_rule_names(name: str) -> None:
    assert validate_rule_name(name) == name


@pytest.mark.parametrize("name", ["", "with-dash", "sp ace", "x" * 129, "é", 5])
def test_invalid_rule_names(name: object) -> None:
    with pytest.raises(RuleValidationError, match=re.escape("^[a-zA-Z0-9_]+$")):
        validate_rule_name(name)


BAD_PAYLOADS = [
    ({"actions": []}, "topicRulePayload.sql is required"),
    ({"sql": "SELECT * FROM 'a'"}, "topicRulePayload.actions is required"),
    ({"sql": "SELECT * FROM 'a'", "actions": [kinesis()] * 11}, "expected an array of 0 to 10 actions"),
    ({"sql": "SELECT * FROM 'a'", "actions": [], "bogus": 1}, "unknown field 'bogus'"),
    ({"sql": "SELECT * FROM 'a'", "actions": [], "ruleDisabled": "no"}, "ruleDisabled: expected true or false"),
    ({"sql": "SELECT * FROM 'a'", "actions": [], "awsIotSqlVersion": "2020"}, "unknown awsIotSqlVersion '2020'"),
    ({"sql": 5, "actions": []}, "topicRulePayload.sql: expected a string, got a number"),
    ({"sql": "SELECT * FROM 'a'", "actions": [{}]}, "exactly one key"),
    ({"sql": "SELECT * FROM 'a'", "actions": [{**kinesis(), "sqs": {}}]}, "exactly one key"),
    ({"sql": "SELECT * FROM 'a'", "actions": [{"lambda": {"functionArn": "x"}}]},
     "action 'lambda' is not supported on the edge; supported: republish, kinesis, firehose, sqs, s3"),
    ({"sql": "SELECT * FROM 'a'", "actions": [{"teleport": {}}]}, "unknown action 'teleport'"),
    ({"sql": "SELECT * FROM 'a'", "actions": [{"kinesis": {"roleArn": ROLE}}]},
     "topicRulePayload.actions[0].kinesis.streamName is required"),
    ({"sql": "SELECT * FROM 'a'", "actions": [{"kinesis": {"streamName": "s"}}]}, "kinesis.roleArn is required"),
    ({"sql": "SELECT * FROM 'a'", "actions": [kinesis(roleArn="role")]}, "roleArn: expected an IAM role ARN"),
    ({"sql": "SELECT * FROM 'a'", "actions": [kinesis(shard=1)]}, "kinesis: unknown field 'shard'"),
    ({"sql": "SELECT * FROM 'a'", "actions": [kinesis(streamName=7)]}, "streamName: expected a string"),
    ({"sql": "SELECT * FROM 'a'", "actions": [kinesis(endpointUrl="ftp://x")]}, "endpointUrl: expected an http"),
    ({"sql": "SELECT * FROM 'a'", "actions": [{"republish": {"roleArn": ROLE, "topic": "t", "qos": 2}}]},
     "republish.qos: expected 0 or 1, got 2"),
    ({"sql": "SELECT * FROM 'a'", "actions": [{"republish": {"roleArn": ROLE, "topic": "t", "qos": True}}]},
     "republish.qos: expected 0 or 1, got true"),
    ({"sql": "SELECT * FROM 'a'", "actions": [{"republish": {"roleArn": ROLE, "topic": ""}}]},
     "republish.topic must not be empty"),
    ({"sql": "SELECT * FROM 'a'",
      "actions": [{"republish": {"roleArn": ROLE, "topic": "t", "headers": {"payloadFormatIndicator": "TEXT"}}}]},
     "payloadFormatIndicator: use UNSPECIFIED_BYTES or UTF8_DATA"),
    ({"sql": "SELECT * FROM 'a'",
      "actions": [{"republish": {"roleArn": ROLE, "topic": "t", "headers": {"userProperties": [{"key": "k"}]}}}]},
     "userProperties[0].value is required"),
    ({"sql": "SELECT * FROM 'a'", "actions": [{"sqs": {"roleArn": ROLE, "queueUrl": "u", "useBase64": "yes"}}]},
     "sqs.useBase64: expected true or false, got a string"),
    ({"sql": "SELECT * FROM 'a'",
      "actions": [{"firehose": {"roleArn": ROLE, "deliveryStreamName": "f", "separator": ";"}}]},
     "firehose.separator: \";\" is not allowed"),
    ({"sql": "SELECT * FROM 'a'",
      "actions": [{"s3": {"roleArn": ROLE, "bucketName": "b", "key": "k", "cannedAcl": "everyone"}}]},
     "s3.cannedAcl: \"everyone\" is not allowed"),
    ({"sql": "SELECT * FROM 'a'", "actions": [{"s3": {"roleArn": ROLE, "bucketName": "b"}}]}, "s3.key is required"),
    ({"sql": "SELECT * FROM 'a'", "actions": [], "errorAction": {"sns": {}}},
     "errorAction: action 'sns' is not supported on the edge"),
]  # fmt: skip


@pytest.mark.parametrize(("payload", "message"), BAD_PAYLOADS, ids=[m for _, m in BAD_PAYLOADS])
def test_bad_payloads_name_the_field(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleValidationError) as info:
        parse_topic_rule("R", payload)
    assert message in str(info.value)


def test_sql_and_template_errors_surface_at_creation() -> None:
    with pytest.raises(SqlSyntaxError, match="line 1, column 10: expected FROM, found 'b'"):
        parse_topic_rule("R", {"sql": "SELECT a b", "actions": []})
    with pytest.raises(SqlSemanticError, match="unknown function"):
        parse_topic_rule("R", {"sql": "SELECT zork() FROM 'a'", "actions": []})
    with pytest.raises(TopicFilterError):
        parse_topic_rule("R", {"sql": "SELECT * FROM 'a/#/b'", "actions": []})
    with pytest.raises(TemplateError, match=r"actions\[0\]\.kinesis\.partitionKey: invalid substitution template"):
        parse_topic_rule("R", {"sql": "SELECT * FROM 'a'", "actions": [kinesis(partitionKey="${zork()}")]})


def test_payload_as_json_text_and_defaults() -> None:
    r = parse_topic_rule("R", json.dumps({"sql": "SELECT * FROM 'a/+'", "actions": []}))
    assert r.sql_version == "2015-10-08"  # default when awsIotSqlVersion is omitted
    assert r.disabled is False and r.topic_filter == "a/+"
    assert r.describe() == {
        "ruleName": "R", "sql": "SELECT * FROM 'a/+'", "description": "", "actions": [], "ruleDisabled": False,
        "awsIotSqlVersion": "2015-10-08",
    }  # fmt: skip
    with pytest.raises(RuleValidationError, match="not valid JSON"):
        parse_topic_rule("R", "{nope")


def test_action_fields_match_botocore_model() -> None:
    """Every field we accept exists in botocore's iot model (except our endpointUrl), and we require
    exactly the fields botocore requires."""
    model = botocore.session.get_session().get_service_model("iot")
    action_shape = model.shape_for("Action")
    for kind, fields in _FIELDS.items():
        shape = action_shape.members[kind]
        assert set(fields) - {ENDPOINT_FIELD} <= set(shape.members), kind
        for required in shape.required_members:
            body = {"roleArn": ROLE, "streamName": "s", "deliveryStreamName": "d", "queueUrl": "q",
                    "bucketName": "b", "key": "k", "topic": "t"}  # fmt: skip
            body = {k: v for k, v in body.items() if k in shape.members and k != required}
            with pytest.raises(RuleValidationError, match=f"{kind}.{required} is required"):
                parse_topic_rule("R", {"sql": "SELECT * FROM 'a'", "actions": [{kind: body}]})


# -- substitution templates (iot-substitution-templates) ---------------------------------------------


def env_for(payload: bytes, topic: str = "a/b", sql: str = "SELECT * FROM '#'", version: str = "2016-03-23") -> Any:
    return compile_sql(sql, version).env(MessageContext(topic, payload, client_id="c1", timestamp_ms=42))


def test_templates_render_against_the_original_message() -> None:
    env = env_for(b'{"temp": 21.5, "dev": {"id": "d7"}}')
    assert compile_template("${topic()}/${timestamp()}", "2016-03-23").render(env) == "a/b/42"
    assert compile_template("id-${dev.id}-${temp}", "2016-03-23").render(env) == "id-d7-21.5"
    assert compile_template("${dev}", "2016-03-23").render(env) == '{"id":"d7"}'
    assert compile_template("${missing}x", "2016-03-23").render(env) == "x"
    assert compile_template("${'}' + clientid()}", "2016-03-23").render(env) == "}c1"
    assert compile_template("cost $5", "2016-03-23").render(env) == "cost $5"
    assert compile_template("$$aws/things/${topic(2)}/shadow/update", "2016-03-23").render(env) == (
        "$aws/things/b/shadow/update"
    )
    assert compile_template("plain", "2016-03-23").is_static


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${}", "expected an expression inside ${}"),
        ("${topic(}", "expected an expression"),
        ("${a + }", "expected an expression"),
        ("${a", "expected '}' closing the ${...} template"),
        ("${nosuch()}", "unknown function nosuch()"),
        ("${aws_lambda('x', *)}", "not available on the edge"),
        ("${@v}", "variable @v is not defined"),
        ("${'abc}", "unterminated string literal"),
    ],
)
def test_invalid_templates(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)):
        compile_template(text, "2016-03-23", field="actions[0].s3.key")


def test_aliases_are_not_visible_but_set_variables_are() -> None:
    r = rule(
        "SET @zone = upper(site) SELECT temp AS t FROM 'sensors/+/data'",
        kinesis(partitionKey="${t}|${temp}|${@zone}"),
        awsIotSqlVersion="2016-03-23",
    )
    (inv,) = evaluate_rule(r, msg(b'{"temp": 31, "site": "north"}'))
    assert inv.params["partitionKey"] == "|31|NORTH"


# -- evaluate_rule: what each action sends ----------------------------------------------------------


def test_every_action_kind_renders_its_request() -> None:
    r = rule(
        "SELECT temp, topic(2) AS device FROM 'sensors/+/data' WHERE temp > 30",
        kinesis(streamName="telemetry-${topic(2)}", partitionKey="${topic()}", endpointUrl="http://127.0.0.1:4566"),
        {"sqs": {"roleArn": ROLE, "queueUrl": "http://q/000000000000/alerts"}},
        {"sqs": {"roleArn": ROLE, "queueUrl": "http://q/000000000000/b64", "useBase64": True}},
        {
            "s3": {
                "roleArn": ROLE,
                "bucketName": "bkt",
                "key": "${topic(2)}/${timestamp()}.json",
                "cannedAcl": "private",
            }
        },
        {"firehose": {"roleArn": ROLE, "deliveryStreamName": "fh", "separator": "\n"}},
        {"republish": {"roleArn": ROLE, "topic": "$$aws/rules/other/${topic(2)}", "qos": 1}},
        awsIotSqlVersion="2016-03-23",
    )
    out = b'{"temp":31,"device":"d1"}'
    invs = evaluate_rule(r, msg(b'{"temp": 31.0, "x": 1}', timestamp_ms=99))
    assert [i.kind for i in invs] == ["kinesis", "sqs", "sqs", "s3", "firehose", "republish"]
    assert all(i.error is None and i.payload == out for i in invs)
    assert invs[0].params == {"streamName": "telemetry-d1", "partitionKey": "sensors/d1/data", "data": out}
    assert invs[0].endpoint_url == "http://127.0.0.1:4566"
    assert invs[1].params == {"queueUrl": "http://q/000000000000/alerts", "messageBody": out.decode()}
    assert invs[2].params["messageBody"] == base64.b64encode(out).decode()
    assert invs[3].params == {"bucketName": "bkt", "key": "d1/99.json", "body": out, "cannedAcl": "private"}
    assert invs[4].params == {"deliveryStreamName": "fh", "records": [out + b"\n"], "batch": False}
    assert invs[5].params == {"topic": "$aws/rules/other/d1", "qos": 1, "properties": {}}
    assert evaluate_rule(r, msg(b'{"temp": 20}')) == []  # WHERE false: nothing to do
    assert evaluate_rule(r, msg(b"not json")) == []  # WHERE Undefined


def test_kinesis_default_partition_key_is_random() -> None:
    r = rule("SELECT * FROM 'sensors/+/data'", kinesis())
    keys = {evaluate_rule(r, msg())[0].params["partitionKey"] for _ in range(3)}
    assert len(keys) == 3


def test_binary_payload_passes_through_as_bytes() -> None:
    r = rule(
        "SELECT * FROM 'sensors/+/data'",
        {"s3": {"roleArn": ROLE, "bucketName": "b", "key": "k"}},
        {"sqs": {"roleArn": ROLE, "queueUrl": "u"}},
        {"sqs": {"roleArn": ROLE, "queueUrl": "u", "useBase64": True}},
    )
    raw = b"\x00\xff\x10"
    s3, sqs_text, sqs_b64 = evaluate_rule(r, msg(raw))
    assert s3.params["body"] == raw and s3.error is None
    assert sqs_text.error == "the message is not UTF-8 text; set useBase64 to true"
    assert sqs_b64.params["messageBody"] == "AP8Q"


def test_firehose_batch_mode_sends_one_record_per_element() -> None:
    fh = {"firehose": {"roleArn": ROLE, "deliveryStreamName": "fh", "batchMode": True, "separator": ","}}
    r = rule("SELECT VALUE readings FROM 'sensors/+/data'", fh, awsIotSqlVersion="2016-03-23")
    (inv,) = evaluate_rule(r, msg(b'{"readings": [{"v": 1}, 2, "x"]}'))
    assert inv.params["records"] == [b'{"v":1},', b"2,", b'"x",'] and inv.params["batch"] is True
    (single,) = evaluate_rule(r, msg(b'{"readings": 5}'))  # not an array: one record
    assert single.params["records"] == [b"5,"] and single.params["batch"] is False
    (too_many,) = evaluate_rule(r, msg(json.dumps({"readings": list(range(501))}).encode()))
    assert too_many.error == "batchMode needs 1 to 500 records, got 501"


def test_republish_headers_and_bad_topics() -> None:
    headers = {
        "payloadFormatIndicator": "UTF8_DATA",
        "contentType": "application/json",
        "responseTopic": "reply/${topic(2)}",
        "correlationData": "${encode(topic(2), 'base64')}",
        "messageExpiry": "${ttl}",
        "userProperties": [{"key": "src", "value": "${clientid()}"}],
    }
    r = rule(
        "SELECT * FROM 'sensors/+/data'",
        {"republish": {"roleArn": ROLE, "topic": "out/${kind}", "headers": headers}},
        awsIotSqlVersion="2016-03-23",
    )
    (inv,) = evaluate_rule(r, msg(b'{"ttl": 60, "kind": "a"}', client_id="dev9"))
    assert inv.params == {
        "topic": "out/a",
        "qos": 0,
        "properties": {
            "payload_format_indicator": 1, "content_type": "application/json", "response_topic": "reply/d1",
            "correlation_data": b"d1", "message_expiry": 60, "user_properties": [("src", "dev9")],
        },
    }  # fmt: skip
    (bad_expiry,) = evaluate_rule(r, msg(b'{"ttl": "soon", "kind": "a"}'))
    assert "messageExpiry rendered to 'soon'" in (bad_expiry.error or "")
    (wild,) = evaluate_rule(r, msg(b'{"ttl": 1, "kind": "+"}'))
    assert wild.error == "the republish topic 'out/+' contains a wildcard or NUL"
    jobs = rule("SELECT * FROM 'a'", {"republish": {"roleArn": ROLE, "topic": "$$aws/things/t/jobs/notify"}})
    (inv,) = evaluate_rule(jobs, msg(topic="a"))
    assert inv.error == "republishing to jobs reserved topics is not supported"


# -- errorAction ----------------------------------------------------------------------------------


def test_error_action_document() -> None:
    r = rule(
        "SELECT * FROM 'sensors/+/data'",
        kinesis(streamName="s1"),
        errorAction={"republish": {"roleArn": ROLE, "topic": "errors/${topic(2)}"}},
    )
    m = msg(b'{"temp": 1}', client_id="iotconsole-1", trace_id="8a7c1b2e-0000-4000-8000-000000000001")
    (inv,) = evaluate_rule(r, m)
    failure = inv.failure("Failed to put record: stream not found")
    doc = error_message(r.name, m, [failure])
    assert doc == {
        "ruleName": "R1",
        "topic": "sensors/d1/data",
        "cloudwatchTraceId": "8a7c1b2e-0000-4000-8000-000000000001",
        "clientId": "iotconsole-1",
        "base64OriginalPayload": base64.b64encode(b'{"temp": 1}').decode(),
        "failures": [
            {"failedAction": "KinesisAction", "failedResource": "s1",
             "errorMessage": "Failed to put record: stream not found"},
        ],
    }  # fmt: skip
    err = render_error_action(r, m, [failure])
    assert err is not None and err.params["topic"] == "errors/d1"
    assert json.loads(err.payload) == doc
    assert render_error_action(rule(), m, [failure]) is None


# -- the rule index -------------------------------------------------------------------------------


def test_rule_index_routes_enabled_rules_and_basic_ingest() -> None:
    index = RuleIndex()
    index.put(parse_topic_rule("A", {"sql": "SELECT * FROM 'sensors/+/data'", "actions": []}))
    index.put(parse_topic_rule("B", {"sql": "SELECT * FROM 'sensors/#'", "actions": [], "ruleDisabled": True}))
    index.put(parse_topic_rule("C", {"sql": "SELECT topic() AS t", "actions": []}))  # Basic Ingest only
    rules, topic = index.route("sensors/d1/data")
    assert [r.name for r in rules] == ["A"] and topic == "sensors/d1/data"
    rules, topic = index.route("$aws/rules/C/sensors/d1")
    assert [r.name for r in rules] == ["C"] and topic == "sensors/d1"
    assert evaluate_rule(rules[0], MessageContext(topic, b"{}")) == []  # no actions
    assert rules[0].query.evaluate(MessageContext(topic, b"{}")) == {"t": "sensors/d1"}
    assert index.route("$aws/rules/B/x")[0] == []  # disabled
    index.put(parse_topic_rule("B", {"sql": "SELECT * FROM 'sensors/#'", "actions": []}))  # enable
    assert sorted(r.name for r in index.route("sensors/d1/data")[0]) == ["A", "B"]
    index.remove("A")
    assert [r.name for r in index.route("sensors/d1/data")[0]] == ["B"]
    assert "A" not in index and len(index) == 2
