"""The IoT data plane over HTTP with boto3 ``iot-data``: shadow operations, AWS exception classes, MQTT
side effects of REST updates, and Publish."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.test_shadow_support import ShadowClient, ShadowGateway, running_gateway

P = "$aws/things/lamp/shadow"


@pytest.fixture
def gw(home: Path) -> Iterator[ShadowGateway]:
    with running_gateway(home) as g:
        yield g


@pytest.fixture
def iot(gw: ShadowGateway) -> Any:
    return gw.iot_data()


def payload(response: dict[str, Any]) -> dict[str, Any]:
    return json.loads(response["payload"].read())


def error_of(call: Any, **kwargs: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    err = info.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Message"]


def test_update_get_delete_round_trip(iot: Any) -> None:
    doc = {"state": {"desired": {"power": "on"}, "reported": {"power": "off"}}, "clientToken": "c1"}
    accepted = payload(iot.update_thing_shadow(thingName="lamp", payload=json.dumps(doc).encode()))
    assert accepted["version"] == 1 and accepted["clientToken"] == "c1"
    got = payload(iot.get_thing_shadow(thingName="lamp"))
    assert got["state"]["delta"] == {"power": "on"} and got["version"] == 1
    assert isinstance(got["metadata"]["desired"]["power"]["timestamp"], int)
    deleted = payload(iot.delete_thing_shadow(thingName="lamp"))
    assert deleted["version"] == 1 and isinstance(deleted["timestamp"], int)
    with pytest.raises(iot.exceptions.ResourceNotFoundException) as info:
        iot.get_thing_shadow(thingName="lamp")
    assert "No shadow exists with name: 'lamp'" in str(info.value)


def test_named_shadows_and_listing_with_pages(iot: Any) -> None:
    for name in ("c", "a", "b", "d", "e"):
        iot.update_thing_shadow(thingName="lamp", shadowName=name, payload=b'{"state":{"reported":{"x":1}}}')
    iot.update_thing_shadow(thingName="other", shadowName="z", payload=b'{"state":{"reported":{"x":1}}}')
    iot.delete_thing_shadow(thingName="lamp", shadowName="e")
    first = iot.list_named_shadows_for_thing(thingName="lamp", pageSize=3)
    assert first["results"] == ["a", "b", "c"] and "nextToken" in first and isinstance(first["timestamp"], int)
    second = iot.list_named_shadows_for_thing(thingName="lamp", pageSize=3, nextToken=first["nextToken"])
    assert second["results"] == ["d"] and "nextToken" not in second
    assert iot.list_named_shadows_for_thing(thingName="nobody")["results"] == []
    assert payload(iot.get_thing_shadow(thingName="lamp", shadowName="b"))["state"] == {"reported": {"x": 1}}
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.get_thing_shadow(thingName="lamp")


@pytest.mark.parametrize(("body", "code", "status"), [
    (b"nope", "InvalidRequestException", 400),
    (b'{"state": {"delta": {}}}', "InvalidRequestException", 400),
    (b'{"state": {}, "unknown": 1}', "InvalidRequestException", 400),
    (b'{"state": {"reported": {"v": 1}}, "version": 7}', "ConflictException", 409),
    (b'{"state": {"reported": {"v": "' + b"x" * 9000 + b'"}}}', "RequestEntityTooLargeException", 413),
    (b"\xff\xfe\x00", "UnsupportedDocumentEncodingException", 415),
])
def test_update_errors_map_to_aws_exceptions(iot: Any, body: bytes, code: str, status: int) -> None:
    iot.update_thing_shadow(thingName="lamp", payload=b'{"state":{"reported":{"v":0}}}')
    assert error_of(iot.update_thing_shadow, thingName="lamp", payload=body)[:2] == (code, status)
    assert payload(iot.get_thing_shadow(thingName="lamp"))["version"] == 1
    assert getattr(iot.exceptions, code) is not None


def test_bad_names_and_missing_shadows(iot: Any) -> None:
    assert error_of(iot.delete_thing_shadow, thingName="ghost")[:2] == ("ResourceNotFoundException", 404)
    assert error_of(iot.get_thing_shadow, thingName="bad.name")[:2] == ("InvalidRequestException", 400)


def test_wrong_credentials_raise_forbidden_and_unauthorized(gw: ShadowGateway) -> None:
    import boto3

    assert gw.api is not None
    url = f"http://127.0.0.1:{gw.api.port}"
    wrong_secret = boto3.client("iot-data", endpoint_url=url, region_name="us-east-1",
                                aws_access_key_id=gw.config.api.access_key, aws_secret_access_key="wrong")
    assert error_of(wrong_secret.get_thing_shadow, thingName="lamp")[:2] == ("ForbiddenException", 403)
    unknown_key = boto3.client("iot-data", endpoint_url=url, region_name="us-east-1",
                               aws_access_key_id="AKIDUNKNOWN", aws_secret_access_key="x")
    assert error_of(unknown_key.get_thing_shadow, thingName="lamp")[:2] == ("UnauthorizedException", 401)


def test_rest_update_publishes_mqtt_responses(gw: ShadowGateway, iot: Any) -> None:
    device = ShadowClient(gw.dev_port, "lamp", v5=True)
    try:
        device.watch(P, "update/+", "delete/+")
        iot.update_thing_shadow(thingName="lamp", payload=b'{"state":{"desired":{"power":"on"}},"clientToken":"r"}')
        delta = device.expect(f"{P}/update/delta")
        assert delta["state"] == {"power": "on"} and delta["clientToken"] == "r"
        assert device.expect(f"{P}/update/accepted")["version"] == 1
        assert error_of(iot.update_thing_shadow, thingName="lamp", payload=b"{}")[1] == 400
        iot.delete_thing_shadow(thingName="lamp")
        assert device.next()[0] == f"{P}/delete/accepted", "a REST rejection publishes nothing on /rejected"
    finally:
        device.close()


def test_publish_reaches_mqtt_subscribers_with_v5_properties(gw: ShadowGateway, iot: Any) -> None:
    sub = ShadowClient(gw.dev_port, "listener", v5=True)
    try:
        assert sub.subscribe("sensors/+/temp", 1)[0] == 1
        iot.publish(topic="sensors/k1/temp", qos=1, payload=b"21.5", contentType="text/plain",
                    responseTopic="replies/k1", correlationData="Y29ycg==", payloadFormatIndicator="UTF8_DATA",
                    userProperties=json.dumps([{"site": "lab"}]), messageExpiry=60)
        message = sub.get()
        props = message.properties
        assert (message.topic, message.payload, message.qos) == ("sensors/k1/temp", b"21.5", 1)
        assert props.ContentType == "text/plain" and props.ResponseTopic == "replies/k1"
        assert props.CorrelationData == b"corr" and props.PayloadFormatIndicator == 1
        assert ("site", "lab") in props.UserProperty
        assert error_of(iot.publish, topic="a/+/b", payload=b"x")[:2] == ("InvalidRequestException", 400)
    finally:
        sub.close()


def test_publish_to_a_shadow_topic_drives_the_shadow_service(gw: ShadowGateway, iot: Any) -> None:
    device = ShadowClient(gw.dev_port, "lamp", v5=True)
    try:
        device.watch(P, "update/+")
        iot.publish(topic=f"{P}/update", qos=1, payload=b'{"state":{"reported":{"t":1}},"clientToken":"via-http"}')
        assert device.expect(f"{P}/update/accepted")["clientToken"] == "via-http"
    finally:
        device.close()
    iot.publish(topic="retained/x", qos=0, retain=True, payload=b"kept")
    late = ShadowClient(gw.dev_port, "late", v5=True)
    try:
        late.subscribe("retained/x", 0)
        assert late.get().payload == b"kept"
    finally:
        late.close()
