"""The registry: things, types, groups, certificates, CAs and policies with AWS IoT's rules and error codes."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import botocore
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeloop.config import Config
from gateway.identity import names
from gateway.identity.awserrors import (
    CertificateState,
    CertificateValidation,
    DeleteConflict,
    InvalidRequest,
    MalformedPolicy,
    ResourceAlreadyExists,
    ResourceNotFound,
    VersionConflict,
    VersionsLimitExceeded,
    aws_error,
)
from gateway.identity.registry import Registry

POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})


def test_thing_lifecycle_versions_and_idempotent_create(registry: Registry) -> None:
    created = registry.things.create("pump-1", attributes={"site": "north"})
    assert created["thingArn"] == "arn:aws:iot:us-east-1:000000000000:thing/pump-1"
    assert registry.things.create("pump-1", attributes={"site": "north"}) == created
    with pytest.raises(ResourceAlreadyExists):
        registry.things.create("pump-1", attributes={"site": "south"})
    registry.things.update("pump-1", attributes={"floor": "2"}, merge=True)
    described = registry.things.describe("pump-1")
    assert described["attributes"] == {"site": "north", "floor": "2"}
    assert described["version"] == 2 and described["defaultClientId"] == "pump-1"
    registry.things.update("pump-1", attributes={"site": ""}, merge=True)
    assert registry.things.describe("pump-1")["attributes"] == {"floor": "2"}
    registry.things.update("pump-1", attributes={"a": "1"})
    assert registry.things.describe("pump-1")["attributes"] == {"a": "1"}
    with pytest.raises(VersionConflict):
        registry.things.update("pump-1", attributes={}, expected_version=1)
    registry.things.delete("pump-1")
    registry.things.delete("pump-1")  # AWS: deleting a missing thing succeeds
    with pytest.raises(ResourceNotFound) as info:
        registry.things.describe("pump-1")
    assert aws_error(info.value) == (404, "ResourceNotFoundException")


def test_attribute_rules_follow_aws(registry: Registry) -> None:
    with pytest.raises(InvalidRequest, match="at most 3 attributes"):
        registry.things.create("t", attributes={"a": "1", "b": "2", "c": "3", "d": "4"})
    registry.types.create("meter", "power meter", ["serial"])
    registry.things.create("t", "meter", {"a": "1", "b": "2", "c": "3", "d": "4"})
    with pytest.raises(InvalidRequest, match="attribute name"):
        registry.things.create("u", attributes={"bad name": "x"})
    with pytest.raises(InvalidRequest, match="thing name"):
        registry.things.create("no spaces")


def test_list_filters_and_pages(registry: Registry) -> None:
    registry.types.create("meter")
    for i in range(7):
        registry.things.create(f"m{i}", "meter" if i % 2 else None, {"zone": f"z{i % 3}"})
    page = registry.things.list(max_results=3)
    assert [t["thingName"] for t in page.items] == ["m0", "m1", "m2"] and page.next_token
    rest = registry.things.list(next_token=page.next_token, max_results=10)
    assert [t["thingName"] for t in rest.items] == ["m3", "m4", "m5", "m6"] and rest.next_token is None
    assert [t["thingName"] for t in registry.things.list(thing_type="meter").items] == ["m1", "m3", "m5"]
    zone1 = registry.things.list(attribute_name="zone", attribute_value="z1").items
    assert [t["thingName"] for t in zone1] == ["m1", "m4"]
    by_prefix = registry.things.list(attribute_name="zone", attribute_value="z", use_prefix_attribute_value=True)
    assert len(by_prefix.items) == 7


def test_thing_types_deprecate_before_delete(registry: Registry) -> None:
    registry.types.create("cam", searchable_attributes=["res"])
    registry.things.create("c1", "cam")
    with pytest.raises(InvalidRequest, match="deprecated before"):
        registry.types.delete("cam")
    registry.types.deprecate("cam")
    with pytest.raises(InvalidRequest, match="deprecated"):
        registry.things.create("c2", "cam")
    with pytest.raises(InvalidRequest, match="still used"):
        registry.types.delete("cam")
    registry.things.update("c1", remove_thing_type=True)
    registry.types.delete("cam")
    assert registry.types.list().items == []


def test_group_hierarchy_membership_and_depth(registry: Registry) -> None:
    registry.groups.create("plant")
    registry.groups.create("line-1", parent="plant")
    registry.things.create("robot")
    registry.groups.add_thing("line-1", "robot")
    described = registry.groups.describe("line-1")
    assert described["thingGroupMetadata"]["rootToParentThingGroups"] == [
        {"groupName": "plant", "groupArn": registry.arns.thing_group("plant")}
    ]
    assert registry.groups.groups_of("robot", inherited=True) == ["line-1", "plant"]
    assert registry.groups.things_in("plant") == []
    assert registry.groups.things_in("plant", recursive=True) == ["robot"]
    with pytest.raises(InvalidRequest, match="child groups"):
        registry.groups.delete("plant")
    parent = "line-1"
    for depth in range(3, 8):
        registry.groups.create(f"g{depth}", parent=parent)
        parent = f"g{depth}"
    with pytest.raises(InvalidRequest, match="maximum depth 7"):
        registry.groups.create("too-deep", parent=parent)


def test_certificate_status_rules(registry: Registry) -> None:
    cert = registry.certs.create_keys_and_certificate()
    cert_id = cert["certificateId"]
    assert registry.certs.describe(cert_id)["status"] == "INACTIVE"
    registry.certs.update_status(cert_id, "ACTIVE")
    with pytest.raises(CertificateState) as info:
        registry.certs.delete(cert_id)
    assert aws_error(info.value) == (406, "CertificateStateException")
    registry.things.create("t")
    registry.certs.attach_thing("t", cert["certificateArn"])
    registry.certs.update_status(cert_id, "REVOKED")
    with pytest.raises(CertificateState, match="revoked"):
        registry.certs.update_status(cert_id, "ACTIVE")
    with pytest.raises(DeleteConflict, match="attached to a thing"):
        registry.certs.delete(cert_id)
    registry.certs.detach_thing("t", cert_id)
    registry.policies.create("p", POLICY)
    registry.policies.attach("p", cert["certificateArn"])
    with pytest.raises(DeleteConflict, match="policies"):
        registry.certs.delete(cert_id)
    registry.certs.delete(cert_id, force=True)
    assert registry.policies.targets("p") == []


def test_exclusive_attachment(registry: Registry) -> None:
    cert = registry.certs.create_keys_and_certificate(set_as_active=True)
    for name in ("a", "b", "c"):
        registry.things.create(name)
    registry.certs.attach_thing("a", cert["certificateId"], exclusive=True)
    with pytest.raises(InvalidRequest, match="exclusive"):
        registry.certs.attach_thing("b", cert["certificateId"])
    registry.certs.detach_thing("a", cert["certificateId"])
    registry.certs.attach_thing("b", cert["certificateId"])
    registry.certs.attach_thing("c", cert["certificateId"])
    assert registry.certs.principal_things(cert["certificateArn"]) == ["b", "c"]
    with pytest.raises(InvalidRequest, match="certificates attached"):
        registry.things.delete("b")


def test_register_needs_a_known_ca(registry: Registry, tmp_path: Path) -> None:
    from edgeloop.config import PkiSection
    from gateway.identity.pki import CertificateAuthority

    own = registry.ca.issue_device("own")
    assert registry.certs.register(own.certificate_pem, status="ACTIVE")["certificateId"] == own.certificate_id
    with pytest.raises(ResourceAlreadyExists):
        registry.certs.register(own.certificate_pem)
    byo = CertificateAuthority.open(tmp_path / "byo", PkiSection())
    foreign = byo.issue_device("foreign")
    with pytest.raises(CertificateValidation, match="register its CA first"):
        registry.certs.register(foreign.certificate_pem)
    ca = registry.certs.register_ca(byo.certificate_pem, set_as_active=True)
    registry.certs.register(foreign.certificate_pem, byo.certificate_pem)
    assert registry.certs.describe(foreign.certificate_id)["caCertificateId"] == ca["certificateId"]
    assert [c["certificateId"] for c in registry.certs.list(ca["certificateId"]).items] == [foreign.certificate_id]
    assert registry.certs.trusted_ca_pems() == [registry.ca.certificate_pem, byo.certificate_pem]
    with pytest.raises(CertificateState):
        registry.certs.delete_ca(ca["certificateId"])
    registry.certs.update_ca(ca["certificateId"], "INACTIVE")
    assert registry.certs.trusted_ca_pems() == [registry.ca.certificate_pem]
    registry.certs.delete_ca(ca["certificateId"])
    with pytest.raises(CertificateValidation, match="not a CA"):
        registry.certs.register_ca(own.certificate_pem)


def test_policy_versions(registry: Registry) -> None:
    with pytest.raises(MalformedPolicy):
        registry.policies.create("bad", '{"Statement": [{"Effect": "Maybe"}]}')
    with pytest.raises(MalformedPolicy):
        registry.policies.create("bad", "not json")
    registry.policies.create("p", POLICY)
    for _ in range(4):
        registry.policies.create_version("p", POLICY)
    with pytest.raises(VersionsLimitExceeded):
        registry.policies.create_version("p", POLICY)
    assert [v["versionId"] for v in registry.policies.list_versions("p")] == ["5", "4", "3", "2", "1"]
    registry.policies.set_default_version("p", "3")
    assert registry.policies.get("p")["defaultVersionId"] == "3"
    with pytest.raises(DeleteConflict, match="default version"):
        registry.policies.delete_version("p", "3")
    with pytest.raises(DeleteConflict, match="non-default"):
        registry.policies.delete("p")
    for version in ("1", "2", "4", "5"):
        registry.policies.delete_version("p", version)
    registry.policies.create_version("p", POLICY, set_as_default=True)
    assert registry.policies.get("p")["defaultVersionId"] == "6"  # version ids are never reused
    registry.policies.delete_version("p", "3")
    registry.policies.delete("p")
    with pytest.raises(ResourceNotFound):
        registry.policies.get("p")


def test_policy_targets_must_exist(registry: Registry) -> None:
    registry.policies.create("p", POLICY)
    with pytest.raises(ResourceNotFound, match="thing group"):
        registry.policies.attach("p", registry.arns.thing_group("nope"))
    with pytest.raises(InvalidRequest, match="policy target"):
        registry.policies.attach("p", "arn:aws:iot:us-east-1:0:thing/x")
    registry.groups.create("g")
    registry.policies.attach("p", registry.arns.thing_group("g"))
    with pytest.raises(DeleteConflict, match="attached"):
        registry.policies.delete("p")
    registry.groups.delete("g")
    registry.policies.delete("p")


def test_provision_fleet_is_all_or_nothing(registry: Registry) -> None:
    fleet = registry.provision_fleet(["f-1", "f-2"], groups=())
    assert [d.thing_name for d in fleet] == ["f-1", "f-2"]
    assert registry.certs.describe(fleet[0].certificate_id)["status"] == "ACTIVE"
    with pytest.raises(ResourceNotFound):
        registry.provision_fleet(["f-3", "f-4"], groups=("missing-group",))
    assert not registry.things.exists("f-3")
    assert len(registry.certs.list().items) == 2


def test_changes_by_another_process_move_the_generation(registry: Registry, home: Path) -> None:
    other = Registry.open(registry.config)
    try:
        before = registry.generation()
        other.things.create("from-elsewhere")
        assert registry.store.generation(poll_interval=0) != before
        seen = registry.generation()
        registry.things.create("local")
        assert registry.generation() != seen
    finally:
        other.close()


def _botocore_pattern(shape: str) -> tuple[re.Pattern[str], int, int]:
    path = Path(botocore.__file__).parent / "data" / "iot" / "2015-05-28" / "service-2.json.gz"
    model = json.loads(gzip.decompress(path.read_bytes()))["shapes"][shape]
    return re.compile(model["pattern"]), model.get("min", 0), model["max"]


THING_NAME_MODEL = _botocore_pattern("ThingName")
POLICY_NAME_MODEL = _botocore_pattern("PolicyName")


def _accepted(check: object, value: str) -> bool:
    try:
        check(value)  # type: ignore[operator]
    except InvalidRequest:
        return False
    return True


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from("aZ09:_-. /$+#é=,@"), max_size=140))
def test_names_match_the_botocore_model(value: str) -> None:
    for check, (pattern, low, high) in ((names.thing_name, THING_NAME_MODEL), (names.policy_name, POLICY_NAME_MODEL)):
        expected = bool(pattern.fullmatch(value)) and low <= len(value) <= high
        assert _accepted(check, value) == expected, (check.__name__, value)


@settings(max_examples=25, deadline=None)
@given(count=st.integers(0, 12), page_size=st.integers(1, 5))
def test_paging_returns_every_thing_once_in_order(tmp_path_factory: pytest.TempPathFactory, count: int,
                                                  page_size: int) -> None:
    config = Config(data_dir=str(tmp_path_factory.mktemp("paging")))
    with Registry.open(config) as reg:
        expected = sorted(f"t{i:02d}" for i in range(count))
        with reg.store.transaction():
            for name in expected:
                reg.things.create(name)
        seen: list[str] = []
        token = None
        while True:
            page = reg.things.list(next_token=token, max_results=page_size)
            assert len(page.items) <= page_size
            seen.extend(t["thingName"] for t in page.items)
            token = page.next_token
            if token is None:
                break
        assert seen == expected
