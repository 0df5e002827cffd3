"""S3's rest-xml wire layer: path-style routing (query flags first), then the handlers in `http_*` modules."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import unquote

from aiohttp import web

from gateway.awsapi.errors import AwsError
from gateway.awsapi.service import RequestContext, xml_error_response
from gateway.sinks.s3 import errors, http_bucket, http_multipart, http_object
from gateway.sinks.s3.engine import S3Engine


@dataclass
class S3Call:
    """One parsed S3 request."""

    request: web.Request
    ctx: RequestContext
    engine: S3Engine
    bucket: str
    key: str

    @cached_property
    def query(self) -> dict[str, str]:
        return dict(self.request.query)

    @cached_property
    def headers(self) -> dict[str, str]:
        """Request headers with lower-case names."""
        return {k.lower(): v for k, v in self.request.headers.items()}

    @property
    def request_id(self) -> str:
        return self.ctx.request_id

    @property
    def base_url(self) -> str:
        return f"{self.request.scheme}://{self.request.host}"


Handler = Callable[[S3Call], Awaitable[web.StreamResponse]]


def split_path(raw_path: str) -> tuple[str, str]:
    """``/bucket/some/key`` -> ("bucket", "some/key"), percent-decoding each part."""
    path = raw_path.split("?", 1)[0].lstrip("/")
    bucket, _, key = path.partition("/")
    return unquote(bucket), unquote(key)


# Sub-resources S3 has but this emulator does not: answering them as a plain GET/PUT would be wrong.
UNSUPPORTED = frozenset({
    "acl", "policy", "policyStatus", "cors", "lifecycle", "website", "logging", "encryption", "replication",
    "ownershipControls", "publicAccessBlock", "accelerate", "requestPayment", "analytics", "inventory", "metrics",
    "intelligent-tiering", "object-lock", "legal-hold", "retention", "restore", "select", "torrent", "attributes",
    "session", "renameObject",
})
UNSUPPORTED_ON_KEYS = UNSUPPORTED | {"tagging"}  # object tagging (bucket tagging is supported)


def _route(method: str, has_key: bool, query: dict[str, str]) -> Handler:
    if not has_key:
        table = http_bucket.ROUTES
    elif "uploads" in query or "uploadId" in query:
        table = http_multipart.ROUTES
    else:
        table = http_object.ROUTES
    unsupported = sorted((UNSUPPORTED_ON_KEYS if has_key else UNSUPPORTED).intersection(query))
    if not unsupported:
        for (route_method, flag), handler in table.items():
            if route_method == method and (flag is None or flag in query):
                return handler
    flags = ", ".join(unsupported or sorted(query)) or "none"
    raise errors.not_implemented(f"{method} on a {'key' if has_key else 'bucket'} with query {flags}")


class S3Service:
    """The `AwsService` for S3 (streaming: the handlers read `request.content` themselves)."""

    signing_name = "s3"
    target_prefixes: tuple[str, ...] = ()
    streaming = True

    def __init__(self, engine: S3Engine) -> None:
        self.engine = engine

    async def handle(self, request: web.Request, ctx: RequestContext) -> web.StreamResponse:
        bucket, key = split_path(request.raw_path)
        call = S3Call(request, ctx, self.engine, bucket, key)
        if not bucket:
            if request.method != "GET":
                raise errors.method_not_allowed(request.method, "SERVICE")
            return await http_bucket.list_buckets(call)
        return await _route(request.method, bool(key), call.query)(call)

    def error_response(self, error: AwsError, request: web.Request, ctx: RequestContext | None) -> web.Response:
        request_id = ctx.request_id if ctx is not None else str(uuid.uuid4())
        response = xml_error_response(error, request_id, resource=request.path)
        if request.method == "HEAD":
            response.body = b""
        return response

    async def stop(self) -> None:
        await self.engine.stop()
