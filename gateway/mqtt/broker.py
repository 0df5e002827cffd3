"""The broker core: sessions, subscriptions, retained messages, routing, wills, hooks.

Network-independent: connections (`gateway.mqtt.connection`) call into it, and components use the
internal API (`publish`, `subscribe_internal`, `add_hook`). Everything here runs on the event loop;
persistence goes through `BrokerStore`, whose writes run on its own thread.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from edgeloop.config import Config
from gateway.mqtt.housekeeping import AuthenticationBatches, DeadlineWheel
from gateway.mqtt.message import Message
from gateway.mqtt.metrics import Metrics
from gateway.mqtt.packets import Properties, Will
from gateway.mqtt.session import QUEUED, Delivery, Session, SubscriptionRecord
from gateway.mqtt.store import BrokerStore, StoredSession
from gateway.mqtt.topics import TopicTrie, filter_matches, split_shared, validate_topic_filter, validate_topic_name

if TYPE_CHECKING:
    from gateway.mqtt.connection import MqttConnection

log = logging.getLogger("edgeloop.mqtt")

InternalCallback = Callable[[Message], "Awaitable[None] | None"]


class PublishHook(Protocol):
    def on_publish(self, message: Message) -> Awaitable[None] | None: ...


@dataclass(slots=True, eq=False)
class SessionSubscription:
    """A trie entry: one client session's subscription."""

    session: Session
    record: SubscriptionRecord


@dataclass(slots=True, eq=False)
class SharedGroup:
    """A trie entry for ``$share/<group>/<filter>``: members take turns (round-robin, connected first)."""

    group: str
    members: dict[str, SessionSubscription] = field(default_factory=dict)
    turn: int = 0

    def pick(self) -> SessionSubscription | None:
        members = list(self.members.values())
        if not members:
            return None
        n = len(members)
        for i in range(n):
            candidate = members[(self.turn + i) % n]
            if candidate.session.connection is not None:
                self.turn = (self.turn + i + 1) % n
                return candidate
        self.turn = (self.turn + 1) % n
        return members[self.turn - 1 if self.turn else n - 1]


@dataclass(slots=True, eq=False)
class InternalSubscription:
    """A component's subscription (shadow, jobs): `callback(message)` for every matching message."""

    topic_filter: str
    callback: InternalCallback


