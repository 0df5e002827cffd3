"""Resharding plans: which shards close and which open for SplitShard, MergeShards and UpdateShardCount."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.sinks.kinesis import errors, keys
from gateway.sinks.kinesis.model import Shard, Stream


@dataclass(frozen=True)
class NewShard:
    start_hash: int
    end_hash: int
    parent: str | None
    adjacent_parent: str | None = None


@dataclass(frozen=True)
class Plan:
    close: list[Shard]
    create: list[NewShard]


def _open_shard(stream: Stream, shard_id: str, account: str) -> Shard:
    index = keys.shard_index(shard_id)
    shard = stream.by_index.get(index) if index is not None else None
    if shard is None:
        raise errors.shard_not_found(shard_id, stream.name, account)
    if not shard.is_open:
        raise errors.KinesisError("ResourceInUseException",
                                  f"Shard {shard_id} in stream {stream.name} under account {account} has already "
                                  "been merged or split, and thus is not eligible for merging or splitting.")
    return shard


def split(stream: Stream, shard_id: str, new_starting_hash_key: str, account: str) -> Plan:
    shard = _open_shard(stream, shard_id, account)
    new_start = keys.parse_hash_key(new_starting_hash_key)
    if new_start is None:
        raise errors.validation(new_starting_hash_key, "newStartingHashKey",
                                "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})")
    if not shard.start_hash + 1 < new_start < shard.end_hash:
        raise errors.invalid_argument(
            f"NewStartingHashKey {new_starting_hash_key} used in SplitShard() on shard {shard_id} in stream "
            f"{stream.name} under account {account} is not both greater than one plus the shard's "
            f"StartingHashKey {shard.start_hash} and less than the shard's EndingHashKey {shard.end_hash}.")
    return Plan([shard], [NewShard(shard.start_hash, new_start - 1, shard.shard_id),
                          NewShard(new_start, shard.end_hash, shard.shard_id)])


def merge(stream: Stream, shard_id: str, adjacent_id: str, account: str) -> Plan:
    first = _open_shard(stream, shard_id, account)
    second = _open_shard(stream, adjacent_id, account)
    low, high = sorted((first, second), key=lambda s: s.start_hash)
    if low.end_hash + 1 != high.start_hash:
        raise errors.invalid_argument(
            f"Shards {shard_id} and {adjacent_id} in stream {stream.name} under account {account} are not an "
            "adjacent pair of shards eligible for merging")
    return Plan([first, second], [NewShard(low.start_hash, high.end_hash, first.shard_id, second.shard_id)])


def uniform(stream: Stream, target: int, account: str) -> Plan:
    """Close every open shard and cover the key space with `target` equal shards; each new shard's parents
    are the old shards its range overlaps first (and second)."""
    current = len(stream.open_shards)
    if target > 2 * current:
        raise errors.invalid_argument(
            f"UpdateShardCount failed for stream {stream.name} under account {account}: TargetShardCount "
            f"{target} is more than double the current open shard count {current}.")
    if target * 2 < current:
        raise errors.invalid_argument(
            f"UpdateShardCount failed for stream {stream.name} under account {account}: TargetShardCount "
            f"{target} is less than half the current open shard count {current}.")
    create: list[NewShard] = []
    for start, end in keys.uniform_ranges(target):
        parents = [s for s in stream.open_shards if s.start_hash <= end and s.end_hash >= start]
        create.append(NewShard(start, end, parents[0].shard_id,
                               parents[1].shard_id if len(parents) > 1 else None))
    return Plan(list(stream.open_shards), create)
