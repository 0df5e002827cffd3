"""S3 through unmodified boto3: buckets, objects, ranges, conditions, copies, listings, tagging, errors."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from gateway.sinks.s3.checksums import checksum_of
from tests.awsapi_helpers import ApiHandle, boto3_client
from tests.s3_helpers import api

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def handle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHandle]:
    home: Path = tmp_path_factory.mktemp("s3home")
    yield from api(home)


@pytest.fixture(scope="module")
def s3(handle: ApiHandle) -> Any:
    return boto3_client(handle, "s3")


@pytest.fixture
def bucket(s3: Any, request: pytest.FixtureRequest) -> str:
    name = request.node.name.lower().replace("_", "-")[:40].strip("-") + "-b"
    s3.create_bucket(Bucket=name)
    return name


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def test_bucket_lifecycle(s3: Any) -> None:
    s3.create_bucket(Bucket="life-cycle")
    assert "life-cycle" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.head_bucket(Bucket="life-cycle")["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket="life-cycle")
    assert s3.get_bucket_location(Bucket="life-cycle")["LocationConstraint"] is None
    s3.put_object(Bucket="life-cycle", Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket="life-cycle")
    assert code(exc) == "BucketNotEmpty"
    s3.delete_object(Bucket="life-cycle", Key="k")
    s3.delete_bucket(Bucket="life-cycle")
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket="life-cycle")
    assert code(exc) == "404"
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.list_objects_v2(Bucket="life-cycle")


def test_location_constraint_and_bad_names(s3: Any) -> None:
    s3.create_bucket(Bucket="in-frankfurt", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    assert s3.get_bucket_location(Bucket="in-frankfurt")["LocationConstraint"] == "eu-central-1"
    for bad in ("ab", "Upper-Case", "-leading", "a..b", "192.168.1.1"):
        with pytest.raises(ClientError) as exc:
            s3.create_bucket(Bucket=bad)
        assert code(exc) == "InvalidBucketName", bad


def test_put_get_head_with_metadata(s3: Any, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="dir/a b+c.json", Body=b'{"t":1}', ContentType="application/json",
                        Metadata={"device": "gw-1"}, CacheControl="max-age=60")
    assert put["ETag"] == '"' + hashlib.md5(b'{"t":1}').hexdigest() + '"'
    got = s3.get_object(Bucket=bucket, Key="dir/a b+c.json")
    assert got["Body"].read() == b'{"t":1}'
    assert got["ContentType"] == "application/json"
    assert got["Metadata"] == {"device": "gw-1"}
    assert got["CacheControl"] == "max-age=60"
    assert got["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=bucket, Key="dir/a b+c.json")
    assert head["ContentLength"] == 7
    assert isinstance(head["LastModified"], dt.datetime)


def test_missing_key_errors(s3: Any, bucket: str) -> None:
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="nope")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="nope")
    assert code(exc) == "404"
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.get_object(Bucket="no-such-bucket-here", Key="k")


def test_ranges(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="r", Body=b"0123456789")
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=2-5")
    assert got["Body"].read() == b"2345"
    assert got["ContentRange"] == "bytes 2-5/10"
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=7-")["Body"].read() == b"789"
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-3")["Body"].read() == b"789"
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=8-100")["Body"].read() == b"89"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-20")
    assert code(exc) == "InvalidRange"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_conditional_get(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"v1")["ETag"]
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"v1"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0000"')
    assert code(exc) == "PreconditionFailed"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=future)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=past)["Body"].read() == b"v1"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="c", Body=b"v2", IfNoneMatch="*")
    assert code(exc) == "PreconditionFailed"


def test_copy_object_metadata_directive(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"payload", Metadata={"a": "1"}, ContentType="text/plain")
    s3.copy_object(Bucket=bucket, Key="same", CopySource={"Bucket": bucket, "Key": "src"})
    same = s3.head_object(Bucket=bucket, Key="same")
    assert same["Metadata"] == {"a": "1"} and same["ContentType"] == "text/plain"
    s3.copy_object(Bucket=bucket, Key="new", CopySource=f"{bucket}/src", MetadataDirective="REPLACE",
                   Metadata={"b": "2"}, ContentType="application/octet-stream")
    new = s3.get_object(Bucket=bucket, Key="new")
    assert new["Metadata"] == {"b": "2"} and new["Body"].read() == b"payload"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src")
    assert code(exc) == "InvalidRequest"
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.copy_object(Bucket=bucket, Key="x", CopySource=f"{bucket}/missing")


def test_delete_objects(s3: Any, bucket: str) -> None:
    for k in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}, {"Key": "zz"}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["a", "b", "zz"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["c"]
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "c"}], "Quiet": True})
    assert "Deleted" not in quiet
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_list_v2_prefix_delimiter_pagination(s3: Any, bucket: str) -> None:
    keys = ["a/1", "a/2", "b/1", "c", "d e+f/x", "d e+f/y", "z"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "b/", "d e+f/"]
    assert [o["Key"] for o in top["Contents"]] == ["c", "z"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="d e+f/")["KeyCount"] == 2
    paginator = s3.get_paginator("list_objects_v2")
    seen = [o["Key"] for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 2})
            for o in page.get("Contents", [])]
    assert seen == keys
    grouped = []
    for page in paginator.paginate(Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 1}):
        grouped += [p["Prefix"] for p in page.get("CommonPrefixes", [])] + [o["Key"] for o in page.get("Contents", [])]
    assert grouped == ["a/", "b/", "c", "d e+f/", "z"]
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="c")
    assert [o["Key"] for o in after["Contents"]] == ["d e+f/x", "d e+f/y", "z"]


def test_list_v1_marker(s3: Any, bucket: str) -> None:
    for k in ("k1", "k2", "k3"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"1")
    page = s3.list_objects(Bucket=bucket, MaxKeys=2)
    assert page["IsTruncated"] and [o["Key"] for o in page["Contents"]] == ["k1", "k2"]
    rest = s3.list_objects(Bucket=bucket, Marker="k2")
    assert [o["Key"] for o in rest["Contents"]] == ["k3"] and not rest["IsTruncated"]
    all_keys = [o["Key"] for p in s3.get_paginator("list_objects").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 1}) for o in p["Contents"]]
    assert all_keys == ["k1", "k2", "k3"]


def test_bucket_tagging(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=bucket)
    assert code(exc) == "NoSuchTagSet"
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "env", "Value": "edge"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "env", "Value": "edge"}]
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.get_bucket_tagging(Bucket=bucket)


def test_checksums(s3: Any, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="crc", Body=b"hello")
    assert put["ChecksumCRC32"] == "NhCmhg=="
    got = s3.get_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == "NhCmhg==" and got["Body"].read() == b"hello"
    for alg in ("CRC32C", "SHA1", "SHA256"):
        put = s3.put_object(Bucket=bucket, Key=f"k-{alg}", Body=b"hello", ChecksumAlgorithm=alg)
        got = s3.get_object(Bucket=bucket, Key=f"k-{alg}", ChecksumMode="ENABLED")
        assert got[f"Checksum{alg}"] == put[f"Checksum{alg}"]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"hello", ChecksumCRC32="AAAAAA==")
    assert code(exc) == "BadDigest"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"hello", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")
    assert code(exc) == "BadDigest"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"hello", ContentMD5="not-base64")
    assert code(exc) == "InvalidDigest"
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="bad")


def _signed_put(handle: ApiHandle, path: str, signed_body: bytes, sent_body: bytes,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    from gateway.awsapi import sigv4

    host = handle.endpoint.removeprefix("http://")
    signed = sigv4.sign_headers("PUT", path, "", {"Host": host, **(headers or {})}, signed_body, "test", "test",
                                "us-east-1", "s3")
    request = urllib.request.Request(handle.endpoint + path, data=sent_body, method="PUT", headers=signed)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_payload_hash_is_verified(handle: ApiHandle, s3: Any, bucket: str) -> None:
    status, body = _signed_put(handle, f"/{bucket}/tampered", b"original", b"tampered")
    assert status == 400 and b"<Code>XAmzContentSHA256Mismatch</Code>" in body
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="tampered")


def test_aws_chunked_body(handle: ApiHandle, s3: Any, bucket: str) -> None:
    payload = b"0123456789" * 10_000
    framed = b"".join(f"{len(payload[i:i + 30000]):x}\r\n".encode() + payload[i:i + 30000] + b"\r\n"
                      for i in range(0, len(payload), 30000))
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(payload)),
               "x-amz-trailer": "x-amz-checksum-crc32"}
    wrong = framed + b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    status, body = _signed_put(handle, f"/{bucket}/chunked", wrong, wrong, headers)
    assert status == 400 and b"<Code>BadDigest</Code>" in body
    right = framed + f"0\r\nx-amz-checksum-crc32:{checksum_of('crc32', payload)}\r\n\r\n".encode()
    status, body = _signed_put(handle, f"/{bucket}/chunked", right, right, headers)
    assert status == 200, body
    got = s3.get_object(Bucket=bucket, Key="chunked")
    assert got["Body"].read() == payload and "ContentEncoding" not in got


def test_unsupported_subresources_are_refused(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_acl(Bucket=bucket)
    assert code(exc) == "NotImplemented"
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="k")
    assert code(exc) == "NotImplemented"
