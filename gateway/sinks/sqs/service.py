"""SQS on the shared AWS API port: awsJson 1.0 (``X-Amz-Target: AmazonSQS.<Op>``) and the legacy query protocol."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from edgeloop.config import Config
from gateway.awsapi.errors import AwsError
from gateway.awsapi.service import RequestContext, json_error_response, json_response
from gateway.sinks.sqs import query
from gateway.sinks.sqs.engine import SqsEngine
from gateway.sinks.sqs.errors import SqsError, query_code_of
from gateway.sinks.sqs.operations import OPERATIONS, Call, check_member_types
from gateway.storage.durable import GroupSync

log = logging.getLogger("edgeloop.sqs")

JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
TARGET_PREFIX = "AmazonSQS"


def _is_json(request: web.Request) -> bool:
    return "X-Amz-Target" in request.headers


class SqsService:
    """The AwsService for SQS; `engine` is the in-process API."""

    signing_name = "sqs"
    target_prefixes = (TARGET_PREFIX,)
    streaming = False

    def __init__(self, engine: SqsEngine) -> None:
        self.engine = engine

    async def stop(self) -> None:
        await self.engine.stop()

    async def handle(self, request: web.Request, ctx: RequestContext) -> web.StreamResponse:
        if _is_json(request):
            return await self._handle_json(request, ctx)
        return await self._handle_query(request, ctx)

    async def _handle_json(self, request: web.Request, ctx: RequestContext) -> web.Response:
        operation = request.headers["X-Amz-Target"].partition(".")[2]
        try:
            params = json.loads(ctx.body or b"{}")
        except ValueError:
            raise SqsError("SerializationException", "The request body is not valid JSON.") from None
        if not isinstance(params, dict):
            raise SqsError("SerializationException", "The request body must be a JSON object.")
        handler = OPERATIONS.get(operation)
        if handler is None:
            raise SqsError("UnknownOperationException", f"The operation {operation!r} is not supported; "
                           f"supported: {', '.join(sorted(OPERATIONS))}.")
        result = await handler(self.engine, self._call(request, ctx, params))
        return json_response(result, JSON_CONTENT_TYPE)

    async def _handle_query(self, request: web.Request, ctx: RequestContext) -> web.Response:
        params = dict(request.query)
        if ctx.body:
            params.update(parse_qsl(ctx.body.decode("utf-8"), keep_blank_values=True))
        action, members = query.decode_request(params)
        handler = OPERATIONS.get(action)
        if handler is None:
            raise SqsError("InvalidAction", f"The action {action or '(none)'} is not valid for this endpoint.")
        result = await handler(self.engine, self._call(request, ctx, members))
        return web.Response(text=query.encode_response(action, result, ctx.request_id), content_type="text/xml")

    def _call(self, request: web.Request, ctx: RequestContext, params: dict[str, Any]) -> Call:
        check_member_types(params)
        if not params.get("QueueUrl") and request.path.count("/") >= 2:
            # SDKs that post to the queue URL itself (JS v3, Java v1, .NET) may leave QueueUrl out.
            params["QueueUrl"] = str(request.url.with_query(None))
        return Call(params, request.host, ctx.access_key)

    def error_response(self, error: AwsError, request: web.Request, ctx: RequestContext | None) -> web.Response:
        request_id = ctx.request_id if ctx else request.headers.get("amz-sdk-invocation-id", "")
        if _is_json(request) or request.content_type.startswith("application/x-amz-json"):
            if "x-amzn-query-error" not in error.headers:
                kind = "Sender" if error.sender else "Receiver"
                error.headers["x-amzn-query-error"] = f"{query_code_of(error)};{kind}"
            return json_error_response(error, JSON_CONTENT_TYPE)
        body = query.encode_error(query_code_of(error), error.message, error.sender, request_id)
        response = web.Response(text=body, status=error.status, content_type="text/xml")
        response.headers["x-amzn-RequestId"] = request_id
        return response


async def create_sqs_service(home: Path, config: Config, sync: GroupSync, built: dict[str, Any]) -> SqsService:
    """Registry factory: the started SQS service."""
    engine = SqsEngine(home, config, sync)
    await engine.start()
    return SqsService(engine)