class Broker:
    """Routing and session state shared by every listener."""

    def __init__(self, config: Config, store: BrokerStore | None = None) -> None:
        self.config = config
        self.limits = config.mqtt
        self.store = store
        self.metrics = Metrics()
        self.sessions: dict[str, Session] = {}
        self.retained: dict[str, Message] = {}
        self.trie: TopicTrie[Any] = TopicTrie()
        self.hooks: list[PublishHook] = []
        self.connections: set[MqttConnection] = set()
        self._seq = 1
        self._background: set[asyncio.Future[Any]] = set()
        self._wheel: DeadlineWheel | None = None
        self._auth_batches: AuthenticationBatches | None = None
        self.started_at = time.time()

    @property
    def wheel(self) -> DeadlineWheel:
        """The connect timeouts and keep-alive deadlines of every connection (one loop timer)."""
        wheel = self._wheel
        if wheel is None:
            wheel = self._wheel = DeadlineWheel(asyncio.get_running_loop())
        return wheel

    @property
    def auth_batches(self) -> AuthenticationBatches:
        """Where connections send their CONNECT to be authenticated (a worker thread, one hop per batch)."""
        batches = self._auth_batches
        if batches is None:
            batches = self._auth_batches = AuthenticationBatches(asyncio.get_running_loop(), self.track)
        return batches

    # -- start / stop ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load retained messages and persistent sessions from the store."""
        if self.store is None:
            return
        state = await self.store.open()
        now = time.time()
        for msg in state.retained:
            if not msg.expired(now):
                self.retained[msg.topic] = msg
        self._seq = state.next_seq
        for stored in state.sessions:
            self._restore_session(stored, now)
        self.metrics["retained_messages"] = len(self.retained)

    def _restore_session(self, stored: StoredSession, now: float) -> None:
        disconnected_at = stored.disconnected_at or now
        left = stored.expiry_interval - (now - disconnected_at)
        if left <= 0:
            self._discard_persisted(stored.client_id)
            self.metrics["sessions_expired"] += 1
            return
        session = Session(stored.client_id, stored.protocol, stored.expiry_interval)
        session.disconnected_at = disconnected_at
        session.incoming_qos2 = set(stored.incoming_qos2)
        for raw in stored.subscriptions:
            self.add_subscription(session, SubscriptionRecord.from_json(raw))
        for d in stored.deliveries:
            delivery = Delivery(d.message, d.qos, d.retain, d.sub_ids, d.packet_id, d.state, d.seq)
            if d.packet_id is not None and d.state != QUEUED:
                session.writable_inflight()[d.packet_id] = delivery
            else:
                delivery.state = QUEUED
                session.writable_queue().append(delivery)
        self.sessions[session.client_id] = session
        session.expiry_handle = asyncio.get_running_loop().call_later(left, self._expire_session, session)

    def _discard_persisted(self, client_id: str) -> None:
        if self.store is not None:
            self.store.delete_session(client_id)

    async def stop(self) -> None:
        """Close every connection, persist session state, wait for background work, close the store."""
        for conn in list(self.connections):
            conn.shutdown()
        for _ in range(100):  # let transports report connection_lost (wills, session bookkeeping)
            if not self.connections:
                break
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            conn.connection_lost(None)
        for session in self.sessions.values():
            session.cancel_timers()
            if session.persistent:
                self._persist_session(session)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._wheel is not None:
            self._wheel.close()
        if self.store is not None:
            await self.store.close()

    def track(self, task: asyncio.Future[Any]) -> None:
        """Keep a reference to a task until it finishes (and wait for it at shutdown)."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    def spawn(self, awaitable: Awaitable[Any]) -> None:
        """Run background work whose completion the broker waits for at shutdown."""
        fut = asyncio.ensure_future(awaitable)
        self._background.add(fut)
        fut.add_done_callback(self._background.discard)
        fut.add_done_callback(_log_failure)

    # -- the component API -------------------------------------------------------------------------

    def add_hook(self, hook: PublishHook) -> None:
        """Register a hook whose `on_publish(message)` sees every accepted PUBLISH (see docs/mqtt.md)."""
        self.hooks.append(hook)

    def remove_hook(self, hook: PublishHook) -> None:
        self.hooks.remove(hook)

    async def publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
        *,
        origin: str = "internal",
    ) -> None:
        """Publish as the broker itself, through the normal path (retained, hooks, Receive checks)."""
        validate_topic_name(topic)
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {qos}")
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        message = Message(topic, data, qos, retain, properties, origin=origin)
        waits, failures = self.accept(message)
        for exc in failures:
            log.warning("event=hook_failed topic=%s origin=%s error=%r", topic, origin, exc)
        if waits:
            results = await asyncio.gather(*waits, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    self.metrics["hook_errors"] += 1
                    log.warning("event=hook_failed topic=%s origin=%s error=%r", topic, origin, result)

    async def publish_to(
        self,
        client_id: str,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        properties: Properties | None = None,
    ) -> bool:
        """Deliver to one connected client only, as AWS answers jobs and fleet-provisioning requests.

        The message goes to `client_id` when it is connected, one of its subscriptions matches `topic` and its
        policy allows `iot:Receive` on it, at the highest QoS of its matching subscriptions (capped by `qos`),
        with their subscription identifiers. No other subscriber, no hook and no retained store sees it.
        Returns False (and counts why) when it was not delivered; for a persistent session it returns once the
        queued delivery is durable.
        """
        validate_topic_name(topic)
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {qos}")
        session = self.sessions.get(client_id)
        conn = session.connection if session is not None else None
        if session is None or conn is None or conn.auth is None or conn.closed:
            self.metrics["publish_to_not_connected"] += 1
            return False
        granted, sub_ids = self._session_grant(session, topic)
        if granted is None:
            self.metrics["publish_dropped_no_subscribers"] += 1
            return False
        if not conn.auth.allowed("iot:Receive", topic):
            self.metrics["receive_unauthorized"] += 1
            return False
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        message = Message(topic, data, qos, False, properties, origin="internal")
        self.metrics["messages_received"] += 1
        pending = self.enqueue(session, Delivery(message, min(qos, granted), False, tuple(sub_ids)))
        if pending is not None:
            await asyncio.shield(pending)
        return True

    def _session_grant(self, session: Session, topic: str) -> tuple[int | None, list[int]]:
        """The highest QoS of `session`'s subscriptions matching `topic` (None: none match), and their ids."""
        granted: int | None = None
        ids: list[int] = []
        for entry in self.trie.match(topic):
            if type(entry) is SessionSubscription:
                record = entry.record if entry.session is session else None
            elif type(entry) is SharedGroup:
                member = entry.members.get(session.client_id)
                record = member.record if member is not None else None
            else:
                record = None
            if record is not None:
                granted = record.qos if granted is None else max(granted, record.qos)
                if record.identifier:
                    ids.append(record.identifier)
        return granted, ids

    def subscribe_internal(self, topic_filter: str, callback: InternalCallback) -> InternalSubscription:
        """Deliver every message matching `topic_filter` to `callback`; returns the handle to unsubscribe."""
        validate_topic_filter(topic_filter)
        handle = InternalSubscription(topic_filter, callback)
        self.trie.add(topic_filter, handle, handle)
        return handle

    def unsubscribe_internal(self, handle: InternalSubscription) -> None:
        self.trie.remove(handle.topic_filter, handle)

    # -- accepting and routing ---------------------------------------------------------------------

    def accept(self, message: Message) -> tuple[list[Awaitable[Any]], list[BaseException]]:
        """Take an authorized message: retained store, fan-out, hooks.

        Returns what must complete before a QoS >= 1 acknowledgement (durable queue writes and hook
        awaitables) and the hook exceptions raised synchronously.
        """
        self.metrics["messages_received"] += 1
        waits: list[Awaitable[Any]] = []
        if message.retain:
            fut = self._store_retained(message)
            if fut is not None:
                waits.append(fut)
        waits.extend(self.route(message))
        failures: list[BaseException] = []
        for hook in self.hooks:
            try:
                result = hook.on_publish(message)
            except Exception as exc:
                self.metrics["hook_errors"] += 1
                log.exception("event=hook_error topic=%s", message.topic)
                failures.append(exc)
                continue
            if result is not None:  # the protocol: an awaitable or None
                waits.append(result)
        return waits, failures

    def _store_retained(self, message: Message) -> asyncio.Future[None] | None:
        if not self.limits.retained_enabled:
            return None
        persist = self.store is not None and not message.topic.startswith("$SYS/")
        if not message.payload:
            if self.retained.pop(message.topic, None) is not None:
                self.metrics["retained_messages"] = len(self.retained)
                if persist:
                    return self.store.delete_retained(message.topic)  # type: ignore[union-attr]
            return None
        stored = Message(message.topic, message.payload, message.qos, True, message.properties,
                         client_id=message.client_id, origin=message.origin, received_at=message.received_at,
                         expires_at=message.expires_at)
        self.retained[message.topic] = stored
        self.metrics["retained_messages"] = len(self.retained)
        if persist:
            return self.store.put_retained(stored)  # type: ignore[union-attr]
        return None

    def route(self, message: Message) -> list[Awaitable[Any]]:
        """Fan a message out to every matching subscription; returns durable-write futures to await."""
        entries = self.trie.match(message.topic)
        publisher = message.client_id
        if len(entries) == 1 and type(entries[0]) is SessionSubscription:  # one subscriber: no merging needed
            entry = entries[0]
            rec = entry.record
            if not (rec.no_local and publisher is not None and entry.session.client_id == publisher):
                sub_ids = (rec.identifier,) if rec.identifier else ()
                delivery = Delivery(message, min(rec.qos, message.qos), message.retain and rec.retain_as_published,
                                    sub_ids)
                fut = self.enqueue(entry.session, delivery)
                return [fut] if fut is not None else []
        targets: dict[Session, list[Any]] = {}
        internal: list[InternalSubscription] = []
        for entry in entries:
            if type(entry) is SessionSubscription:
                rec = entry.record
                if rec.no_local and publisher is not None and entry.session.client_id == publisher:
                    continue
                self._merge_target(targets, entry)
            elif type(entry) is SharedGroup:
                chosen = entry.pick()
                if chosen is not None:
                    self._merge_target(targets, chosen, shared=True)
            else:
                internal.append(entry)
        waits: list[Awaitable[Any]] = []
        for session, (qos, rap, sub_ids) in targets.items():
            delivery = Delivery(message, min(qos, message.qos), message.retain and rap, tuple(sub_ids))
            fut = self.enqueue(session, delivery)
            if fut is not None:
                waits.append(fut)
        for sub in internal:
            try:
                result = sub.callback(message)
            except Exception:
                self.metrics["hook_errors"] += 1
                log.exception("event=internal_subscriber_error filter=%s", sub.topic_filter)
                continue
            if result is not None and inspect.isawaitable(result):
                self.spawn(result)
        if not targets and not internal:
            self.metrics["publish_dropped_no_subscribers"] += 1
        return waits

    @staticmethod
    def _merge_target(targets: dict[Session, list[Any]], entry: SessionSubscription, shared: bool = False) -> None:
        rec = entry.record
        current = targets.get(entry.session)
        if current is None:
            targets[entry.session] = [rec.qos, rec.retain_as_published and not shared,
                                      [rec.identifier] if rec.identifier else []]
            return
        current[0] = max(current[0], rec.qos)
        current[1] = current[1] or (rec.retain_as_published and not shared)
        if rec.identifier:
            current[2].append(rec.identifier)

    def enqueue(self, session: Session, delivery: Delivery) -> asyncio.Future[None] | None:
        """Hand a delivery to a session: sent now, queued, or dropped (counted)."""
        conn = session.connection
        if delivery.qos == 0:
            if conn is not None:
                conn.send_qos0(delivery)
            else:
                self.metrics["publish_dropped_offline_qos0"] += 1
            return None
        if len(session.queue) >= self.limits.max_queued_messages:
            self.metrics["publish_dropped_queue_full"] += 1
            log.warning("event=queue_full client_id=%s topic=%s", session.client_id, delivery.message.topic)
            return None
        fut = None
        if session.persistent and self.store is not None:
            delivery.seq = self._seq
            self._seq += 1
            fut = self.store.add_delivery(delivery.seq, session.client_id, delivery.message, delivery.qos,
                                          delivery.retain, delivery.sub_ids)
        session.writable_queue().append(delivery)
        if conn is not None:
            conn.pump()
        return fut

    def delivery_done(self, session: Session, delivery: Delivery) -> None:
        """A QoS 1/2 delivery completed (or was dropped): forget it durably."""
        if delivery.seq is not None and self.store is not None:
            self.store.remove_delivery(delivery.seq)
            delivery.seq = None

    def delivery_state(self, delivery: Delivery) -> None:
        if delivery.seq is not None and self.store is not None:
            self.store.update_delivery(delivery.seq, delivery.packet_id, delivery.state)

    # -- subscriptions -----------------------------------------------------------------------------

    def add_subscription(self, session: Session, record: SubscriptionRecord) -> bool:
        """Add or replace a subscription; True when it did not exist before."""
        group, inner = split_shared(record.topic_filter)
        new = record.topic_filter not in session.subscriptions
        session.subscriptions[record.topic_filter] = record
        entry = SessionSubscription(session, record)
        if group is None:
            self.trie.add(inner, session.client_id, entry)
        else:
            key = ("$share", group)
            shared = self.trie.get(inner, key)
            if shared is None:
                shared = SharedGroup(group)
                self.trie.add(inner, key, shared)
            shared.members[session.client_id] = entry
        return new

    def remove_subscription(self, session: Session, topic_filter: str) -> bool:
        if session.subscriptions.pop(topic_filter, None) is None:
            return False
        group, inner = split_shared(topic_filter)
        if group is None:
            self.trie.remove(inner, session.client_id)
        else:
            key = ("$share", group)
            shared = self.trie.get(inner, key)
            if shared is not None:
                shared.members.pop(session.client_id, None)
                if not shared.members:
                    self.trie.remove(inner, key)
        return True

    def retained_matching(self, topic_filter: str) -> list[Message]:
        """Retained messages matching a (non-shared) filter, oldest first; expired ones are purged."""
        now = time.time()
        out: list[Message] = []
        expired: list[str] = []
        for topic, msg in self.retained.items():
            if filter_matches(topic_filter, topic):
                if msg.expired(now):
                    expired.append(topic)
                else:
                    out.append(msg)
        for topic in expired:
            del self.retained[topic]
            self.metrics["publish_dropped_expired"] += 1
            if self.store is not None:
                self.store.delete_retained(topic)
        return out

    # -- sessions ----------------------------------------------------------------------------------

    def open_session(self, client_id: str, clean_start: bool, protocol: int, expiry: int) -> tuple[Session, bool]:
        """Find or create the session for a new connection; returns (session, session_present)."""
        session = self.sessions.get(client_id)
        if session is not None:
            session.cancel_timers()
            if clean_start:
                self.discard_session(session)
                session = None
        present = session is not None
        if session is None:
            session = Session(client_id, protocol)
            self.sessions[client_id] = session
        was_persistent = session.persistent
        session.protocol = protocol
        session.expiry_interval = expiry
        session.disconnected_at = None
        if session.persistent:
            self._persist_session(session)
        elif was_persistent:
            self._discard_persisted(client_id)
            for d in [*session.inflight.values(), *session.queue]:
                d.seq = None
        return session, present

    def _persist_session(self, session: Session) -> asyncio.Future[None] | None:
        if self.store is None:
            return None
        return self.store.save_session(session.client_id, session.protocol, session.expiry_interval,
                                       session.disconnected_at, session.subscriptions_json(),
                                       sorted(session.incoming_qos2))

    def subscriptions_changed(self, session: Session) -> asyncio.Future[None] | None:
        if session.persistent:
            return self._persist_session(session)
        return None

    def discard_session(self, session: Session) -> None:
        """Remove a session and its subscriptions (clean start, expiry)."""
        session.cancel_timers()
        for topic_filter in list(session.subscriptions):
            self.remove_subscription(session, topic_filter)
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
        if session.persistent:
            self._discard_persisted(session.client_id)

    def session_disconnected(self, session: Session, will: Will | None, principal: Any) -> None:
        """The connection of `session` ended: schedule its will and its expiry."""
        loop = asyncio.get_running_loop()
        session.connection = None
        session.disconnected_at = time.time()
        if will is not None:
            delay = min(will.properties.will_delay_interval or 0, session.expiry_interval)
            if delay > 0:
                session.will_handle = loop.call_later(delay, self._publish_will, session, will, principal)
            else:
                self._publish_will(session, will, principal)
        if session.expiry_interval == 0:
            self.discard_session(session)
            return
        self._persist_session(session)
        session.expiry_handle = loop.call_later(session.expiry_interval, self._expire_session, session)

    def _publish_will(self, session: Session, will: Will, principal: Any) -> None:
        session.will_handle = None
        self.metrics["wills_published"] += 1
        props = will.properties
        fwd = Properties(
            payload_format_indicator=props.payload_format_indicator,
            message_expiry_interval=props.message_expiry_interval, content_type=props.content_type,
            response_topic=props.response_topic, correlation_data=props.correlation_data,
            user_properties=list(props.user_properties),
        )
        message = Message(will.topic, will.payload, will.qos, will.retain, fwd, client_id=session.client_id,
                          principal=principal, origin="will")
        waits, _ = self.accept(message)
        for w in waits:
            self.spawn(w)

    def _expire_session(self, session: Session) -> None:
        session.expiry_handle = None
        if session.connection is None and self.sessions.get(session.client_id) is session:
            self.metrics["sessions_expired"] += 1
            log.info("event=session_expired client_id=%s", session.client_id)
            self.discard_session(session)


def _log_failure(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("event=background_failed error=%r", fut.exception())
