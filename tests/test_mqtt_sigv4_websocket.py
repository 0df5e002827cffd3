"""MQTT over WebSocket signed with SigV4 on the https listener: two independent signers (awscrt through the AWS
IoT Device SDK, botocore's `SigV4QueryAuth` for a paho client) against our verifier, the refusals (wrong secret,
expired, future-dated, SigV4 off) with their counters and log lines, the secure-by-default decision, the
certificate still required for everything else on the port, and `mqtt.sigv4_policy` narrowing a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import http.client
import itertools
import json
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from awscrt import auth, mqtt, mqtt5
from awscrt.exceptions import AwsCrtError
from awsiot import mqtt5_client_builder, mqtt_connection_builder
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeloop.config import ApiSection
from gateway.identity.registry import Registry
from gateway.mqtt.sigv4ws import WebSocketAuthError, sigv4_gate, verify_upgrade
from tests.mqtt_helpers import TIMEOUT, BrokerThread, Client, broker_config

pytestmark = pytest.mark.interop

ACCESS_KEY = "AKIDEDGELOOPSIGV4"
SECRET_KEY = "edgeloop-sigv4-test-secret"
REGION = "us-east-1"
NARROW_POLICY = "sigv4-no-blocked"
CONNECT = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 0])  # MQTT 3.1.1 CONNECT, empty client id
_ids = itertools.count()


@dataclasses.dataclass
class Gateway:
    bt: BrokerThread
    registry: Registry
    ca_file: Path

    @property
    def port(self) -> int:
        assert self.bt.service is not None
        return self.bt.service.ports["https"]

    def metric(self, name: str) -> int:
        return int(self.bt.run(lambda: self.bt.broker.metrics[name]))

    def wait_metric(self, name: str, at_least: int) -> int:
        """Poll a counter until it reaches `at_least` (a refused handshake is counted when the server sees it)."""
        deadline = time.monotonic() + TIMEOUT
        value = self.metric(name)
        while value < at_least and time.monotonic() < deadline:
            self.bt.call(asyncio.sleep(0.01))  # let the broker loop run; the poll and its deadline decide
            value = self.metric(name)
        return value


@contextlib.contextmanager
def running_gateway(home: Path, **mqtt_settings: Any) -> Iterator[Gateway]:
    """The broker on 127.0.0.1 with non-default API credentials and the registry's CA written out."""
    config = broker_config(home, host="127.0.0.1", **mqtt_settings)
    config.api = ApiSection(access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    registry = Registry.open(config)
    ca_file = home / "root-CA.pem"
    ca_file.write_text(registry.ca.certificate_pem)
    bt = BrokerThread(config, registry).start()
    try:
        yield Gateway(bt, registry, ca_file)
    finally:
        bt.stop()
        registry.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("sigv4")) as gateway:
        yield gateway


def client_id() -> str:
    return f"sigv4-{next(_ids)}"


# -- awscrt (the AWS IoT Device SDK) ---------------------------------------------------------------------------


def sdk_connection(gw: Gateway, cid: str, secret: str = SECRET_KEY, token: str | None = None) -> mqtt.Connection:
    credentials = auth.AwsCredentialsProvider.new_static(ACCESS_KEY, secret, token)
    return mqtt_connection_builder.websockets_with_default_aws_signing(
        region=REGION, credentials_provider=credentials, endpoint="localhost", port=gw.port, client_id=cid,
        ca_filepath=str(gw.ca_file))


def sdk_connection_signed_at(gw: Gateway, cid: str, when: dt.datetime, expires: int | None) -> mqtt.Connection:
    """The SDK's WebSocket set-up with awscrt's signer told to sign as of `when` (and an X-Amz-Expires)."""
    credentials = auth.AwsCredentialsProvider.new_static(ACCESS_KEY, SECRET_KEY)

    def sign(transform_args: Any, **_: Any) -> None:
        config = auth.AwsSigningConfig(
            algorithm=auth.AwsSigningAlgorithm.V4, signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
            credentials_provider=credentials, region=REGION, service="iotdevicegateway", date=when,
            expiration_in_seconds=expires, omit_session_token=True)
        auth.aws_sign_request(transform_args.http_request, config).add_done_callback(
            lambda f: transform_args.set_done(f.exception()))

    return mqtt_connection_builder.websockets_with_custom_handshake(
        sign, endpoint="localhost", port=gw.port, client_id=cid, ca_filepath=str(gw.ca_file))


