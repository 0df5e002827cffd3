"""The Kinesis awsJson 1.1 wire layer: ``X-Amz-Target: Kinesis_20131202.<Operation>`` -> engine calls.

Only shape translation lives here: JSON in (blobs base64, timestamps epoch seconds), AWS-shaped JSON out,
errors as ``{"__type": ..., "message": ...}``. SubscribeToShard answers with an event stream.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.awsapi.errors import AwsError
from gateway.awsapi.service import RequestContext, json_error_response, json_response
from gateway.sinks.kinesis import errors, eventstream
from gateway.sinks.kinesis.engine import KinesisEngine

log = logging.getLogger("edgeloop.kinesis.wire")

TARGET_PREFIX = "Kinesis_20131202"
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def _opt(body: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """An optional member of the request, type-checked the way AWS's deserializer does."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        name = getattr(kind, "__name__", "value")
        raise errors.serialization(f"{key} must be a JSON {name}, not {type(value).__name__}")
    return value


def _req(body: dict[str, Any], key: str, kind: type | tuple[type, ...], member: str) -> Any:
    value = _opt(body, key, kind)
    if value is None:
        raise errors.validation(None, member, "Member must not be null")
    return value


def _blob(value: Any, member: str) -> bytes:
    if value is None:
        raise errors.validation(None, member, "Member must not be null")
    if not isinstance(value, str):
        raise errors.serialization(f"{member} must be a base64 string")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise errors.serialization(f"'{value[:40]}' can not be converted to a Blob: invalid base64") from None


