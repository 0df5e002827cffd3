"""The API core: routing by X-Amz-Target / credential scope and SigV4 as botocore signs it."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from edgeloop.config import load_config
from edgeloop.errors import ConfigError
from gateway.awsapi import sigv4
from gateway.awsapi.client import AwsClient
from gateway.awsapi.errors import AwsError
from gateway.awsapi.server import AwsApi
from gateway.awsapi.service import RequestContext, json_error_response, json_response, xml_error_response
from tests.awsapi_helpers import boto3_client, running_api


class EchoJson:
    """A JSON service that answers every call with what it saw."""

    signing_name = "kinesis"
    target_prefixes = ("Kinesis_20131202",)
    streaming = False

    async def handle(self, request: web.Request, ctx: RequestContext) -> web.StreamResponse:
        op = request.headers["X-Amz-Target"].split(".", 1)[1]
        body = json.loads(ctx.body or b"{}")
        if op == "DescribeStream":
            raise AwsError("ResourceNotFoundException", f"Stream {body['StreamName']} under account not found.")
        return json_response({"StreamNames": [op, ctx.region, ctx.access_key], "HasMoreStreams": False})

    def error_response(self, error: AwsError, request: web.Request, ctx: RequestContext | None) -> web.Response:
        return json_error_response(error)

    async def stop(self) -> None:
        return None


class EchoRest:
    """A streaming REST service signed as s3 that echoes the path it was asked for."""

    signing_name = "s3"
    target_prefixes = ()
    streaming = True

    async def handle(self, request: web.Request, ctx: RequestContext) -> web.StreamResponse:
        body = await request.content.read()
        xml = f"<R><Path>{request.path}</Path><Len>{len(body)}</Len></R>"
        return web.Response(text=xml, content_type="application/xml")

    def error_response(self, error: AwsError, request: web.Request, ctx: RequestContext | None) -> web.Response:
        return xml_error_response(error, ctx.request_id if ctx else "0", request.path)

    async def stop(self) -> None:
        return None


async def _services(config: Any, sync: Any) -> list[Any]:
    return [EchoJson(), EchoRest()]


@pytest.fixture
def api(home: Path) -> Any:
    with running_api(home, _services) as handle:
        yield handle


def test_botocore_signed_json_call_is_routed_and_verified(api: Any) -> None:
    kinesis = boto3_client(api, "kinesis")
    assert kinesis.list_streams()["StreamNames"] == ["ListStreams", "us-east-1", "test"]
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        kinesis.describe_stream(StreamName="nope")


def test_wrong_secret_is_refused_with_aws_codes(api: Any) -> None:
    import boto3

    bad = boto3.client("kinesis", endpoint_url=api.endpoint, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="wrong")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        bad.list_streams()
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    unknown = boto3.client("s3", endpoint_url=api.endpoint, region_name="us-east-1",
                           aws_access_key_id="nobody", aws_secret_access_key="x")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        unknown.list_objects_v2(Bucket="b")
    assert info.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_s3_paths_with_odd_keys_verify(api: Any) -> None:
    s3 = boto3_client(api, "s3")
    for key in ["a b+c", "dir/ü/ä?x=1", "x%2By", "~tilde/(paren)*"]:
        s3.put_object(Bucket="bucket", Key=key, Body=b"12345")


@pytest.mark.parametrize("version", [None, "s3v4"])
def test_presigned_url_verified(api: Any, version: str | None) -> None:
    import boto3
    from botocore.config import Config as BotoConfig

    s3 = boto3.client("s3", endpoint_url=api.endpoint, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test", config=BotoConfig(signature_version=version))
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k/e y", "VersionId": "v1"},
                                    ExpiresIn=60)
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert b"<Path>/b/k/e y</Path>" in resp.read()
    tampered = url.replace("k/e", "k/f")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(tampered, timeout=10)
    assert info.value.code == 403 and b"SignatureDoesNotMatch" in info.value.read()


def test_expired_presigned_url(home: Path) -> None:
    creq_now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    query = {"X-Amz-Algorithm": sigv4.ALGORITHM, "X-Amz-Credential": "test/20200101/us-east-1/s3/aws4_request",
             "X-Amz-Date": creq_now.strftime("%Y%m%dT%H%M%SZ"), "X-Amz-Expires": "60",
             "X-Amz-SignedHeaders": "host", "X-Amz-Signature": "0" * 64}
    with pytest.raises(sigv4.SignatureError) as info:
        sigv4.verify("GET", "/b/k", "", {"Host": "h"}, query, None, {"test": "test"})
    assert info.value.kind == "expired"


def test_clock_skew_refused() -> None:
    headers = sigv4.sign_headers("POST", "/", "", {"Host": "h"}, b"{}", "test", "test", "us-east-1", "kinesis",
                                 now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20))
    with pytest.raises(sigv4.SignatureError) as info:
        sigv4.verify("POST", "/", "", headers, {}, None, {"test": "test"})
    assert info.value.kind == "skewed"


def test_our_client_round_trips(api: Any) -> None:
    client = AwsClient(api.endpoint, "test", "test")
    assert client.json("kinesis", "Kinesis_20131202.ListStreams", {})["StreamNames"][0] == "ListStreams"
    with pytest.raises(AwsError) as info:
        client.json("kinesis", "Kinesis_20131202.DescribeStream", {"StreamName": "x"})
    assert info.value.code == "ResourceNotFoundException" and info.value.status == 400
    status, _, body = client.request("s3", "PUT", "/bucket/a key+ü", body=b"abc")
    assert status == 200 and b"<Len>3</Len>" in body


def test_unsigned_request_refused(api: Any) -> None:
    req = urllib.request.Request(api.endpoint + "/", data=b"{}", method="POST",
                                 headers={"X-Amz-Target": "Kinesis_20131202.ListStreams"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 403
    assert json.loads(info.value.read())["__type"] == "MissingAuthenticationTokenException"


async def test_public_bind_needs_real_credentials(home: Path) -> None:
    config = load_config(overrides={"api.host": "0.0.0.0", "api.port": 0})
    with pytest.raises(ConfigError, match="not a loopback address"):
        await AwsApi(config).start()


def _read_head(sock: Any, buffer: bytes) -> tuple[bytes, bytes]:
    """(one response head, what was read after it)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a complete response head"
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, rest


