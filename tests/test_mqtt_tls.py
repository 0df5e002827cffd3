"""Mutual TLS, identity and policy enforcement, revocation, the 8443 ALPN listener (MQTT, WebSocket,
HTTPS publish) and mosquitto_pub/sub, with certificates from our own PKI."""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.identity.registry import Registry
from gateway.identity.tls import client_context
from tests.mqtt_helpers import TIMEOUT, Client, broker_config, running_broker


@pytest.fixture
def pki(home: Path, tmp_path: Path):
    config = broker_config(home)
    registry = Registry.open(config)
    identity = registry.provision_thing("dev1")
    files: dict[str, Any] = {**identity.write(tmp_path / "dev1"), "certificate_id": identity.certificate_id,
                             "certificate_arn": identity.certificate_arn}
    other = registry.provision_thing("dev2").write(tmp_path / "dev2")
    yield registry, files, other
    registry.close()


@pytest.fixture
def bt(home: Path, pki):
    registry, _, _ = pki
    with running_broker(home, registry, identity_recheck_secs=0.1, tls_handshake_timeout_secs=2.0) as b:
        yield b


def tls(files: dict[str, Path], alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    return client_context(files["ca"], files["certificate"], files["private_key"], alpn)


def test_mutual_tls_pub_sub_with_policy(bt, pki) -> None:
    _, files, _ = pki
    port = bt.service.ports["mqtts"]
    c = Client(port, "dev1", v5=True, tls=tls(files), host="localhost")
    assert c.subscribe("things/dev1/#", 1)[0] == 1
    c.publish("things/dev1/temp", "21", 1)
    assert c.get().payload == b"21"
    assert c.subscribe("things/other/#", 1)[0] == 0x87  # Subscribe denied per filter
    assert c.pubacks.get(timeout=TIMEOUT)[1] == 0  # the allowed publish above
    c.publish("things/other/x", "nope", 1, wait=False)
    _, rc = c.pubacks.get(timeout=TIMEOUT)
    assert rc == 0x87  # Publish denied
    assert bt.run(lambda: bt.broker.metrics["publish_unauthorized"]) == 1


def test_v311_unauthorized_publish_disconnects(bt, pki) -> None:
    _, files, _ = pki
    c = Client(bt.service.ports["mqtts"], "dev1", tls=tls(files), host="localhost")
    assert c.subscribe("things/other/#", 1)[0] == 0x80
    c.publish("things/other/x", "nope", 1, wait=False)
    assert c.disconnected() != 0


def test_connect_denied_for_foreign_client_id(bt, pki) -> None:
    _, files, _ = pki
    v5 = Client(bt.service.ports["mqtts"], "dev2", v5=True, tls=tls(files), host="localhost", connect=False)
    _, rc, _ = v5.connect()
    assert rc == 0x87
    v3 = Client(bt.service.ports["mqtts"], "dev2", tls=tls(files), host="localhost", connect=False)
    _, rc, _ = v3.connect()
    assert str(rc) == "Not authorized"  # CONNACK return code 5 on the wire


def test_receive_policy_filters_deliveries(bt, pki) -> None:
    _, _, other = pki
    port = bt.service.ports["mqtts"]
    dev2 = Client(port, "dev2", tls=tls(other), host="localhost")
    dev2.subscribe("things/dev2/#", 1)
    bt.call(bt.broker.publish("things/dev2/cmd", b"for dev2", 1))
    assert dev2.get().payload == b"for dev2"


def test_handshake_without_certificate_is_refused_and_counted(bt, pki) -> None:
    _, files, _ = pki
    ctx = ssl.create_default_context(cafile=str(files["ca"]))
    port = bt.service.ports["mqtts"]
    assert _refused(ctx, port)
    assert _wait_metric(bt, "tls_failures", 1)


def test_unknown_ca_is_refused(bt, home: Path, tmp_path: Path) -> None:
    stranger_home = tmp_path / "stranger"
    stranger_home.mkdir()
    with Registry.open(broker_config(stranger_home)) as foreign:
        files = foreign.provision_thing("dev1").write(tmp_path / "foreign")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(files["certificate"], files["private_key"])
    assert _refused(ctx, bt.service.ports["mqtts"])
    assert _wait_metric(bt, "tls_failures", 1)


def test_revoking_a_certificate_drops_the_live_connection(bt, pki) -> None:
    registry, files, _ = pki
    c = Client(bt.service.ports["mqtts"], "dev1", v5=True, tls=tls(files), host="localhost")
    registry.certs.update_status(files["certificate_id"], "REVOKED")
    assert c.disconnected(timeout=5) == 0x87
    assert bt.run(lambda: bt.broker.metrics["revoked_disconnects"]) == 1


@pytest.mark.parametrize(("v5", "change"), [(True, "INACTIVE"), (False, "INACTIVE"), (False, "REVOKED")])
def test_deactivating_or_revoking_drops_live_connections(bt, pki, v5: bool, change: str) -> None:
    registry, files, _ = pki
    port = bt.service.ports["mqtts"]
    c = Client(port, "dev1", v5=v5, tls=tls(files), host="localhost")
    registry.certs.update_status(files["certificate_id"], change)
    rc = c.disconnected(timeout=5)
    assert rc == 0x87 if v5 else rc != 0  # 3.1.1 has no DISCONNECT from the server: the socket closes
    assert bt.run(lambda: bt.broker.metrics["revoked_disconnects"]) == 1
    again = Client(port, "dev1", v5=True, tls=tls(files), host="localhost", connect=False)
    assert again.connect()[1] == 0x87  # and the certificate cannot connect any more


def test_detaching_the_policy_drops_the_live_connection(bt, pki) -> None:
    registry, files, _ = pki
    c = Client(bt.service.ports["mqtts"], "dev1", v5=True, tls=tls(files), host="localhost")
    registry.policies.detach("edgeloop-thing", files["certificate_arn"])
    assert c.disconnected(timeout=5) == 0x87
    assert bt.run(lambda: bt.broker.metrics["revoked_disconnects"]) == 1


def test_subscribe_allowed_but_receive_denied(bt, pki, tmp_path: Path) -> None:
    registry, _, _ = pki
    topic = "arn:aws:iot:*:*:topic/feed/"
    registry.policies.create("feed-reader", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/reader"},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/feed/*"},
        {"Effect": "Allow", "Action": "iot:Receive", "Resource": f"{topic}public"},
    ]})
    reader = registry.provision_thing("reader", policies=["feed-reader"]).write(tmp_path / "reader")
    c = Client(bt.service.ports["mqtts"], "reader", v5=True, tls=tls(reader), host="localhost")
    assert c.subscribe("feed/#", 1) == [1]
    bt.call(bt.broker.publish("feed/secret", b"not for you", 1))
    bt.call(bt.broker.publish("feed/public", b"hello", 1))
    m = c.get()
    assert (m.topic, m.payload) == ("feed/public", b"hello")  # per-client order: the secret one was skipped
    c.assert_nothing()
    assert bt.run(lambda: bt.broker.metrics["receive_unauthorized"]) == 1


