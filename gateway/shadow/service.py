"""The Device Shadow service: get / update / delete on classic and named shadows, over MQTT and for HTTP.

Requests arrive through internal broker subscriptions to the reserved request topics (after the broker's
Publish policy check) and are served right there, in the routing pass: validate, merge, install the new
document in the store and queue its write. Responses are published through the broker's normal path, so
Receive policies, retained handling and rules see them like any message. An update's or delete's responses
go out only after its write is committed (group commit, see `store.py`): an accepted update is durable. One
publisher task sends every response in the order the work finished (a commit's responses in request order).

Per connection at most `shadow.max_inflight_per_connection` requests are in flight (until their responses
are published); more are answered with 429 on the operation's `/rejected` topic and not processed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

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

Outgoing = list[tuple[str, bytes]]  # (topic, payload) to publish, in order


class _AfterCommit(NamedTuple):
    """What to publish once a write is committed, or which rejection to publish if it is not."""

    key: ShadowKey
    client: str | None  # the connection whose in-flight request this is (None: HTTP)
    messages: Outgoing
    counter: str  # the metric counted once committed
    operation: str | None  # whose `/rejected` topic reports a failed commit (None: the HTTP caller hears of it)
    client_token: str | None


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
        self._inflight: dict[str, int] = {}
        self._subscriptions: list[Any] = []
        self._committing: dict[asyncio.Future[None], list[_AfterCommit]] = {}  # by the store's commit future
        self._outbox: deque[tuple[str | None, Outgoing]] = deque()  # (client, messages) ready to publish
        self._publisher: asyncio.Task[None] | None = None

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
        """Stop taking requests, commit and answer those in flight, close the store."""
        if self.broker is not None:
            for handle in self._subscriptions:
                self.broker.unsubscribe_internal(handle)
        self._subscriptions.clear()
        while self._committing or (self._publisher is not None and not self._publisher.done()):
            if self._committing:  # their done-callbacks (which queue the responses) run before this resumes
                await asyncio.wait(list(self._committing))
            elif self._publisher is not None:
                await asyncio.wait([self._publisher])
        await self.store.close()

    # -- operations (MQTT and HTTP) ----------------------------------------------------------------

    def get(self, key: ShadowKey, client_token: str | None = None) -> dict[str, Any]:
        """The shadow document with its delta; 404 rejection when it does not exist."""
        return doc.get_document(self.store.get(key), key.display_name, client_token, self.now())

    async def update(self, key: ShadowKey, payload: bytes) -> UpdateResult:
        """Validate, merge and commit durably; accepted / delta / documents are published once committed."""
        result, committed = self._stage_update(key, payload, None, None)
        await self._durable(committed)
        return result

    async def delete(self, key: ShadowKey, client_token: str | None = None) -> dict[str, Any]:
        """Delete the shadow (its version is kept for re-creation); `/delete/accepted` goes out once committed."""
        accepted, committed = self._stage_delete(key, client_token, None, None)
        await self._durable(committed)
        return accepted

    def list_named(self, thing: str) -> list[str]:
        return self.store.named_shadows(thing)

    def _stage_update(self, key: ShadowKey, payload: bytes, client: str | None,
                      operation: str | None) -> tuple[UpdateResult, asyncio.Future[None]]:
        request = doc.parse_update(payload, self.limits)
        result = doc.apply_update(self.store.get(key), request, self.now(), self.limits)
        committed = self._put(key, result.record)
        prefix = key.prefix
        messages: Outgoing = []
        delta = result.delta_payload()
        if delta is not None:
            messages.append((f"{prefix}/update/delta", delta))
        messages.append((f"{prefix}/update/documents", result.documents_payload()))
        messages.append((f"{prefix}/update/accepted", result.accepted_payload()))
        self._after_commit(committed, _AfterCommit(key, client, messages, "updates_accepted", operation,
                                                   request.client_token))
        return result, committed

    def _stage_delete(self, key: ShadowKey, client_token: str | None, client: str | None,
                      operation: str | None) -> tuple[dict[str, Any], asyncio.Future[None]]:
        tombstone, accepted = doc.delete_record(self.store.get(key), key.display_name, client_token, self.now())
        committed = self._put(key, tombstone)
        messages = [(key.topic("delete", "accepted"), doc.encode(accepted))]
        self._after_commit(committed, _AfterCommit(key, client, messages, "deletes_accepted", operation,
                                                   client_token))
        return accepted, committed

    def _put(self, key: ShadowKey, record: doc.ShadowRecord) -> asyncio.Future[None]:
        try:
            return self.store.put(key, record)
        except ShadowStoreError as exc:  # the store is closed
            log.error("event=shadow_write_refused thing=%s shadow=%s error=%s", key.thing, key.name, exc)
            raise rejection(INTERNAL_FAILURE) from exc

    @staticmethod
    async def _durable(committed: asyncio.Future[None]) -> None:
        """Wait for a commit (shielded: the future is shared by the whole commit); 500 if it failed."""
        try:
            await asyncio.shield(committed)
        except ShadowStoreError as exc:
            raise rejection(INTERNAL_FAILURE) from exc

    # -- responses ---------------------------------------------------------------------------------

    def _after_commit(self, committed: asyncio.Future[None], after: _AfterCommit) -> None:
        waiting = self._committing.get(committed)
        if waiting is None:
            waiting = self._committing[committed] = []
            committed.add_done_callback(self._on_committed)
        waiting.append(after)

    def _on_committed(self, committed: asyncio.Future[None]) -> None:
        """A commit finished: queue its responses in request order (or a 500 rejection for each write)."""
        waiting = self._committing.pop(committed)
        error = committed.exception() if not committed.cancelled() else ShadowStoreError("commit cancelled")
        for after in waiting:
            if error is None:
                self.metrics[after.counter] += 1
                self._send(after.client, after.messages)
                continue
            log.error("event=shadow_commit_failed thing=%s shadow=%s error=%s", after.key.thing, after.key.name,
                      error)
            if after.operation is None:
                continue
            self.metrics[f"rejected_{INTERNAL_FAILURE[0]}"] += 1
            body = doc.error_document(rejection(INTERNAL_FAILURE), after.client_token, self.now())
            self._send(after.client, [(after.key.topic(after.operation, "rejected"), doc.encode(body))])

    def _send(self, client: str | None, messages: Outgoing) -> None:
        """Queue responses for the publisher task; `client`'s in-flight count drops once they are out."""
        self._outbox.append((client, messages))
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.get_running_loop().create_task(self._publish_outbox())

    async def _publish_outbox(self) -> None:
        outbox = self._outbox
        while outbox:
            client, messages = outbox.popleft()
            try:
                await self._publish_all(messages)
            finally:
                if client is not None:
                    self._release(client)

    def _release(self, client: str) -> None:
        left = self._inflight.get(client, 1) - 1
        if left > 0:
            self._inflight[client] = left
        else:
            self._inflight.pop(client, None)

    async def _publish_all(self, messages: Outgoing) -> None:
        """Publish in order through the broker (a failure is counted and logged, the rest still go out)."""
        broker = self.broker
        if broker is None:
            return
        for topic, payload in messages:
            try:
                await broker.publish(topic, payload, RESPONSE_QOS)
            except Exception as exc:
                self.metrics["publish_failures"] += 1
                log.warning("event=shadow_publish_failed topic=%s error=%r", topic, exc)

    # -- MQTT requests -----------------------------------------------------------------------------

    def on_request(self, message: Message) -> None:
        """Internal-subscription callback for every request topic (runs on the broker's routing path)."""
        client = message.client_id
        if client is not None:
            inflight = self._inflight.get(client, 0)
            if inflight >= self.max_inflight:
                self.metrics["throttled"] += 1
                operation = message.topic.rsplit("/", 1)[-1]
                self._send(None, self._rejection(message.topic, None, operation, rejection(TOO_MANY_REQUESTS),
                                                 message.payload))
                return
            self._inflight[client] = inflight + 1
        self._serve(message.topic, message.payload, client)

    def _serve(self, topic: str, payload: bytes, client: str | None) -> None:
        """Serve one MQTT request: answered now (get, rejections) or once its write is committed."""
        self.metrics["requests"] += 1
        operation = topic.rsplit("/", 1)[-1]
        key: ShadowKey | None = None
        try:
            key, operation = parse_request_topic(topic)
            if operation == "update":
                self._stage_update(key, payload, client, operation)
                return
            token = doc.parse_token_request(payload)
            if operation == "get":
                self._send(client, [(key.topic("get", "accepted"), doc.encode(self.get(key, token)))])
            else:
                self._stage_delete(key, token, client, operation)
            return
        except ShadowRejection as exc:
            error = exc
        except Exception:
            log.exception("event=shadow_request_failed topic=%s", topic)
            error = rejection(INTERNAL_FAILURE)
        self._send(client, self._rejection(topic, key, operation, error, payload))

    def _rejection(self, topic: str, key: ShadowKey | None, operation: str, exc: ShadowRejection,
                   payload: bytes) -> Outgoing:
        self.metrics[f"rejected_{exc.code}"] += 1
        log.info("event=shadow_rejected topic=%s code=%d message=%r", topic, exc.code, exc.message)
        body = doc.error_document(exc, doc.token_of(payload), self.now())
        prefix = key.prefix if key is not None else topic.rsplit("/", 1)[0]
        return [(f"{prefix}/{operation}/rejected", doc.encode(body))]


async def start_shadows(config: Config, broker: Broker | None = None) -> ShadowService:
    """Open `<home>/shadows.db` and start the service (subscribed to the broker when one is given)."""
    store = await ShadowStore.open(config.home, config.durability.fsync)
    service = ShadowService(config, store, broker)
    await service.start()
    return service


__all__ = ["ShadowService", "start_shadows"]
