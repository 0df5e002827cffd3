"""Delivery behaviour: retries on real throttling, per-rule order, poison messages, remote endpoints,
journal replay after a clean restart."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.dispatcher.store import RuleFiles
from tests.mqtt_helpers import Client
from tests.test_dispatch_support import ROLE, Publisher, read_stream, rule_payload, running_gateway


def test_throttled_puts_are_retried_until_delivered(home: Path) -> None:
    """Kinesis with AWS's per-shard limits on (50 records/s here): the burst is throttled, retried, delivered."""
    with running_gateway(home, **{"kinesis.enforce_limits": True, "kinesis.write_records_per_sec": 50,
                                  "rules.backoff_max_ms": 400, "rules.max_attempts": 30}) as gw:
        gw.client("kinesis").create_stream(StreamName="slow", ShardCount=1)
        gw.client("iot").create_topic_rule(ruleName="burst", topicRulePayload=rule_payload(
            "SELECT n FROM 'burst/#'", {"kinesis": {"roleArn": ROLE, "streamName": "slow", "partitionKey": "k"}}))
        pub = Publisher(gw.dev_port, "burster")
        pub.wait_acked([pub.publish("burst/a", json.dumps({"n": i})) for i in range(150)])
        pub.close()
        assert gw.drained(30)
        got = [json.loads(r)["n"] for r in read_stream(gw.client("kinesis"), "slow")]
        metrics = gw.rules.metrics()["rules"]["burst"]["actions"]["kinesis#0"]
    assert sorted(got) == list(range(150))
    assert metrics["retried"] > 0 and metrics["failed"] == 0 and metrics["dispatched"] == 150


def test_poison_messages_do_not_block_the_others_and_order_holds(home: Path) -> None:
    with running_gateway(home) as gw:
        gw.client("kinesis").create_stream(StreamName="ordered", ShardCount=1)
        gw.client("iot").create_topic_rule(ruleName="keyed", topicRulePayload=rule_payload(
            "SELECT n FROM 'o/+'", {"kinesis": {"roleArn": ROLE, "streamName": "ordered", "partitionKey": "${k}"}}))
        pub = Publisher(gw.dev_port, "orderly")
        mids = []
        for i in range(200):  # every 10th message has no `k`: its partition key renders empty -> errorAction
            body = {"n": i} if i % 10 == 0 else {"n": i, "k": "key"}
            mids.append(pub.publish("o/x", json.dumps(body)))
        pub.wait_acked(mids)
        pub.close()
        assert gw.drained()
        got = [json.loads(r)["n"] for r in read_stream(gw.client("kinesis"), "ordered")]
        metrics = gw.rules.metrics()
    assert got == [i for i in range(200) if i % 10 != 0]  # journal order, poison messages skipped
    assert metrics["dead_lettered"] == 20 and metrics["rules"]["keyed"]["actions"]["kinesis#0"]["failed"] == 20


def test_actions_with_endpoint_url_go_over_signed_http(home: Path) -> None:
    """endpointUrl pointing at this gateway's own AWS API: every kind travels the remote path (SigV4, aiohttp),
    republish as the iot-data Publish call."""
    with running_gateway(home) as gw:
        kinesis, sqs, s3, firehose = (gw.client(s) for s in ("kinesis", "sqs", "s3", "firehose"))
        kinesis.create_stream(StreamName="far", ShardCount=1)
        url = sqs.create_queue(QueueName="far")["QueueUrl"]
        s3.create_bucket(Bucket="far")
        firehose.create_delivery_stream(DeliveryStreamName="far", ExtendedS3DestinationConfiguration={
            "BucketARN": "arn:aws:s3:::far", "RoleARN": ROLE, "Prefix": "fh/"})
        remote = gw.endpoint
        RuleFiles.for_home(gw.config.home).create("remote", rule_payload(
            "SELECT * FROM 'r/+'",
            {"kinesis": {"roleArn": ROLE, "streamName": "far", "partitionKey": "p", "endpointUrl": remote}},
            {"sqs": {"roleArn": ROLE, "queueUrl": url, "endpointUrl": remote}},
            {"s3": {"roleArn": ROLE, "bucketName": "far", "key": "obj/${topic(2)} x.json", "endpointUrl": remote}},
            {"firehose": {"roleArn": ROLE, "deliveryStreamName": "far", "endpointUrl": remote}},
            {"republish": {"roleArn": ROLE, "topic": "back/${topic(2)}", "qos": 1, "endpointUrl": remote}}))
        gw.call(gw.rules.rescan())
        watcher = Client(gw.dev_port, "watcher")
        watcher.subscribe("back/#", qos=1)
        pub = Publisher(gw.dev_port, "far-away")
        pub.wait_acked([pub.publish(f"r/{i}", json.dumps({"i": i})) for i in range(3)])
        pub.close()
        assert gw.drained()
        assert sorted(json.loads(r)["i"] for r in read_stream(kinesis, "far")) == [0, 1, 2]
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
        assert sorted(json.loads(m["Body"])["i"] for m in msgs) == [0, 1, 2]
        assert json.loads(s3.get_object(Bucket="far", Key="obj/2 x.json")["Body"].read()) == {"i": 2}
        gw.call(gw.gateway.services["firehose"].engine.flush("far"))
        objects = s3.list_objects_v2(Bucket="far", Prefix="fh/")["Contents"]
        assert b"".join(s3.get_object(Bucket="far", Key=o["Key"])["Body"].read() for o in objects).count(b'"i"') == 3
        republished = sorted((m.topic, json.loads(m.payload)["i"]) for m in (watcher.get() for _ in range(3)))
        watcher.close()
        assert republished == [("back/0", 0), ("back/1", 1), ("back/2", 2)]  # through iot-data Publish (SigV4)
        assert gw.rules.metrics()["failed"] == 0


