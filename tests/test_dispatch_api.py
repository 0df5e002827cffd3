"""The topic-rule operations of the `iot` control plane through boto3, and hot reload of the rule folder."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.test_dispatch_support import ROLE, GatewayThread, Publisher, read_stream, rule_payload, running_gateway

KINESIS = {"kinesis": {"roleArn": ROLE, "streamName": "s", "partitionKey": "p"}}


@pytest.fixture
def gw(home: Path) -> Any:
    with running_gateway(home) as handle:
        yield handle


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_create_get_list_replace_enable_disable_delete(gw: GatewayThread) -> None:
    iot = gw.client("iot")
    iot.create_topic_rule(ruleName="r1", topicRulePayload=rule_payload(
        "SELECT * FROM 'a/+'", KINESIS, description="first", awsIotSqlVersion="2016-03-23"))
    iot.create_topic_rule(ruleName="r2", topicRulePayload=rule_payload("SELECT * FROM 'b/#'", KINESIS,
                                                                        ruleDisabled=True))
    got = iot.get_topic_rule(ruleName="r1")
    assert got["ruleArn"] == "arn:aws:iot:us-east-1:000000000000:rule/r1"
    rule = got["rule"]
    assert rule["ruleName"] == "r1" and rule["sql"] == "SELECT * FROM 'a/+'" and rule["description"] == "first"
    assert rule["actions"] == [KINESIS] and rule["ruleDisabled"] is False
    assert rule["awsIotSqlVersion"] == "2016-03-23" and rule["createdAt"].year >= 2024

    listed = iot.list_topic_rules()["rules"]
    assert [(r["ruleName"], r["topicPattern"], r["ruleDisabled"]) for r in listed] == [
        ("r1", "a/+", False), ("r2", "b/#", True)]
    assert [r["ruleName"] for r in iot.list_topic_rules(ruleDisabled=True)["rules"]] == ["r2"]
    assert [r["ruleName"] for r in iot.list_topic_rules(topic="a/x")["rules"]] == ["r1"]
    page = iot.list_topic_rules(maxResults=1)
    assert [r["ruleName"] for r in page["rules"]] == ["r1"]
    assert [r["ruleName"] for r in iot.list_topic_rules(maxResults=1, nextToken=page["nextToken"])["rules"]] == ["r2"]

    iot.replace_topic_rule(ruleName="r1", topicRulePayload=rule_payload("SELECT x FROM 'c/d'", KINESIS))
    assert iot.get_topic_rule(ruleName="r1")["rule"]["sql"] == "SELECT x FROM 'c/d'"
    assert iot.get_topic_rule(ruleName="r1")["rule"]["createdAt"] == rule["createdAt"]
    assert gw.rules.index.get("r1").topic_filter == "c/d"  # applied at once, not at the next scan

    iot.enable_topic_rule(ruleName="r2")
    assert iot.get_topic_rule(ruleName="r2")["rule"]["ruleDisabled"] is False
    iot.disable_topic_rule(ruleName="r1")
    assert gw.rules.index.route("c/d")[0] == []
    iot.delete_topic_rule(ruleName="r1")
    assert [r["ruleName"] for r in iot.list_topic_rules()["rules"]] == ["r2"]
    assert gw.rules.index.get("r1") is None


def test_errors_carry_awss_codes(gw: GatewayThread) -> None:
    iot = gw.client("iot")
    iot.create_topic_rule(ruleName="dup", topicRulePayload=rule_payload("SELECT * FROM 'a'", KINESIS))
    cases = [
        (lambda: iot.create_topic_rule(ruleName="dup", topicRulePayload=rule_payload("SELECT * FROM 'a'", KINESIS)),
         "ResourceAlreadyExistsException"),
        (lambda: iot.create_topic_rule(ruleName="bad", topicRulePayload=rule_payload("SELEC * FROM 'a'", KINESIS)),
         "SqlParseException"),
        (lambda: iot.create_topic_rule(ruleName="bad", topicRulePayload=rule_payload("SELECT nofn(x) FROM 'a'")),
         "SqlParseException"),
        (lambda: iot.create_topic_rule(ruleName="bad", topicRulePayload=rule_payload("SELECT * FROM 'a/#/b'")),
         "SqlParseException"),
        (lambda: iot.create_topic_rule(ruleName="bad", topicRulePayload=rule_payload(
            "SELECT * FROM 'a'", {"kinesis": {"roleArn": ROLE, "streamName": "${nofn()}"}})),
         "InvalidRequestException"),
        (lambda: iot.create_topic_rule(ruleName="bad", topicRulePayload=rule_payload(
            "SELECT * FROM 'a'", {"lambda": {"functionArn": "arn:aws:lambda:us-east-1:0:function:f"}})),
         "InvalidRequestException"),
        (lambda: iot.get_topic_rule(ruleName="missing"), "UnauthorizedException"),
        (lambda: iot.replace_topic_rule(ruleName="missing", topicRulePayload=rule_payload("SELECT * FROM 'a'")),
         "UnauthorizedException"),
        (lambda: iot.enable_topic_rule(ruleName="missing"), "UnauthorizedException"),
        (lambda: iot.delete_topic_rule(ruleName="missing"), "UnauthorizedException"),
    ]
    for call, code in cases:
        with pytest.raises(ClientError) as exc:
            call()
        assert code_of(exc) == code, exc.value
    assert [r["ruleName"] for r in iot.list_topic_rules()["rules"]] == ["dup"]


def test_hot_reload_applies_edits_and_keeps_the_previous_version_of_a_bad_file(gw: GatewayThread) -> None:
    kinesis = gw.client("kinesis")
    kinesis.create_stream(StreamName="hot", ShardCount=1)
    rules_dir = gw.config.home / "rules"
    rules_dir.mkdir(exist_ok=True)
    path = rules_dir / "hot.json"
    path.write_text(json.dumps(rule_payload(
        "SELECT 'v1' AS v FROM 'hot/in'", {"kinesis": {"roleArn": ROLE, "streamName": "hot", "partitionKey": "p"}})))
    gw.call(gw.rules.rescan())  # what the ~1 s scan does; called directly so the test needs no sleep
    assert gw.rules.index.get("hot") is not None

    path.write_text('{"sql": "SELECT FROM", "actions": []}')
    result = gw.call(gw.rules.rescan())
    assert "hot" in result.failed and "line 1" in gw.rules.metrics()["rule_file_errors"]["hot"]

    pub = Publisher(gw.dev_port, "hot-dev")
    pub.wait_acked([pub.publish("hot/in", b"{}")])
    assert gw.drained()
    assert [json.loads(r) for r in read_stream(kinesis, "hot")] == [{"v": "v1"}]  # the old version still runs

    path.write_text(json.dumps(rule_payload(
        "SELECT 'v2' AS v FROM 'hot/in'", {"kinesis": {"roleArn": ROLE, "streamName": "hot", "partitionKey": "p"}})))
    assert gw.call(gw.rules.rescan()).loaded == ["hot"]
    pub.wait_acked([pub.publish("hot/in", b"{}")])
    assert gw.drained()
    assert [json.loads(r) for r in read_stream(kinesis, "hot")] == [{"v": "v1"}, {"v": "v2"}]

    path.unlink()
    assert gw.call(gw.rules.rescan()).removed == ["hot"]
    pub.wait_acked([pub.publish("hot/in", b"{}")])
    pub.close()
    assert gw.drained()
    assert len(read_stream(kinesis, "hot")) == 2


def test_the_periodic_scan_picks_up_a_new_file(gw: GatewayThread) -> None:
    """The background reloader (every 0.2 s here) loads a rule nobody told the gateway about."""
    (gw.config.home / "rules").mkdir(exist_ok=True)
    (gw.config.home / "rules" / "late.json").write_text(json.dumps(rule_payload("SELECT * FROM 'late'", KINESIS)))
    loaded = gw.rules.reloader.wait_until(lambda: gw.rules.index.get("late") is not None)
    gw.call(asyncio.wait_for(loaded, 10), 15)
