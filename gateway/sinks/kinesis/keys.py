"""The 128-bit hash-key space, shard ids and AWS-shaped sequence numbers.

A sequence number is a 56-digit decimal string (like AWS's) encoding, from most to least significant:
a version nibble (2), the shard index (32 bits), the shard's record counter (64 bits), the arrival time
in ms (48 bits) and the shard's creation time in seconds (40 bits). The counter dominates the shard
bits below it, so numbers strictly increase per shard, and the shard index can be read back to reject
a sequence number used with the wrong shard.
"""

from __future__ import annotations

import hashlib
import re

HASH_KEY_MAX = 2**128 - 1
_HASH_KEY_RE = re.compile(r"0|[1-9]\d{0,38}")
_SEQUENCE_RE = re.compile(r"0|[1-9]\d{0,128}")
_SHARD_ID_RE = re.compile(r"shardId-(\d{12})")

_VERSION = 2
_MASK32 = (1 << 32) - 1
_MASK40 = (1 << 40) - 1
_MASK48 = (1 << 48) - 1
_MASK64 = (1 << 64) - 1


def partition_key_hash(partition_key: str) -> int:
    """AWS's mapping of a partition key onto the hash-key space: MD5 as a 128-bit integer."""
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")


def parse_hash_key(text: str) -> int | None:
    """A decimal hash key (ExplicitHashKey, NewStartingHashKey) or None when not in the 0..2^128-1 form."""
    if not isinstance(text, str) or not _HASH_KEY_RE.fullmatch(text):
        return None
    value = int(text)
    return value if value <= HASH_KEY_MAX else None


def uniform_ranges(count: int) -> list[tuple[int, int]]:
    """`count` contiguous hash-key ranges covering the whole space (the layout AWS gives new streams)."""
    step = (HASH_KEY_MAX + 1) // count
    return [(i * step, HASH_KEY_MAX if i == count - 1 else (i + 1) * step - 1) for i in range(count)]


def shard_id(index: int) -> str:
    return f"shardId-{index:012d}"


def shard_index(text: str) -> int | None:
    """The index in `shardId-000000000007`, or None for anything else."""
    match = _SHARD_ID_RE.fullmatch(text) if isinstance(text, str) else None
    return int(match.group(1)) if match else None


def encode_sequence(shard_ix: int, counter: int, arrival_ms: int, shard_created_secs: int) -> str:
    value = (
        (_VERSION << 184)
        | ((shard_ix & _MASK32) << 152)
        | ((counter & _MASK64) << 88)
        | ((arrival_ms & _MASK48) << 40)
        | (shard_created_secs & _MASK40)
    )
    return str(value)


def sequence_prefix(shard_ix: int, shard_created_secs: int) -> tuple[int, int]:
    """The constant high and low parts of a shard's sequence numbers, for fast batch encoding."""
    return (_VERSION << 184) | ((shard_ix & _MASK32) << 152), shard_created_secs & _MASK40


def decode_sequence(text: str) -> tuple[int, int] | None:
    """(shard index, counter) of one of our sequence numbers, or None when it is not one."""
    if not isinstance(text, str) or not _SEQUENCE_RE.fullmatch(text):
        return None
    value = int(text)
    if value >> 184 != _VERSION:
        return None
    return (value >> 152) & _MASK32, (value >> 88) & _MASK64