def test_undispatched_journal_records_are_replayed_after_restart(home: Path) -> None:
    """Kinesis throttles hard (2 records/s); the gateway stops long before the backlog is through; the
    next start (limits off) replays the journal and delivers the rest."""
    payload = rule_payload("SELECT * FROM 'later/#'",
                           {"kinesis": {"roleArn": ROLE, "streamName": "later", "partitionKey": "p"}})
    slow = {"kinesis.enforce_limits": True, "kinesis.write_records_per_sec": 2, "rules.max_attempts": 1000,
            "rules.backoff_max_ms": 100, "rules.drain_timeout_secs": 0.2}
    with running_gateway(home, **slow) as gw:
        gw.client("kinesis").create_stream(StreamName="later", ShardCount=1)
        gw.client("iot").create_topic_rule(ruleName="later", topicRulePayload=payload)
        pub = Publisher(gw.dev_port, "patient")
        pub.wait_acked([pub.publish("later/x", json.dumps({"n": i})) for i in range(40)])
        pub.close()
        assert not gw.drained(0.3)
    with running_gateway(home) as gw:
        assert gw.drained()
        assert 0 < gw.rules.metrics()["journal_recovered"] <= 40
        got = [json.loads(r)["n"] for r in read_stream(gw.client("kinesis"), "later")]
    assert set(got) == set(range(40))


def test_qos0_matches_beyond_a_full_lane_are_dropped_and_counted(home: Path) -> None:
    """A rule far behind (Kinesis at 10 records/s, lane bound 5): QoS 0 matches past the bound are dropped."""
    slow = {"kinesis.enforce_limits": True, "kinesis.write_records_per_sec": 10, "rules.batch_size": 1,
            "rules.max_pending_per_rule": 5, "rules.max_attempts": 1000, "rules.backoff_max_ms": 100,
            "rules.drain_timeout_secs": 0.1}
    with running_gateway(home, **slow) as gw:
        gw.client("kinesis").create_stream(StreamName="tiny", ShardCount=1)
        gw.client("iot").create_topic_rule(ruleName="tiny", topicRulePayload=rule_payload(
            "SELECT * FROM 'q0/#'", {"kinesis": {"roleArn": ROLE, "streamName": "tiny", "partitionKey": "p"}}))
        pub = Publisher(gw.dev_port, "firehose-of-qos0")
        pub.publish("q0/x", b"{}", qos=0)
        for _ in range(40):
            pub.publish("q0/x", b"{}", qos=0)
        pub.wait_acked([pub.publish("q0/x", b"{}", qos=1)])  # in order after every QoS 0 publish
        pub.close()
        metrics = gw.rules.metrics()
    assert metrics["qos0_dispatched"] + metrics["qos0_dropped"] == 41
    assert metrics["qos0_dropped"] >= 20 and metrics["rules"]["tiny"]["qos0_dropped"] == metrics["qos0_dropped"]