def _timestamp(value: Any, member: str) -> float | None:
    """Epoch seconds (botocore) or an ISO-8601 string (other SDKs)."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise errors.serialization(f"{member} must be a timestamp (epoch seconds), not {value!r}")


def _records_out(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "Data": base64.b64encode(r["Data"]).decode("ascii")} for r in records]


class KinesisService:
    """The Kinesis service as mounted on the shared AWS-compatible API."""

    signing_name = "kinesis"
    target_prefixes = (TARGET_PREFIX,)
    streaming = False

    def __init__(self, engine: KinesisEngine) -> None:
        self.engine = engine
        self._ops: dict[str, Handler] = {
            "CreateStream": self.create_stream, "DeleteStream": self.delete_stream,
            "ListStreams": self.list_streams, "DescribeStream": self.describe_stream,
            "DescribeStreamSummary": self.describe_stream_summary, "DescribeLimits": self.describe_limits,
            "ListShards": self.list_shards, "PutRecord": self.put_record, "PutRecords": self.put_records,
            "GetShardIterator": self.get_shard_iterator, "GetRecords": self.get_records,
            "SplitShard": self.split_shard, "MergeShards": self.merge_shards,
            "UpdateShardCount": self.update_shard_count,
            "IncreaseStreamRetentionPeriod": self.increase_retention,
            "DecreaseStreamRetentionPeriod": self.decrease_retention,
            "AddTagsToStream": self.add_tags, "RemoveTagsFromStream": self.remove_tags,
            "ListTagsForStream": self.list_tags, "RegisterStreamConsumer": self.register_consumer,
            "DescribeStreamConsumer": self.describe_consumer, "ListStreamConsumers": self.list_consumers,
            "DeregisterStreamConsumer": self.deregister_consumer,
        }

    async def shutdown(self) -> None:
        """End long-lived responses (SubscribeToShard streams) so the server can stop without waiting."""
        self.engine.end_subscriptions()

    async def stop(self) -> None:
        await self.engine.stop()

    def error_response(self, error: AwsError, request: web.Request, ctx: RequestContext | None) -> web.Response:
        return json_error_response(error)

    async def handle(self, request: web.Request, ctx: RequestContext) -> web.StreamResponse:
        operation = request.headers.get("X-Amz-Target", "").partition(".")[2]
        try:
            body = json.loads(ctx.body or b"{}")
        except ValueError:
            raise errors.serialization("The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise errors.serialization("The request body must be a JSON object")
        if operation == "SubscribeToShard":
            return await self.subscribe_to_shard(request, ctx, body)
        handler = self._ops.get(operation)
        if handler is None:
            raise AwsError("UnknownOperationException", f"Operation {operation or '(none)'} is not supported.")
        return json_response(await handler(body))

    # ---- stream resolution ----------------------------------------------------------------------

    def _stream_name(self, body: dict[str, Any]) -> str:
        """StreamName, or the name inside StreamARN (both may be given if they agree)."""
        name = _opt(body, "StreamName", str)
        arn = _opt(body, "StreamARN", str)
        if arn is not None:
            from_arn = self.engine.stream_by_arn(arn).name
            if name is not None and name != from_arn:
                raise errors.invalid_argument(f"StreamName {name} and StreamARN {arn} name different streams.")
            return from_arn
        if name is None:
            raise errors.invalid_argument("Either StreamName or StreamARN should be provided.")
        return name

    # ---- operations -----------------------------------------------------------------------------

    async def create_stream(self, body: dict[str, Any]) -> dict[str, Any]:
        mode = _opt(body, "StreamModeDetails", dict) or {}
        await self.engine.create_stream(
            _req(body, "StreamName", str, "streamName"), _opt(body, "ShardCount", int),
            mode.get("StreamMode", "PROVISIONED"), _opt(body, "Tags", dict), _opt(body, "MaxRecordSizeInKiB", int))
        return {}

    async def delete_stream(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.engine.delete_stream(self._stream_name(body), bool(_opt(body, "EnforceConsumerDeletion", bool)))
        return {}

    async def list_streams(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.engine.list_streams(_opt(body, "Limit", int), _opt(body, "ExclusiveStartStreamName", str),
                                        _opt(body, "NextToken", str))

    async def describe_stream(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.engine.describe_stream(self._stream_name(body), _opt(body, "Limit", int),
                                           _opt(body, "ExclusiveStartShardId", str))

    async def describe_stream_summary(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.engine.describe_stream_summary(self._stream_name(body))

    async def describe_limits(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.engine.describe_limits()

    async def list_shards(self, body: dict[str, Any]) -> dict[str, Any]:
        has_stream = body.get("StreamName") is not None or body.get("StreamARN") is not None
        shard_filter = _opt(body, "ShardFilter", dict)
        if shard_filter is not None and "Timestamp" in shard_filter:
            shard_filter = {**shard_filter, "Timestamp": _timestamp(shard_filter["Timestamp"], "Timestamp")}
        return self.engine.list_shards(self._stream_name(body) if has_stream else None, _opt(body, "NextToken", str),
                                       _opt(body, "ExclusiveStartShardId", str), _opt(body, "MaxResults", int),
                                       shard_filter)

    async def put_record(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.engine.put_record(self._stream_name(body), _blob(body.get("Data"), "data"),
                                            _req(body, "PartitionKey", str, "partitionKey"),
                                            _opt(body, "ExplicitHashKey", str))

    async def put_records(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._stream_name(body)
        entries = _req(body, "Records", list, "records")
        records = []
        for i, entry in enumerate(entries):
            if type(entry) is not dict:
                raise errors.serialization(f"Records[{i}] must be a JSON object")
            entry["Data"] = _blob(entry.get("Data"), f"records.{i + 1}.member.data")
            records.append(entry)
        return await self.engine.put_records(name, records)

    async def get_shard_iterator(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.engine.get_shard_iterator(
            self._stream_name(body), _req(body, "ShardId", str, "shardId"),
            _req(body, "ShardIteratorType", str, "shardIteratorType"), _opt(body, "StartingSequenceNumber", str),
            _timestamp(body.get("Timestamp"), "Timestamp"))

    async def get_records(self, body: dict[str, Any]) -> dict[str, Any]:
        result = await self.engine.get_records(_req(body, "ShardIterator", str, "shardIterator"),
                                               _opt(body, "Limit", int))
        result["Records"] = _records_out(result["Records"])
        return result

    async def split_shard(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.engine.split_shard(self._stream_name(body), _req(body, "ShardToSplit", str, "shardToSplit"),
                                      _req(body, "NewStartingHashKey", str, "newStartingHashKey"))
        return {}

    async def merge_shards(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.engine.merge_shards(self._stream_name(body), _req(body, "ShardToMerge", str, "shardToMerge"),
                                       _req(body, "AdjacentShardToMerge", str, "adjacentShardToMerge"))
        return {}

    async def update_shard_count(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.engine.update_shard_count(
            self._stream_name(body), _req(body, "TargetShardCount", int, "targetShardCount"),
            _req(body, "ScalingType", str, "scalingType"))

    async def increase_retention(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.engine.increase_retention(self._stream_name(body),
                                             _req(body, "RetentionPeriodHours", int, "retentionPeriodHours"))
        return {}

    async def decrease_retention(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.engine.decrease_retention(self._stream_name(body),
                                             _req(body, "RetentionPeriodHours", int, "retentionPeriodHours"))
        return {}

    async def add_tags(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.engine.add_tags(self._stream_name(body), _req(body, "Tags", dict, "tags"))
        return {}

    async def remove_tags(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.engine.remove_tags(self._stream_name(body), _req(body, "TagKeys", list, "tagKeys"))
        return {}

    async def list_tags(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.engine.list_tags(self._stream_name(body), _opt(body, "ExclusiveStartTagKey", str),
                                     _opt(body, "Limit", int))

    async def register_consumer(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.engine.register_consumer(_req(body, "StreamARN", str, "streamARN"),
                                                   _req(body, "ConsumerName", str, "consumerName"))

    async def describe_consumer(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.engine.describe_consumer(_opt(body, "StreamARN", str), _opt(body, "ConsumerName", str),
                                             _opt(body, "ConsumerARN", str))

    async def list_consumers(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.engine.list_consumers(_req(body, "StreamARN", str, "streamARN"), _opt(body, "MaxResults", int),
                                          _opt(body, "NextToken", str))

    async def deregister_consumer(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.engine.deregister_consumer(_opt(body, "StreamARN", str), _opt(body, "ConsumerName", str),
                                              _opt(body, "ConsumerARN", str))
        return {}

    async def subscribe_to_shard(self, request: web.Request, ctx: RequestContext,
                                 body: dict[str, Any]) -> web.StreamResponse:
        """Validate, then stream: an initial-response event, then SubscribeToShardEvent messages."""
        position = _req(body, "StartingPosition", dict, "startingPosition")
        if "Timestamp" in position:
            position = {**position, "Timestamp": _timestamp(position["Timestamp"], "Timestamp")}
        subscription = self.engine.subscribe(_req(body, "ConsumerARN", str, "consumerARN"),
                                             _req(body, "ShardId", str, "shardId"), position)
        response = web.StreamResponse(status=200, headers={
            "Content-Type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": ctx.request_id})
        events = subscription.events()
        try:
            await response.prepare(request)
            await response.write(eventstream.event("initial-response", b"{}"))
            try:
                async for event in events:
                    event["Records"] = _records_out(event["Records"])
                    payload = json.dumps(event, separators=(",", ":")).encode()
                    await response.write(eventstream.event("SubscribeToShardEvent", payload))
            except AwsError as error:
                payload = json.dumps({"message": error.message}).encode()
                await response.write(eventstream.exception(error.code, payload))
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            log.info("kinesis subscriber went away consumer=%s", subscription.key[0])
        finally:
            await events.aclose()
            await subscription.aclose()
        return response
