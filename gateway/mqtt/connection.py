"""One MQTT network connection: an `asyncio.Protocol` on the hot path.

Every complete packet is parsed in `data_received`; outgoing packets are coalesced into one
`transport.write` per loop iteration. QoS >= 1 acknowledgements wait for durable writes and hooks, and
are sent strictly in the order the PUBLISH packets arrived (`AckQueue`: done-callbacks, no task per message).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any, Protocol

from gateway.mqtt import lifecycle
from gateway.mqtt.acks import AckQueue
from gateway.mqtt.codec import StreamDecoder, encode, encode_properties, encode_publish
from gateway.mqtt.errors import MqttDecodeError, MqttError
from gateway.mqtt.housekeeping import DeadlineWheel
from gateway.mqtt.message import Message
from gateway.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    Pingreq,
    Pingresp,
    Properties,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from gateway.mqtt.session import NO_INFLIGHT, RELEASED, SENT, Delivery, Session, SubscriptionRecord
from gateway.mqtt.topics import TopicError, split_shared, validate_topic_filter

if TYPE_CHECKING:
    from gateway.mqtt.broker import Broker

log = logging.getLogger("edgeloop.mqtt")

# v3.1.1 CONNACK return codes for the v5 reason codes we use while connecting.
_V3_CONNACK = {0x84: 1, 0x85: 2, 0x88: 3, 0x89: 3, 0x86: 4, 0x87: 5, 0x8C: 5, 0x95: 3, 0x81: 3, 0x82: 3}
HEADROOM = 65536  # packet bytes allowed beyond the payload limit (topic, properties)
FLUSH_BYTES = 65536  # coalesced output written out before the end of the loop iteration
_PUBACK_HEADER = b"\x40\x02"  # PUBACK with success and no properties: the same 4 bytes in 3.1.1 and 5
# Session identifiers (lifecycle events): 32 hex digits, a random per-process prefix and a per-connection serial.
_SESSION_PREFIX = uuid.uuid4().hex[:20]
_serials = itertools.count(1)


class ConnectionAuth(Protocol):
    """What a listener's authenticator returns: the authorization decisions of one connection."""

    principal_id: str | None

    @property
    def principal(self) -> Any: ...

    def allowed(self, action: str, resource: str) -> bool: ...
    def revoked(self) -> str | None: ...


class Authenticator(Protocol):
    def __call__(self, conn: MqttConnection, connect: Connect) -> ConnectionAuth: ...


