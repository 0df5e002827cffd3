"""Property tests of the MQTT codec: round trips, arbitrary stream splits, and garbage never crashing it."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.mqtt.codec import StreamDecoder, encode
from gateway.mqtt.errors import MqttDecodeError
from gateway.mqtt.packets import Connect, Packet
from gateway.mqtt.properties import decode_varint
from tests.mqtt_strategies import fuzz_sessions, mutated_streams, packet_streams, packets

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(SETTINGS, max_examples=30)
MANY = settings(SETTINGS, max_examples=300)


def _decode_one(data: bytes, version: int) -> list[Packet]:
    return StreamDecoder(version=version).feed(data)


@pytest.mark.parametrize("version", [4, 5])
@SETTINGS
@given(data=st.data())
def test_encode_then_decode_is_identity(version: int, data: st.DataObject) -> None:
    packet = data.draw(packets(version))
    decoded = _decode_one(encode(packet, version), version)
    assert decoded == [packet]


@pytest.mark.parametrize("version", [4, 5])
@SETTINGS
@given(data=st.data())
def test_reencoding_a_decoded_packet_gives_the_same_bytes(version: int, data: st.DataObject) -> None:
    raw = encode(data.draw(packets(version)), version)
    (decoded,) = _decode_one(raw, version)
    assert encode(decoded, version) == raw


@pytest.mark.parametrize("version", [4, 5])
@SETTINGS
@given(data=st.data())
def test_any_split_of_a_stream_yields_the_same_packets(version: int, data: st.DataObject) -> None:
    stream, expected = data.draw(packet_streams(version, max_packets=8))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    decoder = StreamDecoder()  # starts at 4: the leading CONNECT switches it to the stream's version
    got: list[Packet] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        got += decoder.feed(stream[last:cut])
        last = cut
    assert got == expected
    assert decoder.buffered == 0
    assert decoder.version == (5 if version == 5 else 4)


@MANY
@given(stream=st.binary(max_size=300), split=st.integers(0, 300))
def test_random_bytes_give_packets_or_decode_error(stream: bytes, split: int) -> None:
    decoder = StreamDecoder(version=split % 2 + 4)
    try:
        decoder.feed(stream[:split])
        decoder.feed(stream[split:])
    except MqttDecodeError as exc:
        assert 0x80 <= exc.reason_code <= 0xA2


@pytest.mark.parametrize("version", [4, 5])
@SETTINGS
@given(data=st.data())
def test_mutated_streams_give_packets_or_decode_error(version: int, data: st.DataObject) -> None:
    stream = data.draw(mutated_streams(version))
    decoder = StreamDecoder(max_packet_size=data.draw(st.sampled_from([64, 1024, 268435455])))
    try:
        for packet in decoder.feed(stream):
            if not isinstance(packet, Connect):
                assert encode(packet, decoder.version)  # whatever was accepted is itself encodable
    except MqttDecodeError as exc:
        assert str(exc)


@FEW
@given(data=st.data())
def test_byte_at_a_time_equals_all_at_once(data: st.DataObject) -> None:
    stream, expected = data.draw(packet_streams(5, max_packets=4))
    decoder = StreamDecoder()
    got = [p for i in range(len(stream)) for p in decoder.feed(stream[i : i + 1])]
    assert got == expected


@pytest.mark.parametrize("version", [4, 5])
@FEW
@given(data=st.data())
def test_fuzz_sessions_open_with_a_valid_connect(version: int, data: st.DataObject) -> None:
    session = data.draw(fuzz_sessions(version))
    length, body = decode_varint(session, 1, len(session))
    decoder = StreamDecoder()
    (connect,) = decoder.feed(session[: body + length])
    assert isinstance(connect, Connect)
    assert decoder.version == (5 if version == 5 else 4)
    try:
        decoder.feed(session[body + length :])
    except MqttDecodeError as exc:
        assert exc.reason_code >= 0x80
