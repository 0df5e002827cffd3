"""Fleet provisioning by claim with the AWS IoT Device SDK's identity clients over mutual TLS: a device that
holds only a claim certificate gets its own keys and certificate, registers its thing through a template,
then connects with its new identity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.identity.registry import Registry
from tests.test_jobs_support import (
    SDK_TIMEOUT,
    GatewayThread,
    claim_identity,
    create_fleet_template,
    rr_options,
    running_gateway,
    sdk_mqtt5,
)

pytestmark = pytest.mark.interop


@pytest.fixture
def gw(home: Path) -> Iterator[GatewayThread]:
    with running_gateway(home) as g:
        create_fleet_template(g)
        yield g


def test_claim_to_own_identity_with_the_v2_identity_client(gw: GatewayThread, tmp_path: Path) -> None:
    import awsiot
    from awsiot import iotidentity

    claim = claim_identity(gw.config, tmp_path / "claim")
    with sdk_mqtt5(gw.port("mqtts"), claim["certificate"], claim["private_key"], claim["ca"], "factory-7") as client:
        identity = iotidentity.IotIdentityClientV2(client, rr_options())
        created = identity.create_keys_and_certificate(
            iotidentity.CreateKeysAndCertificateRequest()).result(SDK_TIMEOUT)
        assert created.certificate_pem.startswith("-----BEGIN CERTIFICATE-----") and created.private_key
        with Registry.open(gw.config) as registry:
            assert registry.certs.status(created.certificate_id) == "PENDING_ACTIVATION"

        with pytest.raises(awsiot.V2ServiceException) as missing:
            identity.register_thing(iotidentity.RegisterThingRequest(
                template_name="fleet", certificate_ownership_token=created.certificate_ownership_token,
                parameters={})).result(SDK_TIMEOUT)
        assert missing.value.modeled_error.status_code == 400
        assert missing.value.modeled_error.error_code == "InvalidParameters"

        registered = identity.register_thing(iotidentity.RegisterThingRequest(
            template_name="fleet", certificate_ownership_token=created.certificate_ownership_token,
            parameters={"SerialNumber": "0042"})).result(SDK_TIMEOUT)
        assert registered.thing_name == "sensor-0042"
        assert registered.device_configuration == {"site": "site-lab"}

    device = tmp_path / "device"
    device.mkdir()
    (device / "cert.pem").write_text(created.certificate_pem)
    (device / "key.pem").write_text(created.private_key)
    with sdk_mqtt5(gw.port("mqtts"), device / "cert.pem", device / "key.pem", claim["ca"], "sensor-0042") as client:
        from awsiot import iotshadow  # the new identity may use its own thing's topics

        shadow = iotshadow.IotShadowClientV2(client, rr_options())
        with pytest.raises(awsiot.V2ServiceException) as none_yet:
            shadow.get_shadow(iotshadow.GetShadowRequest(thing_name="sensor-0042")).result(SDK_TIMEOUT)
        assert none_yet.value.modeled_error.code == 404
    iot = gw.client("iot")
    assert iot.describe_thing(thingName="sensor-0042")["attributes"] == {"site": "lab"}
    description = iot.describe_certificate(certificateId=created.certificate_id)["certificateDescription"]
    assert description["status"] == "ACTIVE"


def test_csr_flow_keeps_the_private_key_on_the_device(gw: GatewayThread, tmp_path: Path) -> None:
    from awsiot import iotidentity

    claim = claim_identity(gw.config, tmp_path / "claim")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sensor-0043")])).sign(key, hashes.SHA256())
    with sdk_mqtt5(gw.port("mqtts"), claim["certificate"], claim["private_key"], claim["ca"], "factory-8") as client:
        identity = iotidentity.IotIdentityClientV2(client, rr_options())
        created = identity.create_certificate_from_csr(iotidentity.CreateCertificateFromCsrRequest(
            certificate_signing_request=csr.public_bytes(serialization.Encoding.PEM).decode())).result(SDK_TIMEOUT)
        cert = x509.load_pem_x509_certificate(created.certificate_pem.encode())
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()
        registered = identity.register_thing(iotidentity.RegisterThingRequest(
            template_name="fleet", certificate_ownership_token=created.certificate_ownership_token,
            parameters={"SerialNumber": "0043", "Site": "plant-2"})).result(SDK_TIMEOUT)
        assert registered.thing_name == "sensor-0043"
    device = tmp_path / "device"
    device.mkdir()
    (device / "cert.pem").write_text(created.certificate_pem)
    (device / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with sdk_mqtt5(gw.port("mqtts"), device / "cert.pem", device / "key.pem", claim["ca"], "sensor-0043"):
        pass
