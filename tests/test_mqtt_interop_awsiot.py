"""Interop with the AWS IoT Device SDK v2 for Python (awsiotsdk on awscrt) over mutual TLS with our own PKI.

Both SDK clients (`mqtt_connection_builder` = MQTT 3.1.1, `mqtt5_client_builder` = MQTT 5) against the 8883
listener and the 8443 listener, with the SDK's default CONNECT (its metrics username, keep-alive 1200, the 3.1.1
builder's clean_session False). The public builders set ALPN `x-amzn-mqtt-ca` only for port 443, so with an
explicit port the 8443 listener sees no ALPN and dispatches on the first byte; the SDK's port-443 set-up (ALPN
`x-amzn-mqtt-ca`) is reproduced with the same builder code and the ALPN list preset.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from awscrt import io, mqtt, mqtt5
from awsiot import mqtt5_client_builder, mqtt_connection_builder

from gateway.identity.registry import Registry
from tests.mqtt_helpers import TIMEOUT, BrokerThread, broker_config

pytestmark = pytest.mark.interop

ALPN_MQTT = "x-amzn-mqtt-ca"
_names = itertools.count()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokerThread, Registry, Path]]:
    home = tmp_path_factory.mktemp("awsiot")
    config = broker_config(home)
    registry = Registry.open(config)
    bt = BrokerThread(config, registry).start()
    try:
        yield bt, registry, home
    finally:
        bt.stop()
        registry.close()


@pytest.fixture
def device(gateway) -> tuple[str, dict[str, str]]:
    """A freshly provisioned thing: (name, {"cert_filepath", "pri_key_filepath", "ca_filepath"})."""
    _, registry, home = gateway
    name = f"sdk-{next(_names)}"
    files = registry.provision_thing(name).write(home / name)
    return name, {"cert_filepath": str(files["certificate"]), "pri_key_filepath": str(files["private_key"]),
                  "ca_filepath": str(files["ca"])}


def _tls_options(files: dict[str, str], alpn: str | None) -> io.TlsContextOptions:
    options = io.TlsContextOptions.create_client_with_mtls_from_path(files["cert_filepath"], files["pri_key_filepath"])
    if alpn is not None:
        options.alpn_list = [alpn]
    return options


def _live_connection(bt: BrokerThread, client_id: str) -> tuple[Any, str | None]:
    """The broker's connection object for `client_id` and the ALPN protocol its TLS session negotiated."""

    def find() -> tuple[Any, str | None]:
        session = bt.broker.sessions[client_id]
        conn = session.connection
        ssl_object = conn.transport.get_extra_info("ssl_object")
        return conn, ssl_object.selected_alpn_protocol() if ssl_object is not None else None

    return bt.run(find)


LISTENERS = [("mqtts", None), ("https", None), ("https", ALPN_MQTT)]


@pytest.mark.parametrize(("listener", "alpn"), LISTENERS)
def test_sdk_v311_connection(gateway, device, listener: str, alpn: str | None) -> None:
    bt, _, _ = gateway
    name, files = device
    kwargs: dict[str, Any] = {"endpoint": "localhost", "port": bt.service.ports[listener], "client_id": name,
                              "ca_filepath": files["ca_filepath"]}
    if alpn is None:
        conn = mqtt_connection_builder.mtls_from_path(files["cert_filepath"], files["pri_key_filepath"], **kwargs)
    else:  # what the builder does for port 443, with the ALPN list it would set
        conn = mqtt_connection_builder._builder(_tls_options(files, alpn), **kwargs)
    assert conn.connect().result(TIMEOUT) == {"session_present": False}
    try:
        live, negotiated = _live_connection(bt, name)
        assert negotiated == alpn
        connect = live.connect
        assert (connect.protocol_level, connect.clean_start, connect.keepalive) == (4, False, 1200)
        assert connect.username.startswith("?SDK=")  # the SDK's metrics string: not a credential
        received: list[Future[tuple[str, bytes, int]]] = [Future(), Future()]
        slots = iter(received)

        def on_message(topic: str, payload: bytes, qos: mqtt.QoS, **_: Any) -> None:
            next(slots).set_result((topic, payload, int(qos)))

        topic = f"things/{name}/telemetry"
        sub, _ = conn.subscribe(topic, mqtt.QoS.AT_LEAST_ONCE, on_message)
        assert sub.result(TIMEOUT)["qos"] == mqtt.QoS.AT_LEAST_ONCE
        conn.publish(topic, b"zero", mqtt.QoS.AT_MOST_ONCE)
        pub, _ = conn.publish(topic, b"one", mqtt.QoS.AT_LEAST_ONCE)
        pub.result(TIMEOUT)  # PUBACK
        assert [f.result(TIMEOUT) for f in received] == [(topic, b"zero", 0), (topic, b"one", 1)]
        denied, _ = conn.subscribe("things/someone-else/#", mqtt.QoS.AT_LEAST_ONCE, on_message)
        with pytest.raises(mqtt.SubscribeError):  # SUBACK 0x80 (Subscribe denied by the policy)
            denied.result(TIMEOUT)
    finally:
        conn.disconnect().result(TIMEOUT)


