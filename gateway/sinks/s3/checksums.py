"""Object digests: MD5 (the ETag) and the flexible checksums SDKs send (CRC32, CRC32C, CRC64NVME, SHA1, SHA256).

Values travel base64-encoded in ``x-amz-checksum-<alg>`` headers. CRC32C and CRC64NVME use awscrt's native code
when it is importable (it ships with the AWS SDKs); otherwise a table-driven fallback computes the same values.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Callable

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
_WIDTH = {"crc32": 4, "crc32c": 4, "crc64nvme": 8}


def _reflected_table(poly: int, bits: int) -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc & ((1 << bits) - 1))
    return table


_CRC32C_TABLE = _reflected_table(0x82F63B78, 32)
_CRC64NVME_TABLE = _reflected_table(0x9A6C9329AC4BC9B5, 64)


def _table_crc(table: list[int], mask: int) -> Callable[[bytes, int], int]:
    def crc(data: bytes, previous: int = 0) -> int:
        value = previous ^ mask
        for byte in data:
            value = table[(value ^ byte) & 0xFF] ^ (value >> 8)
        return value ^ mask
    return crc


try:  # native implementations when available
    from awscrt.checksums import crc32c as _crc32c
    from awscrt.checksums import crc64nvme as _crc64nvme
except ImportError:  # pragma: no cover - depends on the environment
    _crc32c = _table_crc(_CRC32C_TABLE, 0xFFFFFFFF)
    _crc64nvme = _table_crc(_CRC64NVME_TABLE, 0xFFFFFFFFFFFFFFFF)

_CRCS: dict[str, Callable[[bytes, int], int]] = {"crc32": zlib.crc32, "crc32c": _crc32c, "crc64nvme": _crc64nvme}


class Digests:
    """Incremental MD5 plus any requested checksum algorithms over one body."""

    def __init__(self, algorithms: tuple[str, ...] | list[str] = ()) -> None:
        self.md5 = hashlib.md5()
        self.size = 0
        self._crcs = {a: 0 for a in algorithms if a in _CRCS}
        self._hashes = {a: hashlib.new(a) for a in algorithms if a in ("sha1", "sha256")}

    def update(self, data: bytes) -> None:
        self.size += len(data)
        self.md5.update(data)
        for alg, value in self._crcs.items():
            self._crcs[alg] = _CRCS[alg](data, value)
        for h in self._hashes.values():
            h.update(data)

    def etag(self) -> str:
        return self.md5.hexdigest()

    def checksums(self) -> dict[str, str]:
        """``{algorithm: base64 value}`` for every algorithm computed."""
        out = {alg: base64.b64encode(value.to_bytes(_WIDTH[alg], "big")).decode() for alg, value in self._crcs.items()}
        out.update({alg: base64.b64encode(h.digest()).decode() for alg, h in self._hashes.items()})
        return out


def checksum_of(algorithm: str, data: bytes) -> str:
    """The base64 checksum of `data` (a convenience for tests and small bodies)."""
    d = Digests((algorithm,))
    d.update(data)
    return d.checksums()[algorithm]


def is_valid_encoding(algorithm: str, value: str) -> bool:
    """Whether `value` is a well-formed base64 checksum for `algorithm`."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = _WIDTH.get(algorithm) or hashlib.new(algorithm).digest_size
    return len(raw) == expected


def decode_content_md5(value: str) -> str | None:
    """The hex MD5 of a Content-MD5 header, or None when it is not a base64 16-byte digest."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


def multipart_etag(part_md5s_hex: list[str]) -> str:
    """S3's multipart ETag: MD5 of the concatenated binary part MD5s, then ``-<part count>``."""
    joined = b"".join(bytes.fromhex(h) for h in part_md5s_hex)
    return f"{hashlib.md5(joined).hexdigest()}-{len(part_md5s_hex)}"
