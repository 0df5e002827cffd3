"""The Device Shadow service: get / update / delete on classic and named shadows, over MQTT and for HTTP.

Requests arrive through internal broker subscriptions to the reserved request topics (after the broker's
Publish policy check). Responses are published through the broker's normal path, so Receive policies,
retained handling and rules see them like any message. An update's responses go out only after the new
document is committed (group commit, see `store.py`): an accepted update is durable.

Per connection at most `shadow.max_inflight_per_connection` requests are in flight; more are answered
with 429 on the operation's `/rejected` topic and not processed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgeloop.config import Config
from gateway.shadow import document as doc
from gateway.shadow.document import ShadowLimits, UpdateResult
from gateway.shadow.errors import (
    INTERNAL_FAILURE,
    TOO_MANY_REQUESTS,
    ShadowError,
    ShadowRejection,
    ShadowStoreError,
    rejection,
)
from gateway.shadow.store import ShadowStore
from gateway.shadow.topics import REQUEST_FILTERS, ShadowKey, parse_request_topic

if TYPE_CHECKING:
    from gateway.mqtt.broker import Broker
    from gateway.mqtt.message import Message

log = logging.getLogger("edgeloop.shadow")

RESPONSE_QOS = 1


class ShadowService:
    """Owns the shadow store; serves MQTT requests once `start()`ed with a broker, and HTTP via `http.py`."""

    def __init__(self, config: Config, store: ShadowStore, broker: Broker | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.broker = broker
        self.clock = clock
        section = config.shadow
        for name in ("max_state_bytes", "max_depth", "max_inflight_per_connection"):
            if getattr(section, name) < 1:
                raise ShadowError(f"shadow.{name} must be at least 1, not {getattr(section, name)}")
        self.limits = ShadowLimits(section.max_state_bytes, section.max_depth)
        self.max_inflight = section.max_inflight_per_connection
        self.metrics: Counter[str] = Counter()
        self._inflight: Counter[str] = Counter()
        self._subscriptions: list[Any] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def now(self) -> int:
        return int(self.clock())

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the request topics (when there is a broker)."""
        if self.broker is None:
            return
        for topic_filter in REQUEST_FILTERS:
            self._subscriptions.append(self.broker.subscribe_internal(topic_filter, self.on_request))
        log.info("event=shadow_service_started shadows=%d", len(self.store.records))

    async def stop(self) -> None:
        """Stop taking requests, finish those in flight, close the store."""
        if self.broker is not None:
            for handle in self._subscriptions:
                self.broker.unsubscribe_internal(handle)
        self._subscriptions.clear()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.store.close()

    # -- operations (MQTT and HTTP) ----------------------------------------------------------------

    def get(self, key: ShadowKey, client_token: str | None = None) -> dict[str, Any]:
        """The shadow document with its delta; 404 rejection when it does not exist."""
        return doc.get_document(self.store.get(key), key.display_name, client_token, self.now())

    async def update(self, key: ShadowKey, payload: bytes) -> UpdateResult:
        """Validate, merge, commit durably, then publish accepted / delta / documents."""
        request = doc.parse_update(payload, self.limits)
        result = doc.apply_update(self.store.get(key), request, self.now(), self.limits)
        await self._commit(key, result.record)
        self.metrics["updates_accepted"] += 1
        messages = []
        if result.delta is not None:
            messages.append((key.topic("update", "delta"), doc.encode(result.delta)))
        messages.append((key.topic("update", "documents"), result.documents_payload()))
        messages.append((key.topic("update", "accepted"), doc.encode(result.accepted)))
        await self._publish_all(messages)
        return result

    async def delete(self, key: ShadowKey, client_token: str | None = None) -> dict[str, Any]:
        """Delete the shadow (its version is kept for re-creation); publishes `/delete/accepted`."""
        tombstone, accepted = doc.delete_record(self.store.get(key), key.display_name, client_token, self.now())
        await self._commit(key, tombstone)
        self.metrics["deletes_accepted"] += 1
        await self._publish_all([(key.topic("delete", "accepted"), doc.encode(accepted))])
        return accepted

    def list_named(self, thing: str) -> list[str]:
        return self.store.named_shadows(thing)

    async def _commit(self, key: ShadowKey, record: doc.ShadowRecord) -> None:
        try:
            await self.store.put(key, record)
        except ShadowStoreError as exc:
            log.error("event=shadow_commit_failed thing=%s shadow=%s error=%s", key.thing, key.name, exc)
            raise rejection(INTERNAL_FAILURE) from exc

    async def _publish_all(self, messages: list[tuple[str, bytes]]) -> None:
        """Publish in order through the broker (a failure is counted and logged, the rest still go out)."""
        if self.broker is None:
            return
        for topic, payload in messages:
            try:
                await self.broker.publish(topic, payload, RESPONSE_QOS)
            except Exception as exc:
                self.metrics["publish_failures"] += 1
                log.warning("event=shadow_publish_failed topic=%s error=%r", topic, exc)

    # -- MQTT requests -----------------------------------------------------------------------------

    def on_request(self, message: Message) -> None:
        """Internal-subscription callback for every request topic (runs on the broker's routing path)."""
        client = message.client_id
        if client is not None and self._inflight[client] >= self.max_inflight:
            self.metrics["throttled"] += 1
            self._spawn(self._reject_throttled(message))
            return
        if client is not None:
            self._inflight[client] += 1
        self._spawn(self._serve(message, client))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, message: Message, client: str | None) -> None:
        try:
            await self._handle(message.topic, message.payload)
        finally:
            if client is not None:
                self._inflight[client] -= 1
                if self._inflight[client] <= 0:
                    del self._inflight[client]

    async def _handle(self, topic: str, payload: bytes) -> None:
        self.metrics["requests"] += 1
        operation = topic.rsplit("/", 1)[-1]
        key: ShadowKey | None = None
        try:
            key, operation = parse_request_topic(topic)
            if operation == "update":
                await self.update(key, payload)
            elif operation == "get":
                body = self.get(key, doc.parse_token_request(payload))
                await self._publish_all([(key.topic("get", "accepted"), doc.encode(body))])
            else:
                await self.delete(key, doc.parse_token_request(payload))
        except ShadowRejection as exc:
            await self._reject(topic, key, operation, exc, payload)
        except Exception:
            log.exception("event=shadow_request_failed topic=%s", topic)
            await self._reject(topic, key, operation, rejection(INTERNAL_FAILURE), payload)

    async def _reject(self, topic: str, key: ShadowKey | None, operation: str, exc: ShadowRejection,
                      payload: bytes) -> None:
        self.metrics[f"rejected_{exc.code}"] += 1
        log.info("event=shadow_rejected topic=%s code=%d message=%r", topic, exc.code, exc.message)
        body = doc.error_document(exc, doc.token_of(payload), self.now())
        prefix = key.prefix if key is not None else topic.rsplit("/", 1)[0]
        await self._publish_all([(f"{prefix}/{operation}/rejected", doc.encode(body))])

    async def _reject_throttled(self, message: Message) -> None:
        operation = message.topic.rsplit("/", 1)[-1]
        await self._reject(message.topic, None, operation, rejection(TOO_MANY_REQUESTS), message.payload)


async def start_shadows(config: Config, broker: Broker | None = None) -> ShadowService:
    """Open `<home>/shadows.db` and start the service (subscribed to the broker when one is given)."""
    store = await ShadowStore.open(config.home, config.durability.fsync)
    service = ShadowService(config, store, broker)
    await service.start()
    return service


__all__ = ["ShadowService", "start_shadows"]
