"""Event-stream framing: our encoder against botocore's own decoder, and round trips under hypothesis."""

from __future__ import annotations

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given
from hypothesis import strategies as st

from gateway.sinks.kinesis import eventstream

header_names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).filter(
    lambda s: len(s.encode()) < 256)
header_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@given(st.dictionaries(header_names, header_values, max_size=5), st.binary(max_size=2000))
def test_botocore_decodes_what_we_encode(headers: dict[str, str], payload: bytes) -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(eventstream.encode_message(headers, payload))
    (message,) = list(buffer)
    assert message.headers == headers and message.payload == payload


@given(st.dictionaries(header_names, header_values, max_size=5), st.binary(max_size=2000))
def test_round_trip(headers: dict[str, str], payload: bytes) -> None:
    raw = eventstream.encode_message(headers, payload)
    assert eventstream.decode_message(raw + b"trailing") == (headers, payload, len(raw))


@given(st.binary(min_size=1, max_size=200), st.integers(0, 10_000))
def test_any_single_bit_flip_is_detected(payload: bytes, position: int) -> None:
    raw = bytearray(eventstream.event("SubscribeToShardEvent", payload))
    raw[position % len(raw)] ^= 0x01
    with pytest.raises(eventstream.EventStreamError):
        eventstream.decode_message(bytes(raw))


def test_kinesis_event_headers() -> None:
    headers, payload, _ = eventstream.decode_message(eventstream.event("initial-response", b"{}"))
    assert headers == {":message-type": "event", ":event-type": "initial-response", ":content-type": "application/json"}
    assert payload == b"{}"
    headers, _, _ = eventstream.decode_message(eventstream.exception("ResourceNotFoundException", b"{}"))
    assert headers[":message-type"] == "exception" and headers[":exception-type"] == "ResourceNotFoundException"
