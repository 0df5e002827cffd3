"""The HTTPS side of the device endpoint (port 8443, ALPN ``http/1.1``), served by aiohttp.

- ``GET /mqtt`` upgraded to WebSocket (sub-protocol ``mqtt``): MQTT over binary frames. The connection is
  authenticated by its SigV4-signed upgrade when it carries a signature (see `sigv4ws`), else by the client
  certificate; with neither it is refused (401) before the upgrade.
- ``POST /topics/{topic}?qos=0|1``: publish the body; the principal comes from the client certificate and
  the ``iot:Publish`` policy applies. Answers like AWS IoT: ``{"message": "OK", "traceId": ...}``.

Refusals are logged and counted: no certificate in `tls_failures_no_certificate`, a refused signature in
`sigv4_failures_<reason>`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from typing import Any

from aiohttp import WSMsgType, web

from gateway.awsapi.sigv4 import credential_of
from gateway.identity.errors import IdentityError
from gateway.mqtt.authz import CertificateAuthenticator, peer_certificate
from gateway.mqtt.broker import Broker
from gateway.mqtt.connection import Authenticator, MqttConnection
from gateway.mqtt.message import Message
from gateway.mqtt.sigv4ws import SigV4WebSocket, WebSocketAuthError, count_refusal, is_signed
from gateway.mqtt.tlsaccept import count_failure
from gateway.mqtt.topics import TopicError, validate_topic_name

log = logging.getLogger("edgeloop.mqtt")


class WebSocketTransport:
    """The subset of an asyncio transport an `MqttConnection` uses, writing binary WebSocket frames."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        self._queue: deque[bytes | None] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self.sender = asyncio.ensure_future(self._send_loop())

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        transport = self.request.transport
        return transport.get_extra_info(name, default) if transport is not None else default

    def write(self, data: bytes) -> None:
        if not self._closing:
            self._queue.append(data)
            self._wakeup.set()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._queue.append(None)
            self._wakeup.set()

    abort = close

    async def _send_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                data = self._queue.popleft()
                if data is None:
                    await self.ws.close()
                    return
                try:
                    await self.ws.send_bytes(data)
                except (ConnectionError, RuntimeError):
                    self._closing = True
                    return


class DeviceWebApp:
    """aiohttp application whose protocol instances the TLS acceptor hands HTTP/1.1 connections to."""

    def __init__(self, broker: Broker, authenticate: CertificateAuthenticator, sigv4: SigV4WebSocket) -> None:
        self.broker = broker
        self.authenticate = authenticate
        self.sigv4 = sigv4
        self.app = web.Application(client_max_size=broker.limits.max_payload_bytes + 1)
        self.app.router.add_get("/mqtt", self.websocket)
        self.app.router.add_post("/topics/{topic:.+}", self.publish)
        self.runner = web.AppRunner(self.app, access_log=None)

    async def start(self) -> None:
        await self.runner.setup()

    def protocol(self) -> asyncio.Protocol:
        server = self.runner.server
        assert server is not None
        return server()

    async def close(self) -> None:
        await self.runner.cleanup()

    def _websocket_authenticator(self, request: web.Request) -> Authenticator:
        """How the upgraded connection authenticates its CONNECT, or `WebSocketAuthError` (counted and logged)."""
        url = request.rel_url
        if is_signed(request.headers, request.query):
            try:
                return self.sigv4.admit(url.raw_path, url.raw_query_string, request.headers, request.query)
            except WebSocketAuthError as exc:
                credential = credential_of(request.headers, request.query)
                count_refusal(self.broker.metrics, request.remote, exc,
                              credential.access_key if credential is not None else None)
                raise
        if peer_certificate(request.transport):
            return self.authenticate
        detail = "MQTT over WebSocket needs a client certificate or a SigV4-signed request"
        count_failure(self.broker.metrics, "https", request.remote, "no_certificate", detail)
        raise WebSocketAuthError("no_certificate", detail, status=401)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        try:
            authenticate = self._websocket_authenticator(request)
        except WebSocketAuthError as exc:
            return _error(exc.status, exc.message, str(uuid.uuid4()))
        ws = web.WebSocketResponse(protocols=("mqtt",), max_msg_size=0)
        await ws.prepare(request)
        transport = WebSocketTransport(ws, request)
        conn = MqttConnection(self.broker, authenticate, "wss")
        conn.connection_made(transport)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    conn.data_received(msg.data)
                elif msg.type in (WSMsgType.TEXT, WSMsgType.ERROR):
                    conn.close(0x81, "MQTT over WebSocket uses binary frames")
                    break
        finally:
            transport.close()
            conn.connection_lost(None)
            await asyncio.wait([transport.sender], timeout=2.0)
        return ws

    async def publish(self, request: web.Request) -> web.Response:
        trace_id = str(uuid.uuid4())
        der = peer_certificate(request.transport)
        source_ip = request.remote
        if not der:  # refused before the body is read
            count_failure(self.broker.metrics, "https", source_ip, "no_certificate",
                          "HTTPS publish needs a client certificate")
            return _error(401, "Unauthorized", trace_id)
        topic = request.match_info["topic"]
        try:
            qos = int(request.query.get("qos", "0"))
        except ValueError:
            qos = -1
        if qos not in (0, 1):
            return _error(400, "qos must be 0 or 1", trace_id)
        try:
            validate_topic_name(topic)
        except TopicError as exc:
            return _error(400, exc.message, trace_id)
        payload = await request.read()
        if len(payload) > self.broker.limits.max_payload_bytes:
            return _error(413, "The payload exceeds the maximum size allowed", trace_id)
        try:
            auth = await asyncio.to_thread(self.authenticate.for_https, der, source_ip)
        except IdentityError as exc:
            log.info("event=https_publish_unauthenticated peer=%s detail=%s", source_ip, exc)
            return _error(401, "Unauthorized", trace_id)
        if not auth.allowed("iot:Publish", topic):
            self.broker.metrics["publish_unauthorized"] += 1
            return _error(403, "Forbidden", trace_id)
        message = Message(topic, payload, qos, False, None, principal=auth.principal, origin="https")
        waits, failures = self.broker.accept(message)
        results = await asyncio.gather(*waits, return_exceptions=True) if waits else []
        if failures or any(isinstance(r, BaseException) for r in results):
            return _error(500, "Internal service failure", trace_id)
        return web.json_response({"message": "OK", "traceId": trace_id})


def _error(status: int, message: str, trace_id: str) -> web.Response:
    return web.Response(status=status, text=json.dumps({"message": message, "traceId": trace_id}),
                        content_type="application/json")
