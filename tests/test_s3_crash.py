"""kill -9 during concurrent S3 puts and Firehose batches: everything acknowledged survives, nothing torn shows."""

from __future__ import annotations

import hashlib
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

pytestmark = [pytest.mark.interop, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


class DevServer:
    """The API in a subprocess (so it can be killed with SIGKILL)."""

    def __init__(self, home: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.awsapi.devserver", "--home", str(home), "--port", "0",
             "--services", "s3,firehose"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(30)
        if not ready or not ready[0].startswith("listening "):
            self.proc.kill()
            raise AssertionError(f"dev server did not start: {ready}")
        self.endpoint = f"http://127.0.0.1:{int(ready[0].split()[1])}"

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="test",
                            aws_secret_access_key="test",
                            config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=20,
                                              max_pool_connections=16))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def server_home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "crash-home"


def body_for(i: int) -> bytes:
    size = 200_000 + i if i % 5 == 0 else 1000 + i  # some bodies above the inline threshold, streamed to files
    return hashlib.sha256(str(i).encode()).digest() * (size // 32) + b"#" * (size % 32)


def test_kill_9_during_puts(server_home: Path) -> None:
    server = DevServer(server_home)
    acked: set[int] = set()
    fh_acked: list[bytes] = []
    try:
        s3, fh = server.client("s3"), server.client("firehose")
        s3.create_bucket(Bucket="crash")
        fh.create_delivery_stream(DeliveryStreamName="crash-fh", ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::000000000000:role/r", "BucketARN": "arn:aws:s3:::crash", "Prefix": "fh/",
            "BufferingHints": {"SizeInMBs": 128, "IntervalInSeconds": 900}})
        enough = threading.Event()
        lock = threading.Lock()

        def put(i: int) -> None:
            try:
                s3.put_object(Bucket="crash", Key=f"obj/{i:05d}", Body=body_for(i))
            except Exception:
                return
            with lock:
                acked.add(i)
                if len(acked) >= 120:
                    enough.set()

        def batches() -> None:
            for n in range(10_000):
                records = [f"rec-{n}-{j}\n".encode() for j in range(20)]
                try:
                    fh.put_record_batch(DeliveryStreamName="crash-fh", Records=[{"Data": r} for r in records])
                except Exception:
                    return
                with lock:
                    fh_acked.extend(records)

        with ThreadPoolExecutor(8) as pool:
            pool.submit(batches)
            futures = [pool.submit(put, i) for i in range(2000)]
            assert enough.wait(60), "puts did not progress"
            server.kill()
            for f in futures:
                f.cancel()
    finally:
        server.stop()

    server = DevServer(server_home)
    try:
        s3 = server.client("s3")
        listed = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="crash", Prefix="obj/")
                  for o in page.get("Contents", [])]
        for key in listed:  # nothing partial is ever visible
            assert s3.get_object(Bucket="crash", Key=key)["Body"].read() == body_for(int(key[4:]))
        missing = {f"obj/{i:05d}" for i in acked} - set(listed)
        assert not missing, f"acknowledged objects lost: {sorted(missing)[:5]}"
    finally:
        server.stop()  # a clean stop delivers the Firehose buffers recovered at start

    server = DevServer(server_home)
    try:
        s3 = server.client("s3")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="crash", Prefix="fh/").get("Contents", [])]
        delivered = b"".join(s3.get_object(Bucket="crash", Key=k)["Body"].read() for k in keys)
        lines = set(delivered.splitlines(keepends=True))
        lost = [r for r in fh_acked if r not in lines]
        assert fh_acked and not lost, f"{len(lost)} acknowledged Firehose records lost"
    finally:
        server.stop()
    assert os.path.isdir(server_home / "sinks" / "s3")
