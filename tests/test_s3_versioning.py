"""Versioning, presigned URLs and GetObject?versionId through boto3."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.awsapi_helpers import ApiHandle, boto3_client
from tests.s3_helpers import api

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def handle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHandle]:
    yield from api(tmp_path_factory.mktemp("s3ver"))


@pytest.fixture(scope="module")
def s3(handle: ApiHandle) -> Any:
    return boto3_client(handle, "s3")


def test_versioning_lifecycle(s3: Any) -> None:
    s3.create_bucket(Bucket="ver")
    assert "Status" not in s3.get_bucket_versioning(Bucket="ver")
    s3.put_object(Bucket="ver", Key="k", Body=b"before")
    s3.put_bucket_versioning(Bucket="ver", VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket="ver")["Status"] == "Enabled"
    v1 = s3.put_object(Bucket="ver", Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket="ver", Key="k", Body=b"two")["VersionId"]
    assert v1 != v2
    assert s3.get_object(Bucket="ver", Key="k")["Body"].read() == b"two"
    assert s3.get_object(Bucket="ver", Key="k", VersionId=v1)["Body"].read() == b"one"
    assert s3.get_object(Bucket="ver", Key="k", VersionId="null")["Body"].read() == b"before"
    deleted = s3.delete_object(Bucket="ver", Key="k")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    with pytest.raises(s3.exceptions.NoSuchKey) as exc:
        s3.get_object(Bucket="ver", Key="k")
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="ver", Key="k", VersionId=marker)
    assert exc.value.response["Error"]["Code"] == "MethodNotAllowed"
    listing = s3.list_object_versions(Bucket="ver")
    assert [v["VersionId"] for v in listing["Versions"]] == [v2, v1, "null"]
    assert [(m["VersionId"], m["IsLatest"]) for m in listing["DeleteMarkers"]] == [(marker, True)]
    assert s3.list_objects_v2(Bucket="ver")["KeyCount"] == 0
    s3.delete_object(Bucket="ver", Key="k", VersionId=marker)
    assert s3.get_object(Bucket="ver", Key="k")["Body"].read() == b"two"
    s3.delete_object(Bucket="ver", Key="k", VersionId=v2)
    assert s3.get_object(Bucket="ver", Key="k")["Body"].read() == b"one"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="ver", Key="k", VersionId=v2)
    assert exc.value.response["Error"]["Code"] == "NoSuchVersion"
    s3.put_bucket_versioning(Bucket="ver", VersioningConfiguration={"Status": "Suspended"})
    assert s3.put_object(Bucket="ver", Key="k", Body=b"suspended").get("VersionId") in (None, "null")
    versions = s3.list_object_versions(Bucket="ver", Prefix="k")["Versions"]
    assert [v["VersionId"] for v in versions] == ["null", v1]


def test_version_listing_pagination(s3: Any) -> None:
    s3.create_bucket(Bucket="verpages")
    s3.put_bucket_versioning(Bucket="verpages", VersioningConfiguration={"Status": "Enabled"})
    made = [(k, s3.put_object(Bucket="verpages", Key=k, Body=b"x")["VersionId"]) for k in ("a", "a", "b", "c", "c")]
    pages = s3.get_paginator("list_object_versions").paginate(Bucket="verpages", PaginationConfig={"PageSize": 2})
    seen = [(v["Key"], v["VersionId"]) for p in pages for v in p.get("Versions", [])]
    expected = [("a", made[1][1]), ("a", made[0][1]), ("b", made[2][1]), ("c", made[4][1]), ("c", made[3][1])]
    assert seen == expected


def test_presigned_get_and_put(s3: Any) -> None:
    s3.create_bucket(Bucket="presign")
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "presign", "Key": "up.txt"}, ExpiresIn=60)
    # urllib would add a form Content-Type, which is part of what the URL signed (nothing): send none.
    request = urllib.request.Request(put_url, data=b"via presigned put", method="PUT", headers={"Content-Type": ""})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": "presign", "Key": "up.txt"}, ExpiresIn=60)
    with urllib.request.urlopen(get_url, timeout=10) as resp:
        assert resp.read() == b"via presigned put"
    tampered = get_url.replace("up.txt", "other.txt")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(tampered, timeout=10)
    assert err.value.code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in err.value.read()


def test_presigned_url_expires(s3: Any) -> None:
    s3.create_bucket(Bucket="expired")
    s3.put_object(Bucket="expired", Key="k", Body=b"v")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "expired", "Key": "k"}, ExpiresIn=-10)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url, timeout=10)
    body = err.value.read()
    assert err.value.code == 403 and b"<Code>AccessDenied</Code>" in body and b"Request has expired" in body


def test_presigned_sigv4(handle: ApiHandle) -> None:
    import boto3
    from botocore.config import Config

    v4 = boto3.client("s3", endpoint_url=handle.endpoint, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test", config=Config(signature_version="s3v4"))
    v4.create_bucket(Bucket="presign-v4")
    v4.put_object(Bucket="presign-v4", Key="k", Body=b"v4 body")
    url = v4.generate_presigned_url("get_object", Params={"Bucket": "presign-v4", "Key": "k"}, ExpiresIn=60)
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b"v4 body"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url.replace("X-Amz-Expires=60", "X-Amz-Expires=61"), timeout=10)
    assert err.value.code == 403