def test_alpn_mqtt_on_8443_and_https_publish(bt, pki) -> None:
    _, files, _ = pki
    port = bt.service.ports["https"]
    sub = Client(port, "dev1", v5=True, tls=tls(files, ("x-amzn-mqtt-ca",)), host="localhost")
    sub.subscribe("things/dev1/#", 1)
    conn = http.client.HTTPSConnection("localhost", port, context=tls(files, ("http/1.1",)), timeout=TIMEOUT)
    conn.request("POST", "/topics/things/dev1/http?qos=1", body=b"via https")
    resp = conn.getresponse()
    assert resp.status == 200
    assert json.loads(resp.read())["message"] == "OK"
    assert sub.get().payload == b"via https"
    conn.request("POST", "/topics/things/other/http?qos=1", body=b"x")
    resp = conn.getresponse()
    assert resp.status == 403
    resp.read()


def test_8443_without_alpn_dispatches_on_the_first_byte(bt, pki) -> None:
    _, files, _ = pki
    port = bt.service.ports["https"]
    c = Client(port, "dev1", v5=True, tls=tls(files), host="localhost")  # no ALPN: MQTT CONNECT -> broker
    assert c.subscribe("things/dev1/#", 1) == [1]
    conn = http.client.HTTPSConnection("localhost", port, context=tls(files), timeout=TIMEOUT)  # no ALPN: HTTP
    conn.request("POST", "/topics/things/dev1/plain?qos=1", body=b"no alpn")
    assert conn.getresponse().status == 200
    assert c.get().payload == b"no alpn"


def test_mqtt_over_websocket(bt, pki) -> None:
    _, files, _ = pki
    port = bt.service.ports["https"]
    ws = Client(port, "dev1", tls=tls(files, ("http/1.1",)), host="localhost", transport="websockets",
                connect=False)
    ws.c.ws_set_options(path="/mqtt")
    _, rc, _ = ws.connect()
    assert rc == 0
    ws.subscribe("things/dev1/ws", 1)
    ws.publish("things/dev1/ws", "over websocket", 1)
    assert ws.get().payload == b"over websocket"


def test_mosquitto_clients_over_mutual_tls(bt, pki) -> None:
    _, files, _ = pki
    port = str(bt.service.ports["mqtts"])
    common = ["-h", "localhost", "-p", port, "--cafile", str(files["ca"]), "--cert", str(files["certificate"]),
              "--key", str(files["private_key"]), "-i", "dev1"]
    sub = subprocess.Popen(["mosquitto_sub", *common, "-t", "things/dev1/m", "-q", "1", "-C", "1", "-W", "10",
                            "-V", "mqttv5"], stdout=subprocess.PIPE)
    try:
        assert _wait_metric(bt, "clients_connected", 1)
        _wait_subscribed(bt, "dev1")
        refused = subprocess.run(["mosquitto_pub", *common[:-2], "-i", "intruder", "-t", "things/dev1/m",
                                  "-m", "hello", "-q", "1"], capture_output=True, timeout=10)
        assert refused.returncode != 0  # the default policy binds the client id to the thing name
        bt.call(bt.broker.publish("things/dev1/m", b"hello", 1))
        out, _ = sub.communicate(timeout=10)
        assert out.strip() == b"hello"
    finally:
        sub.kill()
        sub.wait()


def _refused(ctx: ssl.SSLContext, port: int) -> bool:
    """Whether the server refuses the TLS session (with TLS 1.3 the client learns it only on first read)."""
    import socket

    raw = socket.create_connection(("127.0.0.1", port), TIMEOUT)
    try:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.settimeout(TIMEOUT)
            s.sendall(b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02ab")
            return s.recv(4) == b""
    except (ssl.SSLError, OSError):
        return True


def _wait_metric(bt, name: str, at_least: int, timeout: float = TIMEOUT) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bt.run(lambda: bt.broker.metrics[name]) >= at_least:
            return True
        bt.call(_tick())
    return False


def _wait_subscribed(bt, client_id: str) -> None:
    import time

    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if bt.run(lambda: bool(bt.broker.sessions.get(client_id) and bt.broker.sessions[client_id].subscriptions)):
            return
        bt.call(_tick())
    raise AssertionError(f"{client_id} never subscribed")


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.02)
