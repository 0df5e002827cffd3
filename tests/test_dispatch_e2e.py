"""End to end: paho publishes over the dev listener, rules (created with boto3's iot client) route the
messages into the in-process sinks, boto3 reads them back."""

from __future__ import annotations

import base64
import json
import queue
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.test_dispatch_support import (
    ROLE,
    TIMEOUT,
    GatewayThread,
    Publisher,
    read_stream,
    rule_payload,
    running_gateway,
)


@pytest.fixture
def gw(home: Path) -> Any:
    with running_gateway(home) as handle:
        yield handle


def test_messages_reach_kinesis_sqs_s3_and_firehose(gw: GatewayThread) -> None:
    kinesis, sqs, s3, firehose, iot = (gw.client(s) for s in ("kinesis", "sqs", "s3", "firehose", "iot"))
    kinesis.create_stream(StreamName="telemetry", ShardCount=2)
    queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    s3.create_bucket(Bucket="archive")
    firehose.create_delivery_stream(
        DeliveryStreamName="batches",
        ExtendedS3DestinationConfiguration={"BucketARN": "arn:aws:s3:::archive", "RoleARN": ROLE, "Prefix": "fh/",
                                            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60}})
    iot.create_topic_rule(ruleName="to_kinesis", topicRulePayload=rule_payload(
        "SELECT temp, topic(2) AS device FROM 'sensors/+/telemetry'",
        {"kinesis": {"roleArn": ROLE, "streamName": "telemetry", "partitionKey": "${topic(2)}"}}))
    iot.create_topic_rule(ruleName="alerts", topicRulePayload=rule_payload(
        "SELECT temp, clientid() AS who FROM 'sensors/+/telemetry' WHERE temp > 30",
        {"sqs": {"roleArn": ROLE, "queueUrl": queue_url}}))
    iot.create_topic_rule(ruleName="archive", topicRulePayload=rule_payload(
        "SELECT * FROM 'sensors/+/telemetry'",
        {"s3": {"roleArn": ROLE, "bucketName": "archive", "key": "${topic(2)}/${temp}.json"}},
        {"firehose": {"roleArn": ROLE, "deliveryStreamName": "batches", "separator": "\n"}}))

    pub = Publisher(gw.dev_port, "sensor-7")
    mids = [pub.publish(f"sensors/s{i % 2}/telemetry", json.dumps({"temp": 20 + i * 3})) for i in range(6)]
    pub.wait_acked(mids)
    pub.close()
    assert gw.drained()

    records = [json.loads(r) for r in read_stream(kinesis, "telemetry")]
    assert sorted(r["temp"] for r in records) == [20, 23, 26, 29, 32, 35]
    assert {r["device"] for r in records} == {"s0", "s1"}

    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    assert sorted(json.loads(m["Body"])["temp"] for m in got) == [32, 35]
    assert {json.loads(m["Body"])["who"] for m in got} == {"sensor-7"}

    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="archive", Prefix="s")["Contents"])
    assert keys == ["s0/20.json", "s0/26.json", "s0/32.json", "s1/23.json", "s1/29.json", "s1/35.json"]
    assert json.loads(s3.get_object(Bucket="archive", Key="s1/35.json")["Body"].read()) == {"temp": 35}

    engine = gw.gateway.services["firehose"].engine
    gw.call(engine.flush("batches"))
    objects = s3.list_objects_v2(Bucket="archive", Prefix="fh/")["Contents"]
    lines = b"".join(s3.get_object(Bucket="archive", Key=o["Key"])["Body"].read() for o in objects).splitlines()
    assert sorted(json.loads(line)["temp"] for line in lines) == [20, 23, 26, 29, 32, 35]

    metrics = gw.rules.metrics()
    assert metrics["rules"]["to_kinesis"]["actions"]["kinesis#0"]["dispatched"] == 6
    assert metrics["rules"]["alerts"]["filtered"] == 4
    assert metrics["failed"] == 0 and metrics["matched"] == 18


