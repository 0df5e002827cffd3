"""Authenticating client certificates, building policy principals, and real TLS handshakes with our PKI."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from edgeloop.config import PkiSection
from gateway.identity.errors import AuthenticationError
from gateway.identity.pki import CertificateAuthority, IssuedCertificate, generate_key, load_certificate
from gateway.identity.policy import Authorizer
from gateway.identity.registry import DeviceIdentity, Registry
from gateway.identity.tls import client_context, gateway_server_context


def der(pem: str) -> bytes:
    return load_certificate(pem).public_bytes(serialization.Encoding.DER)


def reason_of(registry: Registry, pem: str) -> str:
    with pytest.raises(AuthenticationError) as info:
        registry.authenticate(der(pem))
    return info.value.reason


def test_only_active_registered_certificates_authenticate(registry: Registry, tmp_path: Path) -> None:
    device = registry.provision_thing("meter-1")
    auth = registry.authenticate(der(device.certificate_pem))
    assert auth.certificate_id == device.certificate_id and auth.things == ("meter-1",)
    registry.certs.update_status(device.certificate_id, "INACTIVE")
    assert reason_of(registry, device.certificate_pem) == "inactive"
    registry.certs.update_status(device.certificate_id, "REVOKED")
    assert reason_of(registry, device.certificate_pem) == "revoked"
    never_registered = registry.ca.issue_device("ghost")
    assert reason_of(registry, never_registered.certificate_pem) == "unregistered"
    stranger = CertificateAuthority.open(tmp_path / "stranger", PkiSection()).issue_device("x")
    assert reason_of(registry, stranger.certificate_pem) == "unknown-ca"
    with pytest.raises(AuthenticationError) as info:
        registry.authenticate(b"")
    assert info.value.reason == "no-certificate"
    with pytest.raises(AuthenticationError) as info:
        registry.authenticate(b"\x30\x03garbage")
    assert info.value.reason == "unregistered"


def test_expired_certificate_is_refused(registry: Registry) -> None:
    key = generate_key("ec")
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")]))
        .issuer_name(registry.ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=10))
        .not_valid_after(now - dt.timedelta(days=1))
        .sign(registry.ca.key, hashes.SHA256())
    )
    assert reason_of(registry, cert.public_bytes(serialization.Encoding.PEM).decode()) == "expired"


def test_auto_registration_of_a_byo_ca_certificate(registry: Registry, tmp_path: Path) -> None:
    byo = CertificateAuthority.open(tmp_path / "byo", PkiSection())
    ca_id = registry.certs.register_ca(byo.certificate_pem, set_as_active=True, allow_auto_registration=True)[
        "certificateId"]
    events: list[tuple[str, dict[str, Any]]] = []
    registry.add_listener(lambda topic, payload: events.append((topic, payload)))
    device = byo.issue_device("jitr-1")
    assert reason_of(registry, device.certificate_pem) == "pending-activation"
    assert events[0][0] == f"$aws/events/certificates/registered/{ca_id}"
    assert events[0][1]["certificateId"] == device.certificate_id
    assert events[0][1]["certificateStatus"] == "PENDING_ACTIVATION"
    assert reason_of(registry, device.certificate_pem) == "pending-activation"
    assert len(events) == 1
    registry.certs.update_status(device.certificate_id, "ACTIVE")
    assert registry.authenticate(der(device.certificate_pem)).certificate_id == device.certificate_id
    registry.certs.update_ca(ca_id, "INACTIVE")
    assert reason_of(registry, device.certificate_pem) == "unknown-ca"


def test_principal_gets_group_policies_only_as_its_thing(registry: Registry) -> None:
    registry.groups.create("site")
    registry.groups.create("floor-2", parent="site")
    device = registry.provision_thing("lamp-7", attributes={"room": "r12"}, groups=("floor-2",))
    room_topic = "arn:aws:iot:*:*:topic/site/${iot:Connection.Thing.Attributes[room]}"
    site_policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Publish", "Resource": room_topic}]}
    registry.policies.create("site-publish", site_policy)
    registry.policies.attach("site-publish", registry.arns.thing_group("site"))
    auth = registry.authenticate(der(device.certificate_pem))
    authorizer = Authorizer("us-east-1", "000000000000")

    as_thing = registry.principal(auth, "lamp-7", "127.0.0.1")
    assert as_thing.thing_name == "lamp-7" and as_thing.is_attached
    assert as_thing.subject == {"CommonName": ("lamp-7",)}
    assert len(as_thing.policies) == 2
    assert authorizer.authorize(as_thing, "iot:Connect", "lamp-7").allowed
    assert authorizer.authorize(as_thing, "iot:Publish", "site/r12").allowed
    assert authorizer.authorize(as_thing, "iot:Subscribe", "$aws/things/lamp-7/shadow/update/+").allowed
    assert not authorizer.authorize(as_thing, "iot:Publish", "things/lamp-8/x").allowed

    as_other = registry.principal(auth, "someone-else")
    assert as_other.thing_name is None and len(as_other.policies) == 1
    assert not authorizer.authorize(as_other, "iot:Connect", "someone-else").allowed


def test_authorization_session_notices_revocation(registry: Registry) -> None:
    device = registry.provision_thing("valve-1")
    cert_der = der(device.certificate_pem)
    session = Authorizer("us-east-1", "000000000000").session(
        registry.connect_principal(cert_der, "valve-1"), lambda: registry.store.generation(poll_interval=0),
        lambda: registry.connect_principal(cert_der, "valve-1"),
    )
    assert session.allowed("iot:Publish", "things/valve-1/state")
    registry.certs.update_status(device.certificate_id, "REVOKED")
    assert not session.allowed("iot:Publish", "things/valve-1/state")


def test_dev_principal_gets_the_dev_policy(registry: Registry) -> None:
    principal = registry.dev_principal("anything")
    assert Authorizer("us-east-1", "000000000000").authorize(principal, "iot:Publish", "any/topic").allowed
    assert registry.policies.get("dev-allow-all")["defaultVersionId"] == "1"
    generation = registry.generation()
    registry.dev_principal("again")  # building principals never counts as a registry change
    assert registry.store.generation(poll_interval=0) == generation
    device_der = der(registry.provision_thing("t").certificate_pem)
    after_provisioning = registry.generation()
    assert after_provisioning != generation
    registry.connect_principal(device_der, "t")
    assert registry.store.generation(poll_interval=0) == after_provisioning


# -- real TLS --------------------------------------------------------------------------------------


async def _handshake(registry: Registry, identity: DeviceIdentity | IssuedCertificate, files: Path) -> bytes:
    """Connect a client presenting `identity` to a TLS server built from the registry; the server's view."""
    cert_file, key_file, ca_file = files / "c.pem", files / "c.key", files / "ca.pem"
    cert_file.write_text(identity.certificate_pem)
    key_file.write_text(identity.private_key_pem or "")
    ca_file.write_text(registry.ca.certificate_pem)
    seen: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        if not seen.done():
            seen.set_result(peer)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=gateway_server_context(registry))
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            "localhost", port, ssl=client_context(ca_file, cert_file, key_file)), timeout=10)
        try:
            await asyncio.wait_for(reader.read(), timeout=10)  # EOF: the server is done with the connection
        finally:
            writer.close()
        if not seen.done():  # TLS 1.3: the server checks the client certificate after the client's handshake
            raise ConnectionRefusedError("the server closed the connection without accepting the certificate")
        return seen.result()
    finally:
        server.close()
        await server.wait_closed()


def test_tls_handshake_hands_the_certificate_to_authenticate(registry: Registry, tmp_path: Path) -> None:
    device = registry.provision_thing("tls-1")
    peer = asyncio.run(_handshake(registry, device, tmp_path))
    assert registry.authenticate(peer).things == ("tls-1",)


def test_tls_handshake_refuses_a_certificate_from_an_unknown_ca(registry: Registry, tmp_path: Path) -> None:
    stranger = CertificateAuthority.open(tmp_path / "stranger", PkiSection()).issue_device("intruder")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        asyncio.run(_handshake(registry, stranger, tmp_path))