def live_connection(gw: Gateway, cid: str) -> Any:
    return gw.bt.run(lambda: gw.bt.broker.sessions[cid].connection)


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEXAMPLE/token+with=chars"], ids=["static", "session-token"])
def test_sdk_websockets_with_default_aws_signing(gw: Gateway, token: str | None) -> None:
    cid = client_id()
    conn = sdk_connection(gw, cid, token=token)
    assert conn.connect().result(TIMEOUT) == {"session_present": False}
    try:
        live = live_connection(gw, cid)
        assert live.listener == "wss"
        assert live.auth.principal_id == ACCESS_KEY  # the IAM-style identity: no certificate, no thing
        assert live.auth.principal.certificate_id is None and live.auth.principal.thing_name is None
        assert live.transport.get_extra_info("ssl_object").getpeercert(binary_form=True) is None
        got: Future[tuple[str, bytes, int]] = Future()
        topic = f"sensors/{cid}/temp"
        sub, _ = conn.subscribe(topic, mqtt.QoS.AT_LEAST_ONCE,
                                lambda topic, payload, qos, **_: got.set_result((topic, payload, int(qos))))
        assert sub.result(TIMEOUT)["qos"] == mqtt.QoS.AT_LEAST_ONCE
        conn.publish(topic, b"21.5", mqtt.QoS.AT_LEAST_ONCE)[0].result(TIMEOUT)  # PUBACK
        assert got.result(TIMEOUT) == (topic, b"21.5", 1)
    finally:
        conn.disconnect().result(TIMEOUT)


def test_sdk_mqtt5_websockets_with_default_aws_signing(gw: Gateway) -> None:
    cid = client_id()
    connected: Future[Any] = Future()
    stopped: Future[None] = Future()
    received: Future[mqtt5.PublishPacket] = Future()
    client = mqtt5_client_builder.websockets_with_default_aws_signing(
        region=REGION, credentials_provider=auth.AwsCredentialsProvider.new_static(ACCESS_KEY, SECRET_KEY),
        endpoint="localhost", port=gw.port, client_id=cid, ca_filepath=str(gw.ca_file),
        on_lifecycle_connection_success=lambda d: connected.set_result(d),
        on_lifecycle_connection_failure=lambda d: connected.done() or connected.set_exception(d.exception),
        on_lifecycle_stopped=lambda d: stopped.done() or stopped.set_result(None),
        on_publish_received=lambda d: received.done() or received.set_result(d.publish_packet))
    client.start()
    try:
        assert connected.result(TIMEOUT).connack_packet.reason_code == mqtt5.ConnectReasonCode.SUCCESS
        topic = f"sensors/{cid}/v5"
        client.subscribe(mqtt5.SubscribePacket([mqtt5.Subscription(topic, mqtt5.QoS.AT_LEAST_ONCE)])).result(TIMEOUT)
        ack = client.publish(mqtt5.PublishPacket(topic=topic, payload=b"v5", qos=mqtt5.QoS.AT_LEAST_ONCE))
        assert ack.result(TIMEOUT).puback.reason_code == mqtt5.PubackReasonCode.SUCCESS
        assert received.result(TIMEOUT).payload == b"v5"
    finally:
        client.stop()
        stopped.result(TIMEOUT)


def refused_sdk_connect(conn: mqtt.Connection) -> None:
    with pytest.raises(AwsCrtError) as info:
        conn.connect().result(TIMEOUT)
    assert "WEBSOCKET_UPGRADE_FAILURE" in info.value.name


