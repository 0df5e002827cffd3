"""The guarantee: every PUBACKed, routed QoS 1 message reaches its sink at least once across `kill -9`.

`edgeloop gateway run` runs as a subprocess with a rule to Kinesis; paho publishes QoS 1 messages and
records which were acknowledged; the gateway is killed with SIGKILL mid-stream and restarted; boto3
then reads the stream and every acknowledged message must be there (duplicates allowed and counted).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig

from gateway.dispatcher.store import RuleFiles
from tests.test_dispatch_support import ROLE, Publisher, read_stream, rule_payload, wait_for

EDGELOOP = [sys.executable, "-m", "edgeloop.cli"]
TOTAL = 3000
KILL_AFTER_ACKS = 600


@contextmanager
def gateway_process(home: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """Start `edgeloop gateway run` and parse the dev MQTT port and API URL it prints."""
    proc = subprocess.Popen(
        [*EDGELOOP, "--home", str(home), "gateway", "run", "--dev", "--mqtt-port", "0", "--https-port", "0",
         "--dev-port", "0", "--api-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        found: dict[str, Any] = {}
        ready = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if m := re.match(r"\s*dev\s+127\.0\.0\.1:(\d+)", line):
                    found["dev"] = int(m.group(1))
                if m := re.match(r"\s*aws api\s+(\S+)", line):
                    found["api"] = m.group(1)
                if line.strip() == "gateway ready":
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        assert ready.wait(60), "the gateway did not start"
        yield proc, found
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def kinesis_client(url: str) -> Any:
    return boto3.client("kinesis", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test",
                        config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))


@pytest.mark.parametrize("journal_fsync", ["always", "never"])
def test_kill_9_mid_stream_loses_no_acknowledged_message(home: Path, journal_fsync: str) -> None:
    """"never" takes the fast path (acknowledged once the record is in the kernel, no fsync): it must
    survive a process crash too (a power loss is what it gives up)."""
    (home / "edgeloop.toml").write_text(f'[rules]\njournal_fsync = "{journal_fsync}"\n')
    RuleFiles.for_home(home).create("to_kinesis", rule_payload(
        "SELECT * FROM 'fleet/+/data'",
        {"kinesis": {"roleArn": ROLE, "streamName": "crash", "partitionKey": "${topic(2)}"}}))

    with gateway_process(home) as (proc, ports):
        kinesis_client(ports["api"]).create_stream(StreamName="crash", ShardCount=2)
        pub = Publisher(ports["dev"], "crash-publisher")
        mids = {pub.publish(f"fleet/d{i % 4}/data", json.dumps({"n": i})): i for i in range(TOTAL)}
        with pub._cond:
            assert pub._cond.wait_for(lambda: len(pub.acked) >= KILL_AFTER_ACKS, 60)
            os.kill(proc.pid, signal.SIGKILL)  # mid-stream: acknowledgements are still arriving
        proc.wait(30)
        pub.client.loop_stop()
        acked = {mids[m] for m in pub.acked if m in mids}
    assert KILL_AFTER_ACKS <= len(acked) < TOTAL, "the kill must land mid-stream"

    with gateway_process(home) as (_proc, ports):
        kinesis = kinesis_client(ports["api"])

        def delivered() -> Counter[int] | None:
            seen = Counter(json.loads(r)["n"] for r in read_stream(kinesis, "crash"))
            return seen if acked <= set(seen) else None

        seen = wait_for(delivered, 60, "every acknowledged message in Kinesis")
    missing = acked - set(seen)
    duplicates = sum(c - 1 for c in seen.values())
    assert not missing
    print(f"acked={len(acked)} delivered={len(seen)} duplicates={duplicates}")
