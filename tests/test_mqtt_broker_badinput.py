"""Bad input closes only the offending connection, with the right reason, and is counted;
persistence across a restart; a hypothesis fuzz run against a live broker."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.mqtt_helpers import TIMEOUT, Client, running_broker
from tests.mqtt_strategies import fuzz_sessions, mutated_streams

CONNECT_V311 = bytes([0x10, 14]) + b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x02ab"
CONNECT_V5 = bytes([0x10, 15]) + b"\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x02ab"


def raw(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), TIMEOUT)
    s.settimeout(TIMEOUT)
    return s


def read_until_closed(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    return data


@pytest.fixture
def bt(home: Path):
    with running_broker(home, connect_timeout_secs=0.5) as b:
        yield b


@pytest.mark.parametrize(
    ("name", "connect", "stream", "reason"),
    [
        ("publish before connect", b"", bytes([0x30, 5]) + b"\x00\x01ahi", None),
        ("garbage", b"", b"\xff\xff\xff\xff\xff", None),
        ("second connect v5", CONNECT_V5, CONNECT_V5, 0x82),
        ("reserved publish qos 3 v5", CONNECT_V5, bytes([0x36, 6]) + b"\x00\x01a\x00\x01\x00", 0x81),
        ("wildcard in topic v5", CONNECT_V5, bytes([0x30, 6]) + b"\x00\x02a#\x00x", 0x90),
        ("subscribe bad flags", CONNECT_V311, bytes([0x80, 6]) + b"\x00\x01\x00\x01a\x00", None),
        ("oversized remaining length", CONNECT_V311, b"\x30\xff\xff\xff\x7f", None),
        ("invalid utf-8 topic v5", CONNECT_V5, bytes([0x30, 6]) + b"\x00\x02\xc3\x28\x00x", 0x81),
        ("nul in topic", CONNECT_V311, bytes([0x30, 5]) + b"\x00\x02a\x00x", None),
        ("truncated then junk", CONNECT_V311, b"\x82\x05\x00", None),
    ],
)
def test_bad_input_closes_only_that_connection(bt, name: str, connect: bytes, stream: bytes,
                                               reason: int | None) -> None:
    good = Client(bt.port, "good")
    good.subscribe("ok", 1)
    s = raw(bt.port)
    if connect:
        s.sendall(connect)
        ack = s.recv(2)
        assert ack[0] == 0x20
        s.recv(ack[1])
    s.sendall(stream)
    if name == "truncated then junk":
        s.shutdown(socket.SHUT_WR)
    tail = read_until_closed(s)
    if reason is None:  # v3.1.1 (or before CONNECT): closed without a word
        assert tail == b"", (name, tail)
    else:  # v5: DISCONNECT with the reason code (and a reason string)
        assert (tail[0], tail[2]) == (0xE0, reason), (name, tail)
    good.publish("ok", "still fine", 1)
    assert good.get().payload == b"still fine"


def test_unsupported_protocol_level_gets_connack_1(bt) -> None:
    s = raw(bt.port)
    s.sendall(bytes([0x10, 14]) + b"\x00\x04MQTT\x07\x02\x00\x3c\x00\x02ab")
    assert read_until_closed(s) == b"\x20\x02\x00\x01"


def test_slow_loris_is_cut_after_connect_timeout(bt) -> None:
    s = raw(bt.port)
    s.sendall(b"\x10")  # a first byte, then nothing
    assert read_until_closed(s) == b""
    assert bt.run(lambda: bt.broker.metrics["connect_timeouts"]) == 1


def test_packet_id_reuse_for_qos2_is_deduplicated(bt) -> None:
    sub = Client(bt.port, "sub")
    sub.subscribe("d", 2)
    s = raw(bt.port)
    s.sendall(CONNECT_V311)
    assert s.recv(4) == b"\x20\x02\x00\x00"
    publish = bytes([0x34, 8]) + b"\x00\x01d\x00\x07xyz"
    s.sendall(publish)
    assert s.recv(4) == b"\x50\x02\x00\x07"  # PUBREC
    s.sendall(bytes([0x3C, 8]) + b"\x00\x01d\x00\x07xyz")  # DUP resend with the same id
    assert s.recv(4) == b"\x50\x02\x00\x07"
    s.sendall(b"\x62\x02\x00\x07")  # PUBREL
    assert s.recv(4) == b"\x70\x02\x00\x07"  # PUBCOMP
    assert sub.get().payload == b"xyz"
    sub.assert_nothing()


def test_sessions_and_retained_survive_restart(home: Path) -> None:
    with running_broker(home, fsync="always") as bt:
        sub = Client(bt.port, "keeper", clean=False)
        sub.subscribe("persist/#", 2)
        sub.close()
        pub = Client(bt.port, "pub")
        pub.publish("persist/retained", "kept", 1, retain=True)
        pub.publish("persist/a", "q1", 1)
        pub.publish("persist/b", "q2", 2)
        pub.close()
    with running_broker(home, fsync="always") as bt:
        back = Client(bt.port, "keeper", clean=False, connect=False)
        flags, _, _ = back.connect()
        assert flags.session_present
        got = sorted((m.topic, m.payload) for m in (back.get(), back.get(), back.get()))
        assert got == [("persist/a", b"q1"), ("persist/b", b"q2"), ("persist/retained", b"kept")]
        back.publish("persist/live", "after restart", 1)  # the restored subscription still routes
        assert back.get().payload == b"after restart"
        fresh = Client(bt.port, "fresh")
        fresh.subscribe("persist/retained", 1)
        assert fresh.get().payload == b"kept"


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Random bytes, mutated valid streams and CONNECT-led client sessions (the codec's strategies)."""
    version = draw(st.sampled_from([4, 5]))
    kind = draw(st.sampled_from(["random", "mutated", "session"]))
    if kind == "mutated":
        return draw(mutated_streams(version))
    if kind == "session":
        return draw(fuzz_sessions(version))
    prefix = draw(st.sampled_from([b"", CONNECT_V311, CONNECT_V5]))
    return prefix + draw(st.binary(max_size=64))


def test_fuzzed_streams_never_disturb_a_good_client(bt) -> None:
    topic = "observer/long-enough-to-be-unique-0123456789"
    good = Client(bt.port, "observer-client-not-generated")
    good.subscribe(topic, 1)
    count = 0

    @given(streams())
    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    def feed(data: bytes) -> None:
        nonlocal count
        s = raw(bt.port)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(2.0)
            read_until_closed(s)
        except OSError:
            pass
        finally:
            s.close()
        count += 1
        good.publish(topic, str(count), 1)
        assert good.get().payload == str(count).encode()

    feed()
    assert good.connacks.empty() and good.disconnects.empty()  # never dropped, never reconnected
