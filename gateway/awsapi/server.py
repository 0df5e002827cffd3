"""One aiohttp server for every emulated AWS service: routing, SigV4 verification, error rendering.

It runs on aiohttp's low-level server: every request goes to `AwsApi._dispatch`, which routes by X-Amz-Target
or credential scope itself, so aiohttp's URL router and middleware chain would only add work per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11, RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from edgeloop.config import ApiSection, Config
from edgeloop.errors import ConfigError
from gateway.awsapi import sigv4
from gateway.awsapi.errors import AwsError
from gateway.awsapi.service import AwsService, RequestContext, json_error_response

log = logging.getLogger("edgeloop.awsapi")
REQUEST_ID_HEADERS = {"s3": "x-amz-request-id"}  # REST-XML (S3); the JSON and REST-JSON services: x-amzn-RequestId

MAX_BODY = 64 * 1024 * 1024  # non-streaming services: well above Kinesis's 5 MiB PutRecords (base64-inflated)
MAX_FIELD_SIZE = 65536  # header values: presigned-URL-sized Authorization and policy headers fit
DEFAULT_KEYS = (ApiSection.access_key, ApiSection.secret_key)

# AWS's error code for each signature failure, per service family.
_AUTH_CODES: dict[str, dict[str, tuple[str, int]]] = {
    "s3": {
        "missing": ("AccessDenied", 403), "malformed": ("AuthorizationHeaderMalformed", 400),
        "unknown-key": ("InvalidAccessKeyId", 403), "mismatch": ("SignatureDoesNotMatch", 403),
        "skewed": ("RequestTimeTooSkewed", 403), "expired": ("AccessDenied", 403),
    },
    "sqs": {
        "missing": ("MissingAuthenticationToken", 403), "malformed": ("IncompleteSignature", 400),
        "unknown-key": ("InvalidClientTokenId", 403), "mismatch": ("SignatureDoesNotMatch", 403),
        "skewed": ("SignatureDoesNotMatch", 403), "expired": ("SignatureDoesNotMatch", 403),
    },
    "default": {
        "missing": ("MissingAuthenticationTokenException", 403), "malformed": ("IncompleteSignatureException", 400),
        "unknown-key": ("UnrecognizedClientException", 403), "mismatch": ("InvalidSignatureException", 403),
        "skewed": ("InvalidSignatureException", 403), "expired": ("InvalidSignatureException", 403),
    },
}

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RouteMatch = Callable[[web.Request], bool]


def auth_error(service: str, exc: sigv4.SignatureError) -> AwsError:
    """The AWS error a service returns for a refused signature."""
    code, status = _AUTH_CODES.get(service, _AUTH_CODES["default"])[exc.kind]
    return AwsError(code, exc.message, status)


class RequestIds:
    """Unique request ids shaped like UUIDs: a random prefix per server, then a counter (no urandom per request)."""

    def __init__(self) -> None:
        self._prefix = str(uuid.uuid4())[:24]
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):012x}"


async def answer_expect(request: web.BaseRequest) -> None:
    """``Expect: 100-continue``: tell the client to send the body (what aiohttp's router does for routed apps)."""
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.version == HttpVersion11:
        if expect.lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the response proper has not started yet
        else:
            raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AwsApi:
    """The AWS-compatible API: register services, then `start()`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._services: list[AwsService] = []
        self._by_target: dict[str, AwsService] = {}
        self._by_signing_name: dict[str, AwsService] = {}
        self._extra_routes: list[tuple[RouteMatch, RouteHandler]] = []
        self._secrets = {config.api.access_key: config.api.secret_key}
        self._request_ids = RequestIds()
        self._runner: web.ServerRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        host = self.config.api.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def register(self, service: AwsService) -> None:
        """Mount a service; its X-Amz-Target prefixes and signing name must be unique."""
        for prefix in service.target_prefixes:
            if prefix in self._by_target:
                raise ValueError(f"X-Amz-Target prefix {prefix!r} is already served")
            self._by_target[prefix] = service
        if service.signing_name in self._by_signing_name:
            raise ValueError(f"a service signed as {service.signing_name!r} is already registered")
        self._by_signing_name[service.signing_name] = service
        self._services.append(service)

    def add_route(self, match: RouteMatch, handler: RouteHandler) -> None:
        """Serve the requests `match` accepts with `handler` (it does its own auth), ahead of the AWS services.
        Handlers get aiohttp's low-level request: route on `request.path`, there is no `match_info`."""
        self._extra_routes.append((match, handler))

    async def start(self) -> int:
        api = self.config.api
        if not _is_loopback(api.host) and (api.access_key, api.secret_key) == DEFAULT_KEYS:
            raise ConfigError(
                f"api.host {api.host!r} is not a loopback address: set api.access_key and api.secret_key "
                "in the config (the default test/test credentials are only allowed on loopback)"
            )
        server = web.Server(self._serve, request_factory=self._make_request, access_log=None,
                            max_field_size=MAX_FIELD_SIZE)
        self._runner = web.ServerRunner(server)
        await self._runner.setup()
        site = web.TCPSite(self._runner, api.host, api.port, reuse_address=True)
        await site.start()
        listening = site._server
        # typeshed's AbstractServer has no `sockets`; asyncio's and uvloop's servers both do.
        assert listening is not None and listening.sockets  # type: ignore[attr-defined]
        self.port = listening.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        log.info("aws api listening url=%s services=%s", self.url, ",".join(s.signing_name for s in self._services))
        return self.port

    async def stop(self) -> None:
        """Stop serving. Services with long-lived responses (event streams) end them first via `shutdown()`."""
        for service in self._services:
            shutdown = getattr(service, "shutdown", None)
            if shutdown is not None:
                await shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _make_request(self, message: RawRequestMessage, payload: StreamReader, protocol: RequestHandler,
                      writer: AbstractStreamWriter, task: asyncio.Task[None]) -> web.Request:
        return web.Request(message, payload, protocol, writer, task, asyncio.get_running_loop(),
                           client_max_size=MAX_BODY)

    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        assert isinstance(request, web.Request)
        if hdrs.EXPECT in request.headers:
            await answer_expect(request)
        return await self._dispatch(request)

    def _route(self, request: web.Request) -> AwsService | None:
        target = request.headers.get("X-Amz-Target")
        if target:
            service = self._by_target.get(target.split(".", 1)[0])
            if service is not None:
                return service
        credential = sigv4.credential_of(request.headers, request.query)
        if credential is not None:
            return self._by_signing_name.get(credential.service)
        return self._by_signing_name.get("s3")  # unsigned requests are S3's (anonymous / browser) by AWS habit

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        for match, handler in self._extra_routes:
            if match(request):
                return await handler(request)
        request_id = self._request_ids.next()
        service = self._route(request)
        if service is None:
            error = AwsError("UnknownServiceException", "No service here matches this request's X-Amz-Target "
                             "or credential scope", 400)
            return json_error_response(error)
        ctx: RequestContext | None = None
        try:
            body = None if service.streaming else await request.read()
            body_hash = hashlib.sha256(body).hexdigest() if body is not None else None
            try:
                url = request.rel_url
                credential = sigv4.verify(request.method, url.raw_path, url.raw_query_string,
                                          request.headers, request.query, body_hash, self._secrets)
            except sigv4.SignatureError as exc:
                log.info("signature refused service=%s reason=%s", service.signing_name, exc.kind)
                raise auth_error(service.signing_name, exc) from None
            ctx = RequestContext(service.signing_name, credential.region, credential.access_key, request_id, body)
            response = await service.handle(request, ctx)
        except AwsError as error:
            response = service.error_response(error, request, ctx)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("internal error service=%s path=%s", service.signing_name, request.path)
            failure = AwsError("InternalFailure", "The request processing has failed because of an unknown error.",
                               500, sender=False)
            response = service.error_response(failure, request, ctx)
        if not response.prepared:  # the one header botocore reads the request id from, per protocol family
            response.headers.setdefault(REQUEST_ID_HEADERS.get(service.signing_name, "x-amzn-RequestId"), request_id)
        return response
