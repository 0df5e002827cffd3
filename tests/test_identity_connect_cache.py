"""CONNECT's registry reads are remembered per certificate and registry generation, and every change, also one
committed by another process (here: a second registry on the same database), applies at the next CONNECT."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from edgeloop.config import Config
from gateway.identity.errors import AuthenticationError
from gateway.identity.pki import load_certificate
from gateway.identity.policy import Authorizer
from gateway.identity.registry import DEV_POLICY, Registry

AUTH = Authorizer("us-east-1", "000000000000")


def der(pem: str) -> bytes:
    return load_certificate(pem).public_bytes(serialization.Encoding.DER)


@pytest.fixture
def other(registry: Registry) -> Iterator[Registry]:
    """Another process's view of the same registry (its own SQLite connection)."""
    with Registry.open(registry.config) as reg:
        yield reg


def test_repeated_connects_share_what_was_read(registry: Registry) -> None:
    cert = der(registry.provision_thing("lamp-1").certificate_pem)
    first = registry.connect_principal(cert, "lamp-1", "10.0.0.1")
    second = registry.connect_principal(bytes(cert), "lamp-1", "10.0.0.2")
    assert second.source_ip == "10.0.0.2" and second.thing_name == "lamp-1"
    assert second.policies is first.policies and second.subject is first.subject
    stranger = registry.connect_principal(cert, "not-a-thing")
    assert stranger.thing_name is None and not stranger.is_attached
    assert not AUTH.authorize(stranger, "iot:Connect", "not-a-thing").allowed
    assert AUTH.authorize(second, "iot:Connect", "lamp-1").allowed


def test_revocation_by_another_process_refuses_the_next_connect(registry: Registry, other: Registry) -> None:
    device = registry.provision_thing("valve-1")
    cert = der(device.certificate_pem)
    registry.connect_principal(cert, "valve-1")
    other.certs.update_status(device.certificate_id, "REVOKED")
    with pytest.raises(AuthenticationError) as info:  # at once: no wait for the generation poll
        registry.connect_principal(cert, "valve-1")
    assert info.value.reason == "revoked"


def test_refusals_are_not_remembered(registry: Registry, other: Registry) -> None:
    device = registry.provision_thing("pump-1")
    cert = der(device.certificate_pem)
    other.certs.update_status(device.certificate_id, "INACTIVE")
    with pytest.raises(AuthenticationError):
        registry.connect_principal(cert, "pump-1")
    other.certs.update_status(device.certificate_id, "ACTIVE")
    assert registry.connect_principal(cert, "pump-1").certificate_id == device.certificate_id


def test_policy_changes_by_another_process_apply_to_the_next_connect(registry: Registry, other: Registry) -> None:
    cert = der(registry.provision_thing("fan-1").certificate_pem)
    assert not AUTH.authorize(registry.connect_principal(cert, "fan-1"), "iot:Publish", "ops/fan-1").allowed
    other.policies.create("ops", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/ops/*"}]})
    other.policies.attach("ops", registry.arns.cert(registry.authenticate(cert).certificate_id))
    assert AUTH.authorize(registry.connect_principal(cert, "fan-1"), "iot:Publish", "ops/fan-1").allowed


def test_dev_policy_is_read_again_after_a_change(registry: Registry, other: Registry) -> None:
    assert AUTH.authorize(registry.dev_principal("d1"), "iot:Publish", "a/b").allowed
    assert registry.dev_principal("d2").policies is registry.dev_principal("d3").policies
    narrow = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/dev/*"}]}
    other.policies.create_version(DEV_POLICY, narrow, set_as_default=True)
    principal = registry.dev_principal("d4")
    assert not AUTH.authorize(principal, "iot:Publish", "a/b").allowed
    assert AUTH.authorize(principal, "iot:Publish", "dev/x").allowed


def test_connects_racing_a_revocation_never_pass_after_it(home: Path, registry: Registry) -> None:
    device = registry.provision_thing("gate-1")
    cert = der(device.certificate_pem)
    revoked = threading.Event()
    late_passes: list[int] = []
    errors: list[BaseException] = []

    def connect_repeatedly() -> None:
        try:
            for _ in range(400):
                after_revocation = revoked.is_set()
                try:
                    registry.connect_principal(cert, "gate-1")
                except AuthenticationError:
                    continue
                if after_revocation:
                    late_passes.append(1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=connect_repeatedly) for _ in range(3)]
    for thread in threads:
        thread.start()
    with Registry.open(Config(data_dir=str(home))) as writer:
        writer.certs.update_status(device.certificate_id, "REVOKED")
    revoked.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == [] and late_passes == []


def test_renew_finds_the_certificate_by_id_and_follows_its_status(registry: Registry, other: Registry) -> None:
    device = registry.provision_thing("door-1")
    live = registry.connect_principal(der(device.certificate_pem), "door-1", "10.0.0.7")
    for reader in (registry, other):  # `other` never saw the certificate: it reads it from the registry
        renewed = reader.renew_connect_principal(live)
        assert (renewed.client_id, renewed.source_ip, renewed.thing_name) == ("door-1", "10.0.0.7", "door-1")
        assert AUTH.authorize(renewed, "iot:Connect", "door-1").allowed
    other.certs.update_status(device.certificate_id, "REVOKED")
    with pytest.raises(AuthenticationError) as info:
        registry.renew_connect_principal(live)
    assert info.value.reason == "revoked"
    other.certs.detach_thing("door-1", device.certificate_arn)
    other.certs.delete(device.certificate_id, force=True)
    with Registry.open(registry.config) as fresh, pytest.raises(AuthenticationError) as info:
        fresh.renew_connect_principal(live)
    assert info.value.reason == "unregistered"
