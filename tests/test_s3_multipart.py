"""Multipart uploads through boto3: the low-level calls, their errors, and the managed transfers."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.awsapi_helpers import ApiHandle, boto3_client
from tests.s3_helpers import api

pytestmark = pytest.mark.interop
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def handle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHandle]:
    yield from api(tmp_path_factory.mktemp("s3mp"))


@pytest.fixture(scope="module")
def s3(handle: ApiHandle) -> Any:
    client = boto3_client(handle, "s3")
    client.create_bucket(Bucket="mpb")
    return client


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def test_low_level_multipart_etag_and_listing(s3: Any) -> None:
    up = s3.create_multipart_upload(Bucket="mpb", Key="big", Metadata={"m": "1"}, ContentType="text/csv")
    uid = up["UploadId"]
    assert uid in [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="mpb")["Uploads"]]
    p1 = s3.upload_part(Bucket="mpb", Key="big", UploadId=uid, PartNumber=1, Body=b"x" * 5 * MIB)
    p2 = s3.upload_part(Bucket="mpb", Key="big", UploadId=uid, PartNumber=2, Body=b"x" * MIB)
    parts = s3.list_parts(Bucket="mpb", Key="big", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MIB), (2, MIB)]
    done = s3.complete_multipart_upload(Bucket="mpb", Key="big", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]})
    assert done["ETag"] == '"7d368e72ecdd3ff1d9b28f29481a125f-2"'
    head = s3.head_object(Bucket="mpb", Key="big")
    assert head["ContentLength"] == 6 * MIB and head["Metadata"] == {"m": "1"} and head["ContentType"] == "text/csv"
    assert s3.get_object(Bucket="mpb", Key="big", Range="bytes=5242878-5242881")["Body"].read() == b"xxxx"
    assert "Uploads" not in s3.list_multipart_uploads(Bucket="mpb")
    with pytest.raises(s3.exceptions.NoSuchUpload):
        s3.list_parts(Bucket="mpb", Key="big", UploadId=uid)


def test_multipart_errors(s3: Any) -> None:
    uid = s3.create_multipart_upload(Bucket="mpb", Key="e")["UploadId"]
    small = s3.upload_part(Bucket="mpb", Key="e", UploadId=uid, PartNumber=1, Body=b"a" * 1024)
    last = s3.upload_part(Bucket="mpb", Key="e", UploadId=uid, PartNumber=2, Body=b"b")
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket="mpb", Key="e", UploadId=uid, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": small["ETag"]}, {"PartNumber": 2, "ETag": last["ETag"]}]})
    assert code(exc) == "EntityTooSmall"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket="mpb", Key="e", UploadId=uid, MultipartUpload={"Parts": [
            {"PartNumber": 2, "ETag": last["ETag"]}, {"PartNumber": 1, "ETag": small["ETag"]}]})
    assert code(exc) == "InvalidPartOrder"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket="mpb", Key="e", UploadId=uid, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}]})
    assert code(exc) == "InvalidPart"
    single = s3.complete_multipart_upload(Bucket="mpb", Key="e", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 2, "ETag": last["ETag"]}]})
    assert single["ETag"].endswith('-1"')
    assert s3.get_object(Bucket="mpb", Key="e")["Body"].read() == b"b"
    uid2 = s3.create_multipart_upload(Bucket="mpb", Key="gone")["UploadId"]
    s3.abort_multipart_upload(Bucket="mpb", Key="gone", UploadId=uid2)
    with pytest.raises(s3.exceptions.NoSuchUpload):
        s3.upload_part(Bucket="mpb", Key="gone", UploadId=uid2, PartNumber=1, Body=b"z")
    with pytest.raises(s3.exceptions.NoSuchUpload):
        s3.abort_multipart_upload(Bucket="mpb", Key="gone", UploadId="not-an-upload")


def test_managed_upload_and_download_file(s3: Any, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    data = os.urandom(9 * MIB + 123)
    src.write_bytes(data)
    config = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=5 * MIB, max_concurrency=4)
    s3.upload_file(str(src), "mpb", "managed.bin", Config=config)
    head = s3.head_object(Bucket="mpb", Key="managed.bin")
    assert head["ContentLength"] == len(data) and head["ETag"].endswith('-2"')
    dst = tmp_path / "dst.bin"
    s3.download_file("mpb", "managed.bin", str(dst), Config=config)
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_managed_copy_uses_upload_part_copy(s3: Any) -> None:
    data = os.urandom(6 * MIB + 7)
    s3.put_object(Bucket="mpb", Key="copy-src", Body=data)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.copy({"Bucket": "mpb", "Key": "copy-src"}, "mpb", "copy-dst", Config=config)
    head = s3.head_object(Bucket="mpb", Key="copy-dst")
    assert head["ETag"].endswith('-2"') and head["ContentLength"] == len(data)
    assert s3.get_object(Bucket="mpb", Key="copy-dst")["Body"].read() == data
