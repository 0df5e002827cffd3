"""Every validation rule of the MQTT decoder, with the reason code it must report."""

from __future__ import annotations

import pytest

from gateway.mqtt.codec import StreamDecoder, encode, encode_properties
from gateway.mqtt.errors import MqttDecodeError, MqttEncodeError
from gateway.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    PacketType,
    Properties,
    Puback,
    Publish,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from gateway.mqtt.properties import WILL_PROPERTIES

MALFORMED, PROTOCOL, UNSUPPORTED, TOPIC_INVALID, TOO_LARGE = 0x81, 0x82, 0x84, 0x90, 0x95


def frame(first: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes((first, len(body))) + body


def s(text: bytes) -> bytes:
    return len(text).to_bytes(2, "big") + text


def connect_body(name: bytes = b"MQTT", level: int = 4, flags: int = 0x02, tail: bytes = s(b"cid")) -> bytes:
    return s(name) + bytes((level, flags)) + b"\x00\x3c" + tail


V5_CONNECT_PREFIX = s(b"MQTT") + b"\x05\x02\x00\x3c"

CASES: list[tuple[str, int, bytes, int]] = [
    # fixed header
    ("reserved packet type 0", 4, b"\x00\x00", MALFORMED),
    ("remaining length of 5 bytes", 4, b"\x30\xff\xff\xff\xff\x01", MALFORMED),
    ("PUBREL flags not 0b0010", 4, frame(0x60, b"\x00\x01"), MALFORMED),
    ("SUBSCRIBE flags not 0b0010", 4, frame(0x80, b"\x00\x01" + s(b"a") + b"\x00"), MALFORMED),
    ("UNSUBSCRIBE flags not 0b0010", 4, frame(0xA0, b"\x00\x01" + s(b"a")), MALFORMED),
    ("PUBACK with flags set", 4, frame(0x41, b"\x00\x01"), MALFORMED),
    ("PINGREQ with flags set", 4, b"\xc8\x00", MALFORMED),
    # CONNECT
    ("protocol name not MQTT", 4, frame(0x10, connect_body(name=b"MQTX")), UNSUPPORTED),
    ("unsupported protocol level 6", 4, frame(0x10, connect_body(level=6)), UNSUPPORTED),
    ("MQIsdp with level 4", 4, frame(0x10, connect_body(name=b"MQIsdp", level=4)), UNSUPPORTED),
    ("MQTT with level 3", 4, frame(0x10, connect_body(level=3)), UNSUPPORTED),
    ("CONNECT reserved flag bit 0", 4, frame(0x10, connect_body(flags=0x03)), MALFORMED),
    ("will QoS 3", 4, frame(0x10, connect_body(flags=0x1E, tail=s(b"c") + s(b"w") + s(b"x"))), MALFORMED),
    ("will QoS without will flag", 4, frame(0x10, connect_body(flags=0x0A)), MALFORMED),
    ("will retain without will flag", 4, frame(0x10, connect_body(flags=0x22)), MALFORMED),
    ("3.1.1 password without user name", 4, frame(0x10, connect_body(flags=0x42, tail=s(b"c") + s(b"pw"))),
     MALFORMED),
    ("will topic with wildcard", 4, frame(0x10, connect_body(flags=0x06, tail=s(b"c") + s(b"a/#") + s(b"x"))),
     TOPIC_INVALID),
    ("CONNECT trailing bytes", 4, frame(0x10, connect_body(tail=s(b"cid") + b"\x00")), MALFORMED),
    ("client id runs past the end", 4, frame(0x10, connect_body(tail=b"\x00\x09ab")), MALFORMED),
    ("client id with U+0000", 4, frame(0x10, connect_body(tail=s(b"a\x00b"))), MALFORMED),
    ("client id with a UTF-16 surrogate", 4, frame(0x10, connect_body(tail=s(b"\xed\xa0\x80"))), MALFORMED),
    ("client id overlong UTF-8", 4, frame(0x10, connect_body(tail=s(b"\xc0\xaf"))), MALFORMED),
    # PUBLISH
    ("PUBLISH QoS 3", 4, frame(0x36, s(b"a") + b"\x00\x01"), MALFORMED),
    ("PUBLISH DUP with QoS 0", 4, frame(0x38, s(b"a")), PROTOCOL),
    ("PUBLISH QoS 1 without packet id", 4, frame(0x32, s(b"a")), MALFORMED),
    ("PUBLISH QoS 1 packet id 0", 4, frame(0x32, s(b"a") + b"\x00\x00"), PROTOCOL),
    ("PUBLISH topic with +", 4, frame(0x30, s(b"a/+")), TOPIC_INVALID),
    ("PUBLISH topic with #", 4, frame(0x30, s(b"#")), TOPIC_INVALID),
    ("PUBLISH empty topic (3.1.1)", 4, frame(0x30, s(b"")), TOPIC_INVALID),
    ("PUBLISH empty topic without alias (5)", 5, frame(0x30, s(b"") + b"\x00"), PROTOCOL),
    ("PUBLISH topic not UTF-8", 4, frame(0x30, s(b"\xff")), MALFORMED),
    ("PUBLISH topic with U+0000", 4, frame(0x30, s(b"a\x00")), MALFORMED),
    ("PUBLISH topic runs past the end", 4, frame(0x30, b"\x00\x05ab"), MALFORMED),
    # properties (v5)
    ("unknown property id", 5, frame(0x30, s(b"a") + b"\x02\x05\x00"), MALFORMED),
    ("property not allowed in PUBLISH", 5, frame(0x30, s(b"a") + b"\x05\x11\x00\x00\x00\x01"), MALFORMED),
    ("duplicate property", 5, frame(0x30, s(b"a") + b"\x04\x01\x00\x01\x01"), PROTOCOL),
    ("payload format indicator 2", 5, frame(0x30, s(b"a") + b"\x02\x01\x02"), PROTOCOL),
    ("topic alias 0", 5, frame(0x30, s(b"a") + b"\x03\x23\x00\x00"), PROTOCOL),
    ("subscription identifier 0", 5, frame(0x30, s(b"a") + b"\x02\x0b\x00"), PROTOCOL),
    ("property runs past the block", 5, frame(0x30, s(b"a") + b"\x02\x02\x00\x00\x00"), MALFORMED),
    ("property block runs past the packet", 5, frame(0x30, s(b"a") + b"\x09\x01\x00"), MALFORMED),
    ("receive maximum 0 in CONNECT", 4, frame(0x10, V5_CONNECT_PREFIX + b"\x03\x21\x00\x00" + s(b"c")), PROTOCOL),
    ("maximum packet size 0", 4, frame(0x10, V5_CONNECT_PREFIX + b"\x05\x27\x00\x00\x00\x00" + s(b"c")), PROTOCOL),
    ("two subscription identifiers in SUBSCRIBE", 5,
     frame(0x82, b"\x00\x01\x04\x0b\x01\x0b\x02" + s(b"a") + b"\x00"), PROTOCOL),
    ("will delay outside the will", 4, frame(0x10, V5_CONNECT_PREFIX + b"\x05\x18\x00\x00\x00\x01" + s(b"c")),
     MALFORMED),
    # SUBSCRIBE / UNSUBSCRIBE / acks
    ("SUBSCRIBE without filters", 4, frame(0x82, b"\x00\x01"), PROTOCOL),
    ("SUBSCRIBE packet id 0", 4, frame(0x82, b"\x00\x00" + s(b"a") + b"\x00"), PROTOCOL),
    ("SUBSCRIBE requested QoS 3", 4, frame(0x82, b"\x00\x01" + s(b"a") + b"\x03"), MALFORMED),
    ("SUBSCRIBE reserved option bits (3.1.1)", 4, frame(0x82, b"\x00\x01" + s(b"a") + b"\x04"), MALFORMED),
    ("SUBSCRIBE reserved option bits (5)", 5, frame(0x82, b"\x00\x01\x00" + s(b"a") + b"\x40"), MALFORMED),
    ("SUBSCRIBE retain handling 3", 5, frame(0x82, b"\x00\x01\x00" + s(b"a") + b"\x30"), PROTOCOL),
    ("SUBSCRIBE filter without options", 4, frame(0x82, b"\x00\x01" + s(b"a")), MALFORMED),
    ("UNSUBSCRIBE without filters", 4, frame(0xA2, b"\x00\x01"), PROTOCOL),
    ("PUBACK packet id 0", 4, frame(0x40, b"\x00\x00"), PROTOCOL),
    ("PUBACK trailing bytes (3.1.1)", 4, frame(0x40, b"\x00\x01\x00"), MALFORMED),
    ("PUBACK invalid reason code", 5, frame(0x40, b"\x00\x01\x92"), PROTOCOL),
    ("PUBREL invalid reason code", 5, frame(0x62, b"\x00\x01\x10"), PROTOCOL),
    ("SUBACK invalid 3.1.1 return code", 4, frame(0x90, b"\x00\x01\x03"), PROTOCOL),
    ("SUBACK without codes", 5, frame(0x90, b"\x00\x01\x00"), PROTOCOL),
    ("UNSUBACK invalid reason code", 5, frame(0xB0, b"\x00\x01\x00\x01"), PROTOCOL),
    ("CONNACK reserved flag bits", 4, frame(0x20, b"\x02\x00"), MALFORMED),
    ("CONNACK 3.1.1 return code 6", 4, frame(0x20, b"\x00\x06"), MALFORMED),
    ("CONNACK refusal with session present", 5, frame(0x20, b"\x01\x87\x00"), PROTOCOL),
    ("DISCONNECT invalid reason code", 5, frame(0xE0, b"\x01"), PROTOCOL),
    ("DISCONNECT with a body (3.1.1)", 4, frame(0xE0, b"\x00"), MALFORMED),
    ("PINGREQ with a body", 4, frame(0xC0, b"\x00"), MALFORMED),
    ("AUTH in 3.1.1", 4, frame(0xF0, b""), MALFORMED),
    ("AUTH invalid reason code", 5, frame(0xF0, b"\x01"), PROTOCOL),
]


@pytest.mark.parametrize(("name", "version", "data", "reason"), CASES, ids=[c[0] for c in CASES])
def test_invalid_input_is_rejected_with_its_reason_code(name: str, version: int, data: bytes, reason: int) -> None:
    with pytest.raises(MqttDecodeError) as info:
        StreamDecoder(version=version).feed(data)
    assert info.value.reason_code == reason, info.value.message


def test_packet_too_large_is_reported_from_the_header_alone() -> None:
    decoder = StreamDecoder(max_packet_size=1024)
    with pytest.raises(MqttDecodeError) as info:
        decoder.feed(b"\x30\x80\x10")  # announces a 2051-byte packet; no body has arrived
    assert info.value.reason_code == TOO_LARGE


def test_max_packet_size_counts_the_whole_packet() -> None:
    packet = encode(Publish("t", b"x" * 10), 4)
    assert StreamDecoder(max_packet_size=len(packet)).feed(packet) == [Publish("t", b"x" * 10)]
    with pytest.raises(MqttDecodeError):
        StreamDecoder(max_packet_size=len(packet) - 1).feed(packet)


def test_overlong_remaining_length_is_detected_before_the_body() -> None:
    with pytest.raises(MqttDecodeError) as info:
        StreamDecoder().feed(b"\x30\x80\x80\x80\x80")
    assert info.value.reason_code == MALFORMED


def test_non_minimal_remaining_length_is_accepted() -> None:
    body = s(b"a/b") + b"hi"
    packet = b"\x30" + bytes((len(body) | 0x80, 0x00)) + body
    assert StreamDecoder().feed(packet) == [Publish("a/b", b"hi")]


def test_password_without_user_name_is_fine_in_v5() -> None:
    (connect,) = StreamDecoder().feed(frame(0x10, V5_CONNECT_PREFIX[:-4] + b"\x05\x42\x00\x3c\x00" + s(b"c") + s(b"p")))
    assert isinstance(connect, Connect)
    assert (connect.username, connect.password) == (None, b"p")


def test_empty_topic_with_topic_alias_is_fine_in_v5() -> None:
    (publish,) = StreamDecoder(version=5).feed(frame(0x30, s(b"") + b"\x03\x23\x00\x07" + b"data"))
    assert publish == Publish("", b"data", properties=Properties(topic_alias=7))


def test_connect_switches_the_decoder_version_for_coalesced_packets() -> None:
    connect = encode(Connect("c", 5), 5)
    publish = encode(Publish("t", b"p", properties=Properties(content_type="text/plain")), 5)
    decoder = StreamDecoder()
    assert decoder.feed(connect + publish) == [Connect("c", 5), Publish("t", b"p", properties=Properties(
        content_type="text/plain"))]
    assert decoder.version == 5


@pytest.mark.parametrize(
    ("packet", "version"),
    [
        (Publish("t", qos=1), 4),  # QoS 1 needs a packet id
        (Publish("t", qos=3, packet_id=1), 4),
        (Publish("t", dup=True), 4),
        (Publish("t", b"x", properties=Properties(session_expiry_interval=1)), 5),
        (Publish("a\x00b"), 4),
        (Publish("\ud800"), 4),
        (Puback(0), 4),
        (Puback(1, 0x92), 5),
        (Subscribe(1, []), 4),
        (Subscribe(1, [Subscription("a", retain_handling=3)]), 5),
        (Suback(1, []), 4),
        (Unsubscribe(1, []), 4),
        (Unsuback(1, []), 5),
        (Connect("c", 3), 4),  # level 3 needs the "MQIsdp" name
        (Connect("c", 4, password=b"p"), 4),
        (Connect("c", 4, keepalive=70000), 4),
        (Connect("c", 5, will=Will("t", b"", properties=Properties(topic_alias=1))), 5),
        (Connack(reason_code=0x04), 5),
        (Connack(reason_code=9), 4),
        (Disconnect(0x05), 5),
        (Auth(), 4),
        ("not a packet", 4),
    ],
)
def test_encoding_rejects_what_the_wire_cannot_carry(packet: object, version: int) -> None:
    with pytest.raises(MqttEncodeError):
        encode(packet, version)  # type: ignore[arg-type]


def test_encode_properties_rejects_properties_of_other_packets() -> None:
    with pytest.raises(MqttEncodeError):
        encode_properties(Properties(will_delay_interval=3), PacketType.PUBLISH)
    assert encode_properties(Properties(will_delay_interval=3), WILL_PROPERTIES) == b"\x05\x18\x00\x00\x00\x03"
    with pytest.raises(MqttEncodeError):
        encode_properties(Properties(maximum_qos=2), PacketType.CONNACK)
    with pytest.raises(MqttEncodeError):
        encode_properties(Properties(subscription_identifiers=[1, 2]), PacketType.SUBSCRIBE)
