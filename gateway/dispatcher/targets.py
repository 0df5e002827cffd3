"""Where actions go: the in-process sinks (and the broker, for republish).

A target offers one batched call per action kind. Batched calls return one result per item, in order:
None for success, an ActionError for an item the service refused (the caller retries only those).
A failure of the whole call raises. The remote variant (same interface) is in `gateway.dispatcher.remote`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from gateway.dispatcher.errors import ActionError
from gateway.dispatcher.retry import error_from_code
from gateway.mqtt.packets import Properties

ItemResults = list[ActionError | None]

# AWS's per-call limits for the batched operations the dispatcher uses.
KINESIS_BATCH = (500, 5 * 1024 * 1024)
FIREHOSE_BATCH = (500, 4 * 1024 * 1024)
SQS_BATCH = (10, 256 * 1024)


class ActionTarget(Protocol):
    # Action kinds whose calls take effect in the order they are made even when several are in flight at
    # once; the dispatcher sends a group's batches concurrently for these, one after the other otherwise.
    ordered_kinds: frozenset[str]
    # Of those, the kinds whose calls may also overlap calls of the next round, still waiting for their
    # durable commit; the dispatcher then starts the next round without waiting (see `Dispatcher._run_lane`).
    overlap_kinds: frozenset[str]

    async def kinesis_put_records(self, stream: str, records: list[tuple[bytes, str]]) -> ItemResults: ...
    async def firehose_put_records(self, stream: str, records: list[bytes]) -> ItemResults: ...
    async def sqs_send_messages(self, queue_url: str, bodies: list[str]) -> ItemResults: ...
    async def s3_put_object(self, bucket: str, key: str, body: bytes) -> None: ...
    async def republish(self, topic: str, qos: int, payload: bytes, properties: dict[str, Any]) -> None: ...


def mqtt_properties(props: dict[str, Any]) -> Properties | None:
    """The broker's Properties for a republish action's rendered headers."""
    if not props:
        return None
    return Properties(
        payload_format_indicator=props.get("payload_format_indicator"),
        message_expiry_interval=props.get("message_expiry"),
        content_type=props.get("content_type"),
        response_topic=props.get("response_topic"),
        correlation_data=props.get("correlation_data"),
        user_properties=list(props.get("user_properties", [])),
    )


class LocalTarget:
    """The gateway's own sinks, called in-process through their engines.

    The Kinesis and SQS engines take a batch in (sequence numbers, queue order) before their first await
    (the durable commit), so concurrent calls land in call order: ``ordered_kinds``. Both may overlap the
    next round (``overlap_kinds``): each call makes readable only what it made durable itself.
    """

    ordered_kinds = frozenset({"kinesis", "sqs"})
    overlap_kinds = frozenset({"kinesis", "sqs"})

    def __init__(self, services: dict[str, Any], broker: Callable[[], Any]) -> None:
        self.services = services
        self._broker = broker

    def _engine(self, name: str) -> Any:
        service = self.services.get(name)
        if service is None:
            raise ActionError(f"the {name} sink is not running in this gateway", "ServiceUnavailable", False)
        return service.engine

    async def kinesis_put_records(self, stream: str, records: list[tuple[bytes, str]]) -> ItemResults:
        engine = self._engine("kinesis")
        if len(records) == 1:
            data, key = records[0]
            await engine.put_record(stream, data, key)
            return [None]
        refused = await engine.put_pairs(stream, records)
        results: ItemResults = [None] * len(records)
        for i, shard_id in refused.items():
            results[i] = error_from_code("ProvisionedThroughputExceededException",
                                         engine.rate_exceeded(shard_id, stream))
        return results

    async def firehose_put_records(self, stream: str, records: list[bytes]) -> ItemResults:
        engine = self._engine("firehose")
        if len(records) == 1:
            await engine.put_record(stream, records[0])
            return [None]
        result = await engine.put_record_batch(stream, records)
        return [error_from_code(r["ErrorCode"], r.get("ErrorMessage", ""), 503) if "ErrorCode" in r else None
                for r in result["RequestResponses"]]

    async def sqs_send_messages(self, queue_url: str, bodies: list[str]) -> ItemResults:
        engine = self._engine("sqs")
        if len(bodies) == 1:
            await engine.send_message(queue_url, bodies[0])
            return [None]
        result = await engine.send_message_batch(queue_url, [{"Id": str(i), "MessageBody": b}
                                                             for i, b in enumerate(bodies)])
        return batch_results(len(bodies), result)

    async def s3_put_object(self, bucket: str, key: str, body: bytes) -> None:
        await self._engine("s3").put_object(bucket, key, body)

    async def republish(self, topic: str, qos: int, payload: bytes, properties: dict[str, Any]) -> None:
        broker = self._broker()
        if broker is None:
            raise ActionError("the MQTT broker is not running", "ServiceUnavailable", True)
        await broker.publish(topic, payload, qos, False, mqtt_properties(properties), origin="rules")


def batch_results(count: int, result: dict[str, Any]) -> ItemResults:
    """Per-entry results of an SQS SendMessageBatch response (entries were given Ids "0".."n-1")."""
    out: ItemResults = [None] * count
    for failed in result.get("Failed", []):
        sender = failed.get("SenderFault", True)
        out[int(failed["Id"])] = error_from_code(failed.get("Code", "InternalError"), failed.get("Message", ""),
                                                 400 if sender else 500)
    return out