class MqttConnection(asyncio.Protocol):
    """Server side of one client connection (TCP, TLS or a WebSocket adapter).

    Kept small for fleets of idle devices: slotted; the acknowledgement queue and the topic-alias maps are made on
    first use; the connect timeout and keep-alive are a slot in the broker's deadline wheel, not a timer each.
    """

    __slots__ = ("_acks", "_alias_out_max", "_aliases_in", "_aliases_out", "_backlog", "_client_max_packet",
                 "_deadline", "_flush_scheduled", "_keepalive", "_last_rx", "_out", "_out_size", "_paused",
                 "_qos0_backlog", "_send_window", "_serial", "auth", "authenticate", "broker", "client_id",
                 "client_initiated", "closed", "connect", "decoder", "disconnect_reason", "limits", "listener",
                 "loop", "metrics", "peer", "session", "transport", "version")

    def __init__(self, broker: Broker, authenticate: Authenticator, listener: str) -> None:
        self.broker = broker
        self.limits = broker.limits
        self.metrics = broker.metrics
        self.authenticate = authenticate
        self.listener = listener
        self.loop = asyncio.get_event_loop()
        self.transport: Any = None
        self.peer: str | None = None
        self.decoder = StreamDecoder(self.limits.max_payload_bytes + HEADROOM)
        self.version = 4
        self.connect: Connect | None = None
        self.session: Session | None = None
        self.auth: ConnectionAuth | None = None
        self.client_id: str | None = None
        self._serial = next(_serials)
        self.closed = False
        self.disconnect_reason = "CONNECTION_LOST"
        self.client_initiated = False
        self._out: list[bytes] = []
        self._out_size = 0
        self._flush_scheduled = False
        self._paused = False
        self._qos0_backlog = 0
        self._acks: AckQueue | None = None  # made by the first acknowledgement that has to wait
        self._keepalive = 0.0
        self._last_rx = time.monotonic()
        self._deadline: set[Any] | None = None  # our slot in the broker's deadline wheel
        self._send_window = self.limits.max_inflight
        self._client_max_packet = 0
        self._aliases_in: dict[int, str] | None = None
        self._aliases_out: dict[str, int] | None = None
        self._alias_out_max = 0
        self._backlog: list[Packet] | None = None

    @property
    def session_id(self) -> str:
        """This connection's unique identifier (the lifecycle events' `sessionIdentifier`)."""
        return f"{_SESSION_PREFIX}{self._serial:012x}"

    # -- transport callbacks -----------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = sys.intern(peer[0]) if isinstance(peer, tuple) else None  # a fleet shares a few addresses
        self.broker.connections.add(self)
        self._set_deadline(self._last_rx + self.limits.connect_timeout_secs)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self._last_rx = time.monotonic()
        self.metrics["bytes_received"] += len(data)
        try:
            packets = self.decoder.feed(data)
        except MqttDecodeError as exc:
            self._violation(exc.reason_code, exc.message, "decode_errors")
            return
        for packet in packets:
            if self.closed:
                return
            if self._backlog is not None:  # CONNECT is being authenticated: keep order
                if len(self._backlog) >= self.limits.max_inflight:
                    self._violation(0x82, "too many packets sent before CONNACK")
                    return
                self._backlog.append(packet)
                continue
            self._dispatch(packet)

    def _dispatch(self, packet: Packet) -> None:
        try:
            self._handle(packet)
        except MqttError as exc:
            self._violation(getattr(exc, "reason_code", 0x82), str(exc))

    def eof_received(self) -> bool | None:
        return None

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._qos0_backlog = 0
        self.pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.broker.connections.discard(self)
        if self._deadline is not None:
            DeadlineWheel.cancel(self, self._deadline)
            self._deadline = None
        session = self.session
        if session is None or session.connection is not self:
            return
        self.session = None
        will = self.connect.will if self.connect is not None else None
        self.broker.session_disconnected(session, will, self.auth.principal if self.auth else None)
        self.metrics["clients_connected"] -= 1
        lifecycle.disconnected(self.broker, self)

    # -- writing -----------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue bytes for the next coalesced write (at the end of this loop iteration, or once 64 KiB wait).

        Writing out mid-iteration keeps a busy subscriber's socket fed while the loop is still routing, and lets
        backpressure (`pause_writing`) show up before QoS 0 piles up in memory.
        """
        if self.closed:
            return
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size >= FLUSH_BYTES:
            self._write_out()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._write_out()

    def _write_out(self) -> None:
        out = self._out
        if not out or self.transport is None:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._out_size = 0
        self.metrics["bytes_sent"] += len(data)
        if not self.transport.is_closing():
            self.transport.write(data)

    def send(self, packet: Packet) -> None:
        self.write(encode(packet, self.version))

    def close(self, reason_code: int = 0, reason: str | None = None) -> None:
        """Server-initiated close: DISCONNECT with a reason on v5 (after CONNACK), then close the socket."""
        if self.closed:
            return
        if self.version == 5 and self.session is not None and self.connect is not None:
            props = Properties(reason_string=reason) if reason else Properties()
            self.send(Disconnect(reason_code, props))
        self._flush()
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def shutdown(self) -> None:
        """Broker stopping: tell v5 clients (0x8B) and close; the session stays for the next run."""
        self.disconnect_reason = "SERVER_INITIATED_DISCONNECT"
        self.close(0x8B, "server shutting down")

    def _violation(self, reason_code: int, message: str, counter: str = "protocol_errors") -> None:
        """Close the connection for a protocol violation (counted in `counter`), with a reason on v5."""
        self.metrics[counter] += 1
        log.info("event=protocol_violation client_id=%s peer=%s reason=0x%02X detail=%s",
                 self.client_id, self.peer, reason_code, message)
        self.disconnect_reason = "CLIENT_ERROR"
        if self.connect is None:
            if reason_code == 0x84:  # unsupported version: answer in the v3 encoding every client reads
                self.write(encode(Connack(False, 1), 4))
            self.metrics["connections_rejected"] += 1
        self.close(reason_code, message)

    # -- deadlines: connect timeout, then keep-alive --------------------------------------------------

    def _set_deadline(self, when: float | None) -> None:
        """Move this connection's deadline to `when` (`time.monotonic()` time; None: no deadline)."""
        if self._deadline is not None:
            DeadlineWheel.cancel(self, self._deadline)
        self._deadline = self.broker.wheel.schedule(self, when) if when is not None else None

    def deadline_passed(self, now: float) -> None:
        """The broker's wheel: without CONNECT done, the connect timeout; after it, the keep-alive check."""
        self._deadline = None
        if self.closed:
            return
        if self.connect is None:
            self.metrics["connect_timeouts"] += 1
            log.info("event=connect_timeout peer=%s", self.peer)
            self.close()
            return
        limit = self._keepalive * 1.5
        idle = now - self._last_rx
        if idle >= limit:
            self.metrics["keepalive_timeouts"] += 1
            log.info("event=keepalive_timeout client_id=%s idle=%.1f", self.client_id, idle)
            self.disconnect_reason = "MQTT_KEEP_ALIVE_TIMEOUT"
            self.close(0x8D, "keep alive timeout")
            return
        self._set_deadline(self._last_rx + limit)

    # -- dispatch ----------------------------------------------------------------------------------

    def _handle(self, packet: Packet) -> None:
        kind = type(packet)
        if kind is Publish:
            self._on_publish(packet)  # type: ignore[arg-type]
        elif self.connect is None:
            if kind is Connect and self.client_id is None:
                self._on_connect(packet)  # type: ignore[arg-type]
            else:
                self._violation(0x82, f"{kind.__name__} before CONNECT; the first packet must be CONNECT")
        elif kind is Puback:
            self._on_puback(packet)  # type: ignore[arg-type]
        elif kind is Pubrec:
            self._on_pubrec(packet)  # type: ignore[arg-type]
        elif kind is Pubrel:
            self._on_pubrel(packet)  # type: ignore[arg-type]
        elif kind is Pubcomp:
            self._on_pubcomp(packet)  # type: ignore[arg-type]
        elif kind is Pingreq:
            self.send(Pingresp())
        elif kind is Subscribe:
            self._on_subscribe(packet)  # type: ignore[arg-type]
        elif kind is Unsubscribe:
            self._on_unsubscribe(packet)  # type: ignore[arg-type]
        elif kind is Disconnect:
            self._on_disconnect(packet)  # type: ignore[arg-type]
        elif kind is Connect:
            self._violation(0x82, "second CONNECT on one connection")
        else:
            self._violation(0x82, f"a client may not send {kind.__name__}")

    # -- CONNECT -----------------------------------------------------------------------------------

    def _refuse(self, reason_code: int, reason: str, event: str = "connect_refused") -> None:
        self.metrics["connections_rejected"] += 1
        log.info("event=%s peer=%s client_id=%s reason=0x%02X detail=%s", event, self.peer, self.client_id,
                 reason_code, reason)
        if self.version == 5:
            self.write(encode(Connack(False, reason_code, Properties(reason_string=reason)), 5))
        else:
            self.write(encode(Connack(False, _V3_CONNACK.get(reason_code, 3)), 4))
        self.close()

    def _on_connect(self, connect: Connect) -> None:
        self.version = 5 if connect.protocol_level == 5 else 4
        self.decoder.version = self.version
        props = connect.properties
        client_id = connect.client_id
        if not client_id:
            if self.version != 5 and not connect.clean_start:
                return self._refuse(0x85, "an empty client id requires clean session")
            client_id = f"edgeloop-{uuid.uuid4().hex}"  # assigned: reported in CONNACK (v5)
        if len(client_id.encode()) > self.limits.max_client_id_bytes:
            return self._refuse(0x85, f"client id longer than {self.limits.max_client_id_bytes} bytes")
        if props.authentication_method is not None:
            return self._refuse(0x8C, "enhanced authentication is not supported; use a client certificate")
        self.client_id = client_id
        self._backlog = []
        self.broker.auth_batches.submit(self, connect)  # the authenticator blocks: it runs in a worker thread
        return None

    def authenticated(self, connect: Connect, auth: ConnectionAuth | None, error: BaseException | None) -> None:
        """The authenticator's outcome (on the loop): finish CONNECT, then replay the packets queued meanwhile."""
        if error is not None:
            self._authentication_failed(error)
            return
        self.auth = auth
        if self.closed:
            return
        client_id = self.client_id
        assert client_id is not None
        self._finish_connect(connect, client_id, None if connect.client_id else client_id)  # "": we assigned it
        backlog, self._backlog = self._backlog, None
        for packet in backlog or ():
            if self.closed:
                break
            self._dispatch(packet)
        return None

    def _authentication_failed(self, error: BaseException) -> None:
        from gateway.identity.errors import AuthenticationError, IdentityError

        if isinstance(error, AuthenticationError):
            self.metrics["connect_unauthorized"] += 1
            self._refuse(0x87, f"{error.reason}: {error.message}", "authentication_failed")
        elif isinstance(error, IdentityError):
            self.metrics["connect_unauthorized"] += 1
            self._refuse(0x87, str(error), "authentication_failed")
        else:  # a failing authenticator: refuse rather than leave the client waiting for its connect timeout
            log.error("event=authenticator_failed peer=%s client_id=%s error=%r", self.peer, self.client_id, error)
            self._refuse(0x80, "the connection could not be authenticated")

    def _finish_connect(self, connect: Connect, client_id: str, assigned: str | None) -> None:
        assert self.auth is not None
        if not self.auth.allowed("iot:Connect", client_id):
            self.metrics["connect_unauthorized"] += 1
            return self._refuse(0x87, f"policy does not allow iot:Connect for client id {client_id!r}")
        will = connect.will
        if will is not None:
            try:
                self._check_topic_limits(will.topic)
            except TopicError as exc:
                return self._refuse(exc.reason_code, exc.message)
            if not self.auth.allowed("iot:Publish", will.topic) or (
                will.retain and not self.auth.allowed("iot:RetainPublish", will.topic)
            ):
                self.metrics["connect_unauthorized"] += 1
                return self._refuse(0x87, f"policy does not allow publishing the will to {will.topic!r}")
        self.connect = connect
        self._start_session(connect, client_id, assigned)

    def _start_session(self, connect: Connect, client_id: str, assigned: str | None) -> None:
        limits = self.limits
        props = connect.properties
        if self.version == 5:
            requested = props.session_expiry_interval or 0
        else:
            requested = 0 if connect.clean_start else limits.max_session_expiry_secs
        expiry = min(requested, limits.max_session_expiry_secs)
        existing = self.broker.sessions.get(client_id)
        if existing is not None and existing.connection is not None:
            existing.connection.taken_over()
        session, present = self.broker.open_session(client_id, connect.clean_start, self.version, expiry)
        session.connection = self
        self.session = session
        keepalive = connect.keepalive
        server_keepalive = None
        if keepalive == 0 or keepalive > limits.keepalive_max_secs:
            server_keepalive = limits.keepalive_max_secs
        elif keepalive < limits.keepalive_min_secs:
            server_keepalive = limits.keepalive_min_secs
        if self.version == 5 and server_keepalive is not None:
            keepalive = server_keepalive
        self._keepalive = float(keepalive)
        self._set_deadline(time.monotonic() + keepalive * 1.5 if keepalive else None)  # first check
        ack_props = Properties()
        if self.version == 5:
            self._send_window = min(props.receive_maximum or 65535, limits.max_inflight)
            self._client_max_packet = props.maximum_packet_size or 0
            self._alias_out_max = props.topic_alias_maximum or 0
            ack_props = Properties(
                assigned_client_identifier=assigned,
                session_expiry_interval=expiry if expiry != requested else None,
                server_keep_alive=server_keepalive,
                receive_maximum=limits.max_inflight,
                topic_alias_maximum=limits.topic_alias_maximum or None,
                maximum_packet_size=self.decoder.max_packet_size,
                retain_available=None if limits.retained_enabled else 0,
            )
        self.send(Connack(present, 0, ack_props))
        self.metrics["connections_accepted"] += 1
        self.metrics["clients_connected"] += 1
        log.info("event=connected client_id=%s peer=%s listener=%s version=%d clean=%s present=%s",
                 client_id, self.peer, self.listener, connect.protocol_level, connect.clean_start, present)
        lifecycle.connected(self.broker, self)
        self._resend_inflight()
        self.pump()

    def taken_over(self) -> None:
        """Another connection claimed this client id: the new connection wins (0x8E)."""
        self.metrics["takeovers"] += 1
        self.disconnect_reason = "DUPLICATE_CLIENTID"
        self.close(0x8E, "another connection took over the session")
        self.connection_lost(None)  # release the session now, before the new connection attaches

    # -- PUBLISH from the client -------------------------------------------------------------------

    def _check_topic_limits(self, topic: str) -> None:
        limits = self.limits
        counted = topic
        if topic.startswith("$aws/rules/"):
            counted = topic.split("/", 3)[3] if topic.count("/") >= 3 else ""
        if len(counted.encode()) > limits.max_topic_bytes:
            raise TopicError(f"topic longer than {limits.max_topic_bytes} bytes")
        if counted.count("/") >= limits.max_topic_levels:
            raise TopicError(f"topic has more than {limits.max_topic_levels} levels")

    def _on_publish(self, pub: Publish) -> None:
        if self.connect is None:
            return self._violation(0x82, "PUBLISH before CONNECT; the first packet must be CONNECT")
        if self.session is None:
            return None
        session = self.session
        assert session is not None and self.auth is not None
        topic = pub.topic
        alias = pub.properties.topic_alias if self.version == 5 else None
        if alias is not None:
            if alias == 0 or alias > self.limits.topic_alias_maximum:
                return self._violation(0x94, f"topic alias {alias} outside 1..{self.limits.topic_alias_maximum}")
            if topic:
                if self._aliases_in is None:
                    self._aliases_in = {}
                self._aliases_in[alias] = topic
            else:
                topic = self._aliases_in.get(alias, "") if self._aliases_in is not None else ""
                if not topic:
                    return self._violation(0x82, f"topic alias {alias} used before it was set")
        elif not topic:
            return self._violation(0x82, "PUBLISH with an empty topic and no topic alias")
        if len(pub.payload) > self.limits.max_payload_bytes:
            return self._violation(0x95, f"payload larger than {self.limits.max_payload_bytes} bytes")
        qos = pub.qos
        if qos == 2 and pub.packet_id in session.incoming_qos2:
            assert pub.packet_id is not None  # a QoS 2 PUBLISH always carries one
            self._acknowledge(Pubrec(pub.packet_id), [])  # duplicate: already accepted, acknowledge again
            return None
        if qos and self._acks is not None and len(self._acks) >= self.limits.max_inflight:
            return self._violation(0x93, f"more than {self.limits.max_inflight} unacknowledged QoS>0 PUBLISH")
        limits = self.limits
        if not (topic.isascii() and len(topic) <= limits.max_topic_bytes
                and topic.count("/") < limits.max_topic_levels):  # the common case needs no closer look
            try:
                self._check_topic_limits(topic)
            except TopicError as exc:
                return self._reject_publish(pub, exc.reason_code, exc.message)
        if not self.auth.allowed("iot:Publish", topic) or (
            pub.retain and not self.auth.allowed("iot:RetainPublish", topic)
        ):
            self.metrics["publish_unauthorized"] += 1
            return self._reject_publish(pub, 0x87, f"policy does not allow publishing to {topic!r}")
        props = pub.properties if self.version == 5 else None
        if props is not None:
            if props.payload_format_indicator == 1:
                try:
                    pub.payload.decode("utf-8")
                except UnicodeDecodeError:
                    return self._reject_publish(pub, 0x99, "payload format indicator says UTF-8 but it is not")
            if props.topic_alias is not None or props.subscription_identifiers:
                props = _forwardable(props)
        message = Message(topic, pub.payload, qos, pub.retain, props, client_id=self.client_id,
                          principal=self.auth.principal, origin=self.listener)
        waits, failures = self.broker.accept(message)
        if qos == 0:
            for w in waits:
                self.broker.spawn(w)
            return None
        if qos == 1:
            ack: Any = _PUBACK_HEADER + pub.packet_id.to_bytes(2, "big")  # type: ignore[union-attr]
            if not waits and not failures and not self._acks:
                self.write(ack)
                return None
        else:
            session.add_incoming_qos2(pub.packet_id)  # type: ignore[arg-type]
            fut = self.broker.subscriptions_changed(session)
            if fut is not None:
                waits.append(fut)
            ack = Pubrec(pub.packet_id)  # type: ignore[arg-type]
        self._acknowledge(ack, waits, failures[0] if failures else None)
        return None

    def _reject_publish(self, pub: Publish, reason_code: int, message: str) -> None:
        """v5 QoS>0: negative PUBACK/PUBREC; QoS 0 and v3.1.1: close (as AWS IoT does)."""
        log.info("event=publish_rejected client_id=%s topic=%s reason=0x%02X detail=%s",
                 self.client_id, pub.topic, reason_code, message)
        if self.version == 5 and pub.qos:
            ack_cls = Puback if pub.qos == 1 else Pubrec
            self._acknowledge(ack_cls(pub.packet_id, reason_code, Properties(reason_string=message)), [])  # type: ignore[arg-type]
            return
        self.disconnect_reason = "AUTH_ERROR" if reason_code == 0x87 else "CLIENT_ERROR"
        self.close(reason_code, message)

    def _acknowledge(self, ack: Any, waits: list[Any], failure: BaseException | None = None) -> None:
        """Send `ack` after `waits` and every earlier acknowledgement (the queue is made when one has to wait)."""
        acks = self._acks
        if not waits and not acks:
            self._send_ack(ack, failure)
            return
        if acks is None:
            acks = self._acks = AckQueue(self._send_ack, self.broker.track)
        acks.add(ack, waits, failure)

    def _send_ack(self, ack: Any, failure: BaseException | None) -> None:
        """Write an acknowledgement from the queue; when a wait failed, answer 0x80 (v5) or close (3.1.1)."""
        if failure is None:
            if type(ack) is bytes:
                self.write(ack)
            else:
                self.send(ack)
            return
        self.metrics["ack_failures"] += 1
        log.warning("event=publish_not_acknowledged client_id=%s error=%r", self.client_id, failure)
        if self.version != 5:
            self.disconnect_reason = "SERVER_ERROR"
            self.close()
            return
        if type(ack) is bytes:
            ack = Puback(int.from_bytes(ack[2:4], "big"))
        ack.reason_code = 0x80
        ack.properties = Properties(reason_string="the message could not be processed")
        if type(ack) is Pubrec and self.session is not None:
            self.session.discard_incoming_qos2(ack.packet_id)
        self.send(ack)

    def _on_pubrel(self, rel: Pubrel) -> None:
        session = self.session
        assert session is not None
        if rel.packet_id in session.incoming_qos2:
            session.discard_incoming_qos2(rel.packet_id)
            self.broker.subscriptions_changed(session)
            self._acknowledge(Pubcomp(rel.packet_id), [])
        else:
            self._acknowledge(Pubcomp(rel.packet_id, 0x92), [])

    # -- deliveries to the client ------------------------------------------------------------------

    def _deliverable(self, d: Delivery) -> bool:
        """Expiry and the Receive policy, checked at the moment of sending."""
        msg = d.message
        if msg.expires_at is not None and msg.expired():
            self.metrics["publish_dropped_expired"] += 1
            return False
        assert self.auth is not None
        if not self.auth.allowed("iot:Receive", msg.topic):
            self.metrics["receive_unauthorized"] += 1
            return False
        return True

    def send_qos0(self, d: Delivery) -> None:
        if self.closed:
            return
        paused = self._paused
        if paused and self._qos0_backlog >= self.limits.max_qos0_buffer_bytes:  # full: drop before any work
            self.metrics["publish_dropped_qos0_backpressure"] += 1
            return
        if not self._deliverable(d):
            return
        data = self._encode_delivery(d, None, False)
        if data is None:
            return
        if paused:
            if self._qos0_backlog + len(data) > self.limits.max_qos0_buffer_bytes:
                self.metrics["publish_dropped_qos0_backpressure"] += 1
                self._qos0_backlog = self.limits.max_qos0_buffer_bytes  # later ones drop on the fast path
                return
            self._qos0_backlog += len(data)
        self.metrics["messages_sent"] += 1
        self.write(data)

    def pump(self) -> None:
        """Send queued QoS 1/2 deliveries while the receive window and the socket allow."""
        session = self.session
        if session is None or self.closed or self.connect is None:
            return
        queue = session.queue
        if not queue:
            return
        inflight = session.writable_inflight()
        while queue and not self._paused and len(inflight) < self._send_window:
            d = queue.popleft()  # type: ignore[union-attr]
            if not self._deliverable(d):
                self.broker.delivery_done(session, d)
                continue
            pid = session.allocate_packet_id()
            if pid is None:
                queue.appendleft(d)  # type: ignore[union-attr]
                return
            d.packet_id, d.state = pid, SENT
            inflight[pid] = d
            if d.qos == 2:
                self.broker.delivery_state(d)
            data = self._encode_delivery(d, pid, False)
            if data is None:
                del inflight[pid]
                self.broker.delivery_done(session, d)
                continue
            self.metrics["messages_sent"] += 1
            self.write(data)
        session.queue_drained()
        if not inflight:
            session.inflight = NO_INFLIGHT

    def _resend_inflight(self) -> None:
        session = self.session
        assert session is not None
        for pid, d in list(session.inflight.items()):
            if d.state == RELEASED:
                self.send(Pubrel(pid))
                continue
            d.state = SENT
            data = self._encode_delivery(d, pid, True)
            if data is None:
                session.take_inflight(pid)
                self.broker.delivery_done(session, d)
                continue
            self.write(data)

    def _encode_delivery(self, d: Delivery, packet_id: int | None, dup: bool) -> bytes | None:
        msg = d.message
        if self.version != 5:
            key: Any = (4, d.qos, d.retain)
            if d.qos == 0:
                cache = msg.encoded
                if cache is None:
                    cache = msg.encoded = {}
                cached = cache.get(key)
                if cached is None:
                    cached = cache[key] = encode_publish(msg.topic, msg.payload, 0, d.retain, False, None, 4)
                return cached
            return encode_publish(msg.topic, msg.payload, d.qos, d.retain, dup, packet_id, 4)
        topic: str = msg.topic
        aliases = self._aliases_out
        alias = None
        new_alias = False
        if self._alias_out_max:
            if aliases is None:
                aliases = self._aliases_out = {}
            alias = aliases.get(topic)
            if alias is None and len(aliases) < self._alias_out_max:
                alias = aliases[topic] = len(aliases) + 1
                new_alias = True
        props = self._outgoing_properties(d, alias)
        data = encode_publish("" if alias and not new_alias else topic, msg.payload, d.qos, d.retain, dup,
                              packet_id, 5, props)
        if self._client_max_packet and len(data) > self._client_max_packet:
            self.metrics["publish_dropped_too_large_for_client"] += 1
            if new_alias and aliases is not None:
                del aliases[topic]
            return None
        return data

    def _outgoing_properties(self, d: Delivery, alias: int | None) -> bytes:
        msg = d.message
        src = msg.properties
        if not d.sub_ids and alias is None and msg.expires_at is None:
            cache = msg.encoded
            if cache is None:
                cache = msg.encoded = {}
            cached = cache.get("v5props")
            if cached is None:
                cached = cache["v5props"] = encode_properties(src or Properties(), PacketType.PUBLISH)
            return cached
        props = _forwardable(src) if src is not None else Properties()
        props.subscription_identifiers = list(d.sub_ids)
        props.topic_alias = alias
        if msg.expires_at is not None:
            props.message_expiry_interval = msg.remaining_expiry()
        return encode_properties(props, PacketType.PUBLISH)

    def _on_puback(self, ack: Puback) -> None:
        session = self.session
        assert session is not None
        d = session.inflight.get(ack.packet_id)
        if d is None or d.qos != 1:
            log.debug("event=unknown_puback client_id=%s packet_id=%s", self.client_id, ack.packet_id)
            return
        session.take_inflight(ack.packet_id)
        self.broker.delivery_done(session, d)
        self.pump()

    def _on_pubrec(self, rec: Pubrec) -> None:
        session = self.session
        assert session is not None
        d = session.inflight.get(rec.packet_id)
        if d is None or d.qos != 2:
            self.send(Pubrel(rec.packet_id, 0x92 if self.version == 5 else 0))
            return
        if rec.reason_code >= 0x80:
            session.take_inflight(rec.packet_id)
            self.broker.delivery_done(session, d)
            self.pump()
            return
        d.state = RELEASED
        self.broker.delivery_state(d)
        self.send(Pubrel(rec.packet_id))

    def _on_pubcomp(self, comp: Pubcomp) -> None:
        session = self.session
        assert session is not None
        d = session.take_inflight(comp.packet_id)
        if d is not None:
            self.broker.delivery_done(session, d)
        self.pump()

    # -- SUBSCRIBE / UNSUBSCRIBE -------------------------------------------------------------------

    def _on_subscribe(self, sub: Subscribe) -> None:
        session = self.session
        assert session is not None and self.auth is not None
        v5 = self.version == 5
        identifier = sub.properties.subscription_identifiers[0] if sub.properties.subscription_identifiers else None
        codes: list[int] = []
        added: list[tuple[SubscriptionRecord, bool]] = []
        for i, s in enumerate(sub.subscriptions):
            code = self._subscribe_one(session, s, i, identifier, added)
            if code is None:
                return
            codes.append(code if v5 or code < 0x80 else 0x80)
        self.send(Suback(sub.packet_id, codes))
        if added:
            self.broker.subscriptions_changed(session)
            lifecycle.subscriptions(self.broker, self, "subscribed", [r.topic_filter for r, _ in added])
        for record, new in added:
            self._send_retained(record, new)

    def _subscribe_one(self, session: Session, s: Any, index: int, identifier: int | None,
                       added: list[tuple[SubscriptionRecord, bool]]) -> int | None:
        limits = self.limits
        assert self.auth is not None
        if index >= limits.max_filters_per_subscribe:
            return 0x97
        try:
            validate_topic_filter(s.topic_filter)
            group, inner = split_shared(s.topic_filter)
            self._check_topic_limits(inner)
        except TopicError as exc:
            log.info("event=subscribe_rejected client_id=%s filter=%r detail=%s", self.client_id,
                     s.topic_filter, exc.message)
            return 0x8F
        if group is not None and s.no_local:
            self._violation(0x82, "no local is not allowed on a shared subscription")
            return None
        if not self.auth.allowed("iot:Subscribe", s.topic_filter):
            self.metrics["subscribe_unauthorized"] += 1
            log.info("event=subscribe_unauthorized client_id=%s filter=%r", self.client_id, s.topic_filter)
            return 0x87
        if s.topic_filter not in session.subscriptions and (
            len(session.subscriptions) >= limits.max_subscriptions_per_connection
        ):
            return 0x97
        qos = min(s.qos, 2)
        record = SubscriptionRecord(s.topic_filter, qos, s.no_local, s.retain_as_published, s.retain_handling,
                                    identifier)
        new = self.broker.add_subscription(session, record)
        added.append((record, new))
        return qos

    def _send_retained(self, record: SubscriptionRecord, new: bool) -> None:
        if record.retain_handling == 2 or (record.retain_handling == 1 and not new):
            return
        group, inner = split_shared(record.topic_filter)
        if group is not None:
            return
        session = self.session
        assert session is not None
        sub_ids = (record.identifier,) if record.identifier else ()
        for msg in self.broker.retained_matching(inner):
            self.broker.enqueue(session, Delivery(msg, min(msg.qos, record.qos), True, sub_ids))

    def _on_unsubscribe(self, unsub: Unsubscribe) -> None:
        session = self.session
        assert session is not None
        codes = []
        removed = []
        for topic_filter in unsub.topic_filters:
            if self.broker.remove_subscription(session, topic_filter):
                codes.append(0)
                removed.append(topic_filter)
            else:
                codes.append(0x11)
        self.send(Unsuback(unsub.packet_id, codes))
        if removed:
            self.broker.subscriptions_changed(session)
            lifecycle.subscriptions(self.broker, self, "unsubscribed", removed)

    # -- DISCONNECT --------------------------------------------------------------------------------

    def _on_disconnect(self, disc: Disconnect) -> None:
        session = self.session
        assert session is not None and self.connect is not None
        if self.version == 5:
            new_expiry = disc.properties.session_expiry_interval
            if new_expiry is not None:
                if session.expiry_interval == 0 and new_expiry > 0:
                    return self._violation(0x82, "session expiry cannot be set at DISCONNECT when it was zero")
                session.expiry_interval = min(new_expiry, self.limits.max_session_expiry_secs)
        if disc.reason_code != 0x04:
            self.connect.will = None
        self.client_initiated = True
        self.disconnect_reason = "CLIENT_INITIATED_DISCONNECT"
        self._flush()
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        return None

    # -- identity changes --------------------------------------------------------------------------

    def identity_problem(self) -> str | None:
        """Why this connection's certificate or policy no longer allows it (blocking: registry lookups)."""
        if self.auth is None or self.closed:
            return None
        return self.auth.revoked()

    def revoke(self, reason: str) -> None:
        """Close the connection because its identity was revoked, deactivated or lost iot:Connect."""
        if self.closed:
            return
        self.metrics["revoked_disconnects"] += 1
        log.info("event=identity_revoked client_id=%s detail=%s", self.client_id, reason)
        self.disconnect_reason = "AUTH_ERROR"
        self.close(0x87, reason)


def _forwardable(src: Properties) -> Properties:
    """The PUBLISH properties a server forwards to subscribers (MQTT 5 §3.3.2.3)."""
    return Properties(
        payload_format_indicator=src.payload_format_indicator,
        message_expiry_interval=src.message_expiry_interval,
        content_type=src.content_type,
        response_topic=src.response_topic,
        correlation_data=src.correlation_data,
        user_properties=list(src.user_properties),
    )



__all__ = ["Authenticator", "ConnectionAuth", "MqttConnection"]
