"""Streams, shards and consumers: the state kept in memory and in each stream's `stream.json`."""

from __future__ import annotations

import asyncio
import bisect
from dataclasses import dataclass, field
from typing import Any

from gateway.sinks.kinesis import keys
from gateway.sinks.kinesis.storage import ShardLog
from gateway.sinks.kinesis.throttle import TokenBucket

ITERATOR_TYPES = ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
DEFAULT_RETENTION_HOURS = 24
MAX_RETENTION_HOURS = 8760
ON_DEMAND_SHARDS = 4


@dataclass
class Limits:
    """The four per-shard buckets (present only when limits are enforced)."""

    write_bytes: TokenBucket
    write_records: TokenBucket
    read_bytes: TokenBucket
    read_calls: TokenBucket


@dataclass(eq=False)
class Shard:
    index: int
    start_hash: int
    end_hash: int
    created_ms: int
    parent: str | None = None
    adjacent_parent: str | None = None
    closed_ms: int | None = None
    ending_sequence: str | None = None
    # runtime
    log: ShardLog | None = None
    committed: int = 0  # highest counter durable and visible to readers
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    limits: Limits | None = None

    @property
    def shard_id(self) -> str:
        return keys.shard_id(self.index)

    @property
    def is_open(self) -> bool:
        return self.closed_ms is None

    @property
    def starting_sequence(self) -> str:
        return keys.encode_sequence(self.index, 0, self.created_ms, self.created_ms // 1000)

    def sequence_of(self, counter: int, arrival_ms: int) -> str:
        return keys.encode_sequence(self.index, counter, arrival_ms, self.created_ms // 1000)

    def publish(self, counter: int) -> None:
        """Make records up to `counter` visible and wake the readers waiting for them."""
        if counter > self.committed:
            self.committed = counter
            self.wake()

    def wake(self) -> None:
        """Wake whoever waits on this shard (new records, closing, shutdown)."""
        self.changed.set()
        self.changed = asyncio.Event()

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ShardId": self.shard_id}
        if self.parent:
            out["ParentShardId"] = self.parent
        if self.adjacent_parent:
            out["AdjacentParentShardId"] = self.adjacent_parent
        out["HashKeyRange"] = {"StartingHashKey": str(self.start_hash), "EndingHashKey": str(self.end_hash)}
        seq: dict[str, str] = {"StartingSequenceNumber": self.starting_sequence}
        if self.ending_sequence is not None:
            seq["EndingSequenceNumber"] = self.ending_sequence
        out["SequenceNumberRange"] = seq
        return out

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "start": str(self.start_hash), "end": str(self.end_hash),
                "created_ms": self.created_ms, "parent": self.parent, "adjacent_parent": self.adjacent_parent,
                "closed_ms": self.closed_ms, "ending_sequence": self.ending_sequence}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Shard:
        return cls(d["index"], int(d["start"]), int(d["end"]), d["created_ms"], d.get("parent"),
                   d.get("adjacent_parent"), d.get("closed_ms"), d.get("ending_sequence"))


@dataclass
class Consumer:
    name: str
    arn: str
    created_secs: int

    def describe(self) -> dict[str, Any]:
        return {"ConsumerName": self.name, "ConsumerARN": self.arn, "ConsumerStatus": "ACTIVE",
                "ConsumerCreationTimestamp": float(self.created_secs)}


@dataclass(eq=False)
class Stream:
    name: str
    arn: str
    created_ms: int
    mode: str = "PROVISIONED"
    retention_hours: int = DEFAULT_RETENTION_HOURS
    max_record_kib: int = 1024
    shards: list[Shard] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    consumers: dict[str, Consumer] = field(default_factory=dict)
    shard_metrics: list[str] = field(default_factory=list)
    # runtime
    open_starts: list[int] = field(default_factory=list)
    open_shards: list[Shard] = field(default_factory=list)
    by_index: dict[int, Shard] = field(default_factory=dict)
    meta_write: asyncio.Future[None] | None = None
    deleted: bool = False

    def reindex(self) -> None:
        """Rebuild the routing table after the set of open shards changed."""
        self.shards.sort(key=lambda s: s.index)
        self.by_index = {s.index: s for s in self.shards}
        self.open_shards = sorted((s for s in self.shards if s.is_open), key=lambda s: s.start_hash)
        self.open_starts = [s.start_hash for s in self.open_shards]

    def route(self, hash_key: int) -> Shard:
        """The open shard whose hash-key range holds `hash_key`."""
        return self.open_shards[bisect.bisect_right(self.open_starts, hash_key) - 1]

    @property
    def next_shard_index(self) -> int:
        return max((s.index for s in self.shards), default=-1) + 1

    @property
    def max_record_bytes(self) -> int:
        return self.max_record_kib * 1024

    def mode_details(self) -> dict[str, str]:
        return {"StreamMode": self.mode}

    def summary(self) -> dict[str, Any]:
        return {"StreamName": self.name, "StreamARN": self.arn, "StreamStatus": "ACTIVE",
                "StreamModeDetails": self.mode_details(), "StreamCreationTimestamp": self.created_ms / 1000}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "arn": self.arn, "created_ms": self.created_ms, "mode": self.mode,
                "retention_hours": self.retention_hours, "max_record_kib": self.max_record_kib,
                "shards": [s.to_json() for s in self.shards], "tags": self.tags,
                "consumers": [{"name": c.name, "arn": c.arn, "created_secs": c.created_secs}
                              for c in self.consumers.values()],
                "shard_metrics": self.shard_metrics}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Stream:
        stream = cls(d["name"], d["arn"], d["created_ms"], d["mode"], d["retention_hours"], d["max_record_kib"],
                     [Shard.from_json(s) for s in d["shards"]], dict(d["tags"]),
                     {c["name"]: Consumer(c["name"], c["arn"], c["created_secs"]) for c in d["consumers"]},
                     list(d.get("shard_metrics", [])))
        stream.reindex()
        return stream