def sigv4_lines(caplog: pytest.LogCaptureFixture, reason: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith("event=sigv4_refused") and f" reason={reason} " in r.getMessage()]


def test_wrong_secret_is_refused_logged_and_counted(gw: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edgeloop.mqtt")
    before = gw.metric("sigv4_failures_mismatch"), gw.metric("sigv4_failures")
    refused_sdk_connect(sdk_connection(gw, client_id(), secret="not-the-secret"))
    assert (gw.metric("sigv4_failures_mismatch"), gw.metric("sigv4_failures")) == (before[0] + 1, before[1] + 1)
    lines = sigv4_lines(caplog, "mismatch")
    assert len(lines) == 1
    assert f"access_key={ACCESS_KEY} " in lines[0] and "peer=127.0.0.1 " in lines[0]


@pytest.mark.parametrize(("offset_minutes", "expires", "reason"), [
    (-20, None, "expired"),  # no X-Amz-Expires (the SDK's default): valid within the 15-minute skew window
    (-10, 60, "expired"),  # an explicit X-Amz-Expires ran out
    (20, None, "skewed"),  # dated more than 15 minutes ahead
    (20, 3600, "skewed"),
])
def test_expired_or_future_dated_signature_is_refused(
    gw: Gateway, caplog: pytest.LogCaptureFixture, offset_minutes: int, expires: int | None, reason: str,
) -> None:
    caplog.set_level(logging.INFO, logger="edgeloop.mqtt")
    before = gw.metric(f"sigv4_failures_{reason}")
    when = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=offset_minutes)
    refused_sdk_connect(sdk_connection_signed_at(gw, client_id(), when, expires))
    assert gw.metric(f"sigv4_failures_{reason}") == before + 1
    assert len(sigv4_lines(caplog, reason)) == 1


def test_signature_inside_the_window_connects(gw: Gateway) -> None:
    """Control for the test above: the same custom signer dated 10 minutes ago, no X-Amz-Expires, connects."""
    cid = client_id()
    conn = sdk_connection_signed_at(gw, cid, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10), None)
    assert conn.connect().result(TIMEOUT) == {"session_present": False}
    conn.disconnect().result(TIMEOUT)


# -- botocore's presigner + paho ---------------------------------------------------------------------------------


def presigned_path(port: int, token: str | None = None, secret: str = SECRET_KEY) -> str:
    """`/mqtt?...` signed by botocore's SigV4QueryAuth for iotdevicegateway (it signs a session token too)."""
    request = AWSRequest(method="GET", url=f"https://localhost:{port}/mqtt")
    SigV4QueryAuth(Credentials(ACCESS_KEY, secret, token), "iotdevicegateway", REGION, expires=300).add_auth(request)
    parts = urlsplit(request.url)
    return f"{parts.path}?{parts.query}"


def signed_headers(port: int) -> dict[str, str]:
    """A header-signed upgrade (Authorization + X-Amz-Date) made by botocore's SigV4Auth."""
    request = AWSRequest(method="GET", url=f"https://localhost:{port}/mqtt")
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "iotdevicegateway", REGION).add_auth(request)
    return {name: request.headers[name] for name in ("Authorization", "X-Amz-Date")}


def paho_websocket(port: int, ca_file: Path, cid: str, path: str, *, v5: bool = False,
                   headers: dict[str, str] | None = None) -> Client:
    """A paho client (not yet connected) for wss://localhost:`port``path`, trusting `ca_file`."""
    context = ssl.create_default_context(cafile=str(ca_file))
    client = Client(port, cid, v5=v5, tls=context, transport="websockets", host="localhost", connect=False)
    client.c.ws_set_options(path=path, headers=headers)
    return client


