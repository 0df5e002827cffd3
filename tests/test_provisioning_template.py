"""Pure parts of fleet provisioning: the template language and the CBOR codec (hypothesis round trips)."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.provisioning import cbor
from gateway.provisioning.errors import TemplateError
from gateway.provisioning.template import evaluate, parse

CERT = "c" * 64


def plan_for(body: dict[str, Any], parameters: dict[str, str]) -> Any:
    return evaluate(parse(json.dumps(body)), parameters, CERT)


def test_intrinsic_functions_conditions_and_mappings() -> None:
    body = {
        "Parameters": {"Serial": {"Type": "String"}, "Region": {"Type": "String", "Default": "eu"},
                       "Tags": {"Type": "CommaDelimitedList", "Default": "a,b"}},
        "Mappings": {"Sites": {"eu": {"Group": "fleet-eu"}, "us": {"Group": "fleet-us"}}},
        "Conditions": {"IsEu": {"Fn::Equals": [{"Ref": "Region"}, "eu"]},
                       "NotUs": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Region"}, "us"]}]},
                       "Both": {"Fn::And": [{"Condition": "IsEu"}, {"Condition": "NotUs"}]}},
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": {
                "ThingName": {"Fn::Sub": "dev-${Serial}-${Suffix}"},
                "AttributePayload": {"second": {"Fn::Select": [1, {"Ref": "Tags"}]},
                                     "part": {"Fn::Select": [0, {"Fn::Split": ["-", "x-y"]}]}},
                "ThingGroups": [{"Fn::FindInMap": ["Sites", {"Ref": "Region"}, "Group"]}]},
                "OverrideSettings": {"AttributePayload": "REPLACE"}},
            "cert": {"Type": "AWS::IoT::Certificate", "Properties": {
                "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "Inactive"}},
            "euPolicy": {"Type": "AWS::IoT::Policy", "Condition": "Both", "Properties": {"PolicyName": "eu"}},
            "usPolicy": {"Type": "AWS::IoT::Policy", "Condition": "IsEu",
                         "Properties": {"PolicyName": {"Fn::If": ["NotUs", "only-eu", "us"]}}},
        },
        "DeviceConfiguration": {"endpoint": {"Fn::Join": [".", ["mqtt", {"Ref": "Region"}, "local"]]}},
    }
    body["Resources"]["thing"]["Properties"]["ThingName"] = {"Fn::Sub": ["dev-${Serial}-${Suffix}", {"Suffix": "z"}]}
    plan = plan_for(body, {"Serial": "7"})
    assert plan.thing.name == "dev-7-z" and plan.thing.groups == ["fleet-eu"]
    assert plan.thing.attributes == {"second": "b", "part": "x"} and plan.thing.overrides == {
        "AttributePayload": "REPLACE"}
    assert plan.certificate_status == "INACTIVE"
    assert [p.name for p in plan.policies] == ["eu", "only-eu"]
    assert plan.device_configuration == {"endpoint": "mqtt.eu.local"}


@pytest.mark.parametrize("body, parameters, message", [
    ({"Parameters": {"A": {"Type": "String"}}, "Resources": {}}, {}, "missing template parameters: A"),
    ({"Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "Nope"}}}}}, {},
     "Ref to 'Nope'"),
    ({"Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {}}}}, {}, "ThingName is required"),
    ({"Resources": {"c": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": "other"}}}}, {},
     "must be the claimed certificate"),
    ({"Resources": {"p": {"Type": "AWS::IoT::Policy", "Properties": {}}}}, {}, "give PolicyName or PolicyDocument"),
    ({"Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {
        "ThingName": {"Fn::Select": [3, ["a"]]}}}}}, {}, "out of range"),
])
def test_template_errors_say_what_is_wrong(body: dict[str, Any], parameters: dict[str, str], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        plan_for(body, parameters)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64) + 1, 2**64 - 1) | st.floats(allow_nan=False) | st.text()
    | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


@given(json_values)
def test_cbor_round_trips(value: Any) -> None:
    assert cbor.decode(cbor.encode(value)) == value


@given(st.binary(max_size=64))
def test_cbor_decoder_rejects_garbage_cleanly(data: bytes) -> None:
    with contextlib.suppress(cbor.CborError):
        cbor.decode(data)


def test_cbor_reads_indefinite_lengths_and_half_floats() -> None:
    indefinite = bytes([0xBF, 0x61, 0x61, 0x9F, 0x01, 0x02, 0xFF, 0x7F, 0x61, 0x62, 0x61, 0x63, 0xFF, 0xF5, 0xFF])
    assert cbor.decode(indefinite) == {"a": [1, 2], "bc": True}
    assert cbor.decode(bytes([0xF9, 0x3C, 0x00])) == 1.0 and math.isinf(cbor.decode(bytes([0xF9, 0x7C, 0x00])))
    with pytest.raises(cbor.CborError):
        cbor.decode(bytes([0x81, 0xFF]))