def test_failed_action_goes_to_the_error_action_with_awss_document(gw: GatewayThread) -> None:
    sqs, iot = gw.client("sqs"), gw.client("iot")
    errors_url = sqs.create_queue(QueueName="rule-errors")["QueueUrl"]
    iot.create_topic_rule(ruleName="broken", topicRulePayload=rule_payload(
        "SELECT * FROM 'plant/#'",
        {"kinesis": {"roleArn": ROLE, "streamName": "no-such-stream", "partitionKey": "k"}},
        error_action={"sqs": {"roleArn": ROLE, "queueUrl": errors_url}}))
    pub = Publisher(gw.dev_port, "press-1")
    pub.wait_acked([pub.publish("plant/press", b'{"bar": 7}')])
    pub.close()
    assert gw.drained()
    (msg,) = sqs.receive_message(QueueUrl=errors_url, WaitTimeSeconds=1)["Messages"]
    doc = json.loads(msg["Body"])
    assert doc["ruleName"] == "broken" and doc["topic"] == "plant/press" and doc["clientId"] == "press-1"
    assert base64.b64decode(doc["base64OriginalPayload"]) == b'{"bar": 7}'
    (failure,) = doc["failures"]
    assert failure["failedAction"] == "KinesisAction" and failure["failedResource"] == "no-such-stream"
    assert "ResourceNotFoundException" in failure["errorMessage"]
    metrics = gw.rules.metrics()["rules"]["broken"]
    assert metrics["error_actions"] == 1 and metrics["actions"]["kinesis#0"]["failed"] == 1
    assert metrics["actions"]["kinesis#0"]["retried"] == 0  # not found is not worth a retry


def test_failure_without_error_action_is_dead_lettered(gw: GatewayThread) -> None:
    gw.client("iot").create_topic_rule(ruleName="lost", topicRulePayload=rule_payload(
        "SELECT * FROM 'x/y'", {"sqs": {"roleArn": ROLE, "queueUrl": "http://127.0.0.1/000000000000/nope"}}))
    pub = Publisher(gw.dev_port, "c1")
    pub.wait_acked([pub.publish("x/y", b"{}")])
    pub.close()
    assert gw.drained()
    lines = (gw.config.home / "journal" / "dead-letter.jsonl").read_text().splitlines()
    (entry,) = [json.loads(line) for line in lines]
    assert entry["ruleName"] == "lost" and entry["reason"] == "the rule has no errorAction"
    assert entry["failures"][0]["failedAction"] == "SqsAction"
    assert gw.rules.metrics()["dead_lettered"] == 1


def test_republish_with_user_properties_and_qos0_dispatch(gw: GatewayThread) -> None:
    gw.client("iot").create_topic_rule(ruleName="relay", topicRulePayload=rule_payload(
        "SELECT temp * 2 AS doubled FROM 'in/+'",
        {"republish": {"roleArn": ROLE, "topic": "out/${topic(2)}", "qos": 1,
                       "headers": {"contentType": "application/json",
                                   "userProperties": [{"key": "from", "value": "${clientid()}"}]}}}))
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watcher", protocol=mqtt.MQTTv5)
    sub.on_connect = lambda c, *a: c.subscribe("out/#", qos=1)
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_message = lambda _c, _u, m: received.put(m)
    sub.connect("127.0.0.1", gw.dev_port)
    sub.loop_start()
    try:
        assert subscribed.wait(TIMEOUT)
        pub = Publisher(gw.dev_port, "dev-9", v5=True)
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("site", "a")]
        pub.publish("in/dev-9", b'{"temp": 21}', qos=0, properties=props)
        msg = received.get(timeout=TIMEOUT)
        pub.close()
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert msg.topic == "out/dev-9" and json.loads(msg.payload) == {"doubled": 42}
    assert msg.properties.ContentType == "application/json"
    assert ("from", "dev-9") in msg.properties.UserProperty
    metrics = gw.rules.metrics()
    assert metrics["qos0_dispatched"] == 1 and metrics["journaled"] == 0
