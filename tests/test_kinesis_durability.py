"""Durability: kill -9 during concurrent writes loses no acknowledged record; concurrent writers never
share or skip sequence numbers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig

from gateway.sinks.kinesis import keys
from tests.awsapi_helpers import boto3_client, running_api
from tests.kinesis_helpers import kinesis_services

WRITERS = 6


class DevServer:
    """The API in a subprocess, so that it can be killed with SIGKILL."""

    def __init__(self, home: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.awsapi.devserver", "--home", str(home), "--port", "0",
             "--services", "kinesis"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parents[1])
        assert self.proc.stdout is not None
        line = _readline_with_timeout(self.proc, 30)
        assert line.startswith("listening "), line
        self.endpoint = f"http://127.0.0.1:{int(line.split()[1])}"

    def client(self) -> Any:
        return boto3.client("kinesis", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test",
                            config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=20,
                                              max_pool_connections=WRITERS * 2))

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _readline_with_timeout(proc: subprocess.Popen[str], timeout: float) -> str:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    if not lines:
        proc.kill()
        raise AssertionError(f"dev server did not start: {proc.stderr.read() if proc.stderr else ''}")
    return lines[0].strip()


@pytest.fixture
def devserver(home: Path) -> Iterator[list[DevServer]]:
    servers: list[DevServer] = []
    yield servers
    for server in servers:
        server.stop()


def read_everything(client: Any, stream: str) -> list[tuple[str, str, bytes]]:
    """(shard, sequence number, data) of every record in the stream, via GetRecords."""
    out: list[tuple[str, str, bytes]] = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        iterator = client.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                             ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=10000)
            out += [(shard["ShardId"], r["SequenceNumber"], r["Data"]) for r in page["Records"]]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return out


@pytest.mark.slow
def test_kill_9_during_concurrent_writes_loses_no_acknowledged_record(home: Path,
                                                                      devserver: list[DevServer]) -> None:
    server = DevServer(home)
    devserver.append(server)
    server.client().create_stream(StreamName="crash", ShardCount=2)
    acked: dict[bytes, tuple[str, str]] = {}
    attempted: set[bytes] = set()
    lock = threading.Lock()
    enough = threading.Event()

    def writer(w: int) -> None:
        client = server.client()
        for batch in range(10_000):
            records = [{"Data": f"w{w}-b{batch}-r{i}".encode(), "PartitionKey": f"k{w}-{i}"} for i in range(50)]
            with lock:
                attempted.update(r["Data"] for r in records)
            try:
                result = client.put_records(StreamName="crash", Records=records)
            except Exception:
                return  # the server is gone
            with lock:
                for record, entry in zip(records, result["Records"], strict=True):
                    acked[record["Data"]] = (entry["ShardId"], entry["SequenceNumber"])
                if len(acked) >= 3000:
                    enough.set()

    with ThreadPoolExecutor(WRITERS) as pool:
        futures = [pool.submit(writer, w) for w in range(WRITERS)]
        assert enough.wait(60), "writers did not make progress"
        server.kill()
        for future in futures:
            future.result(timeout=30)

    restarted = DevServer(home)
    devserver.append(restarted)
    client = restarted.client()
    stored = read_everything(client, "crash")
    by_data = {data: (shard, seq) for shard, seq, data in stored}
    assert len(by_data) == len(stored), "a record was stored twice"
    assert len({seq for _, seq, _ in stored}) == len(stored), "a sequence number was used twice"
    missing = [d for d in acked if d not in by_data]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:3]}"
    assert all(by_data[d] == where for d, where in acked.items()), "a record moved or changed sequence number"
    assert set(by_data) <= attempted
    after = client.put_record(StreamName="crash", Data=b"after-restart", PartitionKey="k0-0")
    same_shard = [int(seq) for shard, seq, _ in stored if shard == after["ShardId"]]
    assert int(after["SequenceNumber"]) > max(same_shard)


def test_concurrent_writers_get_unique_dense_sequence_numbers(home: Path) -> None:
    with running_api(home, kinesis_services) as api:
        boto3_client(api, "kinesis").create_stream(StreamName="conc", ShardCount=3)

        def writer(w: int) -> list[tuple[bytes, str, str]]:
            client = boto3_client(api, "kinesis")
            out = []
            for batch in range(8):
                records = [{"Data": f"{w}-{batch}-{i}".encode(), "PartitionKey": f"p{i % 7}"} for i in range(100)]
                result = client.put_records(StreamName="conc", Records=records)
                assert result["FailedRecordCount"] == 0
                out += [(r["Data"], e["ShardId"], e["SequenceNumber"])
                        for r, e in zip(records, result["Records"], strict=True)]
                single = client.put_record(StreamName="conc", Data=f"{w}-{batch}-single".encode(), PartitionKey="s")
                out.append((f"{w}-{batch}-single".encode(), single["ShardId"], single["SequenceNumber"]))
            return out

        with ThreadPoolExecutor(WRITERS) as pool:
            results = [item for part in pool.map(writer, range(WRITERS)) for item in part]
        assert len(results) == WRITERS * 8 * 101
        assert len({seq for _, _, seq in results}) == len(results)
        stored = read_everything(boto3_client(api, "kinesis"), "conc")
        assert sorted((d, s, q) for s, q, d in stored) == sorted(results)
        engine = api.services[0].engine
        for shard in engine.streams["conc"].shards:  # counters are dense: nothing skipped, nothing reused
            counters = sorted(keys.decode_sequence(seq)[1] for shard_id, seq, _ in stored  # type: ignore[index]
                              if shard_id == shard.shard_id)
            assert counters and counters == list(range(1, len(counters) + 1))
