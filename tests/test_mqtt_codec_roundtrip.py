"""Round trips of every MQTT packet type in 3.1.1 and 5.0, and golden byte vectors from the specifications."""

from __future__ import annotations

import pytest

from gateway.mqtt.codec import StreamDecoder, encode, encode_properties, encode_publish
from gateway.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    Pingreq,
    Pingresp,
    Properties,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from gateway.mqtt.properties import decode_varint, encode_varint

V311_PACKETS: list[Packet] = [
    Connect("dev-1", 4, False, 30, "user", b"secret", Will("dev/1/status", b"offline", 1, True)),
    Connect("legacy", 3, protocol_name="MQIsdp"),
    Connect("", keepalive=0),
    Connack(True, 0),
    Connack(False, 5),
    Publish("a/b", b"\x00\x01payload", 0, True),
    Publish("a/b", b"", 2, False, True, 65535),
    Puback(1), Pubrec(2), Pubrel(3), Pubcomp(4),
    Subscribe(10, [Subscription("a/+/c", 1), Subscription("#", 2), Subscription("x", 0)]),
    Suback(10, [1, 2, 0x80]),
    Unsubscribe(11, ["a/+/c", "#"]),
    Unsuback(11),
    Pingreq(), Pingresp(), Disconnect(),
]

FULL_PUBLISH_PROPS = Properties(payload_format_indicator=1, message_expiry_interval=3600, content_type="text/plain",
                                response_topic="reply/to", correlation_data=b"\x01\x02",
                                subscription_identifiers=[1, 268435455], topic_alias=3,
                                user_properties=[("k", "v"), ("k", "v2")])
V5_PACKETS: list[Packet] = [
    Connect("dev-5", 5, True, 60, None, b"pw", Will("w", b"gone", 2, False, Properties(
        will_delay_interval=30, payload_format_indicator=0, message_expiry_interval=5, content_type="c",
        response_topic="r", correlation_data=b"x", user_properties=[("a", "b")])),
        Properties(session_expiry_interval=0xFFFFFFFF, receive_maximum=20, maximum_packet_size=131072,
                   topic_alias_maximum=10, request_response_information=1, request_problem_information=0,
                   authentication_method="SCRAM", authentication_data=b"\x00", user_properties=[("é", "ü")])),
    Connack(False, 0, Properties(session_expiry_interval=10, receive_maximum=100, maximum_qos=1,
                                 retain_available=1, maximum_packet_size=131072, assigned_client_identifier="auto",
                                 topic_alias_maximum=8, reason_string="ok", wildcard_subscription_available=1,
                                 subscription_identifier_available=0, shared_subscription_available=1,
                                 server_keep_alive=30, response_information="resp", server_reference="other",
                                 authentication_method="m", authentication_data=b"d")),
    Connack(False, 0x87),
    Publish("t", b"x" * 300, 1, False, False, 9, FULL_PUBLISH_PROPS),
    Publish("", b"aliased", 0, properties=Properties(topic_alias=3)),
    Puback(1), Puback(1, 0x10), Puback(1, 0x87, Properties(reason_string="denied", user_properties=[("a", "b")])),
    Pubrec(2, 0x80), Pubrel(3, 0x92), Pubcomp(4, 0, Properties(reason_string="fine")),
    Subscribe(5, [Subscription("a/#", 1, True, True, 2), Subscription("$share/g/x", 0, False, False, 1)],
              Properties(subscription_identifiers=[77], user_properties=[("u", "p")])),
    Suback(5, [1, 0x87, 0xA2], Properties(reason_string="partly")),
    Unsubscribe(6, ["a/#"], Properties(user_properties=[("u", "p")])),
    Unsuback(6, [0, 0x11]),
    Pingreq(), Pingresp(),
    Disconnect(), Disconnect(0x04), Disconnect(0x8E, Properties(session_expiry_interval=0, reason_string="bye",
                                                                server_reference="s2")),
    Auth(), Auth(0x18, Properties(authentication_method="SCRAM", authentication_data=b"nonce")),
]


@pytest.mark.parametrize("packet", V311_PACKETS, ids=lambda p: type(p).__name__)
def test_v311_round_trip(packet: Packet) -> None:
    raw = encode(packet, 4)
    assert StreamDecoder(version=4).feed(raw) == [packet]
    assert encode(packet, 3) == raw  # level 3 uses the 3.1.1 encodings


@pytest.mark.parametrize("packet", V5_PACKETS, ids=lambda p: type(p).__name__)
def test_v5_round_trip(packet: Packet) -> None:
    raw = encode(packet, 5)
    assert StreamDecoder(version=5).feed(raw) == [packet]


def test_whole_stream_round_trip_in_one_feed() -> None:
    stream = b"".join(encode(p, 5) for p in V5_PACKETS[1:])
    assert StreamDecoder(version=5).feed(stream) == V5_PACKETS[1:]


