"""Opaque, tamper-proof tokens: shard iterators and pagination NextTokens (HMAC-signed, base64)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from typing import Any

_ITERATOR = struct.Struct("<BqIQq")  # version, stream created ms, shard index, next counter, issued ms
_ITERATOR_VERSION = 1
_MAC_BYTES = 16


@dataclass(frozen=True)
class IteratorPosition:
    """Where a shard iterator points: the next counter to read in one shard of one stream incarnation."""

    stream_name: str
    stream_created_ms: int
    shard_ix: int
    counter: int
    issued_ms: int


class TokenError(ValueError):
    """The token was not issued by this gateway or is damaged."""


class TokenSigner:
    """Signs and verifies tokens with a per-data-directory secret key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def _seal(self, payload: bytes) -> str:
        return base64.b64encode(payload + self._mac(payload)).decode("ascii")

    def _open(self, token: str) -> bytes:
        try:
            raw = base64.b64decode(token.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise TokenError("not base64") from None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, self._mac(payload)):
            raise TokenError("bad signature")
        return payload

    def iterator(self, position: IteratorPosition) -> str:
        head = _ITERATOR.pack(_ITERATOR_VERSION, position.stream_created_ms, position.shard_ix, position.counter,
                              position.issued_ms)
        return self._seal(head + position.stream_name.encode("utf-8"))

    def parse_iterator(self, token: str) -> IteratorPosition:
        payload = self._open(token)
        if len(payload) <= _ITERATOR.size or payload[0] != _ITERATOR_VERSION:
            raise TokenError("not an iterator")
        _, created, shard_ix, counter, issued = _ITERATOR.unpack_from(payload)
        return IteratorPosition(payload[_ITERATOR.size:].decode("utf-8"), created, shard_ix, counter, issued)

    def page(self, kind: str, state: dict[str, Any]) -> str:
        """A NextToken for a paginated listing (`kind` keeps tokens of different listings apart)."""
        return self._seal(json.dumps({"k": kind, **state}, separators=(",", ":")).encode())

    def parse_page(self, kind: str, token: str) -> dict[str, Any]:
        try:
            state = json.loads(self._open(token))
        except ValueError as exc:
            raise TokenError(str(exc)) from None
        if not isinstance(state, dict) or state.get("k") != kind:
            raise TokenError("token of another listing")
        return state
