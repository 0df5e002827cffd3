"""The IoT data-plane HTTP API (boto3 ``iot-data``, signing name ``iotdata``, restJson).

Operations: GetThingShadow, UpdateThingShadow, DeleteThingShadow, ListNamedShadowsForThing and Publish.
Shadow rejections become HTTP statuses with AWS's error types (``x-amzn-ErrorType``), so boto3 raises the
same exception classes as against AWS. A REST update or delete also publishes its MQTT responses
(accepted, delta, documents) like an MQTT request would; nothing is published on `/rejected`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from edgeloop.config import Config
from gateway.awsapi.errors import AwsError
from gateway.awsapi.service import RequestContext, json_response, rest_json_error_response
from gateway.shadow import document as doc
from gateway.shadow.errors import ShadowRejection
from gateway.shadow.topics import validate_key

if TYPE_CHECKING:
    from pathlib import Path

    from gateway.shadow.service import ShadowService
    from gateway.storage.durable import GroupSync

SHADOW_PATH = re.compile(r"/things/([^/]+)/shadow/?")
LIST_PATH = re.compile(r"/api/things/shadow/ListNamedShadowsForThing/([^/]+)/?")
TOPIC_PATH = re.compile(r"/topics/(.+)")
DEFAULT_PAGE_SIZE = 25

ERROR_TYPES = {
    400: "InvalidRequestException", 401: "UnauthorizedException", 403: "ForbiddenException",
    404: "ResourceNotFoundException", 405: "MethodNotAllowedException", 409: "ConflictException",
    413: "RequestEntityTooLargeException", 415: "UnsupportedDocumentEncodingException",
    429: "ThrottlingException", 500: "InternalFailureException", 503: "ServiceUnavailableException",
}
# The API core's signature errors, renamed to the types the iot-data model declares.
AUTH_ERRORS = {
    "MissingAuthenticationTokenException": ("ForbiddenException", 403),
    "InvalidSignatureException": ("ForbiddenException", 403),
    "UnrecognizedClientException": ("UnauthorizedException", 401),
    "IncompleteSignatureException": ("InvalidRequestException", 400),
    "InternalFailure": ("InternalFailureException", 500),
}


def aws_error(rejected: ShadowRejection) -> AwsError:
    return AwsError(ERROR_TYPES.get(rejected.code, "InternalFailureException"), rejected.message, rejected.code,
                    sender=rejected.code < 500)


def invalid(message: str) -> AwsError:
    return AwsError("InvalidRequestException", message, 400)


class IotDataService:
    """The ``iotdata`` service mounted on the AWS-compatible API."""

    signing_name = "iotdata"
    target_prefixes: tuple[str, ...] = ()
    streaming = False

    def __init__(self, shadows: ShadowService, config: Config) -> None:
        self.shadows = shadows
        self.max_body = config.mqtt.max_payload_bytes

    async def handle(self, request: web.Request, ctx: RequestContext) -> web.StreamResponse:
        body = ctx.body or b""
        if len(body) > self.max_body:
            raise AwsError("RequestEntityTooLargeException", "The payload exceeds the maximum size allowed", 413)
        path = request.rel_url.raw_path
        try:
            if match := SHADOW_PATH.fullmatch(path):
                return await self._shadow(request, unquote(match.group(1)), body)
            if match := LIST_PATH.fullmatch(path):
                self._require(request, "GET")
                return self._list(unquote(match.group(1)), request)
            if match := TOPIC_PATH.fullmatch(path):
                self._require(request, "POST")
                return await self._publish(unquote(match.group(1)), request, body)
        except ShadowRejection as exc:
            raise aws_error(exc) from None
        raise AwsError("ResourceNotFoundException", f"No IoT data-plane operation at {request.method} {path}", 404)

    @staticmethod
    def _require(request: web.Request, method: str) -> None:
        if request.method != method:
            raise AwsError("MethodNotAllowedException", f"{request.method} is not allowed here; use {method}", 405)

    async def _shadow(self, request: web.Request, thing: str, body: bytes) -> web.Response:
        key = validate_key(thing, request.query.get("name", ""))
        if request.method == "GET":
            return _document(self.shadows.get(key))
        if request.method == "POST":
            result = await self.shadows.update(key, body)
            return _document(result.accepted)
        if request.method == "DELETE":
            return _document(await self.shadows.delete(key))
        raise AwsError("MethodNotAllowedException", f"{request.method} is not allowed on a shadow; use GET, POST "
                       "or DELETE", 405)

    def _list(self, thing: str, request: web.Request) -> web.Response:
        validate_key(thing)
        page_size = _int_param(request, "pageSize", DEFAULT_PAGE_SIZE, 1, 100)
        names = self.shadows.list_named(thing)
        token = request.query.get("nextToken")
        if token:
            after = _decode_token(token)
            names = [n for n in names if n > after]
        page = names[:page_size]
        body: dict[str, Any] = {"results": page, "timestamp": self.shadows.now()}
        if len(names) > page_size:
            body["nextToken"] = base64.urlsafe_b64encode(page[-1].encode()).decode()
        return json_response(body, "application/json")

    async def _publish(self, topic: str, request: web.Request, body: bytes) -> web.Response:
        broker = self.shadows.broker
        if broker is None:
            raise AwsError("ServiceUnavailableException", "The MQTT broker is not running", 503, sender=False)
        from gateway.mqtt.errors import MqttError
        from gateway.mqtt.packets import Properties

        qos = _int_param(request, "qos", 0, 0, 1)
        retain = _bool_param(request, "retain")
        props = Properties(
            content_type=request.query.get("contentType"),
            response_topic=request.query.get("responseTopic"),
            message_expiry_interval=_int_param(request, "messageExpiry", None, 0, 2**32 - 1),
            payload_format_indicator=_format_indicator(request.headers.get("x-amz-mqtt5-payload-format-indicator")),
            correlation_data=_correlation(request.headers.get("x-amz-mqtt5-correlation-data")),
            user_properties=_user_properties(request.headers.get("x-amz-mqtt5-user-properties")),
        )
        try:
            await broker.publish(topic, body, qos, retain, props, origin="http")
        except (MqttError, ValueError) as exc:
            raise invalid(f"Cannot publish to topic '{topic}': {exc}") from None
        return web.Response(status=200, body=b"", content_type="application/json")

    def error_response(self, error: AwsError, request: web.Request, ctx: RequestContext | None) -> web.Response:
        code, status = AUTH_ERRORS.get(error.code, (error.code, error.status))
        if (code, status) != (error.code, error.status):
            error = AwsError(code, error.message, status, sender=status < 500)
        return rest_json_error_response(error)

    async def stop(self) -> None:
        """Nothing to release: the shadow service owns the store and is stopped by its owner."""


def _document(body: dict[str, Any]) -> web.Response:
    return web.Response(body=doc.encode(body), status=200, content_type="application/json")


def _int_param(request: web.Request, name: str, default: int | None, low: int, high: int) -> Any:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"{name} must be an integer between {low} and {high}, not '{raw}'") from None
    if not low <= value <= high:
        raise invalid(f"{name} must be between {low} and {high}, not {value}")
    return value


def _bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise invalid(f"{name} must be true or false, not '{raw}'")
    return raw == "true"


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid("nextToken is not a token this API returned") from None


def _format_indicator(raw: str | None) -> int | None:
    if raw is None:
        return None
    values = {"UNSPECIFIED_BYTES": 0, "UTF8_DATA": 1}
    if raw not in values:
        raise invalid(f"payloadFormatIndicator must be UNSPECIFIED_BYTES or UTF8_DATA, not '{raw}'")
    return values[raw]


def _correlation(raw: str | None) -> bytes | None:
    if raw is None:
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("correlationData must be base64-encoded") from None


def _user_properties(raw: str | None) -> list[tuple[str, str]]:
    """``x-amz-mqtt5-user-properties``: base64 of a JSON array of single-pair objects (or of that array as a
    JSON string, which is what boto3 sends for the string its caller passes)."""
    if raw is None:
        return []
    try:
        items = json.loads(base64.b64decode(raw, validate=True))
        if isinstance(items, str):  # boto3 JSON-encodes the JSON string the caller passes
            items = json.loads(items)
    except (binascii.Error, ValueError):
        raise invalid("userProperties must be a base64-encoded JSON array of objects") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise invalid("userProperties must be a JSON array of objects such as [{\"name\": \"value\"}]")
    return [(str(k), v if isinstance(v, str) else json.dumps(v)) for item in items for k, v in item.items()]


async def create_shadow_http_service(
    home: str | Path, config: Config, sync: GroupSync | None, shadows: ShadowService
) -> IotDataService:
    """The ``iotdata`` AwsService over a running `ShadowService` (`home` and `sync` are unused: the shadow
    store commits through SQLite, configured by the service's owner)."""
    del home, sync
    return IotDataService(shadows, config)


__all__ = ["IotDataService", "create_shadow_http_service"]
