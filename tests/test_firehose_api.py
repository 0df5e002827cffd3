"""Firehose through unmodified boto3: delivery streams, buffering by size / interval / shutdown, GZIP, errors."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from gateway.sinks.firehose.errors import FirehoseError
from tests.awsapi_helpers import ApiHandle, boto3_client
from tests.s3_helpers import api

pytestmark = pytest.mark.interop
ROLE = "arn:aws:iam::000000000000:role/firehose"
KEY = re.compile(r"^fh/\d{4}/\d{2}/\d{2}/\d{2}/(?P<name>[\w.-]+)-1-\d{4}(-\d{2}){5}-[0-9a-f-]{36}(?P<ext>\.gz)?$")


@pytest.fixture
def handle(home: Any) -> Iterator[ApiHandle]:
    yield from api(home, with_firehose=True)


def engine(handle: ApiHandle) -> Any:
    return next(s.engine for s in handle.services if s.signing_name == "firehose")


def create(fh: Any, name: str, size_mb: int = 1, interval: int = 900, compression: str = "UNCOMPRESSED") -> None:
    fh.create_delivery_stream(DeliveryStreamName=name, DeliveryStreamType="DirectPut",
                              ExtendedS3DestinationConfiguration={
                                  "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::archive", "Prefix": "fh/",
                                  "BufferingHints": {"SizeInMBs": size_mb, "IntervalInSeconds": interval},
                                  "CompressionFormat": compression})


def objects(s3: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket="archive").get("Contents", [])]


@pytest.fixture
def clients(handle: ApiHandle) -> tuple[Any, Any]:
    s3, fh = boto3_client(handle, "s3"), boto3_client(handle, "firehose")
    s3.create_bucket(Bucket="archive")
    return s3, fh


def test_control_plane(clients: tuple[Any, Any]) -> None:
    _, fh = clients
    create(fh, "to-s3")
    with pytest.raises(fh.exceptions.ResourceInUseException):
        create(fh, "to-s3")
    desc = fh.describe_delivery_stream(DeliveryStreamName="to-s3")["DeliveryStreamDescription"]
    assert desc["DeliveryStreamStatus"] == "ACTIVE" and desc["DeliveryStreamType"] == "DirectPut"
    dest = desc["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert dest["BufferingHints"] == {"SizeInMBs": 1, "IntervalInSeconds": 900} and dest["Prefix"] == "fh/"
    assert desc["DeliveryStreamARN"].endswith(":deliverystream/to-s3")
    assert fh.list_delivery_streams()["DeliveryStreamNames"] == ["to-s3"]
    fh.delete_delivery_stream(DeliveryStreamName="to-s3")
    with pytest.raises(fh.exceptions.ResourceNotFoundException):
        fh.describe_delivery_stream(DeliveryStreamName="to-s3")
    with pytest.raises(fh.exceptions.ResourceNotFoundException):
        fh.put_record(DeliveryStreamName="to-s3", Record={"Data": b"x"})
    with pytest.raises(fh.exceptions.InvalidArgumentException):
        fh.create_delivery_stream(DeliveryStreamName="bad", ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::archive", "CompressionFormat": "ZIP"})


def test_flush_by_size(handle: ApiHandle, clients: tuple[Any, Any]) -> None:
    s3, fh = clients
    create(fh, "by-size", size_mb=1)
    chunk = b"r" * 100_000 + b"\n"
    out = fh.put_record_batch(DeliveryStreamName="by-size", Records=[{"Data": chunk}] * 11)
    assert out["FailedPutCount"] == 0 and len(out["RequestResponses"]) == 11
    handle.call(engine(handle).wait_delivered(1, timeout=10))
    keys = objects(s3)
    assert len(keys) == 1 and KEY.match(keys[0]).group("name") == "by-size"  # type: ignore[union-attr]
    assert s3.get_object(Bucket="archive", Key=keys[0])["Body"].read() == chunk * 11


def test_flush_by_interval_gzip(handle: ApiHandle, clients: tuple[Any, Any]) -> None:
    s3, fh = clients
    create(fh, "by-time", size_mb=5, interval=1, compression="GZIP")
    fh.put_record(DeliveryStreamName="by-time", Record={"Data": b'{"a":1}\n'})
    fh.put_record_batch(DeliveryStreamName="by-time", Records=[{"Data": b'{"b":2}\n'}, {"Data": b'{"c":3}\n'}])
    handle.call(engine(handle).wait_delivered(1, timeout=10))
    (key,) = objects(s3)
    assert KEY.match(key).group("ext") == ".gz"  # type: ignore[union-attr]
    body = s3.get_object(Bucket="archive", Key=key)["Body"].read()
    assert gzip.decompress(body) == b'{"a":1}\n{"b":2}\n{"c":3}\n'


def test_flush_on_shutdown_and_state_survives(handle: ApiHandle, clients: tuple[Any, Any]) -> None:
    s3, fh = clients
    create(fh, "on-stop", size_mb=128, interval=900)
    fh.put_record_batch(DeliveryStreamName="on-stop", Records=[{"Data": f"{i}\n".encode()} for i in range(100)])
    assert objects(s3) == []
    handle.restart()
    s3, fh = boto3_client(handle, "s3"), boto3_client(handle, "firehose")
    (key,) = objects(s3)
    assert s3.get_object(Bucket="archive", Key=key)["Body"].read() == b"".join(f"{i}\n".encode() for i in range(100))
    assert fh.list_delivery_streams()["DeliveryStreamNames"] == ["on-stop"]


def test_delivery_waits_for_missing_bucket(handle: ApiHandle, clients: tuple[Any, Any]) -> None:
    s3, fh = clients
    fh.create_delivery_stream(DeliveryStreamName="late", ExtendedS3DestinationConfiguration={
        "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::not-yet", "BufferingHints": {"SizeInMBs": 1,
                                                                                 "IntervalInSeconds": 0}})
    fh.put_record(DeliveryStreamName="late", Record={"Data": b"kept"})
    with pytest.raises(FirehoseError) as failed:
        handle.call(engine(handle).flush("late"))
    assert failed.value.code == "ServiceUnavailableException"
    assert engine(handle).delivery_failures >= 1
    s3.create_bucket(Bucket="not-yet")
    handle.call(engine(handle).flush("late"))
    (obj,) = s3.list_objects_v2(Bucket="not-yet")["Contents"]
    assert s3.get_object(Bucket="not-yet", Key=obj["Key"])["Body"].read() == b"kept"


def test_bad_input(clients: tuple[Any, Any]) -> None:
    _, fh = clients
    create(fh, "limits")
    with pytest.raises(ClientError) as exc:
        fh.put_record_batch(DeliveryStreamName="limits", Records=[{"Data": b"x"}] * 501)
    assert exc.value.response["Error"]["Code"] == "InvalidArgumentException"
    with pytest.raises(fh.exceptions.InvalidArgumentException):
        fh.put_record(DeliveryStreamName="limits", Record={"Data": b"x" * 1_024_001})
    with pytest.raises(fh.exceptions.InvalidArgumentException):
        fh.put_record_batch(DeliveryStreamName="limits", Records=[{"Data": b"y" * 1_000_000}] * 5)
    with pytest.raises(fh.exceptions.InvalidArgumentException):
        fh.create_delivery_stream(DeliveryStreamName="bad hints", ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::archive"})


def test_partial_failure_when_backlog_is_full(handle: ApiHandle, clients: tuple[Any, Any]) -> None:
    _, fh = clients
    fh.create_delivery_stream(DeliveryStreamName="full", ExtendedS3DestinationConfiguration={
        "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::nowhere", "BufferingHints": {"SizeInMBs": 1,
                                                                                  "IntervalInSeconds": 900}})
    engine(handle).max_backlog_bytes = 250
    out = fh.put_record_batch(DeliveryStreamName="full", Records=[{"Data": b"z" * 100}] * 4)
    assert out["FailedPutCount"] == 2
    assert [r.get("ErrorCode") for r in out["RequestResponses"]] == [
        None, None, "ServiceUnavailableException", "ServiceUnavailableException"]
    assert all("RecordId" in r for r in out["RequestResponses"][:2])
    assert engine(handle).metrics()["firehose_throttled_records"] == 2


def test_update_destination_and_tags(handle: ApiHandle, clients: tuple[Any, Any]) -> None:
    s3, fh = clients
    create(fh, "evolving", size_mb=1, interval=900)
    fh.put_record(DeliveryStreamName="evolving", Record={"Data": b"old\n"})
    desc = fh.describe_delivery_stream(DeliveryStreamName="evolving")["DeliveryStreamDescription"]
    with pytest.raises(ClientError) as exc:
        fh.update_destination(DeliveryStreamName="evolving", CurrentDeliveryStreamVersionId="7",
                              DestinationId="destinationId-000000000001", ExtendedS3DestinationUpdate={})
    assert exc.value.response["Error"]["Code"] == "ConcurrentModificationException"
    fh.update_destination(DeliveryStreamName="evolving", CurrentDeliveryStreamVersionId=desc["VersionId"],
                          DestinationId=desc["Destinations"][0]["DestinationId"],
                          ExtendedS3DestinationUpdate={"Prefix": "v2/", "CompressionFormat": "GZIP"})
    handle.call(engine(handle).wait_delivered(1, timeout=10))
    fh.put_record(DeliveryStreamName="evolving", Record={"Data": b"new\n"})
    handle.call(engine(handle).flush("evolving"))
    keys = objects(s3)
    assert KEY.match(keys[0]) and re.match(r"^v2/\d{4}/\d\d/\d\d/\d\d/evolving-2-.*\.gz$", keys[1]), keys
    assert gzip.decompress(s3.get_object(Bucket="archive", Key=keys[1])["Body"].read()) == b"new\n"
    after = fh.describe_delivery_stream(DeliveryStreamName="evolving")["DeliveryStreamDescription"]
    assert after["VersionId"] == "2"
    fh.tag_delivery_stream(DeliveryStreamName="evolving", Tags=[{"Key": "site", "Value": "edge-1"}])
    assert fh.list_tags_for_delivery_stream(DeliveryStreamName="evolving")["Tags"] == [
        {"Key": "site", "Value": "edge-1"}]
    fh.untag_delivery_stream(DeliveryStreamName="evolving", TagKeys=["site"])
    assert fh.list_tags_for_delivery_stream(DeliveryStreamName="evolving")["Tags"] == []