def test_v311_encoding_drops_v5_only_fields() -> None:
    assert encode(Puback(7, 0x10, Properties(reason_string="x")), 4) == b"\x40\x02\x00\x07"
    assert encode(Disconnect(0x8E, Properties(reason_string="x")), 4) == b"\xe0\x00"
    assert encode(Publish("t", b"p", properties=Properties(content_type="c")), 4) == b"\x30\x04\x00\x01tp"
    assert encode(Suback(1, [0, 0x87, 0x97]), 4) == b"\x90\x05\x00\x01\x00\x80\x80"
    assert encode(Unsuback(1, [0x11]), 4) == b"\xb0\x02\x00\x01"


@pytest.mark.parametrize(("v5_code", "v3_code"), [(0, 0), (0x84, 1), (0x85, 2), (0x88, 3), (0x86, 4), (0x87, 5),
                                                  (0x89, 3), (0x8A, 5)])
def test_v5_connack_refusals_map_to_v3_return_codes(v5_code: int, v3_code: int) -> None:
    assert encode(Connack(False, v5_code), 4) == bytes((0x20, 2, 0, v3_code))


def test_v5_short_forms_of_acks() -> None:
    assert encode(Puback(7), 5) == b"\x40\x02\x00\x07"
    assert encode(Puback(7, 0x10), 5) == b"\x40\x03\x00\x07\x10"
    assert encode(Disconnect(), 5) == b"\xe0\x00"
    assert encode(Disconnect(0x04), 5) == b"\xe0\x01\x04"
    assert StreamDecoder(version=5).feed(b"\x40\x04\x00\x07\x10\x00") == [Puback(7, 0x10)]


# ------------------------------------------------------------------------------------------ golden vectors


def test_v311_spec_connect_variable_header_example() -> None:
    # MQTT 3.1.1, 3.1.2.10: protocol name, level 4, flags 0xCE (user, password, will QoS 1, will, clean), keep 10
    body = (b"\x00\x04MQTT\x04\xce\x00\x0a" + b"\x00\x03abc" + b"\x00\x01w" + b"\x00\x02hi"
            + b"\x00\x04user" + b"\x00\x02pw")
    raw = bytes((0x10, len(body))) + body
    expected = Connect("abc", 4, True, 10, "user", b"pw", Will("w", b"hi", 1, False))
    assert StreamDecoder().feed(raw) == [expected]
    assert encode(expected, 4) == raw


def test_v5_spec_connect_variable_header_example() -> None:
    # MQTT 5.0, 3.1.2.12: ... flags 0xCE, keep alive 10, properties length 5, session expiry interval 10
    body = (b"\x00\x04MQTT\x05\xce\x00\x0a\x05\x11\x00\x00\x00\x0a" + b"\x00\x03abc" + b"\x00" + b"\x00\x01w"
            + b"\x00\x02hi" + b"\x00\x04user" + b"\x00\x02pw")
    raw = bytes((0x10, len(body))) + body
    expected = Connect("abc", 5, True, 10, "user", b"pw", Will("w", b"hi", 1, False),
                       Properties(session_expiry_interval=10))
    assert StreamDecoder().feed(raw) == [expected]
    assert encode(expected, 5) == raw


@pytest.mark.parametrize(("value", "wire"), [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
                                             (16384, b"\x80\x80\x01"), (2097151, b"\xff\xff\x7f"),
                                             (2097152, b"\x80\x80\x80\x01"), (268435455, b"\xff\xff\xff\x7f")])
def test_variable_byte_integer_boundaries_from_the_spec(value: int, wire: bytes) -> None:
    assert encode_varint(value) == wire
    assert decode_varint(wire, 0, len(wire)) == (value, len(wire))


def test_spec_remaining_length_example_321() -> None:
    raw = encode_publish("t", b"x" * 318, 0, False, False, None, 4)  # remaining length 2 + 1 + 318 = 321
    assert raw[1:3] == b"\xc1\x02"  # 321 = 0xC1 0x02
    assert StreamDecoder().feed(raw) == [Publish("t", b"x" * 318)]


def test_encode_publish_fast_path_matches_the_general_encoder() -> None:
    props = Properties(subscription_identifiers=[5], message_expiry_interval=9)
    general = encode(Publish("a/b", b"data", 1, True, True, 42, props), 5)
    fast = encode_publish(b"a/b", b"data", 1, True, True, 42, 5, encode_properties(props, PacketType.PUBLISH))
    assert fast == general
    assert encode_publish("a/b", b"data", 0, False, False, None, 5) == b"\x30\x0a\x00\x03a/b\x00data"
    assert encode_publish("a/b", b"data", 0, False, False, None, 4) == b"\x30\x09\x00\x03a/bdata"
