"""kill -9 the API process during concurrent sends/receives/deletes; after restart nothing acknowledged is lost
and nothing received is handed out again inside its visibility window."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig

from edgeloop.config import load_config
from gateway.sinks.sqs.engine import SqsEngine
from gateway.storage.durable import GroupSync

pytestmark = pytest.mark.slow
PRODUCERS = CONSUMERS = 4


@contextmanager
def devserver(home: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen([sys.executable, "-m", "gateway.awsapi.devserver", "--home", str(home), "--port", "0",
                             "--services", "sqs"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the server prints "listening PORT" once ready (or exits)
        assert line.startswith("listening "), f"dev server did not start: {line!r}"
        yield proc, f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def client(endpoint: str) -> Any:
    return boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test",
                        config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))


class Ledger:
    """What the clients attempted and what the server acknowledged."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent_attempted: set[str] = set()
        self.sent_acked: set[str] = set()
        self.received: list[str] = []
        self.delete_attempted: set[str] = set()
        self.delete_acked: set[str] = set()
        self.enough = threading.Event()

    def note(self) -> None:
        if len(self.sent_acked) >= 300 and len(self.received) >= 80:
            self.enough.set()


def produce(endpoint: str, url: str, p: int, ledger: Ledger, stop: threading.Event) -> None:
    sqs = client(endpoint)
    n = 0
    while not stop.is_set():
        bodies = [f"p{p}-{n + i}" for i in range(10)]
        n += 10
        with ledger.lock:
            ledger.sent_attempted.update(bodies)
        try:
            result = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b}
                                                                   for i, b in enumerate(bodies)])
        except Exception:
            return
        with ledger.lock:
            ledger.sent_acked.update(bodies[int(s["Id"])] for s in result["Successful"])
            ledger.note()


def consume(endpoint: str, url: str, ledger: Ledger, stop: threading.Event) -> None:
    sqs = client(endpoint)
    batch = 0
    while not stop.is_set():
        try:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", [])
        except Exception:
            return
        with ledger.lock:
            ledger.received.extend(m["Body"] for m in messages)
            ledger.note()
        batch += 1
        if not messages or batch % 2:  # leave every other batch in flight
            continue
        with ledger.lock:
            ledger.delete_attempted.update(m["Body"] for m in messages)
        try:
            result = sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        except Exception:
            return
        with ledger.lock:
            ledger.delete_acked.update(messages[int(s["Id"])]["Body"] for s in result["Successful"])


def recovered_messages(home: Path) -> dict[str, Any]:
    """Open the queue's files with the engine in this process: body -> message (after the server is gone)."""
    async def read() -> dict[str, Any]:
        config = load_config(overrides={"data_dir": str(home)})
        sync = GroupSync("never")
        engine = SqsEngine(home, config, sync)
        await engine.start()
        try:
            messages = list(engine.queue("crash").messages.values())
            bodies = [m.body for m in messages]
            assert len(bodies) == len(set(bodies)), "a message is stored twice"
            return {m.body: m for m in messages}
        finally:
            await engine.stop()
    return asyncio.run(read())


def test_kill_9_loses_nothing_acknowledged_and_never_double_delivers(home: Path) -> None:
    ledger = Ledger()
    stop = threading.Event()
    with devserver(home) as (proc, endpoint):
        url = client(endpoint).create_queue(QueueName="crash", Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
        threads = [threading.Thread(target=produce, args=(endpoint, url, p, ledger, stop)) for p in range(PRODUCERS)]
        threads += [threading.Thread(target=consume, args=(endpoint, url, ledger, stop)) for _ in range(CONSUMERS)]
        for t in threads:
            t.start()
        assert ledger.enough.wait(60), "the clients made too little progress"
        os.kill(proc.pid, signal.SIGKILL)  # mid-flight: requests are being served right now
        proc.wait(10)
        stop.set()
        for t in threads:
            t.join(20)
    assert not any(t.is_alive() for t in threads)
    received = set(ledger.received)
    assert len(received) == len(ledger.received), "a message was delivered twice before the crash"

    with devserver(home) as (_, endpoint):
        sqs = client(endpoint)
        url = sqs.get_queue_url(QueueName="crash")["QueueUrl"]
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        visible: list[str] = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            visible.extend(m["Body"] for m in batch)
    assert len(visible) == len(set(visible))
    assert not set(visible) & received, "a message received before the crash was delivered again in its window"
    assert int(counts["ApproximateNumberOfMessages"]) == len(visible)

    stored = recovered_messages(home)
    in_flight = {body for body, m in stored.items() if m.receive_count and m.visible_at > time.time()}
    assert len(in_flight) == len(stored), "every stored message has been received once by now"
    assert int(counts["ApproximateNumberOfMessagesNotVisible"]) == len(stored) - len(visible)
    assert ledger.sent_acked - ledger.delete_attempted <= set(stored), "an acknowledged message was lost"
    assert set(stored) <= ledger.sent_attempted - ledger.delete_acked, "a deleted or unknown message came back"
    assert (received - ledger.delete_attempted) <= in_flight, "a received message is no longer in flight"
