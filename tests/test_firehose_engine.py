"""Firehose internals: object keys, the durable buffer's framing, and Kinesis streams as a source."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeloop.config import load_config
from gateway.sinks.firehose import keys
from gateway.sinks.firehose.buffer import decode, encode
from gateway.sinks.firehose.engine import FirehoseEngine
from gateway.sinks.s3.engine import S3Engine
from gateway.storage.durable import GroupSync

WHEN = dt.datetime(2026, 11, 22, 13, 39, 28, 123000, tzinfo=dt.UTC)


def test_object_key_layout() -> None:
    key = keys.object_key("fh/", "to-s3", 1, WHEN.timestamp())
    assert re.fullmatch(r"fh/2026/11/22/13/to-s3-1-2026-11-22-13-39-28-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}",
                        key), key
    assert keys.object_key("", "s", 3, WHEN.timestamp(), ".gz").startswith("2026/11/22/13/s-3-")
    assert keys.object_key("", "s", 3, WHEN.timestamp(), ".gz").endswith(".gz")


def test_custom_prefix_expressions() -> None:
    assert keys.evaluate_prefix("dt=!{timestamp:yyyy'-'MM'-'dd}/h=!{timestamp:HH}/", WHEN) == "dt=2026-11-22/h=13/"
    assert keys.evaluate_prefix("err/!{firehose:error-output-type}/", WHEN, "processing-failed") == \
        "err/processing-failed/"
    assert re.fullmatch(r"r/[0-9a-f]{10}/", keys.evaluate_prefix("r/!{firehose:random-string}/", WHEN))
    assert keys.java_time_format("yyyy/MM/dd HH:mm:ss.SSS", WHEN) == "2026/11/22 13:39:28.123"


@given(st.lists(st.binary(max_size=200), max_size=20), st.integers(0, 30))
def test_buffer_frames_roundtrip_and_torn_tail(records: list[bytes], cut: int) -> None:
    blob = encode(records, 1700000000.5)
    assert decode(blob) == (records, 1700000000.5 if records else 0.0)
    torn, _ = decode(blob[:max(len(blob) - cut, 0)])
    assert torn == records[:len(torn)]
    if cut and records:
        assert len(torn) < len(records)


def test_kinesis_stream_as_source(home: Path) -> None:
    kinesis_engine = pytest.importorskip("gateway.sinks.kinesis.engine")

    async def run() -> bytes:
        config = load_config(overrides={"data_dir": str(home), "durability.fsync": "never"})
        sync = GroupSync("never")
        kinesis = kinesis_engine.KinesisEngine(home, config, sync)
        s3 = S3Engine(home, config, sync)
        firehose = FirehoseEngine(home, config, sync, s3, kinesis)
        for engine in (kinesis, s3, firehose):
            await engine.start()
        try:
            await s3.create_bucket("from-kinesis")
            await kinesis.create_stream("telemetry", 2)
            for i in range(10):
                await kinesis.put_record("telemetry", f"r{i}\n".encode(), f"pk{i}")
            await firehose.create_delivery_stream({
                "DeliveryStreamName": "k2s3", "DeliveryStreamType": "KinesisStreamAsSource",
                "KinesisStreamSourceConfiguration": {
                    "KinesisStreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/telemetry",
                    "RoleARN": "arn:aws:iam::000000000000:role/r"},
                "ExtendedS3DestinationConfiguration": {
                    "RoleARN": "arn:aws:iam::000000000000:role/r", "BucketARN": "arn:aws:s3:::from-kinesis",
                    "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0}}})
            with pytest.raises(Exception, match="not permitted"):
                await firehose.put_record("k2s3", b"direct")
            async with asyncio.timeout(15):
                while firehose.delivered_records < 10:
                    await firehose.wait_delivered(firehose.delivered_objects + 1, timeout=15)
            listing = await s3.list_objects("from-kinesis")
            return b"".join([await s3.read_object("from-kinesis", v.key) for v in listing.entries])
        finally:
            for engine in (firehose, s3, kinesis):
                await engine.stop()

    delivered = asyncio.run(run())
    assert sorted(delivered.splitlines()) == sorted(f"r{i}".encode() for i in range(10))
