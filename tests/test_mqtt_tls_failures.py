"""Every failed TLS handshake is logged with its reason and peer, and counted per reason, with real clients
(stdlib ssl and paho) presenting certificates from an unknown CA, expired, with the wrong key usage, or none."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgeloop.config import PkiSection
from gateway.identity.pki import CertificateAuthority, cert_pem, generate_key, key_pem
from gateway.identity.registry import Registry
from gateway.mqtt.tlsaccept import failure_reason
from tests.mqtt_helpers import TIMEOUT, BrokerThread, Client, broker_config, running_broker

CONNECT = b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02ab"


@pytest.fixture
def registry(home: Path) -> Iterator[Registry]:
    with Registry.open(broker_config(home)) as reg:
        yield reg


@pytest.fixture
def bt(home: Path, registry: Registry) -> Iterator[BrokerThread]:
    with running_broker(home, registry, tls_handshake_timeout_secs=0.5) as b:
        yield b


@pytest.fixture
def ca_file(registry: Registry, tmp_path: Path) -> Path:
    path = tmp_path / "root-CA.pem"
    path.write_text(registry.ca.certificate_pem)
    return path


def write_leaf(ca: CertificateAuthority, directory: Path, name: str, *, expired: bool = False,
               usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.CLIENT_AUTH) -> tuple[Path, Path]:
    """A device certificate signed by `ca`, valid now or expired since yesterday, with one extended key usage."""
    key = generate_key("ec")
    now = dt.datetime.now(dt.UTC)
    not_after = now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=30)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=60))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.cert.pem", directory / f"{name}.private.key"
    cert_path.write_text(cert_pem(cert))
    key_path.write_text(key_pem(key))
    return cert_path, key_path


CredentialMaker = Callable[[Registry, Path], tuple[Path, Path] | None]

CASES: dict[str, CredentialMaker] = {
    "unknown_ca": lambda reg, tmp: write_leaf(
        CertificateAuthority.open(tmp / "stranger", PkiSection(ca_common_name="stranger CA")), tmp, "unknown"),
    "expired": lambda reg, tmp: write_leaf(reg.ca, tmp, "expired", expired=True),
    "wrong_key_usage": lambda reg, tmp: write_leaf(reg.ca, tmp, "server-only", usage=ExtendedKeyUsageOID.SERVER_AUTH),
    "no_certificate": lambda reg, tmp: None,
}


def client_context(ca_file: Path, credentials: tuple[Path, Path] | None,
                   max_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca_file)
    ctx.maximum_version = max_version
    if credentials is not None:
        ctx.load_cert_chain(*credentials)
    return ctx


def stdlib_attempt(ctx: ssl.SSLContext, port: int) -> None:
    """Handshake and send CONNECT: the server refuses (TLS 1.3 clients only learn it on their first read)."""
    raw = socket.create_connection(("127.0.0.1", port), TIMEOUT)
    try:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.settimeout(TIMEOUT)
            tls.sendall(CONNECT)
            assert tls.recv(4) == b""
    except (ssl.SSLError, ConnectionError):
        pass
    finally:
        raw.close()


def paho_attempt(ctx: ssl.SSLContext, port: int) -> None:
    """paho connects over TLS; it never gets a CONNACK."""
    client = Client(port, "dev1", tls=ctx, host="localhost", connect=False)
    try:
        client.c.connect("localhost", port, 30)
    except (ssl.SSLError, OSError):
        return  # a TLS 1.2 refusal surfaces in connect()
    deadline = time.monotonic() + TIMEOUT
    while client.disconnects.empty() and time.monotonic() < deadline:
        client.c.loop(0.05)  # in this thread: no network thread to stop afterwards
    assert not client.disconnects.empty()
    assert client.connacks.empty()


def wait_metric(bt: BrokerThread, name: str, at_least: int = 1) -> int:
    deadline = time.monotonic() + TIMEOUT
    value = 0
    while time.monotonic() < deadline:
        value = bt.run(lambda: bt.broker.metrics[name])
        if value >= at_least:
            break
        bt.call(_tick())
    return value


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.01)  # let the broker loop run between polls (not synchronisation: the poll decides)


def failure_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("event=tls_failed")]


@pytest.mark.parametrize("attempt", [stdlib_attempt, paho_attempt], ids=["stdlib", "paho"])
@pytest.mark.parametrize("reason", list(CASES))
def test_failed_handshake_is_logged_and_counted_with_its_reason(
    bt: BrokerThread, registry: Registry, ca_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    reason: str, attempt: Callable[[ssl.SSLContext, int], None],
) -> None:
    caplog.set_level(logging.INFO, logger="edgeloop.mqtt")
    ctx = client_context(ca_file, CASES[reason](registry, tmp_path))
    attempt(ctx, bt.service.ports["mqtts"])
    assert wait_metric(bt, f"tls_failures_{reason}") == 1
    assert bt.run(lambda: bt.broker.metrics["tls_failures"]) == 1
    lines = failure_lines(caplog)
    assert len(lines) == 1
    assert "listener=mqtts peer=127.0.0.1 " in lines[0]
    assert f" reason={reason} " in lines[0]


def test_tls12_client_without_certificate_is_refused_in_the_handshake(
    bt: BrokerThread, ca_file: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edgeloop.mqtt")
    ctx = client_context(ca_file, None, ssl.TLSVersion.TLSv1_2)
    raw = socket.create_connection(("127.0.0.1", bt.service.ports["mqtts"]), TIMEOUT)
    with pytest.raises((ssl.SSLError, ConnectionError)):  # under uvloop the client sees EOF, not the alert
        ctx.wrap_socket(raw, server_hostname="localhost")
    raw.close()
    assert wait_metric(bt, "tls_failures_no_certificate") == 1


def test_plain_mqtt_on_the_tls_port_and_a_silent_client_are_reasoned_too(
    bt: BrokerThread, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edgeloop.mqtt")
    port = bt.service.ports["https"]
    with socket.create_connection(("127.0.0.1", port), TIMEOUT) as plain:
        plain.sendall(CONNECT)
        plain.settimeout(TIMEOUT)
        assert wait_metric(bt, "tls_failures_not_tls") == 1
    with socket.create_connection(("127.0.0.1", port), TIMEOUT):
        assert wait_metric(bt, "tls_failures_handshake_timeout") == 1  # 0.5 s in this fixture
    lines = failure_lines(caplog)
    assert [line.split(" reason=")[1].split()[0] for line in lines] == ["not_tls", "handshake_timeout"]
    assert all("listener=https peer=127.0.0.1 " in line for line in lines)


def test_good_certificate_still_connects(bt: BrokerThread, registry: Registry, tmp_path: Path) -> None:
    files = registry.provision_thing("dev1").write(tmp_path / "dev1")
    ctx = client_context(files["ca"], (files["certificate"], files["private_key"]))
    client = Client(bt.service.ports["mqtts"], "dev1", v5=True, tls=ctx, host="localhost")
    assert client.subscribe("things/dev1/#", 1)[0] == 1
    client.close()
    assert bt.run(lambda: bt.broker.metrics["tls_failures"]) == 0


@pytest.mark.parametrize(("exc", "reason"), [
    (ConnectionResetError(), "connection_lost"),
    (ConnectionAbortedError("SSL handshake is taking longer than 10.0 seconds: aborting the connection"),
     "handshake_timeout"),
    (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), "connection_lost"),
])
def test_failure_reason_of_loop_errors(exc: BaseException, reason: str) -> None:
    assert failure_reason(exc) == reason
