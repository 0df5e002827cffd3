"""Test helpers: a broker running in-process on ephemeral ports (its own event-loop thread), and paho
clients that report what they receive through queues (tests wait on them with timeouts, never sleep)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeloop.config import Config
from gateway.mqtt.server import MqttService, start_mqtt

TIMEOUT = 5.0


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop the gateway runs on: uvloop when installed (as `gateway.app.install_uvloop`), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def broker_config(home: Path, **mqtt: Any) -> Config:
    config = Config(data_dir=str(home))
    config.durability.fsync = mqtt.pop("fsync", "never")
    settings = {"dev": True, "dev_port": 0, "port": 0, "https_port": 0, "sys_interval_secs": 0.0, **mqtt}
    config.mqtt = dataclasses.replace(config.mqtt, **settings)
    return config


class BrokerThread:
    """Runs `start_mqtt` on a private event loop in a daemon thread."""

    def __init__(self, config: Config, registry: Any = None, hooks: tuple[Any, ...] = ()) -> None:
        self.config = config
        self.registry = registry
        self.hooks = hooks
        self.loop = new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.service: MqttService | None = None

    def start(self) -> BrokerThread:
        self.thread.start()
        self.service = self.call(start_mqtt(self.config, self.registry, hooks=self.hooks))
        return self

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, fn: Callable[[], Any]) -> Any:
        """Run a plain function on the broker loop (to inspect or drive broker state safely)."""

        async def wrapper() -> Any:
            return fn()

        return self.call(wrapper())

    @property
    def broker(self) -> Any:
        assert self.service is not None
        return self.service.broker

    @property
    def port(self) -> int:
        assert self.service is not None
        return self.service.ports["dev"]

    def stop(self) -> None:
        if self.service is not None:
            self.call(self.service.stop(), timeout=15.0)
            self.service = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5.0)
        self.loop.close()


@contextlib.contextmanager
def running_broker(home: Path, registry: Any = None, *, hooks: tuple[Any, ...] = (),
                   **mqtt: Any) -> Iterator[BrokerThread]:
    bt = BrokerThread(broker_config(home, **mqtt), registry, hooks).start()
    try:
        yield bt
    finally:
        bt.stop()


class Client:
    """A paho client with queues for messages, disconnects and acknowledgements."""

    def __init__(self, port: int, client_id: str = "", *, v5: bool = False, clean: bool = True,
                 keepalive: int = 30, will: tuple[str, bytes, int, bool] | None = None,
                 will_properties: Any = None, connect_properties: Any = None, tls: Any = None,
                 transport: str = "tcp", host: str = "127.0.0.1", connect: bool = True,
                 username: str | None = None) -> None:
        protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        kwargs: dict[str, Any] = {"protocol": protocol, "transport": transport}
        if not v5:
            kwargs["clean_session"] = clean
        self.v5 = v5
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, **kwargs)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connacks: queue.Queue[tuple[Any, Any, Any]] = queue.Queue()
        self.disconnects: queue.Queue[Any] = queue.Queue()
        self.subacks: queue.Queue[list[Any]] = queue.Queue()
        self.pubacks: queue.Queue[tuple[int, Any]] = queue.Queue()
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_connect = lambda c, u, f, rc, p: self.connacks.put((f, rc, p))
        self.c.on_disconnect = lambda c, u, f, rc, p: self.disconnects.put(rc)
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put(rcs)
        self.c.on_publish = lambda c, u, mid, rc, p: self.pubacks.put((mid, rc))
        if username is not None:
            self.c.username_pw_set(username, "secret")
        if will is not None:
            self.c.will_set(*will, properties=will_properties)
        if tls is not None:
            self.c.tls_set_context(tls)
        self.c.reconnect_delay_set(60, 120)
        self.host, self.port, self.keepalive = host, port, keepalive
        self.clean = clean
        self.connect_properties = connect_properties
        if connect:
            self.connect()

    def connect(self) -> tuple[Any, Any, Any]:
        if self.v5:
            self.c.connect(self.host, self.port, self.keepalive, clean_start=self.clean,
                           properties=self.connect_properties)
        else:
            self.c.connect(self.host, self.port, self.keepalive)
        self.c.loop_start()
        return self.connack()

    def connack(self) -> tuple[Any, Any, Any]:
        return self.connacks.get(timeout=TIMEOUT)

    def subscribe(self, topic: str, qos: int = 0, **kwargs: Any) -> list[Any]:
        if self.v5 and "options" not in kwargs:
            from paho.mqtt.subscribeoptions import SubscribeOptions

            kwargs["options"] = SubscribeOptions(qos=qos)
            self.c.subscribe(topic, **kwargs)
        else:
            self.c.subscribe(topic, qos, **kwargs)
        return self.subacks.get(timeout=TIMEOUT)

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False,
                properties: Any = None, wait: bool = True) -> mqtt.MQTTMessageInfo:
        info = self.c.publish(topic, payload, qos, retain, properties)
        if wait and qos:
            info.wait_for_publish(TIMEOUT)
        return info

    def get(self, timeout: float = TIMEOUT) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def assert_nothing(self, timeout: float = 0.3) -> None:
        """No message arrives within `timeout` (used after a positive control message proves delivery)."""
        with contextlib.suppress(queue.Empty):
            m = self.messages.get(timeout=timeout)
            raise AssertionError(f"unexpected message on {m.topic}: {m.payload!r}")

    def disconnected(self, timeout: float = TIMEOUT) -> Any:
        return self.disconnects.get(timeout=timeout)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()

    def kill(self) -> None:
        """Drop the TCP connection without DISCONNECT (the will fires)."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock is not None:
            sock.close()


class RawClient:
    """A raw-socket MQTT client built on our codec: it reads only when told to, so a test can stall it.

    `rcvbuf` shrinks the socket's receive buffer (set before connecting) so a stalled reader pushes back on
    the broker quickly.
    """

    def __init__(self, port: int, client_id: str, *, version: int = 4, rcvbuf: int | None = None,
                 properties: Any = None, keepalive: int = 60) -> None:
        import socket

        from gateway.mqtt.codec import StreamDecoder
        from gateway.mqtt.packets import Connect, Properties

        self.version = version
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        self.decoder = StreamDecoder(version=version)
        self.pending: list[Any] = []
        self.connack = None
        self.send(Connect(client_id, version, True, keepalive, properties=properties or Properties()))
        self.connack = self.recv()

    def send(self, packet: Any) -> None:
        from gateway.mqtt.codec import encode

        self.sock.sendall(encode(packet, self.version))

    def recv(self, timeout: float = TIMEOUT) -> Any:
        """The next packet; raises EOFError when the broker closed the connection."""
        import time

        deadline = time.monotonic() + timeout
        while not self.pending:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("the broker closed the connection")
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)

    def subscribe(self, topic_filter: str, qos: int = 0) -> list[int]:
        from gateway.mqtt.packets import Suback, Subscribe, Subscription

        self.send(Subscribe(1, [Subscription(topic_filter, qos)]))
        ack = self.recv()
        assert isinstance(ack, Suback), ack
        return ack.reason_codes

    def until_closed(self, timeout: float = TIMEOUT) -> list[Any]:
        """Every packet until the broker closes the connection."""
        out: list[Any] = []
        with contextlib.suppress(EOFError):
            while True:
                out.append(self.recv(timeout))
        return out

    def close(self) -> None:
        self.sock.close()