class Mqtt5Events:
    """Futures for the lifecycle and publish callbacks of one awscrt MQTT 5 client."""

    def __init__(self) -> None:
        self.connected: Future[mqtt5.LifecycleConnectSuccessData] = Future()
        self.stopped: Future[None] = Future()
        self.messages: list[Future[mqtt5.PublishPacket]] = [Future() for _ in range(2)]
        self._next = iter(self.messages)

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_lifecycle_connection_success": lambda d: self.connected.set_result(d),
            "on_lifecycle_connection_failure": lambda d: self.connected.done() or self.connected.set_exception(
                d.exception),
            "on_lifecycle_stopped": lambda d: self.stopped.done() or self.stopped.set_result(None),
            "on_publish_received": lambda d: next(self._next).set_result(d.publish_packet),
        }


@pytest.mark.parametrize(("listener", "alpn"), LISTENERS)
def test_sdk_mqtt5_client(gateway, device, listener: str, alpn: str | None) -> None:
    bt, _, _ = gateway
    name, files = device
    events = Mqtt5Events()
    kwargs: dict[str, Any] = {"endpoint": "localhost", "port": bt.service.ports[listener], "client_id": name,
                              "ca_filepath": files["ca_filepath"], **events.callbacks()}
    if alpn is None:
        client = mqtt5_client_builder.mtls_from_path(files["cert_filepath"], files["pri_key_filepath"], **kwargs)
    else:
        client = mqtt5_client_builder._builder(_tls_options(files, alpn), **kwargs)
    client.start()
    try:
        connack = events.connected.result(TIMEOUT).connack_packet
        assert connack.reason_code == mqtt5.ConnectReasonCode.SUCCESS
        assert connack.receive_maximum == bt.config.mqtt.max_inflight
        live, negotiated = _live_connection(bt, name)
        assert negotiated == alpn
        assert (live.connect.protocol_level, live.connect.keepalive) == (5, 1200)
        assert live.connect.username.startswith("?SDK=")
        topic = f"things/{name}/telemetry"
        suback = client.subscribe(mqtt5.SubscribePacket(
            subscriptions=[mqtt5.Subscription(topic, mqtt5.QoS.AT_LEAST_ONCE)])).result(TIMEOUT)
        assert suback.reason_codes == [mqtt5.SubackReasonCode.GRANTED_QOS_1]
        client.publish(mqtt5.PublishPacket(topic=topic, payload=b"zero", qos=mqtt5.QoS.AT_MOST_ONCE))
        done = client.publish(mqtt5.PublishPacket(topic=topic, payload=b"one", qos=mqtt5.QoS.AT_LEAST_ONCE))
        assert done.result(TIMEOUT).puback.reason_code == mqtt5.PubackReasonCode.SUCCESS
        got = [f.result(TIMEOUT) for f in events.messages]
        assert [(p.topic, p.payload, p.qos) for p in got] == [(topic, b"zero", mqtt5.QoS.AT_MOST_ONCE),
                                                              (topic, b"one", mqtt5.QoS.AT_LEAST_ONCE)]
        refused = client.publish(mqtt5.PublishPacket(topic="things/someone-else/x", payload=b"no",
                                                     qos=mqtt5.QoS.AT_LEAST_ONCE)).result(TIMEOUT)
        assert refused.puback.reason_code == mqtt5.PubackReasonCode.NOT_AUTHORIZED
    finally:
        client.stop()
        events.stopped.result(TIMEOUT)


def test_sdk_mqtt_over_mutual_tls_websocket(gateway, device) -> None:
    """The public SDK builders offer WebSocket only with SigV4 or a custom handshake and no client certificate;
    the same builder code with a client certificate reaches `/mqtt` on the 8443 listener."""
    bt, _, _ = gateway
    name, files = device
    conn = mqtt_connection_builder._builder(
        _tls_options(files, None), use_websockets=True, endpoint="localhost", port=bt.service.ports["https"],
        client_id=name, ca_filepath=files["ca_filepath"])
    assert conn.connect().result(TIMEOUT) == {"session_present": False}
    try:
        live, _ = _live_connection(bt, name)
        assert live.listener == "wss"
        got: Future[bytes] = Future()
        topic = f"things/{name}/ws"
        sub, _ = conn.subscribe(topic, mqtt.QoS.AT_LEAST_ONCE, lambda topic, payload, **_: got.set_result(payload))
        sub.result(TIMEOUT)
        conn.publish(topic, b"over wss", mqtt.QoS.AT_LEAST_ONCE)[0].result(TIMEOUT)
        assert got.result(TIMEOUT) == b"over wss"
    finally:
        conn.disconnect().result(TIMEOUT)