def _raw_exchange(api: Any, head: bytes, body: bytes, wait_for_continue: bool) -> tuple[bytes, bytes, bytes]:
    """Send `head`; when asked, wait for the interim response before sending `body`.
    Returns (interim response head, final response head, final response body)."""
    import socket

    with socket.create_connection(("127.0.0.1", api.api.port), timeout=10) as sock:
        sock.sendall(head)
        interim, rest = _read_head(sock, b"") if wait_for_continue else (b"", b"")
        sock.sendall(body)
        final, rest = _read_head(sock, rest)
        length = next(int(line.split(b":", 1)[1]) for line in final.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed before the whole response body"
            rest += chunk
    return interim, final, rest


def test_expect_100_continue_is_answered_before_the_body(api: Any) -> None:
    body = b"hello"
    headers = sigv4.sign_headers("PUT", "/bucket/key", "", {"Host": f"127.0.0.1:{api.api.port}"}, body, "test",
                                 "test", "us-east-1", "s3")
    lines = ["PUT /bucket/key HTTP/1.1", "Expect: 100-continue", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    interim, final, reply = _raw_exchange(api, ("\r\n".join(lines) + "\r\n\r\n").encode(), body,
                                          wait_for_continue=True)
    assert interim == b"HTTP/1.1 100 Continue"
    assert final.startswith(b"HTTP/1.1 200 ") and b"<Len>5</Len>" in reply


def test_unknown_expectation_is_refused(api: Any) -> None:
    head = b"PUT /bucket/key HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\nContent-Length: 0\r\n\r\n"
    _, final, _ = _raw_exchange(api, head, b"", wait_for_continue=False)
    assert final.startswith(b"HTTP/1.1 417 ")


def test_request_ids_are_unique_and_uuid_shaped(api: Any) -> None:
    import uuid

    s3 = boto3_client(api, "s3")
    seen = {s3.put_object(Bucket="bucket", Key=f"k{i}", Body=b"x")["ResponseMetadata"]["RequestId"]
            for i in range(20)}
    assert len(seen) == 20
    assert all(str(uuid.UUID(request_id)) == request_id for request_id in seen)


@given(headers=st.dictionaries(st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True),
                               st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
                               min_size=1, max_size=8))
def test_canonical_request_reads_multidict_and_dict_headers_alike(headers: dict[str, str]) -> None:
    from multidict import CIMultiDict

    names = sorted(headers)
    mixed_case = {name.title(): value for name, value in headers.items()}
    expected = sigv4.canonical_request("GET", "/p", "a=1", mixed_case, names, sigv4.EMPTY_SHA256, "s3")
    assert sigv4.canonical_request("GET", "/p", "a=1", CIMultiDict(mixed_case), names, sigv4.EMPTY_SHA256,
                                   "s3") == expected
