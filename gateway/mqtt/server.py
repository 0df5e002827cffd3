"""Listeners and the service entry point: `start_mqtt(config, registry) -> MqttService`.

- ``mqtts`` (config.mqtt.port, 8883): MQTT over TLS >= 1.2, client certificate required; ALPN ``mqtt``,
  ``x-amzn-mqtt-ca`` or none.
- ``https`` (config.mqtt.https_port, 8443): TLS with ALPN dispatch: ``x-amzn-mqtt-ca`` -> MQTT,
  ``http/1.1`` (or none) -> HTTPS: MQTT over WebSocket at ``/mqtt`` and ``POST /topics/{topic}``. With
  ``mqtt.sigv4_websocket`` (the default) the handshake does not require a client certificate (CERT_OPTIONAL), so
  that SigV4-signed WebSocket upgrades get through; everything else on it is refused without one.
- ``dev`` (config.mqtt.dev_port, 1883, only with config.mqtt.dev): plain MQTT bound to 127.0.0.1.

The event loop runs TLS handshakes (`connect_accepted_socket(ssl=...)` on sockets accepted by `TlsServer`, as fast
as the loop's TLS gets); the first protocol of each connection then dispatches on ALPN. Failed handshakes are
logged with their reason and peer, and counted in `tls_failures` and `tls_failures_<reason>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgeloop.config import Config
from gateway.identity.policy import Authorizer
from gateway.mqtt import lifecycle
from gateway.mqtt.authz import CertificateAuthenticator, DevAuthenticator, SigV4Authenticator, peer_certificate
from gateway.mqtt.broker import Broker, PublishHook
from gateway.mqtt.connection import MqttConnection
from gateway.mqtt.errors import MqttError
from gateway.mqtt.sigv4ws import COUNTERS as SIGV4_COUNTERS
from gateway.mqtt.sigv4ws import SigV4Gate, SigV4WebSocket, sigv4_gate
from gateway.mqtt.store import BrokerStore
from gateway.mqtt.tlsaccept import TlsServer, count_failure, failure_detail, failure_reason

if TYPE_CHECKING:
    from gateway.identity.registry import Registry

log = logging.getLogger("edgeloop.mqtt")

MQTT_ALPN = ("mqtt", "x-amzn-mqtt-ca")
HTTPS_ALPN = ("x-amzn-mqtt-ca", "http/1.1")
LISTEN_BACKLOG = 4096  # connection storms (a fleet reconnecting at once) must not overflow the accept queue
SslContextFactory = Callable[[Sequence[str], bool], ssl.SSLContext]  # (ALPN, require a client certificate)


MQTT_CONNECT_BYTE = 0x10  # the first byte of every MQTT session: a CONNECT fixed header
ProtocolChooser = Callable[[Any, str | None, int | None], asyncio.Protocol]  # (TLS transport, ALPN, first byte)


class TlsListener:
    """What every connection of one TLS listener shares: where to count, and how to pick the inner protocol."""

    __slots__ = ("broker", "choose", "name", "sniff")

    def __init__(self, broker: Broker, choose: ProtocolChooser, name: str, sniff: bool = False) -> None:
        self.broker = broker
        self.choose = choose
        self.name = name
        self.sniff = sniff

    def __call__(self) -> TlsDispatch:
        return TlsDispatch(self)

    def handshake_failed(self, peer: str | None, exc: BaseException) -> None:
        """Log and count a failed handshake, in total and per reason (`tls_failures_<reason>`)."""
        count_failure(self.broker.metrics, self.name, peer, failure_reason(exc), failure_detail(exc))

    def refuse(self, transport: Any, reason: str, detail: str) -> asyncio.Protocol:
        """Count and log a connection refused right after its handshake; the protocol returned closes it."""
        peer = transport.get_extra_info("peername")
        count_failure(self.broker.metrics, self.name, peer[0] if isinstance(peer, tuple) else None, reason, detail)
        return _Refused()


class _Refused(asyncio.Protocol):
    """Closes the connection it is given."""

    def connection_made(self, transport: Any) -> None:
        transport.abort()


class TlsDispatch(asyncio.Protocol):
    """The first protocol of a TLS connection. The event loop runs the handshake; `connection_made` then
    hands the TLS transport to the protocol chosen by ALPN.

    With `sniff`, a session that negotiated no ALPN protocol is dispatched by its first byte instead (an MQTT
    CONNECT or an HTTP request), so clients that skip ALPN on a non-443 port still reach MQTT.
    """

    __slots__ = ("_early", "_listener", "_timer", "_transport")

    def __init__(self, listener: TlsListener) -> None:
        self._listener = listener
        self._transport: Any = None
        self._early: list[bytes] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if alpn is None and self._listener.sniff:
            self._early = []
            timeout = self._listener.broker.limits.connect_timeout_secs
            self._timer = asyncio.get_running_loop().call_later(timeout, transport.abort)
            return
        self._attach(self._listener.choose(transport, alpn, None))

    def _attach(self, inner: asyncio.Protocol) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transport, self._transport = self._transport, None
        transport.set_protocol(inner)
        inner.connection_made(transport)
        early, self._early = self._early, None
        for data in early or ():
            inner.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self._early is not None and self._transport is not None:  # no ALPN: the first byte decides
            self._early.append(data)
            self._attach(self._listener.choose(self._transport, None, data[0]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport = None


@dataclass
class MqttService:
    """The running broker and its listeners."""

    broker: Broker
    ports: dict[str, int] = field(default_factory=dict)
    servers: list[asyncio.AbstractServer | TlsServer] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    web: Any = None
    sigv4: SigV4Gate | None = None  # whether SigV4 WebSocket is accepted on the https listener, and why not

    async def stop(self) -> None:
        """Stop listening, close connections, flush sessions and retained state to disk."""
        for server in self.servers:
            server.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.broker.stop()
        if self.web is not None:
            await self.web.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)


async def start_mqtt(
    config: Config, registry: Registry | None, *, hooks: Iterable[PublishHook] = (),
    ssl_context_factory: SslContextFactory | None = None,
) -> MqttService:
    """Start the broker and its listeners per `config.mqtt` (port 0 = ephemeral).

    `hooks` are attached before any listener opens, so they see every message from the first one.
    """
    limits = config.mqtt
    if registry is None and not limits.dev:
        raise MqttError("the MQTT broker needs the identity registry for its TLS listeners, or mqtt.dev = true")
    store = BrokerStore(config.home / "broker", config.durability.fsync)
    broker = Broker(config, store)
    for hook in hooks:
        broker.add_hook(hook)
    await broker.start()
    service = MqttService(broker)
    loop = asyncio.get_running_loop()
    authorizer = Authorizer(config.aws.region, config.aws.account_id)
    try:
        if registry is not None:
            await _start_tls_listeners(service, config, registry, authorizer, ssl_context_factory)
        if limits.dev:
            dev_auth = DevAuthenticator(registry, authorizer)
            server = await loop.create_server(lambda: MqttConnection(broker, dev_auth, "dev"), "127.0.0.1",
                                              limits.dev_port)
            service.servers.append(server)
            service.ports["dev"] = server.sockets[0].getsockname()[1]
    except BaseException:
        await service.stop()
        raise
    if limits.sys_interval_secs > 0:
        service.tasks.append(loop.create_task(lifecycle.publish_sys_forever(broker, limits.sys_interval_secs)))
    if registry is not None:
        service.tasks.append(loop.create_task(_watch_registry(broker, registry, limits.identity_recheck_secs)))
    log.info("event=mqtt_started ports=%s", service.ports)
    return service


async def _start_tls_listeners(service: MqttService, config: Config, registry: Registry, authorizer: Authorizer,
                               factory: SslContextFactory | None) -> None:
    from gateway.identity.tls import gateway_server_context
    from gateway.mqtt.web import DeviceWebApp

    broker = service.broker
    limits = config.mqtt
    make_context: SslContextFactory = factory or (
        lambda alpn, required: gateway_server_context(registry, alpn, require_certificate=required))
    https_requires_cert = not limits.sigv4_websocket
    mqtt_ctx, https_ctx = await asyncio.to_thread(
        lambda: (make_context(MQTT_ALPN, True), make_context(HTTPS_ALPN, https_requires_cert)))
    for context in (mqtt_ctx, https_ctx):
        context.num_tickets = limits.tls_session_tickets
    cert_auth = CertificateAuthenticator(registry, authorizer)

    def mqtt_protocol(_transport: Any, _alpn: str | None, _first: int | None) -> asyncio.Protocol:
        return MqttConnection(broker, cert_auth, "mqtts")

    server = await _tls_server(TlsListener(broker, mqtt_protocol, "mqtts"), limits.host, limits.port, mqtt_ctx,
                               limits.tls_handshake_timeout_secs)
    service.servers.append(server)
    service.ports["mqtts"] = server.sockets[0].getsockname()[1]

    for name in SIGV4_COUNTERS:
        broker.metrics[name] += 0
    sigv4 = SigV4WebSocket(SigV4Gate(False, "the listener is not bound yet"), {config.api.access_key:
                           config.api.secret_key}, config.aws.region,
                           SigV4Authenticator(registry, authorizer, limits.sigv4_policy))
    web = DeviceWebApp(broker, cert_auth, sigv4)
    await web.start()
    service.web = web

    def https_protocol(transport: Any, alpn: str | None, first: int | None) -> asyncio.Protocol:
        if alpn == "x-amzn-mqtt-ca" or (alpn is None and first == MQTT_CONNECT_BYTE):
            if not peer_certificate(transport):
                return https.refuse(transport, "no_certificate", "MQTT on this port needs a client certificate")
            return MqttConnection(broker, cert_auth, "https-mqtt")
        return web.protocol()

    https = TlsListener(broker, https_protocol, "https", sniff=True)
    server = await _tls_server(https, limits.host, limits.https_port, https_ctx, limits.tls_handshake_timeout_secs)
    service.servers.append(server)
    service.ports["https"] = server.sockets[0].getsockname()[1]
    # No await since the bind: no connection has been served before the gate is decided.
    gate = sigv4_gate(limits.sigv4_websocket, config.api, [sock.getsockname()[0] for sock in server.sockets])
    web.sigv4 = dataclasses.replace(sigv4, gate=gate)
    service.sigv4 = gate
    if gate.enabled:
        log.info("event=sigv4_websocket state=on port=%d policy=%s", service.ports["https"],
                 limits.sigv4_policy or "built-in allow-all")
    else:
        log.warning("event=sigv4_websocket state=off port=%d reason=%r", service.ports["https"], gate.why_off)


async def _tls_server(listener: TlsListener, host: str, port: int, context: ssl.SSLContext,
                      handshake_timeout: float) -> TlsServer:
    return await TlsServer.start(host, port, LISTEN_BACKLOG, context, listener, listener.handshake_failed,
                                 handshake_timeout)


async def _watch_registry(broker: Broker, registry: Registry, interval: float = 1.0) -> None:
    """Poll the registry generation; on a change, recheck every live connection's certificate and policy.

    The rechecks query the registry, so they run in a worker thread; only the closes happen on the loop.
    """
    seen = await asyncio.to_thread(registry.generation)
    while True:
        await asyncio.sleep(interval)
        try:
            current = await asyncio.to_thread(registry.generation)
            if current == seen:
                continue
            seen = current
            problems = await asyncio.to_thread(_identity_problems, list(broker.connections))
        except Exception:
            log.exception("event=registry_poll_failed")
            continue
        for conn, problem in problems:
            if problem is not None:
                conn.revoke(problem)


def _identity_problems(connections: list[MqttConnection]) -> list[tuple[MqttConnection, str | None]]:
    return [(conn, conn.identity_problem()) for conn in connections]


__all__ = ["MqttService", "TlsDispatch", "TlsListener", "start_mqtt"]
