"""Prometheus text at /metrics: every component's counters, from a live gateway."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import paho.mqtt.publish as publish

from gateway.admin.metrics import render
from tests.test_dispatch_support import running_gateway


def test_render_flattens_nested_counters_into_labels() -> None:
    text = render({"rules": lambda: {"matched": 5, "errors": {"a.json": "bad"},
                                     "rules": {"r1": {"matched": 3, "actions": {"kinesis:t": {"dispatched": 2}}}}},
                   "mqtt": lambda: {"clients_connected": 2, "mqtt_healthy": True}})
    assert text.splitlines() == [
        "edgeloop_rules_matched 5",
        'edgeloop_rules_matched{rule="r1"} 3',
        'edgeloop_rules_dispatched{rule="r1",action="kinesis:t"} 2',
        "edgeloop_mqtt_clients_connected 2",
        "edgeloop_mqtt_healthy 1",
    ]


def test_live_gateway_exposes_broker_and_sink_counters(tmp_path: Path) -> None:
    with running_gateway(tmp_path / "home") as gw:
        publish.single("things/m1/telemetry", b"{}", qos=1, hostname="127.0.0.1", port=gw.dev_port)
        endpoint = gw.endpoint
        gw.client("sqs").create_queue(QueueName="metrics-q")
        with urllib.request.urlopen(f"{endpoint}/metrics", timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            samples = dict(line.rsplit(" ", 1) for line in response.read().decode().splitlines())
        # A bucket called "metrics" is still S3's: signed requests never reach the exporter.
        s3 = gw.client("s3")
        s3.create_bucket(Bucket="metrics")
        assert s3.list_objects_v2(Bucket="metrics")["KeyCount"] == 0
    assert int(samples["edgeloop_mqtt_messages_received"]) >= 1
    assert int(samples["edgeloop_sqs_queues"]) == 1
    assert "edgeloop_rules_matched" in samples and "edgeloop_kinesis_records_in" in samples
    assert "edgeloop_s3_index_commits" in samples
