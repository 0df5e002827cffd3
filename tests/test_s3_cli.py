"""`edgeloop s3 …` and `edgeloop sinks ls` against a running API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeloop.cli import AppContext
from gateway.sinks.cli import sinks
from gateway.sinks.s3.cli import s3
from tests.awsapi_helpers import ApiHandle, boto3_client
from tests.s3_helpers import api


@pytest.fixture
def handle(home: Path) -> Iterator[ApiHandle]:
    yield from api(home, with_firehose=True)


def run(handle: ApiHandle, group: object, *args: str) -> str:
    app = AppContext(None, {"data_dir": str(handle.config.home), "api.port": handle.api.port})  # type: ignore[union-attr]
    result = CliRunner().invoke(group, list(args), obj=app, catch_exceptions=False)  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    return result.output


def test_s3_commands(handle: ApiHandle, tmp_path: Path) -> None:
    assert "created cli-b" in run(handle, s3, "mb", "cli-b")
    f = tmp_path / "reading.json"
    f.write_bytes(b'{"t": 21.5}')
    assert '"' in run(handle, s3, "put", str(f), "s3://cli-b/dev/1/reading.json", "--content-type", "application/json")
    assert run(handle, s3, "ls") == "cli-b\n"
    assert "PRE" in run(handle, s3, "ls", "cli-b/")
    assert "dev/1/reading.json" in run(handle, s3, "ls", "-r", "cli-b")
    assert run(handle, s3, "cat", "cli-b/dev/1/reading.json") == '{"t": 21.5}'


def test_sinks_ls(handle: ApiHandle) -> None:
    out = run(handle, sinks, "ls")
    assert "kinesis-stream\t(unavailable" in out  # this API runs without Kinesis and SQS
    boto3_client(handle, "s3").create_bucket(Bucket="listed-bucket")
    boto3_client(handle, "firehose").create_delivery_stream(
        DeliveryStreamName="listed-fh", ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::000000000000:role/r", "BucketARN": "arn:aws:s3:::listed-bucket"})
    out = run(handle, sinks, "ls")
    assert "s3-bucket\tlisted-bucket" in out and "firehose-stream\tlisted-fh" in out


def test_sinks_ls_every_kind(home: Path) -> None:
    for full in api(home, with_sqs=True, with_kinesis=True, with_firehose=True):
        boto3_client(full, "kinesis").create_stream(StreamName="listed-stream", ShardCount=1)
        boto3_client(full, "sqs").create_queue(QueueName="listed-queue")
        boto3_client(full, "s3").create_bucket(Bucket="listed-bucket")
        out = run(full, sinks, "ls").splitlines()
        assert out == ["kinesis-stream\tlisted-stream", "sqs-queue\tlisted-queue", "s3-bucket\tlisted-bucket"]
