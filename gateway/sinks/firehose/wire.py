"""Firehose's awsJson wire layer (``X-Amz-Target: Firehose_20150804.<Operation>``)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from gateway.awsapi.errors import AwsError
from gateway.awsapi.service import RequestContext, json_error_response, json_response
from gateway.sinks.firehose import errors
from gateway.sinks.firehose.engine import FirehoseEngine

PREFIX = "Firehose_20150804"


def _blob(record: Any) -> bytes:
    if not isinstance(record, dict) or not isinstance(record.get("Data"), str):
        raise errors.invalid("Each record needs a Data blob (base64)")
    try:
        return base64.b64decode(record["Data"], validate=True)
    except (binascii.Error, ValueError):
        raise errors.FirehoseError("SerializationException", "Record Data is not valid base64") from None


class FirehoseService:
    """The `AwsService` for Firehose."""

    signing_name = "firehose"
    target_prefixes = (PREFIX,)
    streaming = False

    def __init__(self, engine: FirehoseEngine) -> None:
        self.engine = engine

    async def handle(self, request: web.Request, ctx: RequestContext) -> web.StreamResponse:
        operation = request.headers.get("X-Amz-Target", "").partition(".")[2]
        try:
            body = json.loads(ctx.body or b"{}")
        except ValueError:
            raise errors.FirehoseError("SerializationException", "The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise errors.FirehoseError("SerializationException", "The request body must be a JSON object")
        handler = getattr(self, f"op_{operation}", None)
        if handler is None:
            raise AwsError("UnknownOperationException", f"Operation {operation or '(none)'} is not supported here")
        return json_response(await handler(body))

    def error_response(self, error: AwsError, request: web.Request, ctx: RequestContext | None) -> web.Response:
        return json_error_response(error)

    async def stop(self) -> None:
        await self.engine.stop()

    # ---- operations ----------------------------------------------------------------------------------------

    async def op_CreateDeliveryStream(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"DeliveryStreamARN": await self.engine.create_delivery_stream(body)}

    async def op_DeleteDeliveryStream(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.engine.delete_delivery_stream(_name(body))
        return {}

    async def op_DescribeDeliveryStream(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"DeliveryStreamDescription": self.engine.describe_delivery_stream(_name(body))}

    async def op_ListDeliveryStreams(self, body: dict[str, Any]) -> dict[str, Any]:
        limit = body.get("Limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= 10000:
            raise errors.invalid("Limit must be an integer between 1 and 10000")
        names, more = self.engine.list_delivery_streams(limit, body.get("DeliveryStreamType"),
                                                        body.get("ExclusiveStartDeliveryStreamName"))
        return {"DeliveryStreamNames": names, "HasMoreDeliveryStreams": more}

    async def op_UpdateDestination(self, body: dict[str, Any]) -> dict[str, Any]:
        update = body.get("ExtendedS3DestinationUpdate", body.get("S3DestinationUpdate"))
        if not isinstance(update, dict):
            raise errors.invalid("An ExtendedS3DestinationUpdate or S3DestinationUpdate is required (other "
                                 "destinations are not supported here)")
        await self.engine.update_destination(_name(body), str(body.get("CurrentDeliveryStreamVersionId", "")),
                                             str(body.get("DestinationId", "")), update)
        return {}

    async def op_TagDeliveryStream(self, body: dict[str, Any]) -> dict[str, Any]:
        tags = {t["Key"]: t.get("Value", "") for t in body.get("Tags") or [] if isinstance(t, dict) and "Key" in t}
        await self.engine.tag_delivery_stream(_name(body), tags)
        return {}

    async def op_UntagDeliveryStream(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.engine.untag_delivery_stream(_name(body), [str(k) for k in body.get("TagKeys") or []])
        return {}

    async def op_ListTagsForDeliveryStream(self, body: dict[str, Any]) -> dict[str, Any]:
        tags, more = self.engine.list_tags(_name(body), body.get("ExclusiveStartTagKey"), int(body.get("Limit", 50)))
        return {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()], "HasMoreTags": more}

    async def op_PutRecord(self, body: dict[str, Any]) -> dict[str, Any]:
        record_id = await self.engine.put_record(_name(body), _blob(body.get("Record")))
        return {"RecordId": record_id, "Encrypted": False}

    async def op_PutRecordBatch(self, body: dict[str, Any]) -> dict[str, Any]:
        records = body.get("Records")
        if not isinstance(records, list):
            raise errors.invalid("Records must be a list of 1 to 500 records")
        return await self.engine.put_record_batch(_name(body), [_blob(r) for r in records])


def _name(body: dict[str, Any]) -> str:
    name = body.get("DeliveryStreamName")
    if not isinstance(name, str) or not name:
        raise errors.invalid("DeliveryStreamName is required")
    return name


__all__ = ["FirehoseService"]
