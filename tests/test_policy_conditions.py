"""Condition operators with IAM semantics (missing keys, IfExists, set qualifiers, negation, variables)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.identity.policy import Principal
from tests.test_policy_support import allow, authorizer, deny, principal

AUTH = authorizer()
THING = {
    "thing_name": "lamp-1",
    "thing_type": "lamp",
    "thing_attributes": {"floor": "3", "site": "Berlin"},
    "is_attached": True,
    "client_id": "lamp-1",
    "subject": {"CommonName": ("lamp-1",), "OrganizationalUnit": ("lights", "fleet-a")},
    "source_ip": "10.1.2.3",
}


def allowed_with(condition: dict[str, Any], **fields: Any) -> bool:
    """Whether an Allow-all statement guarded by `condition` allows a publish for a principal with `fields`."""
    merged = {**THING, **fields}
    p = principal(allow("iot:Publish", "*", Condition=condition), **merged)
    return AUTH.authorize(p, "iot:Publish", "t").allowed


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"StringEquals": {"iot:Connection.Thing.ThingTypeName": "lamp"}}, True),
        ({"StringEquals": {"iot:Connection.Thing.ThingTypeName": "Lamp"}}, False),
        ({"StringEquals": {"iot:Connection.Thing.ThingTypeName": ["bulb", "lamp"]}}, True),  # values: OR
        ({"StringNotEquals": {"iot:Connection.Thing.ThingTypeName": ["bulb", "fan"]}}, True),
        ({"StringNotEquals": {"iot:Connection.Thing.ThingTypeName": ["bulb", "lamp"]}}, False),  # NOR
        ({"StringEqualsIgnoreCase": {"iot:Connection.Thing.Attributes[site]": "BERLIN"}}, True),
        ({"StringNotEqualsIgnoreCase": {"iot:Connection.Thing.Attributes[site]": "berlin"}}, False),
        ({"StringLike": {"iot:ClientId": "lamp-*"}}, True),
        ({"StringLike": {"iot:ClientId": "lamp-?"}}, True),
        ({"StringLike": {"iot:ClientId": "fan-*"}}, False),
        ({"StringNotLike": {"iot:ClientId": "fan-*"}}, True),
        ({"NumericEquals": {"iot:Connection.Thing.Attributes[floor]": "3"}}, True),
        ({"NumericLessThan": {"iot:Connection.Thing.Attributes[floor]": 3}}, False),
        ({"NumericLessThanEquals": {"iot:Connection.Thing.Attributes[floor]": 3}}, True),
        ({"NumericGreaterThan": {"iot:Connection.Thing.Attributes[floor]": "2.5"}}, True),
        ({"NumericGreaterThanEquals": {"iot:Connection.Thing.Attributes[floor]": "4"}}, False),
        ({"NumericNotEquals": {"iot:Connection.Thing.Attributes[floor]": "4"}}, True),
        ({"NumericEquals": {"iot:Connection.Thing.Attributes[site]": "3"}}, False),  # not a number
        ({"Bool": {"iot:Connection.Thing.IsAttached": "true"}}, True),
        ({"Bool": {"iot:Connection.Thing.IsAttached": False}}, False),
        ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, True),
        ({"IpAddress": {"aws:SourceIp": ["192.168.0.0/16", "10.1.2.3"]}}, True),
        ({"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}, False),
        ({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, False),
        ({"NotIpAddress": {"aws:SourceIp": "172.16.0.0/12"}}, True),
        # several keys and several operators are AND-ed
        ({"StringEquals": {"iot:ClientId": "lamp-1", "iot:Connection.Thing.ThingTypeName": "lamp"}}, True),
        ({"StringEquals": {"iot:ClientId": "lamp-1", "iot:Connection.Thing.ThingTypeName": "fan"}}, False),
        ({"StringEquals": {"iot:ClientId": "lamp-1"}, "Bool": {"iot:Connection.Thing.IsAttached": "false"}}, False),
        # variables in condition values
        ({"StringEquals": {"iot:Connection.Thing.ThingName": "${iot:ClientId}"}}, True),
        ({"StringEquals": {"iot:ClientId": "${iot:Certificate.Subject.CommonName}"}}, True),
        ({"StringLike": {"iot:ClientId": "${iot:Connection.Thing.ThingTypeName}-*"}}, True),
        ({"StringEquals": {"iot:ClientId": "${iot:Connection.Thing.Attributes[nope]}"}}, False),  # unresolved
        ({"StringNotEquals": {"iot:ClientId": "${iot:Connection.Thing.Attributes[nope]}"}}, False),  # unresolved
    ],
)
def test_operators(condition: dict[str, Any], expected: bool) -> None:
    assert allowed_with(condition) is expected


def test_missing_key_false_for_positive_true_for_negated_operators() -> None:
    assert not allowed_with({"StringEquals": {"iot:Connection.Thing.ThingTypeName": "lamp"}}, thing_type=None)
    assert allowed_with({"StringNotEquals": {"iot:Connection.Thing.ThingTypeName": "lamp"}}, thing_type=None)
    assert allowed_with({"StringNotLike": {"aws:SourceIp": "10.*"}}, source_ip=None)
    assert allowed_with({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, source_ip=None)


def test_if_exists() -> None:
    condition = {"StringEqualsIfExists": {"iot:Connection.Thing.ThingTypeName": "lamp"}}
    assert allowed_with(condition, thing_type=None)
    assert allowed_with(condition)
    assert not allowed_with(condition, thing_type="fan")


def test_null() -> None:
    absent = {"Null": {"iot:Connection.Thing.ThingTypeName": "true"}}
    present = {"Null": {"iot:Certificate.Subject.CommonName": "false"}}
    assert not allowed_with(absent)
    assert allowed_with(absent, thing_type=None)
    assert allowed_with(present)
    assert not allowed_with(present, subject={})


def test_set_qualifiers_on_list_keys() -> None:
    ou_list = "iot:Certificate.Subject.OrganizationalUnit.List"
    assert allowed_with({"ForAnyValue:StringEquals": {ou_list: "fleet-a"}})
    assert not allowed_with({"ForAllValues:StringEquals": {ou_list: "fleet-a"}})
    assert allowed_with({"ForAllValues:StringEquals": {ou_list: ["fleet-a", "lights", "other"]}})
    assert allowed_with({"ForAllValues:StringLike": {ou_list: ["*"]}})
    # missing or empty set: ForAllValues is vacuously true, ForAnyValue false
    assert allowed_with({"ForAllValues:StringEquals": {ou_list: "x"}}, subject={})
    assert not allowed_with({"ForAnyValue:StringEquals": {ou_list: "x"}}, subject={})
    assert allowed_with({"ForAnyValue:StringEqualsIfExists": {ou_list: "x"}}, subject={})
    # a negated operator under ForAllValues: no value may equal any listed value
    assert allowed_with({"ForAllValues:StringNotEquals": {ou_list: "admins"}})
    assert not allowed_with({"ForAllValues:StringNotEquals": {ou_list: "lights"}})


def test_available_keys() -> None:
    keys = "iot:Certificate.AvailableKeys"
    assert allowed_with({"ForAnyValue:StringEquals": {keys: "iot:Certificate.Subject.CommonName"}})
    assert not allowed_with({"ForAnyValue:StringEquals": {keys: "iot:Certificate.SerialNumber"}})
    assert allowed_with({"ForAnyValue:StringEquals": {keys: "iot:Certificate.SerialNumber"}}, serial_number="42")


def test_arn_operators_keep_wildcards_inside_segments() -> None:
    arn_client = "arn:aws:iot:us-east-1:123456789012:thing/lamp"
    assert allowed_with({"ArnLike": {"iot:ClientId": "arn:aws:iot:*:*:thing/*"}}, client_id=arn_client)
    assert allowed_with({"ArnEquals": {"iot:ClientId": "arn:aws:iot:us-east-1:*:thing/lamp"}}, client_id=arn_client)
    assert not allowed_with({"ArnLike": {"iot:ClientId": "arn:aws:*:thing/lamp"}}, client_id=arn_client)
    assert allowed_with({"ArnNotLike": {"iot:ClientId": "arn:aws:iot:*:*:thing/fan"}}, client_id=arn_client)


def test_conditional_deny() -> None:
    p = principal(
        allow("iot:Publish", "topic/*"),
        deny("iot:Publish", "topic/*", Condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
        source_ip="192.168.0.5",
    )
    assert not AUTH.authorize(p, "iot:Publish", "x").allowed
    inside = Principal(client_id="c", source_ip="10.9.9.9", policies=p.policies)
    assert AUTH.authorize(inside, "iot:Publish", "x").allowed
