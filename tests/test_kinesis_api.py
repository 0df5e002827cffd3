"""Unmodified boto3 and the aws CLI against the running API: every Kinesis operation and its errors."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.awsapi_helpers import ApiHandle, boto3_client, running_api
from tests.kinesis_helpers import kinesis_services

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHandle]:
    with running_api(tmp_path_factory.mktemp("kinesis-api"), kinesis_services) as handle:
        yield handle


@pytest.fixture(scope="module")
def kinesis(api: ApiHandle) -> Any:
    return boto3_client(api, "kinesis")


@pytest.fixture
def stream(kinesis: Any, request: pytest.FixtureRequest) -> str:
    name = request.node.name.replace("[", "-").replace("]", "")[:100]
    kinesis.create_stream(StreamName=name, ShardCount=2)
    return name


def _code(excinfo: pytest.ExceptionInfo[Any]) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_stream_lifecycle_and_waiters(kinesis: Any) -> None:
    kinesis.create_stream(StreamName="life", ShardCount=3, StreamModeDetails={"StreamMode": "PROVISIONED"})
    started = time.monotonic()
    kinesis.get_waiter("stream_exists").wait(StreamName="life", WaiterConfig={"Delay": 1, "MaxAttempts": 3})
    assert time.monotonic() - started < 2
    description = kinesis.describe_stream(StreamName="life")["StreamDescription"]
    assert description["StreamStatus"] == "ACTIVE" and len(description["Shards"]) == 3
    assert description["StreamARN"] == "arn:aws:kinesis:us-east-1:000000000000:stream/life"
    summary = kinesis.describe_stream_summary(StreamARN=description["StreamARN"])["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 3 and summary["RetentionPeriodHours"] == 24
    names = [n for page in kinesis.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 1})
             for n in page["StreamNames"]]
    assert "life" in names and names == sorted(names)
    assert kinesis.describe_limits()["OpenShardCount"] >= 3
    kinesis.delete_stream(StreamName="life")
    kinesis.get_waiter("stream_not_exists").wait(StreamName="life", WaiterConfig={"Delay": 1, "MaxAttempts": 3})
    kinesis.create_stream(StreamName="od", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    summary = kinesis.describe_stream_summary(StreamName="od")["StreamDescriptionSummary"]
    assert summary["StreamModeDetails"]["StreamMode"] == "ON_DEMAND"


def test_put_and_read_all_iterator_types(kinesis: Any, stream: str) -> None:
    single = kinesis.put_record(StreamName=stream, Data=b"hello", PartitionKey="pk1")
    assert single["ShardId"] == "shardId-000000000001" and len(single["SequenceNumber"]) == 56
    batch = kinesis.put_records(StreamName=stream, Records=[
        {"Data": f"r{i}".encode(), "PartitionKey": "pk1"} for i in range(5)])
    assert batch["FailedRecordCount"] == 0
    seqs = [single["SequenceNumber"]] + [r["SequenceNumber"] for r in batch["Records"]]
    assert [int(s) for s in seqs] == sorted(int(s) for s in seqs)
    shard = single["ShardId"]

    def read(kind: str, **kw: Any) -> list[bytes]:
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType=kind, **kw)
        return [r["Data"] for r in kinesis.get_records(ShardIterator=it["ShardIterator"])["Records"]]

    assert read("TRIM_HORIZON") == [b"hello", b"r0", b"r1", b"r2", b"r3", b"r4"]
    assert read("AT_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[2]) == [b"r1", b"r2", b"r3", b"r4"]
    assert read("AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[4]) == [b"r4"]
    assert read("LATEST") == []
    assert read("AT_TIMESTAMP", Timestamp=time.time() - 60)[0] == b"hello"
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    page = kinesis.get_records(ShardIterator=it["ShardIterator"], Limit=2)
    assert [r["Data"] for r in page["Records"]] == [b"hello", b"r0"]
    record = page["Records"][0]
    assert record["PartitionKey"] == "pk1" and abs(record["ApproximateArrivalTimestamp"].timestamp() - time.time()) < 60
    rest = kinesis.get_records(ShardIterator=page["NextShardIterator"])
    assert len(rest["Records"]) == 4 and rest["MillisBehindLatest"] == 0
    explicit = kinesis.put_record(StreamName=stream, Data=b"e", PartitionKey="pk1", ExplicitHashKey="1")
    assert explicit["ShardId"] == "shardId-000000000000"


def test_list_shards_paginator_resends_stream_name(kinesis: Any) -> None:
    kinesis.create_stream(StreamName="many", ShardCount=5)
    pages = list(kinesis.get_paginator("list_shards").paginate(StreamName="many", PaginationConfig={"PageSize": 2}))
    assert [len(p["Shards"]) for p in pages] == [2, 2, 1]
    filtered = kinesis.list_shards(StreamName="many", ShardFilter={"Type": "AFTER_SHARD_ID",
                                                                   "ShardId": "shardId-000000000003"})
    assert [s["ShardId"] for s in filtered["Shards"]] == ["shardId-000000000004"]
    stamped = kinesis.list_shards(StreamName="many", ShardFilter={"Type": "AT_TIMESTAMP", "Timestamp": time.time()})
    assert len(stamped["Shards"]) == 5


def test_resharding_and_closed_shards(kinesis: Any, stream: str) -> None:
    kinesis.put_record(StreamName=stream, Data=b"old", PartitionKey="x", ExplicitHashKey="7")
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId="shardId-000000000000",
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    kinesis.split_shard(StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**126))
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    assert "EndingSequenceNumber" in shards[0]["SequenceNumberRange"]
    assert {s.get("ParentShardId") for s in shards[2:]} == {"shardId-000000000000"}
    page = kinesis.get_records(ShardIterator=it)
    assert [r["Data"] for r in page["Records"]] == [b"old"]
    assert page.get("NextShardIterator") is None and len(page["ChildShards"]) == 2
    kinesis.merge_shards(StreamName=stream, ShardToMerge="shardId-000000000002",
                         AdjacentShardToMerge="shardId-000000000003")
    result = kinesis.update_shard_count(StreamName=stream, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    assert (result["CurrentShardCount"], result["TargetShardCount"]) == (2, 4)
    open_shards = kinesis.list_shards(StreamName=stream, ShardFilter={"Type": "AT_LATEST"})["Shards"]
    assert len(open_shards) == 4


def test_retention_and_tags(kinesis: Any, stream: str) -> None:
    kinesis.increase_stream_retention_period(StreamName=stream, RetentionPeriodHours=72)
    kinesis.decrease_stream_retention_period(StreamName=stream, RetentionPeriodHours=48)
    assert kinesis.describe_stream(StreamName=stream)["StreamDescription"]["RetentionPeriodHours"] == 48
    with pytest.raises(kinesis.exceptions.InvalidArgumentException):
        kinesis.decrease_stream_retention_period(StreamName=stream, RetentionPeriodHours=12)
    kinesis.add_tags_to_stream(StreamName=stream, Tags={"team": "edge", "env": "dev"})
    kinesis.remove_tags_from_stream(StreamName=stream, TagKeys=["env"])
    assert kinesis.list_tags_for_stream(StreamName=stream)["Tags"] == [{"Key": "team", "Value": "edge"}]


def test_consumers_and_subscribe_to_shard(kinesis: Any, stream: str) -> None:
    arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="fanout")["Consumer"]
    assert consumer["ConsumerStatus"] == "ACTIVE" and consumer["ConsumerARN"].startswith(f"{arn}/consumer/fanout:")
    described = kinesis.describe_stream_consumer(ConsumerARN=consumer["ConsumerARN"])["ConsumerDescription"]
    assert described["StreamARN"] == arn
    assert [c["ConsumerName"] for c in kinesis.list_stream_consumers(StreamARN=arn)["Consumers"]] == ["fanout"]
    with pytest.raises(kinesis.exceptions.ResourceInUseException):
        kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="fanout")
    first = kinesis.put_record(StreamName=stream, Data=b"before", PartitionKey="pk1")
    stream_events = kinesis.subscribe_to_shard(ConsumerARN=consumer["ConsumerARN"], ShardId=first["ShardId"],
                                               StartingPosition={"Type": "TRIM_HORIZON"})["EventStream"]
    writer = threading.Timer(0.2, kinesis.put_record, kwargs={"StreamName": stream, "Data": b"live",
                                                              "PartitionKey": "pk1"})
    received: list[bytes] = []
    try:
        writer.start()
        for event in stream_events:
            payload = event["SubscribeToShardEvent"]
            received += [r["Data"] for r in payload["Records"]]
            if received == [b"before", b"live"]:
                assert int(payload["ContinuationSequenceNumber"]) > int(first["SequenceNumber"])
                break
    finally:
        writer.join()
        stream_events.close()
    assert received == [b"before", b"live"]
    kinesis.deregister_stream_consumer(ConsumerARN=consumer["ConsumerARN"])
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        kinesis.describe_stream_consumer(StreamARN=arn, ConsumerName="fanout")


def test_bad_input_gets_aws_errors(kinesis: Any, stream: str) -> None:
    cases: list[tuple[Any, dict[str, Any], str]] = [
        (kinesis.describe_stream, {"StreamName": "missing"}, "ResourceNotFoundException"),
        (kinesis.create_stream, {"StreamName": stream, "ShardCount": 1}, "ResourceInUseException"),
        (kinesis.create_stream, {"StreamName": "bad name!", "ShardCount": 1}, "ValidationException"),
        (kinesis.put_record, {"StreamName": stream, "Data": b"x" * (1024 * 1024 + 1), "PartitionKey": "k"},
         "ValidationException"),
        (kinesis.put_record, {"StreamName": stream, "Data": b"x", "PartitionKey": "k" * 257}, "ValidationException"),
        (kinesis.put_record, {"StreamName": stream, "Data": b"x", "PartitionKey": "k", "ExplicitHashKey": "-1"},
         "InvalidArgumentException"),
        (kinesis.put_records, {"StreamName": stream, "Records": [{"Data": b"x", "PartitionKey": "k"}] * 501},
         "ValidationException"),
        (kinesis.put_records, {"StreamName": stream,
                               "Records": [{"Data": b"x" * 1_000_000, "PartitionKey": "k"}] * 6},
         "InvalidArgumentException"),
        (kinesis.get_shard_iterator, {"StreamName": stream, "ShardId": "shardId-000000000042",
                                      "ShardIteratorType": "LATEST"}, "ResourceNotFoundException"),
        (kinesis.get_shard_iterator, {"StreamName": stream, "ShardId": "shardId-000000000000",
                                      "ShardIteratorType": "AT_SEQUENCE_NUMBER"}, "InvalidArgumentException"),
        (kinesis.get_shard_iterator, {"StreamName": stream, "ShardId": "shard/0", "ShardIteratorType": "LATEST"},
         "ValidationException"),
        (kinesis.get_shard_iterator, {"StreamName": stream, "ShardId": "shardId-000000000000",
                                      "ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": "12"},
         "InvalidArgumentException"),
        (kinesis.get_records, {"ShardIterator": "bm90LWFuLWl0ZXJhdG9y"}, "InvalidArgumentException"),
        (kinesis.split_shard, {"StreamName": stream, "ShardToSplit": "shardId-000000000000",
                               "NewStartingHashKey": "0"}, "InvalidArgumentException"),
    ]
    for call, kwargs, code in cases:
        with pytest.raises(kinesis.exceptions.ClientError) as excinfo:
            call(**kwargs)
        assert _code(excinfo) == (code, 400), (call.__name__, kwargs.get("StreamName"))
        assert isinstance(excinfo.value, getattr(kinesis.exceptions, code))
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException) as excinfo:
        kinesis.put_record(StreamName="nope", Data=b"x", PartitionKey="k")
    assert excinfo.value.response["Error"]["Message"] == "Stream nope under account 000000000000 not found."


def test_aws_cli_round_trip(api: ApiHandle, stream: str, tmp_path: Path) -> None:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": api.config.api.access_key,
           "AWS_SECRET_ACCESS_KEY": api.config.api.secret_key, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    aws = [str(Path(sys.executable).parent / "aws"), "--endpoint-url", api.endpoint, "--output", "json", "kinesis"]

    def cli(*args: str) -> dict[str, Any]:
        done = subprocess.run([*aws, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    put = cli("put-record", "--stream-name", stream, "--partition-key", "pk1", "--data", "hello-cli")
    assert put["ShardId"] == "shardId-000000000001"
    iterator = cli("get-shard-iterator", "--stream-name", stream, "--shard-id", put["ShardId"],
                   "--shard-iterator-type", "TRIM_HORIZON")["ShardIterator"]
    records = cli("get-records", "--shard-iterator", iterator)["Records"]
    assert base64.b64decode(records[0]["Data"]) == b"hello-cli"
    failed = subprocess.run([*aws, "describe-stream", "--stream-name", "missing"], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert failed.returncode != 0 and "ResourceNotFoundException" in failed.stderr
