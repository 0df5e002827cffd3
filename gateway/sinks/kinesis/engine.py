"""The Kinesis Data Streams engine: streams, shards, durable puts, iterators and reads.

The in-process API (what the rules engine calls, no HTTP) is the public coroutines of `KinesisEngine`;
they take and return AWS-shaped dicts with Python values (``bytes`` data, epoch-second float timestamps)
and raise `KinesisError` with AWS's codes. The wire layer only translates JSON.

Puts append to the shard's active segment on the event loop, then wait for a group-commit fsync
(`GroupSync`) before the records become visible and the call returns: what was acknowledged is on disk.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeloop.config import Config
from gateway.sinks.kinesis import errors, keys, reshard
from gateway.sinks.kinesis.consumers import ConsumersMixin
from gateway.sinks.kinesis.errors import KinesisError
from gateway.sinks.kinesis.listing import ListingMixin, now_ms
from gateway.sinks.kinesis.maintenance import MaintenanceMixin
from gateway.sinks.kinesis.model import (
    ITERATOR_TYPES,
    ON_DEMAND_SHARDS,
    Limits,
    Shard,
    Stream,
)
from gateway.sinks.kinesis.storage import Segment, ShardLog, SyncHandle
from gateway.sinks.kinesis.throttle import TokenBucket
from gateway.sinks.kinesis.tokens import IteratorPosition, TokenError, TokenSigner
from gateway.storage.durable import GroupSync, atomic_write, fsync_dir

log = logging.getLogger("edgeloop.kinesis")

STREAM_NAME_RE = re.compile(r"[a-zA-Z0-9_.-]{1,128}")
MAX_PUT_RECORDS = 500
MAX_PUT_RECORDS_BYTES = 5 * 1024 * 1024
MAX_PARTITION_KEY = 256
MAX_GET_RECORDS = 10000
MAX_GET_BYTES = 10 * 1024 * 1024
THREAD_READ_BYTES = 256 * 1024  # reads larger than this leave the event loop thread


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%a %b %d %H:%M:%S UTC %Y")


class KinesisEngine(ListingMixin, ConsumersMixin, MaintenanceMixin):
    """All streams of the emulated account, stored under ``<home>/sinks/kinesis``."""

    def __init__(self, home: Path, config: Config, sync: GroupSync) -> None:
        self.root = Path(home) / "sinks" / "kinesis"
        self.config = config
        self.settings = config.kinesis
        self.sync = sync
        self.region = config.aws.region
        self.account = config.aws.account_id
        self.streams: dict[str, Stream] = {}
        self.signer = TokenSigner(b"")
        self.metrics = {"records_in": 0, "records_out": 0, "put_throttled": 0, "get_throttled": 0,
                        "records_trimmed_segments": 0}
        self._reserved: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._save_locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._subscriptions: set[tuple[str, str]] = set()
        self._fallback_fd = -1
        self._trimmer: asyncio.Task[None] | None = None
        self.closing = False  # set on shutdown: open subscriptions end

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load every stream from disk (recovering torn tails) and start the retention trimmer."""
        await asyncio.to_thread(self._load)
        self._trimmer = asyncio.get_running_loop().create_task(self._trim_forever())

    def _load(self) -> None:
        (self.root / "streams").mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.root / "trash", ignore_errors=True)
        key_path = self.root / "iterator.key"
        if not key_path.exists():
            atomic_write(key_path, secrets.token_bytes(32), 0o600)
        self.signer = TokenSigner(key_path.read_bytes())
        self._fallback_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        for meta in sorted((self.root / "streams").glob("*/stream.json")):
            stream = Stream.from_json(json.loads(meta.read_text()))
            for shard in stream.shards:
                self._open_shard_log(stream, shard)
            self.streams[stream.name] = stream
            log.info("kinesis stream loaded name=%s shards=%d", stream.name, len(stream.shards))
        for orphan in (self.root / "streams").iterdir():  # a create cut short by a crash
            if orphan.is_dir() and not (orphan / "stream.json").exists():
                shutil.rmtree(orphan, ignore_errors=True)

    async def stop(self) -> None:
        """Stop background work, flush and close every file."""
        self.end_subscriptions()
        if self._trimmer is not None:
            self._trimmer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._trimmer
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for stream in list(self.streams.values()):
            for shard in stream.shards:
                if shard.log is not None:
                    await asyncio.to_thread(shard.log.close)
        if self._fallback_fd >= 0:
            os.close(self._fallback_fd)
            self._fallback_fd = -1

    def _stream_dir(self, name: str) -> Path:
        return self.root / "streams" / f"{name}.d"

    def _open_shard_log(self, stream: Stream, shard: Shard, fresh: bool = False) -> None:
        """Open (creating if needed) a shard's log (blocking). `fresh` first removes leftovers of a reshard
        that a crash cut short (records in them were never acknowledged)."""
        directory = self._stream_dir(stream.name) / shard.shard_id
        if fresh:
            shutil.rmtree(directory, ignore_errors=True)
        shard.log = ShardLog(directory, self.settings.segment_bytes, self._fallback_fd)
        shard.log.open()
        shard.committed = shard.log.last_counter
        if self.settings.enforce_limits:
            s = self.settings
            shard.limits = Limits(TokenBucket(s.write_bytes_per_sec), TokenBucket(s.write_records_per_sec),
                                  TokenBucket(s.read_bytes_per_sec), TokenBucket(s.read_calls_per_sec))

    async def _save(self, stream: Stream) -> None:
        """Write the stream's metadata atomically; concurrent saves of one stream run in order."""
        lock = self._save_locks.setdefault(stream.name, asyncio.Lock())
        async with lock:
            if stream.deleted:
                return
            data = json.dumps(stream.to_json(), indent=1).encode()
            await asyncio.to_thread(atomic_write, self._stream_dir(stream.name) / "stream.json", data)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- lookups ------------------------------------------------------------------------------

    def arn(self, name: str) -> str:
        return f"arn:aws:kinesis:{self.region}:{self.account}:stream/{name}"

    def stream(self, name: str) -> Stream:
        """The stream called `name` (ResourceNotFoundException if there is none)."""
        stream = self.streams.get(name)
        if stream is None:
            raise errors.stream_not_found(name, self.account)
        return stream

    def stream_by_arn(self, arn: str) -> Stream:
        prefix = f"arn:aws:kinesis:{self.region}:{self.account}:stream/"
        if not isinstance(arn, str) or not arn.startswith(prefix):
            raise errors.KinesisError("ResourceNotFoundException", f"Stream {arn} not found.")
        return self.stream(arn[len(prefix):])

    def shard(self, stream: Stream, shard_id: str) -> Shard:
        """The shard called `shard_id` (ValidationException when malformed, ResourceNotFound when unknown)."""
        if not isinstance(shard_id, str) or not STREAM_NAME_RE.fullmatch(shard_id):
            raise errors.validation(shard_id, "shardId",
                                    "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")
        index = keys.shard_index(shard_id)
        shard = stream.by_index.get(index) if index is not None else None
        if shard is None:
            raise errors.shard_not_found(shard_id, stream.name, self.account)
        return shard

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    # ---- streams ------------------------------------------------------------------------------

    def _check_name(self, name: object, member: str = "streamName") -> str:
        if not isinstance(name, str) or not STREAM_NAME_RE.fullmatch(name):
            if isinstance(name, str) and not 1 <= len(name) <= 128:
                raise errors.validation(name, member, "Member must have length less than or equal to 128"
                                        if name else "Member must have length greater than or equal to 1")
            raise errors.validation(name, member, "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")
        return name

    def _open_shard_total(self) -> int:
        return sum(len(s.open_shards) for s in self.streams.values())

    def _check_shard_limit(self, additional: int) -> None:
        current = self._open_shard_total()
        limit = self.settings.shard_limit
        if current + additional > limit:
            raise errors.limit_exceeded(
                f"This request would exceed the shard limit for the account {self.account} in {self.region}. "
                f"Current shard count for the account: {current}. Limit: {limit}. Number of additional shards "
                f"that would have resulted from this request: {additional}.")

    async def create_stream(self, name: str, shard_count: int | None = None, mode: str = "PROVISIONED",
                            tags: dict[str, str] | None = None, max_record_kib: int | None = None) -> None:
        """Create a stream; it is ACTIVE as soon as this returns."""
        self._check_name(name)
        if mode not in ("PROVISIONED", "ON_DEMAND"):
            raise errors.validation(mode, "streamModeDetails.streamMode",
                                    "Member must satisfy enum value set: [ON_DEMAND, PROVISIONED]")
        if mode == "ON_DEMAND":
            shard_count = shard_count or ON_DEMAND_SHARDS
        elif shard_count is None:
            raise errors.invalid_argument(f"ShardCount is required for the PROVISIONED stream {name}.")
        if not isinstance(shard_count, int) or isinstance(shard_count, bool) or shard_count < 1:
            raise errors.validation(shard_count, "shardCount", "Member must have value greater than or equal to 1")
        if max_record_kib is not None and not 1024 <= max_record_kib <= 10240:
            raise errors.validation(max_record_kib, "maxRecordSizeInKiB",
                                    "Member must have value between 1024 and 10240")
        if name in self.streams or name in self._reserved:
            raise errors.stream_exists(name, self.account)
        self._check_shard_limit(shard_count)
        created = now_ms()
        stream = Stream(name, self.arn(name), created, mode, max_record_kib=max_record_kib or 1024,
                        tags=dict(tags or {}))
        stream.shards = [Shard(i, start, end, created) for i, (start, end) in
                         enumerate(keys.uniform_ranges(shard_count))]
        stream.reindex()
        self._reserved.add(name)
        try:
            await asyncio.to_thread(self._create_files, stream)
            self.streams[name] = stream
        finally:
            self._reserved.discard(name)
        log.info("kinesis stream created name=%s shards=%d mode=%s", name, shard_count, mode)

    def _create_files(self, stream: Stream) -> None:
        directory = self._stream_dir(stream.name)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for shard in stream.shards:
            self._open_shard_log(stream, shard)
        atomic_write(directory / "stream.json", json.dumps(stream.to_json(), indent=1).encode())
        fsync_dir(directory.parent)

    async def delete_stream(self, name: str, enforce_consumer_deletion: bool = False) -> None:
        stream = self.stream(name)
        if stream.consumers and not enforce_consumer_deletion:
            raise errors.KinesisError(
                "ResourceInUseException",
                f"Stream {name} under account {self.account} has registered consumers; set EnforceConsumerDeletion "
                "to delete it together with them.")
        stream.deleted = True
        del self.streams[name]
        for shard in stream.shards:
            shard.wake()
        self._reserved.add(name)
        try:
            await asyncio.to_thread(self._delete_files, stream)
        finally:
            self._reserved.discard(name)
        log.info("kinesis stream deleted name=%s", name)

    def _delete_files(self, stream: Stream) -> None:
        for shard in stream.shards:
            if shard.log is not None:
                shard.log.close()
        trash = self.root / "trash"
        trash.mkdir(exist_ok=True)
        target = trash / uuid.uuid4().hex
        os.replace(self._stream_dir(stream.name), target)
        fsync_dir(self.root / "streams")
        shutil.rmtree(target, ignore_errors=True)

    # ---- writing ------------------------------------------------------------------------------

    async def put_record(self, stream_name: str, data: bytes, partition_key: str,
                         explicit_hash_key: str | None = None) -> dict[str, str]:
        """Put one record; returns ``{"ShardId", "SequenceNumber", "EncryptionType"}`` once it is durable."""
        stream = self.stream(stream_name)
        shard = self._route(stream, data, partition_key, explicit_hash_key, "")
        if shard.limits is not None and not self._admit_write(shard, len(data) + len(partition_key)):
            self.metrics["put_throttled"] += 1
            raise errors.throughput_exceeded(shard.shard_id, stream.name, self.account)
        assert shard.log is not None
        first, arrival, handle = shard.log.append([(partition_key.encode("utf-8"), data)], now_ms())
        await self._commit(stream, {shard: (first, handle)}, [(shard, seg) for seg in shard.log.take_retired()])
        self.metrics["records_in"] += 1
        return {"ShardId": shard.shard_id, "SequenceNumber": shard.sequence_of(first, arrival),
                "EncryptionType": "NONE"}

    async def put_records(self, stream_name: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Put up to 500 records (``{"Data": bytes, "PartitionKey": str, "ExplicitHashKey"?: str}``).

        Returns AWS's PutRecords result: per record ``{"SequenceNumber", "ShardId"}`` or, when a shard's
        throughput limit refused it, ``{"ErrorCode", "ErrorMessage"}``, in request order.
        """
        stream = self.stream(stream_name)
        if not isinstance(records, list):
            raise errors.validation(records, "records", "Member must have length greater than or equal to 1")
        _check_count(len(records))
        triples = []
        for i, record in enumerate(records):
            if type(record) is not dict:
                raise errors.serialization(f"records.{i + 1} must be a structure with Data and PartitionKey")
            triples.append((record.get("Data"), record.get("PartitionKey"), record.get("ExplicitHashKey")))
        placed, refused = await self._put_routed(stream, self._route_all(stream, triples))
        results: list[dict[str, str]] = [{}] * len(records)
        for shard, low, first, indexes in placed:
            shard_id = shard.shard_id
            for k, i in enumerate(indexes, first):
                results[i] = {"SequenceNumber": str(low | (k << 88)), "ShardId": shard_id}
        for i, shard in refused:
            results[i] = {"ErrorCode": "ProvisionedThroughputExceededException",
                          "ErrorMessage": self.rate_exceeded(shard.shard_id, stream.name)}
        return {"FailedRecordCount": len(refused), "Records": results, "EncryptionType": "NONE"}

    async def put_pairs(self, stream_name: str, records: list[tuple[bytes, str]]) -> dict[int, str]:
        """PutRecords for the rules engine, in process: ``(data, partition key)`` pairs with the same validation,
        limits and durability, minus AWS's per-record result documents. Returns the records a shard's throughput
        limit refused (index → shard id); every other record is stored."""
        stream = self.stream(stream_name)
        _check_count(len(records))
        _, refused = await self._put_routed(stream, self._route_all(stream, [(d, k, None) for d, k in records]))
        return {i: shard.shard_id for i, shard in refused}

    async def _put_routed(self, stream: Stream, routed: list[tuple[Shard, bytes, bytes]]
                          ) -> tuple[list[tuple[Shard, int, int, list[int]]], list[tuple[int, Shard]]]:
        """Append routed records, each shard's in one write, and wait until they are durable and visible.
        Returns per shard (shard, sequence-number base, first counter, indexes stored, in order) and the
        (index, shard) of every record a shard's write limit refused."""
        total = sum(len(pk) + len(data) for _, pk, data in routed)
        if total > MAX_PUT_RECORDS_BYTES:
            raise errors.invalid_argument(f"Records size exceeds 5 MB limit: the request carries {total} bytes of "
                                          f"data and partition keys (at most {MAX_PUT_RECORDS_BYTES}).")
        groups: dict[Shard, tuple[list[int], list[tuple[bytes, bytes]]]] = {}
        refused: list[tuple[int, Shard]] = []
        for i, (shard, pk, data) in enumerate(routed):
            if shard.limits is not None and not self._admit_write(shard, len(data) + len(pk)):
                self.metrics["put_throttled"] += 1
                refused.append((i, shard))
                continue
            group = groups.get(shard)
            if group is None:
                group = groups[shard] = ([], [])
            group[0].append(i)
            group[1].append((pk, data))
        arrival = now_ms()
        appended: dict[Shard, tuple[int, SyncHandle]] = {}
        retired: list[tuple[Shard, Segment]] = []
        placed = []
        for shard, (indexes, entries) in groups.items():
            assert shard.log is not None
            first, used_arrival, handle = shard.log.append(entries, arrival)
            appended[shard] = (first + len(entries) - 1, handle)
            retired.extend((shard, seg) for seg in shard.log.take_retired())
            hi, lo = keys.sequence_prefix(shard.index, shard.created_ms // 1000)
            placed.append((shard, hi | ((used_arrival & ((1 << 48) - 1)) << 40) | lo, first, indexes))
        await self._commit(stream, appended, retired)
        self.metrics["records_in"] += len(routed) - len(refused)
        return placed, refused

    def _route_all(self, stream: Stream, records: list[tuple[Any, Any, Any]]) -> list[tuple[Shard, bytes, bytes]]:
        """(shard, encoded partition key, data) per ``(data, partition key, explicit hash key)``; the common case
        stays on a fast path."""
        md5, from_bytes, find = hashlib.md5, int.from_bytes, bisect.bisect_right
        starts, shards, max_bytes = stream.open_starts, stream.open_shards, stream.max_record_bytes
        routed = []
        for i, (data, pk, explicit_hash_key) in enumerate(records):
            if type(data) is bytes and type(pk) is str and 0 < len(pk) <= MAX_PARTITION_KEY \
                    and explicit_hash_key is None:
                pk_bytes = pk.encode("utf-8")
                if len(data) + len(pk_bytes) <= max_bytes:
                    routed.append((shards[find(starts, from_bytes(md5(pk_bytes).digest(), "big")) - 1], pk_bytes,
                                   data))
                    continue
            shard = self._route(stream, data, pk, explicit_hash_key, f"records.{i + 1}.member.")
            routed.append((shard, pk.encode("utf-8"), bytes(data)))
        return routed

    def _route(self, stream: Stream, data: object, partition_key: object, explicit_hash_key: object,
               member: str) -> Shard:
        """Validate one record and pick its shard."""
        if not isinstance(data, bytes | bytearray):
            raise errors.validation(None, f"{member}data", "Member must not be null")
        if not isinstance(partition_key, str) or not partition_key:
            raise errors.validation(partition_key if isinstance(partition_key, str) else None,
                                    f"{member}partitionKey", "Member must have length greater than or equal to 1")
        if len(partition_key) > MAX_PARTITION_KEY:
            raise errors.validation(partition_key, f"{member}partitionKey",
                                    f"Member must have length less than or equal to {MAX_PARTITION_KEY}")
        if len(data) + len(partition_key.encode("utf-8")) > stream.max_record_bytes:
            raise errors.validation(f"java.nio.HeapByteBuffer[pos=0 lim={len(data)} cap={len(data)}]",
                                    f"{member}data",
                                    f"Member must have length less than or equal to {stream.max_record_bytes}")
        if explicit_hash_key is None:
            return stream.route(keys.partition_key_hash(partition_key))
        hash_key = keys.parse_hash_key(explicit_hash_key) if isinstance(explicit_hash_key, str) else None
        if hash_key is None:
            raise errors.invalid_argument(
                f"Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value "
                f"was {explicit_hash_key}")
        return stream.route(hash_key)

    def rate_exceeded(self, shard_id: str, stream_name: str) -> str:
        """AWS's message for a record a shard's write limit refused."""
        return f"Rate exceeded for shard {shard_id} in stream {stream_name} under account {self.account}."

    @staticmethod
    def _admit_write(shard: Shard, size: int) -> bool:
        limits = shard.limits
        assert limits is not None
        return limits.write_records.try_take(1) and limits.write_bytes.try_take(size)

    async def _commit(self, stream: Stream, appended: dict[Shard, tuple[int, SyncHandle]],
                      retired: Iterable[tuple[Shard, Segment]]) -> None:
        """Wait until the appended records are durable, then make them visible: each shard up to the last
        record of THIS call (`appended[shard][0]`), never further — a later call's records may still sit in
        the writer's buffer, and readers must not skip past them."""
        handles = {id(handle): handle for _, handle in appended.values()}
        try:
            await asyncio.gather(*(self.sync.sync(h) for h in handles.values()))
        except OSError as exc:
            log.error("kinesis fsync failed stream=%s error=%s", stream.name, exc)
            raise KinesisError("InternalFailure", "The records could not be stored durably.", 500,
                               sender=False) from exc
        for shard, (last, _) in appended.items():
            shard.publish(last)
        for shard, segment in retired:
            self._spawn(self._retire(shard, segment))
        if stream.meta_write is not None and not stream.meta_write.done():
            await asyncio.shield(stream.meta_write)

    async def _retire(self, shard: Shard, segment: Segment) -> None:
        if segment.handle is not None:
            await self.sync.sync(segment.handle)
        assert shard.log is not None
        await asyncio.to_thread(shard.log.retire, segment)

    # ---- reading ------------------------------------------------------------------------------

    def get_shard_iterator(self, stream_name: str, shard_id: str, iterator_type: str,
                           starting_sequence_number: str | None = None,
                           timestamp: float | None = None) -> dict[str, str]:
        stream = self.stream(stream_name)
        shard = self.shard(stream, shard_id)
        if iterator_type not in ITERATOR_TYPES:
            raise errors.validation(iterator_type, "shardIteratorType",
                                    f"Member must satisfy enum value set: [{', '.join(ITERATOR_TYPES)}]")
        counter = self.start_counter(stream, shard, iterator_type, starting_sequence_number, timestamp,
                                 "GetShardIterator")
        return {"ShardIterator": self._iterator(stream, shard, counter)}

    def _iterator(self, stream: Stream, shard: Shard, counter: int) -> str:
        return self.signer.iterator(IteratorPosition(stream.name, stream.created_ms, shard.index, counter, now_ms()))

    def _horizon(self, stream: Stream, shard: Shard) -> int:
        assert shard.log is not None
        cutoff = now_ms() - stream.retention_hours * 3_600_000
        return max(shard.log.first_counter, shard.log.counter_at(cutoff) if cutoff > 0 else 1)

    def start_counter(self, stream: Stream, shard: Shard, kind: str, sequence: str | None, timestamp: float | None,
                  operation: str) -> int:
        """The counter an iterator or subscription of `kind` starts at."""
        assert shard.log is not None
        if kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            if sequence is None:
                raise errors.invalid_argument(
                    "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber "
                    f"or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {kind} and no "
                    "StartingSequenceNumber.")
            decoded = keys.decode_sequence(sequence)
            if decoded is None:
                raise errors.invalid_argument(
                    f"StartingSequenceNumber {sequence} used in {operation} on shard {shard.shard_id} in stream "
                    f"{stream.name} under account {self.account} is invalid.")
            shard_ix, counter = decoded
            if shard_ix != shard.index:
                raise errors.invalid_argument(
                    f"Invalid StartingSequenceNumber. It encodes {keys.shard_id(shard_ix)}, while it was used in a "
                    f"call to a shard with {shard.shard_id}")
            return max(counter, 1) if kind == "AT_SEQUENCE_NUMBER" else counter + 1
        if kind == "TRIM_HORIZON":
            return self._horizon(stream, shard)
        if kind == "LATEST":
            return shard.committed + 1
        if timestamp is None or not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
            raise errors.invalid_argument(
                "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has "
                "no timestamp parameter.")
        at = shard.log.counter_at(int(timestamp * 1000))
        return min(max(at, self._horizon(stream, shard)), shard.committed + 1)

    def _resolve_iterator(self, token: object) -> tuple[Stream, Shard, int]:
        if not isinstance(token, str) or not 1 <= len(token) <= 512:
            raise errors.validation(token, "shardIterator", "Member must have length between 1 and 512")
        try:
            position = self.signer.parse_iterator(token)
        except TokenError:
            raise errors.invalid_argument(f"Invalid ShardIterator: {token}") from None
        now = now_ms()
        ttl_ms = int(self.settings.iterator_ttl_secs * 1000)
        if now - position.issued_ms > ttl_ms:
            raise KinesisError(
                "ExpiredIteratorException",
                f"Iterator expired. The iterator was created at time {_iso(position.issued_ms)} while right now it "
                f"is {_iso(now)} which is further in the future than the tolerated delay of {ttl_ms} milliseconds.")
        stream = self.streams.get(position.stream_name)
        if stream is None or stream.created_ms != position.stream_created_ms:
            raise errors.stream_not_found(position.stream_name, self.account)
        shard = stream.by_index.get(position.shard_ix)
        if shard is None:
            raise errors.shard_not_found(keys.shard_id(position.shard_ix), stream.name, self.account)
        return stream, shard, position.counter

    async def get_records(self, shard_iterator: str, limit: int | None = None) -> dict[str, Any]:
        """GetRecords: records from the iterator's position, the next iterator and MillisBehindLatest."""
        limit = self._check_limit(limit, "limit", MAX_GET_RECORDS, MAX_GET_RECORDS)
        stream, shard, counter = self._resolve_iterator(shard_iterator)
        limits = shard.limits
        if limits is not None and not (limits.read_calls.try_take(1) and limits.read_bytes.has_tokens()):
            self.metrics["get_throttled"] += 1
            raise errors.throughput_exceeded(shard.shard_id, stream.name, self.account)
        records, next_counter = await self.read_shard(stream, shard, counter, limit)
        if limits is not None:
            limits.read_bytes.charge(sum(len(r[3]) for r in records))
        out: dict[str, Any] = {"Records": [self.record_dict(shard, r) for r in records]}
        self.metrics["records_out"] += len(records)
        if shard.is_open or next_counter <= shard.committed:
            out["NextShardIterator"] = self._iterator(stream, shard, next_counter)
        else:
            out["ChildShards"] = self.child_shards(stream, shard)
        out["MillisBehindLatest"] = self.millis_behind(shard, next_counter)
        return out

    async def read_shard(self, stream: Stream, shard: Shard, counter: int,
                         limit: int) -> tuple[list[tuple[int, int, str, bytes]], int]:
        """Visible records from `counter` (at most `limit`, ~10 MiB) within retention, and the next counter."""
        assert shard.log is not None
        upto = shard.committed
        min_arrival = now_ms() - stream.retention_hours * 3_600_000
        if counter > upto:
            return [], counter
        if shard.log.estimate_bytes(counter, limit, upto) > THREAD_READ_BYTES:
            return await asyncio.to_thread(shard.log.read, counter, limit, MAX_GET_BYTES, upto, min_arrival)
        return shard.log.read(counter, limit, MAX_GET_BYTES, upto, min_arrival)

    @staticmethod
    def record_dict(shard: Shard, record: tuple[int, int, str, bytes]) -> dict[str, Any]:
        counter, arrival, partition_key, data = record
        return {"SequenceNumber": shard.sequence_of(counter, arrival), "ApproximateArrivalTimestamp": arrival / 1000,
                "Data": data, "PartitionKey": partition_key}

    def millis_behind(self, shard: Shard, next_counter: int) -> int:
        assert shard.log is not None
        if next_counter > shard.committed or next_counter < shard.log.first_counter:
            return 0
        return max(0, now_ms() - shard.log.arrival_of(next_counter))

    @staticmethod
    def child_shards(stream: Stream, shard: Shard) -> list[dict[str, Any]]:
        out = []
        for child in stream.shards:
            if shard.shard_id in (child.parent, child.adjacent_parent):
                parents = [p for p in (child.parent, child.adjacent_parent) if p]
                out.append({"ShardId": child.shard_id, "ParentShards": parents,
                            "HashKeyRange": {"StartingHashKey": str(child.start_hash),
                                             "EndingHashKey": str(child.end_hash)}})
        return out

    async def tail(self, stream_name: str, from_start: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        """Read helper: up to `limit` records across all shards, oldest first (``from_start``) or newest."""
        stream = self.stream(stream_name)
        collected: list[dict[str, Any]] = []
        for shard in stream.shards:
            assert shard.log is not None
            start = self._horizon(stream, shard) if from_start else max(shard.committed - limit + 1, 1)
            records, _ = await self.read_shard(stream, shard, start, limit)
            collected.extend({"ShardId": shard.shard_id, **self.record_dict(shard, r)} for r in records)
        collected.sort(key=lambda r: r["ApproximateArrivalTimestamp"])
        return collected[:limit] if from_start else collected[-limit:]

    # ---- resharding ---------------------------------------------------------------------------

    async def split_shard(self, stream_name: str, shard_to_split: str, new_starting_hash_key: str) -> None:
        async with self._lock(stream_name):
            stream = self.stream(stream_name)
            self._check_shard_limit(1)
            await self._apply(stream, reshard.split(stream, shard_to_split, new_starting_hash_key, self.account))

    async def merge_shards(self, stream_name: str, shard_to_merge: str, adjacent_shard_to_merge: str) -> None:
        async with self._lock(stream_name):
            stream = self.stream(stream_name)
            await self._apply(stream, reshard.merge(stream, shard_to_merge, adjacent_shard_to_merge, self.account))

    async def update_shard_count(self, stream_name: str, target: int, scaling_type: str) -> dict[str, Any]:
        if scaling_type != "UNIFORM_SCALING":
            raise errors.validation(scaling_type, "scalingType",
                                    "Member must satisfy enum value set: [UNIFORM_SCALING]")
        if not isinstance(target, int) or isinstance(target, bool) or target < 1:
            raise errors.validation(target, "targetShardCount", "Member must have value greater than or equal to 1")
        async with self._lock(stream_name):
            stream = self.stream(stream_name)
            current = len(stream.open_shards)
            plan = reshard.uniform(stream, target, self.account)
            self._check_shard_limit(target - current)
            if target != current:
                await self._apply(stream, plan)
        return {"StreamName": stream.name, "CurrentShardCount": current, "TargetShardCount": target,
                "StreamARN": stream.arn}

    async def _apply(self, stream: Stream, plan: reshard.Plan) -> None:
        """Close the plan's parents and open its children; children are durable before anyone writes to them."""
        created = now_ms()
        first_index = stream.next_shard_index
        children = [Shard(first_index + i, new.start_hash, new.end_hash, created, new.parent, new.adjacent_parent)
                    for i, new in enumerate(plan.create)]

        def open_children() -> None:
            for child in children:
                self._open_shard_log(stream, child, fresh=True)

        await asyncio.to_thread(open_children)
        if stream.deleted:
            return
        for parent in plan.close:  # no await from here to the reindex: puts see either the old or new layout
            assert parent.log is not None
            parent.closed_ms = created
            last = parent.log.last_counter
            parent.ending_sequence = (parent.sequence_of(last, parent.log.last_arrival) if last
                                      else parent.starting_sequence)
        stream.shards.extend(children)
        stream.reindex()
        for parent in plan.close:
            parent.wake()
        write = asyncio.ensure_future(self._save(stream))
        stream.meta_write = write
        await write
        log.info("kinesis reshard stream=%s closed=%s opened=%s", stream.name,
                 ",".join(s.shard_id for s in plan.close), ",".join(s.shard_id for s in children))


def _check_count(n: int) -> None:
    """PutRecords takes 1 to 500 records."""
    if n < 1:
        raise errors.validation([], "records", "Member must have length greater than or equal to 1")
    if n > MAX_PUT_RECORDS:
        raise errors.validation(f"[{n} records]", "records",
                                f"Member must have length less than or equal to {MAX_PUT_RECORDS}")
