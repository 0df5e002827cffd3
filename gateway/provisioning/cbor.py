"""A small CBOR (RFC 8949) codec for the fleet-provisioning `cbor` topics: maps, arrays, text and byte
strings, integers, floats, booleans and null (definite and indefinite lengths; tags are skipped)."""

from __future__ import annotations

import struct
from typing import Any


class CborError(ValueError):
    """The bytes are not well-formed CBOR (or use a feature this codec does not read)."""


def _head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for extra, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if value < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | extra]) + struct.pack(fmt, value)
    raise CborError(f"integer {value} does not fit in 64 bits")


def encode(value: Any) -> bytes:
    """CBOR bytes of a JSON-like value (plus bytes)."""
    if value is None:
        return b"\xf6"
    if value is True or value is False:
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, str):
        data = value.encode()
        return _head(3, len(data)) + data
    if isinstance(value, list | tuple):
        return _head(4, len(value)) + b"".join(encode(v) for v in value)
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(encode(k) + encode(v) for k, v in value.items())
    raise CborError(f"cannot encode {type(value).__name__}")


_BREAK = object()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise CborError("truncated CBOR data")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def argument(self, info: int) -> int | None:
        if info < 24:
            return info
        if info == 31:
            return None
        sizes = {24: 1, 25: 2, 26: 4, 27: 8}
        if info not in sizes:
            raise CborError(f"reserved additional information {info}")
        return int.from_bytes(self.take(sizes[info]), "big")

    def item(self, depth: int = 0) -> Any:
        if depth > 64:
            raise CborError("CBOR nested too deeply")
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 31
        if major == 7:
            return self._simple(info)
        arg = self.argument(info)
        if major == 0 or major == 1:
            if arg is None:
                raise CborError("integers have no indefinite length")
            return arg if major == 0 else -1 - arg
        if major in (2, 3):
            raw = self.take(arg) if arg is not None else b"".join(self._chunks(major))
            if major == 2:
                return raw
            try:
                return raw.decode()
            except UnicodeDecodeError as exc:
                raise CborError("text string is not UTF-8") from exc
        if major == 4:
            return list(self._items(arg, depth))
        if major == 5:
            flat = list(self._items(None if arg is None else 2 * arg, depth))
            if len(flat) % 2:
                raise CborError("map with a key but no value")
            keys = flat[0::2]
            if any(isinstance(k, dict | list) for k in keys):
                raise CborError("map keys must be scalars")
            return dict(zip(keys, flat[1::2], strict=True))
        return self.item(depth + 1)  # major 6: a tag; its content is what counts

    def _chunks(self, major: int) -> list[bytes]:
        chunks: list[bytes] = []
        while True:
            chunk = self.item()
            if chunk is _BREAK:
                return chunks
            if not isinstance(chunk, bytes | str) or (major == 2) != isinstance(chunk, bytes):
                raise CborError("indefinite string with a chunk of another type")
            chunks.append(chunk if isinstance(chunk, bytes) else chunk.encode())

    def _items(self, count: int | None, depth: int) -> Any:
        if count is not None:
            for _ in range(count):
                value = self.item(depth + 1)
                if value is _BREAK:
                    raise CborError("break inside a definite-length container")
                yield value
            return
        while True:
            value = self.item(depth + 1)
            if value is _BREAK:
                return
            yield value

    def _simple(self, info: int) -> Any:
        if info in (20, 21):
            return info == 21
        if info in (22, 23):
            return None
        if info == 25:
            return _half(int.from_bytes(self.take(2), "big"))
        if info == 26:
            return struct.unpack(">f", self.take(4))[0]
        if info == 27:
            return struct.unpack(">d", self.take(8))[0]
        if info == 31:
            return _BREAK
        raise CborError(f"unsupported simple value {info}")


def _half(bits: int) -> float:
    sign = -1.0 if bits & 0x8000 else 1.0
    exponent, fraction = (bits >> 10) & 0x1F, bits & 0x3FF
    if exponent == 0:
        return sign * fraction * 2.0 ** -24
    if exponent == 31:
        return sign * float("inf") if fraction == 0 else float("nan")
    return sign * (1 + fraction / 1024) * 2.0 ** (exponent - 15)


def decode(data: bytes) -> Any:
    """The value of one complete CBOR data item (CborError when malformed or followed by more bytes)."""
    reader = _Reader(data)
    value = reader.item()
    if value is _BREAK:
        raise CborError("unexpected break")
    if reader.pos != len(data):
        raise CborError("trailing bytes after the CBOR data item")
    return value
