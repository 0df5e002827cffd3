"""Compact JSON encoding without `json.dumps`' per-call set-up.

``json.dumps(obj, separators=...)`` builds a new `JSONEncoder`, and `JSONEncoder.encode` a new C encoder, on
every call; on a path that encodes a few small documents per request that set-up costs more than the encoding.
`compact_encoder` makes the C encoder once and returns a function with the same output as
``json.dumps(obj, separators=(",", ":"), ensure_ascii=...)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any

c_make_encoder: Callable[..., Any] | None
try:
    from _json import make_encoder as c_make_encoder
except ImportError:  # pragma: no cover - CPython always has the C accelerator
    c_make_encoder = None


def compact_encoder(ensure_ascii: bool = True) -> Callable[[Any], str]:
    """A function encoding a JSON value as ``json.dumps(value, separators=(",", ":"), ensure_ascii=...)`` does."""
    fallback = json.JSONEncoder(separators=(",", ":"), ensure_ascii=ensure_ascii)
    if c_make_encoder is None:  # pragma: no cover
        return fallback.encode
    quote = encode_basestring_ascii if ensure_ascii else encode_basestring
    chunks = c_make_encoder(None, fallback.default, quote, None, ":", ",", False, False, True)

    def encode(value: Any) -> str:
        if isinstance(value, str):  # the C encoder only takes containers and numbers at the top
            return quote(value)
        return "".join(chunks(value, 0))

    return encode
