"""The AWS IoT Device SDK's shadow clients against the gateway over mutual TLS with certificates from our
PKI: `IotShadowClientV2` on MQTT 5 (request/response correlation by clientToken, wildcard response
subscriptions, streams) and the classic `IotShadowClient` on MQTT 3.1.1."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.identity.registry import Registry
from tests.awsiot_helpers import open_stream, rr_options, sdk_mqtt5
from tests.mqtt_helpers import broker_config
from tests.test_shadow_support import ShadowGateway, running_gateway

pytestmark = pytest.mark.interop
TIMEOUT = 10


@pytest.fixture
def identity(home: Path, tmp_path: Path) -> Iterator[tuple[Registry, dict[str, Path]]]:
    registry = Registry.open(broker_config(home))
    files = registry.provision_thing("crt1").write(tmp_path / "crt1")
    yield registry, files
    registry.close()


@pytest.fixture
def gw(home: Path, identity: tuple[Registry, dict[str, Path]]) -> Iterator[ShadowGateway]:
    with running_gateway(home, identity[0]) as g:
        yield g


@pytest.fixture
def v2_shadow(gw: ShadowGateway, identity: tuple[Registry, dict[str, Path]]) -> Iterator[Any]:
    from awsiot import iotshadow

    files = identity[1]
    with sdk_mqtt5(gw.mqtts_port, files["certificate"], files["private_key"], files["ca"], "crt1") as client:
        yield iotshadow.IotShadowClientV2(client, rr_options())


def test_v2_client_full_cycle_over_mqtt5(v2_shadow: Any) -> None:
    import awsiot
    from awsiot import iotshadow

    with pytest.raises(awsiot.V2ServiceException) as info:
        v2_shadow.get_shadow(iotshadow.GetShadowRequest(thing_name="crt1")).result(TIMEOUT)
    assert info.value.modeled_error.code == 404
    assert info.value.modeled_error.message == "No shadow exists with name: 'crt1'"

    _delta_stream, deltas = open_stream(v2_shadow.create_shadow_delta_updated_stream,
                                         iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name="crt1"))
    _docs_stream, documents = open_stream(v2_shadow.create_shadow_updated_stream,
                                           iotshadow.ShadowUpdatedSubscriptionRequest(thing_name="crt1"))
    state = iotshadow.ShadowState(desired={"color": "red"}, reported={"color": "blue"})
    accepted = v2_shadow.update_shadow(iotshadow.UpdateShadowRequest(thing_name="crt1", state=state)).result(
        TIMEOUT)
    assert accepted.version == 1 and accepted.state.desired == {"color": "red"}
    assert accepted.timestamp.year >= 2024, "integer epoch seconds parse to a real date"
    delta = deltas.get(timeout=TIMEOUT)
    assert delta.state == {"color": "red"} and delta.version == 1
    updated = documents.get(timeout=TIMEOUT)
    assert updated.current.version == 1 and updated.previous is None

    report = iotshadow.ShadowState(reported={"color": "red"}, desired_is_nullable=True, desired=None)
    accepted = v2_shadow.update_shadow(iotshadow.UpdateShadowRequest(
        thing_name="crt1", state=report, version=1)).result(TIMEOUT)
    assert accepted.version == 2
    with pytest.raises(awsiot.V2ServiceException) as info:
        v2_shadow.update_shadow(iotshadow.UpdateShadowRequest(
            thing_name="crt1", state=report, version=1)).result(TIMEOUT)
    assert (info.value.modeled_error.code, info.value.modeled_error.message) == (409, "Version conflict")

    got = v2_shadow.get_shadow(iotshadow.GetShadowRequest(thing_name="crt1")).result(TIMEOUT)
    assert got.state.reported == {"color": "red"} and got.state.desired is None and got.version == 2
    deleted = v2_shadow.delete_shadow(iotshadow.DeleteShadowRequest(thing_name="crt1")).result(TIMEOUT)
    assert deleted.version == 2


def test_v2_client_named_shadows(v2_shadow: Any) -> None:
    import awsiot
    from awsiot import iotshadow

    update = iotshadow.UpdateNamedShadowRequest(thing_name="crt1", shadow_name="config",
                                                state=iotshadow.ShadowState(reported={"rate": 10}))
    assert v2_shadow.update_named_shadow(update).result(TIMEOUT).version == 1
    got = v2_shadow.get_named_shadow(iotshadow.GetNamedShadowRequest(thing_name="crt1", shadow_name="config")).result(
        TIMEOUT)
    assert got.state.reported == {"rate": 10}
    assert got.metadata.reported["rate"]["timestamp"] >= 1_600_000_000
    v2_shadow.delete_named_shadow(iotshadow.DeleteNamedShadowRequest(thing_name="crt1", shadow_name="config")).result(
        TIMEOUT)
    with pytest.raises(awsiot.V2ServiceException) as info:
        v2_shadow.delete_named_shadow(iotshadow.DeleteNamedShadowRequest(
            thing_name="crt1", shadow_name="config")).result(TIMEOUT)
    assert info.value.modeled_error.code == 404


def test_classic_client_over_mqtt311(gw: ShadowGateway, identity: tuple[Registry, dict[str, Path]]) -> None:
    from awscrt import mqtt
    from awsiot import iotshadow, mqtt_connection_builder

    files = identity[1]
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="127.0.0.1", port=gw.mqtts_port, cert_filepath=str(files["certificate"]),
        pri_key_filepath=str(files["private_key"]), ca_filepath=str(files["ca"]), client_id="crt1",
        clean_session=True, keep_alive_secs=30,
    )
    connection.connect().result(TIMEOUT)
    try:
        shadow = iotshadow.IotShadowClient(connection)
        accepted: queue.Queue[Any] = queue.Queue()
        rejected: queue.Queue[Any] = queue.Queue()
        deltas: queue.Queue[Any] = queue.Queue()
        qos = mqtt.QoS.AT_LEAST_ONCE
        for future, _ in (
            shadow.subscribe_to_update_shadow_accepted(
                iotshadow.UpdateShadowSubscriptionRequest(thing_name="crt1"), qos, accepted.put),
            shadow.subscribe_to_update_shadow_rejected(
                iotshadow.UpdateShadowSubscriptionRequest(thing_name="crt1"), qos, rejected.put),
            shadow.subscribe_to_shadow_delta_updated_events(
                iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name="crt1"), qos, deltas.put),
        ):
            future.result(TIMEOUT)
        request = iotshadow.UpdateShadowRequest(thing_name="crt1", client_token="classic-1",
                                                state=iotshadow.ShadowState(desired={"fan": 3}))
        shadow.publish_update_shadow(request, qos).result(TIMEOUT)
        response = accepted.get(timeout=TIMEOUT)
        assert response.client_token == "classic-1" and response.version == 1
        assert deltas.get(timeout=TIMEOUT).state == {"fan": 3}
        stale = iotshadow.UpdateShadowRequest(thing_name="crt1", client_token="classic-2", version=7,
                                              state=iotshadow.ShadowState(reported={"fan": 3}))
        shadow.publish_update_shadow(stale, qos).result(TIMEOUT)
        error = rejected.get(timeout=TIMEOUT)
        assert (error.code, error.client_token) == (409, "classic-2")
    finally:
        connection.disconnect().result(TIMEOUT)
