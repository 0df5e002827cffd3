"""SubscribeToShard: a consumer's push feed of one shard, as a series of SubscribeToShardEvent dicts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from gateway.sinks.kinesis import errors
from gateway.sinks.kinesis.model import ITERATOR_TYPES, Shard, Stream

if TYPE_CHECKING:
    from gateway.sinks.kinesis.engine import KinesisEngine

HEARTBEAT_SECS = 5.0  # AWS sends an event at least this often, even with no records
EVENT_RECORDS = 10000


class Subscription:
    """One open subscription; iterate `events()` until it ends (after `lifetime` seconds, like AWS's 5 minutes)."""

    def __init__(self, engine: KinesisEngine, stream: Stream, shard: Shard, key: tuple[str, str], counter: int,
                 lifetime: float) -> None:
        self.engine, self.stream, self.shard, self.key = engine, stream, shard, key
        self.counter = counter
        self.deadline = time.monotonic() + lifetime
        self._last_arrival = shard.created_ms

    def _event(self, records: list[tuple[int, int, str, bytes]]) -> dict[str, Any]:
        shard = self.shard
        if records:
            self._last_arrival = records[-1][1]
        event: dict[str, Any] = {
            "Records": [self.engine.record_dict(shard, r) for r in records],
            "ContinuationSequenceNumber": shard.sequence_of(self.counter - 1, self._last_arrival),
            "MillisBehindLatest": self.engine.millis_behind(shard, self.counter),
        }
        return event

    async def events(self) -> AsyncGenerator[dict[str, Any]]:
        try:
            while time.monotonic() < self.deadline and not self.engine.closing:
                if self.stream.deleted:
                    raise errors.stream_not_found(self.stream.name, self.engine.account)
                changed = self.shard.changed
                records, self.counter = await self.engine.read_shard(self.stream, self.shard, self.counter,
                                                                     EVENT_RECORDS)
                if records:
                    yield self._event(records)
                    continue
                if not self.shard.is_open and self.counter > self.shard.committed:
                    final = self._event([])
                    final["ChildShards"] = self.engine.child_shards(self.stream, self.shard)
                    yield final
                    return
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    await asyncio.wait_for(changed.wait(), min(HEARTBEAT_SECS, remaining))
                except TimeoutError:
                    yield self._event([])
        finally:
            self.engine.end_subscription(self.key)

    async def aclose(self) -> None:
        """End the subscription early (the client went away)."""
        with contextlib.suppress(Exception):
            self.engine.end_subscription(self.key)


def open_subscription(engine: KinesisEngine, consumer_arn: str, shard_id: str,
                      starting_position: dict[str, Any]) -> Subscription:
    """Validate a SubscribeToShard request and reserve the (consumer, shard) pair."""
    if not isinstance(consumer_arn, str):
        raise errors.validation(None, "consumerARN", "Member must not be null")
    stream, _ = engine.consumer(None, None, consumer_arn)
    shard = engine.shard(stream, shard_id)
    if not isinstance(starting_position, dict) or "Type" not in starting_position:
        raise errors.validation(None, "startingPosition.type", "Member must not be null")
    kind = starting_position["Type"]
    if kind not in ITERATOR_TYPES:
        raise errors.validation(kind, "startingPosition.type",
                                f"Member must satisfy enum value set: [{', '.join(ITERATOR_TYPES)}]")
    counter = engine.start_counter(stream, shard, kind, starting_position.get("SequenceNumber"),
                               starting_position.get("Timestamp"), "SubscribeToShard")
    key = (consumer_arn, shard.shard_id)
    engine.begin_subscription(key)
    return Subscription(engine, stream, shard, key, counter, engine.settings.subscription_secs)
