"""Enhanced fan-out consumers: Register/Describe/List/DeregisterStreamConsumer and SubscribeToShard."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

from gateway.sinks.kinesis import errors
from gateway.sinks.kinesis.errors import KinesisError
from gateway.sinks.kinesis.listing import now_ms
from gateway.sinks.kinesis.model import Consumer, Stream
from gateway.sinks.kinesis.subscription import Subscription, open_subscription
from gateway.sinks.kinesis.tokens import TokenSigner

if TYPE_CHECKING:
    from gateway.sinks.kinesis.engine import KinesisEngine

MAX_CONSUMERS = 20


class ConsumersMixin:
    """Consumer operations, mixed into `KinesisEngine` (they use its lookups and state)."""

    # Declared for the type checker; `KinesisEngine` defines them.
    account: str
    streams: dict[str, Stream]
    signer: TokenSigner
    closing: bool
    _subscriptions: set[tuple[str, str]]
    if TYPE_CHECKING:
        def stream_by_arn(self, arn: str) -> Stream: ...
        def _check_name(self, name: object, member: str = "streamName") -> str: ...
        async def _save(self, stream: Stream) -> None: ...
        @staticmethod
        def _check_limit(value: int | None, member: str, maximum: int, default: int) -> int: ...
        def _page_state(self, kind: str, token: str) -> dict[str, Any]: ...

    async def register_consumer(self, stream_arn: str, consumer_name: str) -> dict[str, Any]:
        stream = self.stream_by_arn(stream_arn)
        self._check_name(consumer_name, "consumerName")
        if consumer_name in stream.consumers:
            raise errors.KinesisError("ResourceInUseException", f"Consumer {stream.consumers[consumer_name].arn} "
                                      f"under account {self.account} already exists.")
        if len(stream.consumers) >= MAX_CONSUMERS:
            raise errors.limit_exceeded(f"Stream {stream.name} under account {self.account} already has "
                                        f"{MAX_CONSUMERS} registered consumers, the most allowed.")
        created = int(time.time())
        consumer = Consumer(consumer_name, f"{stream.arn}/consumer/{consumer_name}:{created}", created)
        stream.consumers[consumer_name] = consumer
        await self._save(stream)
        return {"Consumer": consumer.describe()}

    def consumer(self, stream_arn: str | None, consumer_name: str | None,
                 consumer_arn: str | None) -> tuple[Stream, Consumer]:
        """The consumer named by its ARN, or by stream ARN and name."""
        if consumer_arn is not None:
            stream_part, _, rest = consumer_arn.partition("/consumer/")
            name = rest.rsplit(":", 1)[0]
            try:
                stream = self.stream_by_arn(stream_part)
            except KinesisError:
                raise errors.KinesisError("ResourceNotFoundException", f"Consumer {consumer_arn} not found.") from None
            found = stream.consumers.get(name)
            if found is None or found.arn != consumer_arn:
                raise errors.KinesisError("ResourceNotFoundException", f"Consumer {consumer_arn} not found.")
            return stream, found
        if stream_arn is None or consumer_name is None:
            raise errors.invalid_argument("Either ConsumerARN or both StreamARN and ConsumerName must be provided.")
        stream = self.stream_by_arn(stream_arn)
        found = stream.consumers.get(consumer_name)
        if found is None:
            raise errors.KinesisError("ResourceNotFoundException",
                                      f"Consumer {consumer_name} under stream {stream.name} not found.")
        return stream, found

    def describe_consumer(self, stream_arn: str | None = None, consumer_name: str | None = None,
                          consumer_arn: str | None = None) -> dict[str, Any]:
        stream, consumer = self.consumer(stream_arn, consumer_name, consumer_arn)
        return {"ConsumerDescription": {**consumer.describe(), "StreamARN": stream.arn}}

    def list_consumers(self, stream_arn: str, max_results: int | None = None,
                       next_token: str | None = None) -> dict[str, Any]:
        stream = self.stream_by_arn(stream_arn)
        max_results = self._check_limit(max_results, "maxResults", 10000, 100)
        names = sorted(stream.consumers)
        if next_token is not None:
            after = self._page_state("consumers", next_token)["after"]
            names = [n for n in names if n > after]
        page = names[:max_results]
        out: dict[str, Any] = {"Consumers": [stream.consumers[n].describe() for n in page]}
        if len(names) > max_results:
            out["NextToken"] = self.signer.page("consumers", {"after": page[-1], "at": now_ms()})
        return out

    async def deregister_consumer(self, stream_arn: str | None = None, consumer_name: str | None = None,
                                  consumer_arn: str | None = None) -> None:
        stream, consumer = self.consumer(stream_arn, consumer_name, consumer_arn)
        del stream.consumers[consumer.name]
        await self._save(stream)

    def subscribe(self, consumer_arn: str, shard_id: str, starting_position: dict[str, Any]) -> Subscription:
        """SubscribeToShard, validated: iterate the result's `events()` for SubscribeToShardEvent dicts."""
        engine = cast("KinesisEngine", self)  # this mixin only ever lives in KinesisEngine
        return open_subscription(engine, consumer_arn, shard_id, starting_position)

    def begin_subscription(self, key: tuple[str, str]) -> None:
        if key in self._subscriptions:
            raise errors.KinesisError("ResourceInUseException",
                                      f"Another active subscription exists for consumer {key[0]} on shard {key[1]}.")
        self._subscriptions.add(key)

    def end_subscriptions(self) -> None:
        """Make every open SubscribeToShard stream finish now (the gateway is stopping)."""
        self.closing = True
        for stream in self.streams.values():
            for shard in stream.shards:
                shard.wake()

    def end_subscription(self, key: tuple[str, str]) -> None:
        self._subscriptions.discard(key)
