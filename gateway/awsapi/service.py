"""The contract between the API server and each emulated service, and the response shapes they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from xml.sax.saxutils import escape

from aiohttp import web

from gateway.awsapi.errors import AwsError
from gateway.awsapi.jsonenc import compact_encoder

_to_json = compact_encoder()


@dataclass
class RequestContext:
    """What the server learned about a request before handing it to a service."""

    service: str
    region: str
    access_key: str
    request_id: str
    body: bytes | None  # None for streaming services: read request.content


class AwsService(Protocol):
    """One emulated AWS service, mounted on the shared API port."""

    signing_name: str  # the SigV4 credential-scope service name: "kinesis", "sqs", "s3", ...
    target_prefixes: tuple[str, ...]  # X-Amz-Target prefixes it serves; () for REST services
    streaming: bool  # True: the server does not read the body for it

    async def handle(self, request: web.Request, ctx: RequestContext) -> web.StreamResponse: ...

    def error_response(
        self, error: AwsError, request: web.Request, ctx: RequestContext | None
    ) -> web.Response: ...


def json_response(
    body: dict[str, Any], content_type: str = "application/x-amz-json-1.1", status: int = 200
) -> web.Response:
    """An awsJson response."""
    return web.Response(body=_to_json(body).encode(), status=status, content_type=content_type)


def json_error_response(error: AwsError, content_type: str = "application/x-amz-json-1.1") -> web.Response:
    """An awsJson error: ``{"__type": code, "message": ...}`` (what botocore's JSON parser reads)."""
    body = {"__type": error.code, "message": error.message, **error.extra}
    response = json_response(body, content_type, error.status)
    response.headers.update(error.headers)
    return response


def rest_json_error_response(error: AwsError) -> web.Response:
    """A restJson error: the code in ``x-amzn-ErrorType``, the message in the body."""
    response = json_response({"message": error.message, **error.extra}, "application/json", error.status)
    response.headers["x-amzn-ErrorType"] = error.code
    response.headers.update(error.headers)
    return response


def xml_error_response(error: AwsError, request_id: str, resource: str | None = None) -> web.Response:
    """An S3-style XML error document."""
    parts = [f"<Code>{escape(error.code)}</Code>", f"<Message>{escape(error.message)}</Message>"]
    if resource is not None:
        parts.append(f"<Resource>{escape(resource)}</Resource>")
    parts += [f"<{k}>{escape(str(v))}</{k}>" for k, v in error.extra.items()]
    parts.append(f"<RequestId>{escape(request_id)}</RequestId>")
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts) + "</Error>"
    # HEAD responses carry no body; aiohttp drops it for HEAD automatically.
    response = web.Response(body=body.encode(), status=error.status, content_type="application/xml")
    response.headers.update(error.headers)
    response.headers["x-amz-request-id"] = request_id
    return response