@pytest.mark.parametrize("token", [None, "session-token/with+signed=chars"], ids=["static", "signed-token"])
def test_paho_with_a_botocore_presigned_url(gw: Gateway, token: str | None) -> None:
    cid = client_id()
    client = paho_websocket(gw.port, gw.ca_file, cid, presigned_path(gw.port, token))
    try:
        _, rc, _ = client.connect()
        assert rc == 0
        assert client.subscribe(f"paho/{cid}", 1) == [1]
        client.publish(f"paho/{cid}", b"presigned", 1)
        assert client.get().payload == b"presigned"
        assert live_connection(gw, cid).auth.principal_id == ACCESS_KEY
    finally:
        client.close()


def test_paho_with_a_header_signed_upgrade(gw: Gateway) -> None:
    cid = client_id()
    client = paho_websocket(gw.port, gw.ca_file, cid, "/mqtt", headers=signed_headers(gw.port))
    try:
        assert client.connect()[1] == 0
        assert live_connection(gw, cid).auth.principal_id == ACCESS_KEY
    finally:
        client.close()


# -- everything else on the port still needs a certificate ------------------------------------------------------


def no_certificate_context(gw: Gateway, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(gw.ca_file))
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def tls_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith("event=tls_failed listener=https") and " reason=no_certificate " in
            r.getMessage()]


@pytest.mark.parametrize("alpn", [("x-amzn-mqtt-ca",), ()], ids=["alpn", "first-byte"])
def test_mqtt_without_certificate_is_refused_on_the_https_port(
    gw: Gateway, caplog: pytest.LogCaptureFixture, alpn: tuple[str, ...],
) -> None:
    caplog.set_level(logging.INFO, logger="edgeloop.mqtt")
    before = gw.metric("tls_failures_no_certificate")
    with socket.create_connection(("127.0.0.1", gw.port), TIMEOUT) as raw, \
            no_certificate_context(gw, alpn).wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.selected_alpn_protocol() == (alpn[0] if alpn else None)
        tls.settimeout(TIMEOUT)
        tls.sendall(CONNECT)
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            assert tls.recv(4) == b""  # closed without a CONNACK
    assert gw.wait_metric("tls_failures_no_certificate", before + 1) == before + 1
    assert any("MQTT on this port needs a client certificate" in line for line in tls_lines(caplog))


def https_request(gw: Gateway, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPSConnection("localhost", gw.port, context=no_certificate_context(gw), timeout=TIMEOUT)
    try:
        conn.request(method, path, body=b"payload" if method == "POST" else None, headers=headers or {})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def test_https_publish_and_unsigned_websocket_without_certificate_are_refused(
    gw: Gateway, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edgeloop.mqtt")
    before = gw.metric("tls_failures_no_certificate")
    status, body = https_request(gw, "POST", "/topics/things/x/y?qos=1")
    assert (status, body["message"]) == (401, "Unauthorized")
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "mqtt"}
    status, body = https_request(gw, "GET", "/mqtt", upgrade)
    assert status == 401 and "client certificate or a SigV4-signed request" in body["message"]
    assert gw.metric("tls_failures_no_certificate") == before + 2
    details = " ".join(tls_lines(caplog))
    assert "HTTPS publish needs a client certificate" in details and "MQTT over WebSocket needs" in details


def test_mutual_tls_websocket_still_works(gw: Gateway, tmp_path: Path) -> None:
    """A certificate holder reaches /mqtt as before (the SDK builder code with a client certificate)."""
    from awscrt import io

    name = client_id()
    files = gw.registry.provision_thing(name).write(tmp_path / name)
    options = io.TlsContextOptions.create_client_with_mtls_from_path(str(files["certificate"]),
                                                                     str(files["private_key"]))
    conn = mqtt_connection_builder._builder(options, use_websockets=True, endpoint="localhost", port=gw.port,
                                            client_id=name, ca_filepath=str(files["ca"]))
    assert conn.connect().result(TIMEOUT) == {"session_present": False}
    try:
        assert live_connection(gw, name).auth.principal.thing_name == name
        got: Future[bytes] = Future()
        topic = f"things/{name}/ws"
        conn.subscribe(topic, mqtt.QoS.AT_LEAST_ONCE, lambda topic, payload, **_: got.set_result(payload))[0].result(
            TIMEOUT)
        conn.publish(topic, b"mtls", mqtt.QoS.AT_LEAST_ONCE)[0].result(TIMEOUT)
        assert got.result(TIMEOUT) == b"mtls"
    finally:
        conn.disconnect().result(TIMEOUT)


# -- secure by default ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "api", "hosts", "enabled", "why"), [
    (True, ApiSection(), ["0.0.0.0"], False, "api.secret_key is the built-in default"),
    (True, ApiSection(), ["::"], False, "not to loopback only"),
    (True, ApiSection(), ["127.0.0.1", "192.168.1.20"], False, "bound to 127.0.0.1, 192.168.1.20"),
    (True, ApiSection(access_key="mine"), ["0.0.0.0"], False, "api.secret_key is the built-in default"),
    (True, ApiSection(), ["127.0.0.1", "::1"], True, ""),
    (True, ApiSection(access_key="AKID", secret_key="s3cret"), ["0.0.0.0"], True, ""),
    (True, ApiSection(access_key="", secret_key="s3cret"), ["127.0.0.1"], False, "are empty"),
    (False, ApiSection(access_key="AKID", secret_key="s3cret"), ["127.0.0.1"], False, "mqtt.sigv4_websocket = false"),
])
def test_sigv4_gate_decision(setting: bool, api: ApiSection, hosts: list[str], enabled: bool, why: str) -> None:
    gate = sigv4_gate(setting, api, hosts)
    assert gate.enabled is enabled
    assert why in gate.why_off and (enabled or "to turn it on" in gate.why_off)


