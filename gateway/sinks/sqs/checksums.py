"""The MD5 digests SQS returns: of the body, of the message attributes and of the system attributes.

The attribute digest is the one the AWS SDKs (Java, .NET) verify: attributes sorted by name, each encoded as
length-prefixed name, length-prefixed data type, one transport byte (1 string/number, 2 binary) and the
length-prefixed value, all lengths 4-byte big-endian.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Mapping
from typing import Any

STRING_TRANSPORT = 1
BINARY_TRANSPORT = 2


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_of_body(body: str) -> str:
    return md5_hex(body.encode("utf-8"))


def _prefixed(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def md5_of_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """Digest of message (or system) attributes in wire form: values as str, binary values base64 str."""
    out = bytearray()
    for name in sorted(attributes):
        value = attributes[name]
        data_type = value["DataType"]
        out += _prefixed(name.encode("utf-8")) + _prefixed(data_type.encode("utf-8"))
        if data_type.startswith("Binary"):
            out += bytes([BINARY_TRANSPORT]) + _prefixed(base64.b64decode(value["BinaryValue"]))
        else:
            out += bytes([STRING_TRANSPORT]) + _prefixed(value["StringValue"].encode("utf-8"))
    return md5_hex(bytes(out))
