"""Our certificates in third-party TLS stacks: mosquitto (OpenSSL) serves with our server certificate and
checks device certificates; paho-mqtt (Python ssl) and the AWS IoT Device SDK (aws-crt, s2n) connect with
identities made by `edgeloop things create`."""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner

from edgeloop.cli import root

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto is not installed"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def identities(home: Path, tmp_path: Path) -> Path:
    """`edgeloop pki init` and two things with identities under tmp_path/ids/."""
    runner = CliRunner()
    for args in (["pki", "init"], ["things", "create", "paho-1", "--out", "ids/paho-1"],
                 ["things", "create", "crt-1", "--out", "ids/crt-1"]):
        result = runner.invoke(root, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return tmp_path / "ids"


@pytest.fixture
def broker(home: Path, tmp_path: Path, identities: Path) -> Iterator[int]:
    """mosquitto on a loopback port, serving our server certificate and requiring our device certificates."""
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    pki = home / "pki"
    conf.write_text(
        f"listener {port} 127.0.0.1\ncafile {pki / 'ca.pem'}\ncertfile {pki / 'server.pem'}\n"
        f"keyfile {pki / 'server.key'}\nrequire_certificate true\nuse_identity_as_username true\n"
        "allow_anonymous true\npersistence false\nlog_dest stdout\nlog_type error\nlog_type warning\n"
        # as root, mosquitto would switch to a user that cannot read the 0600 keys
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_until_listening(proc, port, timeout=20)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def _wait_until_listening(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    """Until the port accepts connections; between tries, wait for mosquitto to log something."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    log = b""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {log.decode(errors='replace')}{proc.stdout.read().decode()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if select.select([proc.stdout], [], [], 0.2)[0]:
                log += os.read(proc.stdout.fileno(), 4096)
    raise TimeoutError(f"mosquitto is not listening on {port}: {log.decode(errors='replace')}")


def test_paho_connects_with_a_thing_identity(broker: int, identities: Path) -> None:
    ids = identities / "paho-1"
    received = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-1")
    client.tls_set(ca_certs=str(ids / "root-CA.pem"), certfile=str(ids / "paho-1.cert.pem"),
                   keyfile=str(ids / "paho-1.private.key"))
    client.on_connect = lambda c, *_: c.subscribe("things/paho-1/echo", qos=1)
    client.on_subscribe = lambda c, *_: c.publish("things/paho-1/echo", b"hello", qos=1)
    client.on_message = lambda c, u, msg: received.set() if msg.payload == b"hello" else None
    client.connect("localhost", broker, keepalive=30)
    client.loop_start()
    try:
        assert received.wait(10), "the round trip through the broker did not complete"
    finally:
        client.disconnect()
        client.loop_stop()


def test_aws_iot_device_sdk_connects_with_a_thing_identity(broker: int, identities: Path) -> None:
    from awsiot import mqtt_connection_builder

    ids = identities / "crt-1"
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost", port=broker, cert_filepath=str(ids / "crt-1.cert.pem"),
        pri_key_filepath=str(ids / "crt-1.private.key"), ca_filepath=str(ids / "root-CA.pem"),
        client_id="crt-1", clean_session=True, keep_alive_secs=30,
    )
    connection.connect().result(timeout=10)
    connection.disconnect().result(timeout=10)
