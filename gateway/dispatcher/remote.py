"""Actions shipped to a remote AWS-compatible endpoint (an action's ``endpointUrl``): real AWS or another
gateway. Requests are SigV4-signed with the credentials of the ``[rules]`` config section and sent with
aiohttp. Wire formats: Kinesis PutRecords and Firehose PutRecordBatch (awsJson 1.1), SQS SendMessageBatch
(awsJson 1.0), S3 PutObject (path-style REST), IoT data-plane Publish (``POST /topics/{topic}``).
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from yarl import URL

from gateway.awsapi import sigv4
from gateway.dispatcher.errors import ActionError
from gateway.dispatcher.retry import RETRYABLE_CODES, error_from_code
from gateway.dispatcher.targets import ItemResults, batch_results


class RemoteTarget:
    """One remote endpoint (base URL), all action kinds. Concurrent HTTP requests may be served in any
    order, so the dispatcher sends one batch at a time per group (no ``ordered_kinds``)."""

    ordered_kinds: frozenset[str] = frozenset()
    overlap_kinds: frozenset[str] = frozenset()

    def __init__(self, endpoint_url: str, session: aiohttp.ClientSession, access_key: str, secret_key: str,
                 region: str) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ActionError(f"endpointUrl {endpoint_url!r} must be an http(s) URL", "InvalidRequestException")
        self.base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.host = parts.netloc
        self.prefix = parts.path.rstrip("/")
        self.session = session
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region

    async def _send(self, service: str, method: str, path: str, body: bytes, headers: dict[str, str],
                    query: dict[str, str] | None = None) -> tuple[int, bytes, str]:
        raw_path = quote(self.prefix + path, safe="/~")
        raw_query = urlencode(sorted((query or {}).items()), quote_via=quote)
        signed = sigv4.sign_headers(method, raw_path, raw_query, {"Host": self.host, **headers}, body,
                                    self.access_key, self.secret_key, self.region, service)
        signed.pop("Host")
        url = f"{self.base.removesuffix(self.prefix)}{raw_path}" + (f"?{raw_query}" if raw_query else "")
        async with self.session.request(method, URL(url, encoded=True), data=body, headers=signed) as resp:
            return resp.status, await resp.read(), resp.headers.get("Content-Type", "")

    async def _json(self, service: str, target: str, body: dict[str, Any], version: str) -> dict[str, Any]:
        headers = {"X-Amz-Target": target, "Content-Type": f"application/x-amz-json-{version}"}
        status, data, _ = await self._send(service, "POST", "/", json.dumps(body).encode(), headers)
        parsed: dict[str, Any] = json.loads(data) if data else {}
        if status >= 300:
            code = str(parsed.get("__type") or parsed.get("code") or "UnknownError").rsplit("#", 1)[-1]
            raise _status_error(code, str(parsed.get("message") or parsed.get("Message") or ""), status)
        return parsed

    async def kinesis_put_records(self, stream: str, records: list[tuple[bytes, str]]) -> ItemResults:
        result = await self._json("kinesis", "Kinesis_20131202.PutRecords", {
            "StreamName": stream,
            "Records": [{"Data": base64.b64encode(d).decode("ascii"), "PartitionKey": k} for d, k in records],
        }, "1.1")
        return [error_from_code(r["ErrorCode"], r.get("ErrorMessage", "")) if "ErrorCode" in r else None
                for r in result.get("Records", [])]

    async def firehose_put_records(self, stream: str, records: list[bytes]) -> ItemResults:
        result = await self._json("firehose", "Firehose_20150804.PutRecordBatch", {
            "DeliveryStreamName": stream,
            "Records": [{"Data": base64.b64encode(r).decode("ascii")} for r in records],
        }, "1.1")
        return [error_from_code(r["ErrorCode"], r.get("ErrorMessage", ""), 503) if "ErrorCode" in r else None
                for r in result.get("RequestResponses", [])]

    async def sqs_send_messages(self, queue_url: str, bodies: list[str]) -> ItemResults:
        result = await self._json("sqs", "AmazonSQS.SendMessageBatch", {
            "QueueUrl": queue_url, "Entries": [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)],
        }, "1.0")
        return batch_results(len(bodies), result)

    async def s3_put_object(self, bucket: str, key: str, body: bytes) -> None:
        status, data, _ = await self._send("s3", "PUT", f"/{bucket}/{key}", body,
                                           {"Content-Type": "application/octet-stream"})
        if status >= 300:
            raise _status_error(_xml_code(data) or f"HTTP{status}", data[:200].decode("utf-8", "replace"), status)

    async def republish(self, topic: str, qos: int, payload: bytes, properties: dict[str, Any]) -> None:
        status, data, _ = await self._send("iotdata", "POST", f"/topics/{topic}", payload, {},
                                           {"qos": str(qos)})
        if status >= 300:
            parsed = json.loads(data) if data.startswith(b"{") else {}
            raise _status_error(str(parsed.get("__type") or f"HTTP{status}"), str(parsed.get("message", "")), status)


def _status_error(code: str, message: str, status: int) -> ActionError:
    retryable = code in RETRYABLE_CODES or status >= 500 or status == 429
    return ActionError(f"{code}: {message}".rstrip(": "), code, retryable)


def _xml_code(data: bytes) -> str | None:
    start = data.find(b"<Code>")
    end = data.find(b"</Code>")
    if start < 0 or end < start:
        return None
    return data[start + 6:end].decode("utf-8", "replace")
