"""Fleet provisioning on raw topics with paho (JSON and CBOR), AWS's rejections for bad requests, token
expiry, conflicts, answers only to the requester, and the template operations of boto3 `iot`."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.identity.registry import Registry
from gateway.provisioning import cbor
from tests.test_jobs_support import FLEET_TEMPLATE, GatewayThread, JsonClient, create_fleet_template, running_gateway

CREATE = "$aws/certificates/create/json"
PROVISION = "$aws/provisioning-templates/fleet/provision/json"


@contextlib.contextmanager
def provisioning_gateway(home: Path, **provisioning: float) -> Iterator[GatewayThread]:
    with running_gateway(home, provisioning=provisioning) as g:
        with Registry.open(g.config) as registry:
            registry.ensure_builtin_policy("edgeloop-thing")
        create_fleet_template(g)
        yield g


@pytest.fixture
def gw(home: Path) -> Iterator[GatewayThread]:
    with provisioning_gateway(home) as g:
        yield g


def factory_client(gw: GatewayThread) -> JsonClient:
    c = JsonClient(gw.port("dev"), "factory-1")
    for prefix in (CREATE, "$aws/certificates/create-from-csr/json", PROVISION,
                   "$aws/provisioning-templates/+/provision/json"):
        c.subscribe(f"{prefix}/+", 1)
    return c


@pytest.fixture
def device(gw: GatewayThread) -> Iterator[JsonClient]:
    c = factory_client(gw)
    yield c
    c.close()


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def new_certificate(device: JsonClient) -> dict[str, Any]:
    device.request(CREATE, "")
    return device.expect(f"{CREATE}/accepted")


def test_keys_and_registration_answer_only_the_requester(gw: GatewayThread, device: JsonClient) -> None:
    other = JsonClient(gw.port("dev"), "factory-2")
    other.subscribe(f"{CREATE}/+", 1)
    other.subscribe(f"{PROVISION}/+", 1)
    created = new_certificate(device)
    assert set(created) == {"certificateId", "certificatePem", "privateKey", "certificateOwnershipToken"}
    device.request(PROVISION, {"certificateOwnershipToken": created["certificateOwnershipToken"],
                               "parameters": {"SerialNumber": "1"}})
    assert device.expect(f"{PROVISION}/accepted") == {"deviceConfiguration": {"site": "site-lab"},
                                                     "thingName": "sensor-1"}
    other.assert_nothing(0.3)
    other.close()
    device.request(PROVISION, {"certificateOwnershipToken": created["certificateOwnershipToken"],
                               "parameters": {"SerialNumber": "1"}})
    assert device.expect(f"{PROVISION}/rejected")["errorCode"] == "InvalidCertificateOwnershipToken"  # single use


def test_bad_requests_get_aws_rejections_and_change_nothing(gw: GatewayThread, device: JsonClient) -> None:
    created = new_certificate(device)
    token = created["certificateOwnershipToken"]
    cases: list[tuple[str, Any, int, str]] = [
        (PROVISION, b"{nope", 400, "InvalidPayload"),
        (PROVISION, [1, 2], 400, "InvalidPayload"),
        (PROVISION, {"parameters": {"SerialNumber": "2"}}, 400, "InvalidPayload"),
        (PROVISION, {"certificateOwnershipToken": token, "parameters": {"SerialNumber": 2}}, 400, "InvalidPayload"),
        (PROVISION, {"certificateOwnershipToken": "forged", "parameters": {"SerialNumber": "2"}}, 400,
         "InvalidCertificateOwnershipToken"),
        (PROVISION, {"certificateOwnershipToken": token, "parameters": {}}, 400, "InvalidParameters"),
        ("$aws/provisioning-templates/missing/provision/json", {"certificateOwnershipToken": token}, 404,
         "ResourceNotFound"),
        ("$aws/certificates/create-from-csr/json", {"certificateSigningRequest": "not a csr"}, 400,
         "InvalidPayload"),
    ]
    for topic, body, status, code in cases:
        device.request(topic, json.dumps(body) if isinstance(body, list) else body)
        rejected = device.expect(f"{topic}/rejected")
        assert (rejected["statusCode"], rejected["errorCode"]) == (status, code), (topic, body, rejected)
        assert rejected["errorMessage"]
    iot = gw.client("iot")
    assert iot.list_things()["things"] == []
    with Registry.open(gw.config) as registry:
        assert registry.certs.status(created["certificateId"]) == "PENDING_ACTIVATION"


def test_a_thing_owned_by_another_certificate_is_not_taken_over(gw: GatewayThread, device: JsonClient) -> None:
    first, second = new_certificate(device), new_certificate(device)
    device.request(PROVISION, {"certificateOwnershipToken": first["certificateOwnershipToken"],
                               "parameters": {"SerialNumber": "9"}})
    device.expect(f"{PROVISION}/accepted")
    device.request(PROVISION, {"certificateOwnershipToken": second["certificateOwnershipToken"],
                               "parameters": {"SerialNumber": "9", "Site": "elsewhere"}})
    rejected = device.expect(f"{PROVISION}/rejected")
    assert (rejected["statusCode"], rejected["errorCode"]) == (409, "ResourceConflict")
    iot = gw.client("iot")
    assert iot.describe_thing(thingName="sensor-9")["attributes"] == {"site": "lab"}
    principals = iot.list_thing_principals(thingName="sensor-9")["principals"]
    assert [p.rsplit("/", 1)[1] for p in principals] == [first["certificateId"]]
    with Registry.open(gw.config) as registry:
        assert registry.certs.status(second["certificateId"]) == "PENDING_ACTIVATION"


def test_expired_tokens_are_refused_and_their_certificates_removed(home: Path) -> None:
    with provisioning_gateway(home, token_ttl_secs=0.3, sweep_interval_secs=0.05) as gw:
        device = factory_client(gw)
        created = new_certificate(device)
        with Registry.open(gw.config) as registry:
            wait_until(lambda: registry.certs.status(created["certificateId"]) is None)
        device.request(PROVISION, {"certificateOwnershipToken": created["certificateOwnershipToken"],
                                   "parameters": {"SerialNumber": "3"}})
        assert device.expect(f"{PROVISION}/rejected")["errorCode"] == "InvalidCertificateOwnershipToken"
        device.close()


def test_disabled_templates_refuse_registration(gw: GatewayThread, device: JsonClient) -> None:
    gw.client("iot").update_provisioning_template(templateName="fleet", enabled=False)
    created = new_certificate(device)
    device.request(PROVISION, {"certificateOwnershipToken": created["certificateOwnershipToken"],
                               "parameters": {"SerialNumber": "4"}})
    assert device.expect(f"{PROVISION}/rejected")["statusCode"] == 403


def test_cbor_topics(gw: GatewayThread) -> None:
    client = JsonClient(gw.port("dev"), "factory-cbor")
    client.subscribe("$aws/certificates/create/cbor/+", 1)
    client.subscribe("$aws/provisioning-templates/fleet/provision/cbor/+", 1)
    client.request("$aws/certificates/create/cbor", cbor.encode({}))
    created = cbor.decode(client.get().payload)
    client.request("$aws/provisioning-templates/fleet/provision/cbor", cbor.encode({
        "certificateOwnershipToken": created["certificateOwnershipToken"], "parameters": {"SerialNumber": "5"}}))
    message = client.get()
    assert message.topic.endswith("/accepted") and cbor.decode(message.payload)["thingName"] == "sensor-5"
    client.request("$aws/provisioning-templates/fleet/provision/cbor", b"\xff\x00")
    rejected = client.get()
    assert rejected.topic.endswith("/rejected") and cbor.decode(rejected.payload)["errorCode"] == "InvalidPayload"
    client.close()


def test_template_operations_through_boto3(gw: GatewayThread) -> None:
    iot = gw.client("iot")
    described = iot.describe_provisioning_template(templateName="fleet")
    assert described["templateBody"] == FLEET_TEMPLATE and described["enabled"] is True
    assert described["templateArn"].endswith(":provisioningtemplate/fleet") and described["defaultVersionId"] == 1
    iot.update_provisioning_template(templateName="fleet", description="line 3")
    assert [t["description"] for t in iot.list_provisioning_templates()["templates"]] == ["line 3"]
    bad: list[tuple[dict[str, Any], str]] = [
        ({"templateName": "fleet", "templateBody": FLEET_TEMPLATE}, "ResourceAlreadyExistsException"),
        ({"templateName": "x y", "templateBody": FLEET_TEMPLATE}, "InvalidRequestException"),
        ({"templateName": "t2", "templateBody": "{}"}, "InvalidRequestException"),
        ({"templateName": "t3", "templateBody": json.dumps({"Resources": {"r": {"Type": "AWS::S3::Bucket"}}})},
         "InvalidRequestException"),
    ]
    for kwargs, code in bad:
        with pytest.raises(iot.exceptions.ClientError) as info:
            iot.create_provisioning_template(provisioningRoleArn="arn:aws:iam::000000000000:role/p", **kwargs)
        assert info.value.response["Error"]["Code"] == code
    iot.delete_provisioning_template(templateName="fleet")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_provisioning_template(templateName="fleet")
