"""AWS event-stream framing (``application/vnd.amazon.eventstream``), as SubscribeToShard speaks it.

A message is ``[total length u32][headers length u32][CRC-32 of those 8 bytes][headers][payload]
[CRC-32 of everything before]``, big-endian. Headers are ``[name length u8][name][type u8][value]``;
type 7 is a string with a u16 length. botocore's EventStream parser reads exactly this.
"""

from __future__ import annotations

import struct
import zlib

_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")
_STRING = 7
MAX_HEADERS_BYTES = 128 * 1024
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024


class EventStreamError(ValueError):
    """A message that is not valid event-stream framing."""


def encode_headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode("utf-8"), value.encode("utf-8")
        if len(raw_name) > 255 or len(raw_value) > 65535:
            raise EventStreamError(f"header {name!r} is too long for event-stream framing")
        out += bytes([len(raw_name)]) + raw_name + bytes([_STRING]) + struct.pack(">H", len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One framed message."""
    raw_headers = encode_headers(headers)
    total = _PRELUDE.size + _CRC.size + len(raw_headers) + len(payload) + _CRC.size
    prelude = _PRELUDE.pack(total, len(raw_headers))
    head = prelude + _CRC.pack(zlib.crc32(prelude)) + raw_headers + payload
    return head + _CRC.pack(zlib.crc32(head))


def event(event_type: str, payload: bytes, content_type: str = "application/json") -> bytes:
    return encode_message({":message-type": "event", ":event-type": event_type, ":content-type": content_type},
                          payload)


def exception(exception_type: str, payload: bytes) -> bytes:
    return encode_message({":message-type": "exception", ":exception-type": exception_type,
                           ":content-type": "application/json"}, payload)


def decode_message(data: bytes) -> tuple[dict[str, str], bytes, int]:
    """Decode the message at the start of `data`: (string headers, payload, bytes consumed)."""
    if len(data) < _PRELUDE.size + 2 * _CRC.size:
        raise EventStreamError("truncated prelude")
    total, headers_len = _PRELUDE.unpack_from(data)
    if _CRC.unpack_from(data, _PRELUDE.size)[0] != zlib.crc32(data[:_PRELUDE.size]):
        raise EventStreamError("prelude checksum mismatch")
    if headers_len > MAX_HEADERS_BYTES or total > MAX_PAYLOAD_BYTES + headers_len + 16 or total < 16 + headers_len:
        raise EventStreamError("message lengths out of range")
    if len(data) < total:
        raise EventStreamError("truncated message")
    if _CRC.unpack_from(data, total - _CRC.size)[0] != zlib.crc32(data[:total - _CRC.size]):
        raise EventStreamError("message checksum mismatch")
    headers: dict[str, str] = {}
    pos, end = 12, 12 + headers_len
    while pos < end:
        name_len = data[pos]
        name = data[pos + 1:pos + 1 + name_len].decode("utf-8")
        pos += 1 + name_len
        if pos >= end or data[pos] != _STRING:
            raise EventStreamError(f"header {name!r} is not a string header")
        (value_len,) = struct.unpack_from(">H", data, pos + 1)
        headers[name] = data[pos + 3:pos + 3 + value_len].decode("utf-8")
        pos += 3 + value_len
    if pos != end:
        raise EventStreamError("headers overrun their length")
    return headers, bytes(data[end:total - _CRC.size]), total