def test_sigv4_forced_off_refuses_the_sdk_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With mqtt.sigv4_websocket = false the https port requires a certificate again (as before SigV4)."""
    caplog.set_level(logging.INFO, logger="edgeloop.mqtt")
    with running_gateway(tmp_path, sigv4_websocket=False) as off:
        assert off.bt.service is not None and off.bt.service.sigv4 is not None
        assert not off.bt.service.sigv4.enabled
        banner = [r.getMessage() for r in caplog.records if r.getMessage().startswith("event=sigv4_websocket")]
        assert banner and "state=off" in banner[0] and "set it to true to turn it on" in banner[0]
        with pytest.raises(AwsCrtError):
            sdk_connection(off, client_id()).connect().result(TIMEOUT)
        assert off.wait_metric("tls_failures_no_certificate", 1) == 1
        assert off.metric("sigv4_failures") == 0


# -- the verifier on its own (hypothesis) -----------------------------------------------------------------------

_param_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(extra=st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9_.~-]{0,8}", fullmatch=True), _param_text,
                             max_size=3),
       token=st.none() | st.text(st.characters(codec="ascii", min_codepoint=33, max_codepoint=126), min_size=1,
                                 max_size=20),
       flip=st.integers(min_value=0, max_value=63))
def test_botocore_presigned_urls_verify_and_tampering_fails(extra: dict[str, str], token: str | None,
                                                            flip: int) -> None:
    extra = {k: v for k, v in extra.items() if not k.startswith("X-Amz")}
    request = AWSRequest(method="GET", url="https://gw.example:8443/mqtt", params=extra)
    SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET_KEY, token), "iotdevicegateway", REGION).add_auth(request)
    raw_query = urlsplit(request.url).query
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    headers = {"Host": "gw.example:8443"}
    secrets = {ACCESS_KEY: SECRET_KEY}
    assert verify_upgrade("/mqtt", raw_query, headers, query, secrets, REGION).access_key == ACCESS_KEY
    signature = query["X-Amz-Signature"]
    forged = signature[:flip] + ("0" if signature[flip] != "0" else "1") + signature[flip + 1:]
    tampered = raw_query.replace(f"X-Amz-Signature={signature}", f"X-Amz-Signature={forged}")
    with pytest.raises(WebSocketAuthError) as info:
        verify_upgrade("/mqtt", tampered, headers, {**query, "X-Amz-Signature": forged}, secrets, REGION)
    assert info.value.reason == "mismatch"
    with pytest.raises(WebSocketAuthError) as info:
        verify_upgrade("/mqtt", raw_query, {"Host": "other.example:8443"}, query, secrets, REGION)
    assert info.value.reason == "mismatch"


def test_wrong_scope_is_refused() -> None:
    request = AWSRequest(method="GET", url="https://gw.example/mqtt")
    SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET_KEY), "iotdata", REGION).add_auth(request)
    raw_query = urlsplit(request.url).query
    with pytest.raises(WebSocketAuthError) as info:
        verify_upgrade("/mqtt", raw_query, {"Host": "gw.example"}, dict(parse_qsl(raw_query)),
                       {ACCESS_KEY: SECRET_KEY}, REGION)
    assert info.value.reason == "wrong_scope" and "iotdevicegateway" in info.value.message


# -- mqtt.sigv4_policy narrows a SigV4 connection ---------------------------------------------------------------


def test_sigv4_policy_narrows_publish_and_applies_to_live_connections(tmp_path: Path) -> None:
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/blocked/*"},
    ]}
    with running_gateway(tmp_path, sigv4_policy=NARROW_POLICY, identity_recheck_secs=0.1) as narrow:
        narrow.registry.policies.create(NARROW_POLICY, json.dumps(document))
        cid = client_id()
        client = paho_websocket(narrow.port, narrow.ca_file, cid, presigned_path(narrow.port), v5=True)
        try:
            _, rc, _ = client.connect()
            assert rc == 0
            assert client.subscribe("#", 1) == [1]
            client.publish("open/x", b"allowed", 1)
            assert client.get().payload == b"allowed"
            client.publish("blocked/x", b"denied", 1, wait=False)
            client.pubacks.get(timeout=TIMEOUT)  # the allowed one
            _, reason = client.pubacks.get(timeout=TIMEOUT)
            assert reason == 0x87  # Not authorized, as for a certificate principal
            assert narrow.metric("publish_unauthorized") == 1
            client.assert_nothing()
            no_connect = {"Version": "2012-10-17", "Statement": [
                {"Effect": "Deny", "Action": "iot:Connect", "Resource": "*"}, *document["Statement"]]}
            narrow.registry.policies.create_version(NARROW_POLICY, json.dumps(no_connect), set_as_default=True)
            assert client.disconnected() == 0x87  # the live connection loses it, as a certificate principal would
        finally:
            client.close()


def test_rules_see_the_access_key_as_principal(tmp_path: Path) -> None:
    """principal() of a message from a SigV4 connection is its access key (the IAM-style identity), as the
    certificate id is for an X.509 device."""
    from tests.test_dispatch_support import ROLE, rule_payload
    from tests.test_dispatch_support import running_gateway as running_full_gateway

    overrides = {"mqtt.host": "127.0.0.1", "api.access_key": ACCESS_KEY, "api.secret_key": SECRET_KEY}
    with running_full_gateway(tmp_path, **overrides) as full:
        full.client("iot").create_topic_rule(ruleName="who", topicRulePayload=rule_payload(
            "SELECT principal() AS principal, clientid() AS client FROM 'sig/+'",
            {"republish": {"roleArn": ROLE, "topic": "who/out", "qos": 1}}))
        ca_file = tmp_path / "root-CA.pem"
        ca_file.write_text(full.gateway.registry.ca.certificate_pem)
        assert full.gateway.mqtt is not None
        port = full.gateway.mqtt.ports["https"]
        client = paho_websocket(port, ca_file, "signed-1", presigned_path(port))
        try:
            _, rc, _ = client.connect()
            assert rc == 0
            assert client.subscribe("who/out", 1) == [1]
            client.publish("sig/1", b"{}", 1)
            assert json.loads(client.get().payload) == {"principal": ACCESS_KEY, "client": "signed-1"}
        finally:
            client.close()
