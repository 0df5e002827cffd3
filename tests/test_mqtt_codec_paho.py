"""Golden vectors from a real client: paho-mqtt talks to a bare asyncio socket server that only uses our codec.

The server records the exact bytes paho sends (CONNECT with will and credentials, SUBSCRIBE, PUBLISH,
DISCONNECT, in MQTT 3.1, 3.1.1 and 5.0 with properties) and answers with packets our encoder produced.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.mqtt.codec import StreamDecoder, encode
from gateway.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    Packet,
    Properties,
    Puback,
    Publish,
    Suback,
    Subscribe,
    Subscription,
    Will,
)

pytestmark = pytest.mark.interop
TIMEOUT = 10.0


@dataclass
class Capture:
    raw: bytearray = field(default_factory=bytearray)
    packets: list[Packet] = field(default_factory=list)
    version: int = 4


async def _serve_one_client(capture: Capture, done: asyncio.Event) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = StreamDecoder()
        try:
            while not done.is_set():
                data = await reader.read(65536)
                if not data:
                    break
                capture.raw += data
                for packet in decoder.feed(data):
                    capture.packets.append(packet)
                    capture.version = decoder.version
                    if isinstance(packet, Connect):
                        writer.write(encode(Connack(False, 0), decoder.version))
                    elif isinstance(packet, Subscribe):
                        writer.write(encode(Suback(packet.packet_id, [s.qos for s in packet.subscriptions]),
                                            decoder.version))
                    elif isinstance(packet, Publish) and packet.qos == 1:
                        writer.write(encode(Puback(packet.packet_id or 0), decoder.version))
                    elif isinstance(packet, Disconnect):
                        done.set()
        finally:
            done.set()
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _run_paho(port: int, protocol: int) -> None:
    """Connect with a will and credentials, subscribe, publish QoS 1, wait for PUBACK, disconnect."""
    v5 = protocol == paho.MQTTv5
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"golden-{protocol}", protocol=protocol)
    client.username_pw_set("device", "s3cret")
    connected, subscribed, published = threading.Event(), threading.Event(), threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_publish = lambda *args: published.set()
    will_props = connect_props = sub_props = pub_props = None
    if v5:
        will_props = PahoProperties(PacketTypes.WILLMESSAGE)
        will_props.WillDelayInterval = 5
        will_props.ContentType = "text/plain"
        connect_props = PahoProperties(PacketTypes.CONNECT)
        connect_props.SessionExpiryInterval = 120
        connect_props.ReceiveMaximum = 10
        connect_props.UserProperty = ("site", "lab")
        sub_props = PahoProperties(PacketTypes.SUBSCRIBE)
        sub_props.SubscriptionIdentifier = 7
        pub_props = PahoProperties(PacketTypes.PUBLISH)
        pub_props.MessageExpiryInterval = 60
        pub_props.ResponseTopic = "reply/here"
        pub_props.CorrelationData = b"\x01\x02"
        pub_props.UserProperty = ("trace", "42")
    client.will_set("dev/status", b"offline", qos=1, retain=True, properties=will_props)
    if v5:
        client.connect("127.0.0.1", port, keepalive=42, clean_start=True, properties=connect_props)
    else:
        client.connect("127.0.0.1", port, keepalive=42)
    client.loop_start()
    try:
        assert connected.wait(TIMEOUT), "no CONNACK"
        if v5:
            options = SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True, retainHandling=1)
            client.subscribe("dev/+/cmd", options=options, properties=sub_props)
        else:
            client.subscribe("dev/+/cmd", 1)
        assert subscribed.wait(TIMEOUT), "no SUBACK"
        client.publish("dev/1/telemetry", b'{"t":21.5}', qos=1, properties=pub_props)
        assert published.wait(TIMEOUT), "no PUBACK"
        client.disconnect()
    finally:
        client.loop_stop()


def _capture(protocol: int) -> Capture:
    async def main() -> Capture:
        capture, done = Capture(), asyncio.Event()
        server = await _serve_one_client(capture, done)
        port = server.sockets[0].getsockname()[1]
        try:
            await asyncio.wait_for(asyncio.to_thread(_run_paho, port, protocol), TIMEOUT * 2)
            await asyncio.wait_for(done.wait(), TIMEOUT)
        finally:
            server.close()
        return capture

    return asyncio.run(main())


@pytest.mark.parametrize(("protocol", "level", "name"), [(paho.MQTTv311, 4, "MQTT"), (paho.MQTTv31, 3, "MQIsdp")])
def test_paho_v3_session_decodes_and_reencodes_byte_for_byte(protocol: int, level: int, name: str) -> None:
    capture = _capture(protocol)
    assert capture.version == 4  # 3.1 is decoded like 3.1.1
    connect, subscribe, publish, disconnect = capture.packets
    assert connect == Connect(f"golden-{protocol}", level, True, 42, "device", b"s3cret",
                              Will("dev/status", b"offline", 1, True), protocol_name=name)
    assert isinstance(subscribe, Subscribe)
    assert subscribe.subscriptions == [Subscription("dev/+/cmd", 1)]
    assert isinstance(publish, Publish)
    assert (publish.topic, publish.payload, publish.qos, publish.retain) == ("dev/1/telemetry", b'{"t":21.5}', 1, False)
    assert disconnect == Disconnect()
    assert b"".join(encode(p, 4) for p in capture.packets) == bytes(capture.raw)
    if level == 4:
        assert bytes(capture.raw).startswith(GOLDEN_PAHO_V311_CONNECT)


def test_paho_v5_session_with_properties_decodes_and_reencodes_byte_for_byte() -> None:
    capture = _capture(paho.MQTTv5)
    assert capture.version == 5
    connect, subscribe, publish, disconnect = capture.packets
    assert isinstance(connect, Connect)
    assert (connect.client_id, connect.protocol_level, connect.keepalive) == ("golden-5", 5, 42)
    assert (connect.username, connect.password) == ("device", b"s3cret")
    assert connect.properties == Properties(session_expiry_interval=120, receive_maximum=10,
                                            user_properties=[("site", "lab")])
    assert connect.will == Will("dev/status", b"offline", 1, True,
                                Properties(will_delay_interval=5, content_type="text/plain"))
    assert isinstance(subscribe, Subscribe)
    assert subscribe.subscriptions == [Subscription("dev/+/cmd", 1, True, True, 1)]
    assert subscribe.properties.subscription_identifiers == [7]
    assert isinstance(publish, Publish)
    assert publish.properties == Properties(message_expiry_interval=60, response_topic="reply/here",
                                            correlation_data=b"\x01\x02", user_properties=[("trace", "42")])
    assert disconnect == Disconnect()
    assert b"".join(encode(p, 5) for p in capture.packets) == bytes(capture.raw)  # same property order as paho
    assert bytes(capture.raw).startswith(GOLDEN_PAHO_V5_CONNECT)


# Bytes paho-mqtt 2.1 sent for the CONNECTs above (captured with this test), kept as paho-independent vectors.
GOLDEN_PAHO_V311_CONNECT = bytes.fromhex(
    "103900044d51545404ee002a0008676f6c64656e2d34000a6465762f73746174757300076f66666c696e650006646576696365"
    "0006733363726574"
)
GOLDEN_PAHO_V5_CONNECT = bytes.fromhex(
    "106100044d51545405ee002a14110000007821000a2600047369746500036c61620008676f6c64656e2d351203000a746578"
    "742f706c61696e1800000005000a6465762f73746174757300076f66666c696e6500066465766963650006733363726574"
)


@pytest.mark.parametrize(("raw", "version"), [(GOLDEN_PAHO_V311_CONNECT, 4), (GOLDEN_PAHO_V5_CONNECT, 5)])
def test_golden_paho_connect_vectors(raw: bytes, version: int) -> None:
    (connect,) = StreamDecoder().feed(raw)
    assert isinstance(connect, Connect)
    assert (connect.protocol_level, connect.client_id, connect.keepalive) == (version, f"golden-{version}", 42)
    assert connect.will is not None and (connect.will.topic, connect.will.qos, connect.will.retain) == (
        "dev/status", 1, True)
    assert encode(connect, version) == raw
