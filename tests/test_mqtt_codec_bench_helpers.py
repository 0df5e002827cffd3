"""The load generator's packet counting (bench/mqttload.py) agrees with the codec."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.mqttload import count_fixed_size, publish_packet, scan_publishes
from gateway.mqtt.codec import StreamDecoder, encode
from gateway.mqtt.packets import Pingresp, Publish


@settings(max_examples=60, deadline=None)
@given(size=st.integers(8, 300), qos=st.integers(0, 1), topic=st.sampled_from(["t/0", "t/12", "a"]))
def test_publish_packet_has_the_requested_size(size: int, qos: int, topic: str) -> None:
    packet = publish_packet(topic, size, qos, 7 if qos else None)
    (decoded,) = StreamDecoder().feed(packet)
    assert isinstance(decoded, Publish) and decoded.topic == topic
    if decoded.payload:  # at a remaining-length boundary the exact size is unreachable: one byte less
        assert len(packet) in (size, size - 1)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40), qos=st.integers(0, 1), cut=st.integers(0, 63))
def test_fast_and_generic_counting_agree(n: int, qos: int, cut: int) -> None:
    packets = [publish_packet(f"t/{i % 8}", 64, qos, i + 1 if qos else None) for i in range(n)]
    stream = b"".join(packets) + (publish_packet("t/0", 64, qos, 99 if qos else None)[:cut] if cut else b"")
    acks: list[bytes] = []
    count, used = scan_publishes(stream, acks if qos else None)
    assert (count, used) == (n, 64 * n)
    fast = count_fixed_size(stream, 64, qos)
    if n:
        assert fast is not None
        assert fast[:2] == (n, 64 * n)
        assert fast[2] == b"".join(b"\x40\x02" + pid for pid in acks)
        assert fast[2] == b"".join(encode_puback(i + 1) for i in range(n)) if qos else fast[2] == b""


def encode_puback(packet_id: int) -> bytes:
    return b"\x40\x02" + packet_id.to_bytes(2, "big")


def test_fast_counting_declines_mixed_streams() -> None:
    stream = publish_packet("t/0", 64, 0, None) + encode(Pingresp(), 4) + publish_packet("t/0", 62, 0, None)
    assert count_fixed_size(stream, 64, 0) is None
    assert scan_publishes(stream, None) == (2, len(stream))


def test_scan_handles_multi_byte_remaining_length() -> None:
    big = publish_packet("t/0", 300, 1, 5)
    count, used = scan_publishes(big + big[:100], acks := [])
    assert (count, used, acks) == (1, 300, [b"\x00\x05"])
