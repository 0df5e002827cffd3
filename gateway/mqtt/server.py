"""Listeners and the service entry point: `start_mqtt(config, registry) -> MqttService`.

- ``mqtts`` (config.mqtt.port, 8883): MQTT over TLS >= 1.2, client certificate required; ALPN ``mqtt``,
  ``x-amzn-mqtt-ca`` or none.
- ``https`` (config.mqtt.https_port, 8443): TLS with ALPN dispatch: ``x-amzn-mqtt-ca`` -> MQTT,
  ``http/1.1`` (or none) -> HTTPS: MQTT over WebSocket at ``/mqtt`` and ``POST /topics/{topic}``.
- ``dev`` (config.mqtt.dev_port, 1883, only with config.mqtt.dev): plain MQTT bound to 127.0.0.1.

TLS handshakes run explicitly (`loop.start_tls`) so every failure is logged with its reason and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgeloop.config import Config
from gateway.identity.policy import Authorizer
from gateway.mqtt import lifecycle
from gateway.mqtt.authz import CertificateAuthenticator, DevAuthenticator
from gateway.mqtt.broker import Broker
from gateway.mqtt.connection import Authenticator, MqttConnection
from gateway.mqtt.errors import MqttError
from gateway.mqtt.store import BrokerStore

if TYPE_CHECKING:
    from gateway.identity.registry import Registry

log = logging.getLogger("edgeloop.mqtt")

MQTT_ALPN = ("mqtt", "x-amzn-mqtt-ca")
HTTPS_ALPN = ("x-amzn-mqtt-ca", "http/1.1")
HANDSHAKE_TIMEOUT = 10.0
SslContextFactory = Callable[[Sequence[str]], ssl.SSLContext]


def tls_failure_reason(exc: BaseException) -> str:
    """A short reason for a failed handshake: unknown-ca, expired, no-certificate, ..."""
    text = f"{getattr(exc, 'verify_message', '') or ''} {getattr(exc, 'reason', '') or ''} {exc}".lower()
    for needle, reason in (
        ("expired", "expired"),
        ("not yet valid", "not-yet-valid"),
        ("revoked", "revoked"),
        ("peer did not return a certificate", "no-certificate"),
        ("certificate required", "no-certificate"),
        ("unknown ca", "unknown-ca"),
        ("unable to get local issuer", "unknown-ca"),
        ("self-signed", "unknown-ca"),
        ("self signed", "unknown-ca"),
        ("wrong version number", "not-tls"),
        ("http request", "not-tls"),
        ("no application protocol", "alpn-mismatch"),
        ("unsupported protocol", "tls-version"),
    ):
        if needle in text:
            return reason
    if isinstance(exc, TimeoutError):
        return "handshake-timeout"
    return "handshake-failed"


MQTT_CONNECT_BYTE = 0x10  # the first byte of every MQTT session: a CONNECT fixed header
ProtocolChooser = Callable[[str | None, int | None], asyncio.Protocol]


class TlsAcceptor(asyncio.Protocol):
    """Accepts TCP, runs the TLS handshake, then hands the TLS transport to the protocol chosen by ALPN.

    With `sniff`, a session that negotiated no ALPN protocol is dispatched by its first byte instead (an MQTT
    CONNECT or an HTTP request), so clients that skip ALPN on a non-443 port still reach MQTT.
    """

    __slots__ = ("_early", "_inner", "_peer", "_sniff_timer", "_tls", "broker", "choose", "context", "listener",
                 "sniff")

    def __init__(self, broker: Broker, context: ssl.SSLContext, choose: ProtocolChooser, listener: str,
                 sniff: bool = False) -> None:
        self.broker = broker
        self.context = context
        self.choose = choose
        self.listener = listener
        self.sniff = sniff
        self._early: list[bytes] = []
        self._inner: asyncio.Protocol | None = None
        self._tls: Any = None
        self._sniff_timer: asyncio.TimerHandle | None = None
        self._peer: Any = None

    def connection_made(self, transport: Any) -> None:
        self._peer = transport.get_extra_info("peername")
        self.broker.track(asyncio.ensure_future(self._handshake(transport)))

    async def _handshake(self, transport: Any) -> None:
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(transport, self, self.context, server_side=True,
                                       ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError) as exc:
            self.broker.metrics["tls_failures"] += 1
            log.info("event=tls_failed listener=%s peer=%s reason=%s detail=%s", self.listener, self._peer,
                     tls_failure_reason(exc), exc)
            transport.abort()
            return
        if tls is None:
            transport.abort()
            return
        ssl_object = tls.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if alpn is None and self.sniff:
            self._tls = tls
            if self._early:
                self._attach(self.choose(None, self._early[0][0]))
            else:
                timeout = self.broker.limits.connect_timeout_secs
                self._sniff_timer = loop.call_later(timeout, tls.abort)
            return
        self._tls = tls
        self._attach(self.choose(alpn, None))

    def _attach(self, inner: asyncio.Protocol) -> None:
        if self._sniff_timer is not None:
            self._sniff_timer.cancel()
            self._sniff_timer = None
        self._inner = inner
        self._tls.set_protocol(inner)
        inner.connection_made(self._tls)
        early, self._early = self._early, []
        for data in early:
            inner.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)
            return
        self._early.append(data)
        if self._tls is not None and self.sniff:  # handshake done, no ALPN: the first byte decides
            self._attach(self.choose(None, data[0]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._sniff_timer is not None:
            self._sniff_timer.cancel()
            self._sniff_timer = None
        if self._inner is not None:
            self._inner.connection_lost(exc)


@dataclass
class MqttService:
    """The running broker and its listeners."""

    broker: Broker
    ports: dict[str, int] = field(default_factory=dict)
    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    web: Any = None

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
    config: Config, registry: Registry | None, *, ssl_context_factory: SslContextFactory | None = None
) -> MqttService:
    """Start the broker and its listeners per `config.mqtt` (port 0 = ephemeral)."""
    limits = config.mqtt
    if registry is None and not limits.dev:
        raise MqttError("the MQTT broker needs the identity registry for its TLS listeners, or mqtt.dev = true")
    store = BrokerStore(config.home / "broker", config.durability.fsync)
    broker = Broker(config, store)
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
    loop = asyncio.get_running_loop()
    make_context: SslContextFactory = factory or (lambda alpn: gateway_server_context(registry, alpn))
    mqtt_ctx, https_ctx = await asyncio.to_thread(lambda: (make_context(MQTT_ALPN), make_context(HTTPS_ALPN)))
    cert_auth: Authenticator = CertificateAuthenticator(registry, authorizer)

    def mqtt_protocol(_alpn: str | None, _first: int | None) -> asyncio.Protocol:
        return MqttConnection(broker, cert_auth, "mqtts")

    server = await loop.create_server(lambda: TlsAcceptor(broker, mqtt_ctx, mqtt_protocol, "mqtts"), limits.host,
                                      limits.port)
    service.servers.append(server)
    service.ports["mqtts"] = server.sockets[0].getsockname()[1]

    web = DeviceWebApp(broker, cert_auth)
    await web.start()
    service.web = web

    def https_protocol(alpn: str | None, first: int | None) -> asyncio.Protocol:
        if alpn == "x-amzn-mqtt-ca" or (alpn is None and first == MQTT_CONNECT_BYTE):
            return MqttConnection(broker, cert_auth, "https-mqtt")
        return web.protocol()

    server = await loop.create_server(lambda: TlsAcceptor(broker, https_ctx, https_protocol, "https", sniff=True),
                                      limits.host, limits.https_port)
    service.servers.append(server)
    service.ports["https"] = server.sockets[0].getsockname()[1]


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
            connections = list(broker.connections)
            problems = await asyncio.to_thread(lambda: [(c, c.identity_problem()) for c in connections])
        except Exception:
            log.exception("event=registry_poll_failed")
            continue
        for conn, problem in problems:
            if problem is not None:
                conn.revoke(problem)


__all__ = ["MqttService", "start_mqtt", "tls_failure_reason"]
