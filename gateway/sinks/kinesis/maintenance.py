"""Retention (increase, decrease, trimming expired data) and stream tags."""

from __future__ import annotations

import asyncio
import logging
import shutil
from typing import TYPE_CHECKING, Any

from gateway.sinks.kinesis import errors
from gateway.sinks.kinesis.listing import now_ms
from gateway.sinks.kinesis.model import MAX_RETENTION_HOURS, Stream
from gateway.sinks.kinesis.storage import ShardLog, delete_segment

log = logging.getLogger("edgeloop.kinesis")

MAX_TAGS = 50
TRIM_INTERVAL_SECS = 60.0


class MaintenanceMixin:
    """Retention, tags and the background trimmer, mixed into `KinesisEngine` (they use its state)."""

    # Declared for the type checker; `KinesisEngine` defines them.
    account: str
    streams: dict[str, Stream]
    metrics: dict[str, int]
    if TYPE_CHECKING:
        def stream(self, name: str) -> Stream: ...
        async def _save(self, stream: Stream) -> None: ...
        @staticmethod
        def _check_limit(value: int | None, member: str, maximum: int, default: int) -> int: ...

    async def increase_retention(self, stream_name: str, hours: int) -> None:
        stream = self.stream(stream_name)
        self._check_hours(hours)
        if hours < stream.retention_hours:
            raise errors.invalid_argument(
                f"Requested retention period ({hours} hours) for stream {stream_name} can not be shorter than "
                f"existing retention period ({stream.retention_hours} hours). Use DecreaseRetentionPeriod API.")
        stream.retention_hours = hours
        await self._save(stream)

    async def decrease_retention(self, stream_name: str, hours: int) -> None:
        stream = self.stream(stream_name)
        self._check_hours(hours)
        if hours > stream.retention_hours:
            raise errors.invalid_argument(
                f"Requested retention period ({hours} hours) for stream {stream_name} can not be longer than "
                f"existing retention period ({stream.retention_hours} hours). Use IncreaseRetentionPeriod API.")
        stream.retention_hours = hours
        await self._save(stream)
        await self._trim(stream)

    @staticmethod
    def _check_hours(hours: object) -> None:
        if not isinstance(hours, int) or isinstance(hours, bool):
            raise errors.validation(hours, "retentionPeriodHours", "Member must not be null")
        if hours < 24:
            raise errors.invalid_argument(f"Minimum allowed retention period is 24 hours. Requested retention period "
                                          f"({hours} hours) is too short.")
        if hours > MAX_RETENTION_HOURS:
            raise errors.invalid_argument(f"Maximum allowed retention period is {MAX_RETENTION_HOURS} hours. "
                                          f"Requested retention period ({hours} hours) is too long.")

    async def _trim_forever(self) -> None:
        while True:
            await asyncio.sleep(TRIM_INTERVAL_SECS)
            for stream in list(self.streams.values()):
                try:
                    await self._trim(stream)
                except OSError as exc:
                    log.error("kinesis trim failed stream=%s error=%s", stream.name, exc)

    async def _trim(self, stream: Stream) -> None:
        """Delete segments and closed shards that fell out of the retention period."""
        cutoff = now_ms() - stream.retention_hours * 3_600_000
        for shard in list(stream.shards):
            assert shard.log is not None
            expired = shard.log.expired_segments(cutoff)
            for segment in expired:
                await asyncio.to_thread(delete_segment, segment)
                self.metrics["records_trimmed_segments"] += 1
        gone = [s for s in stream.shards if s.closed_ms is not None and s.closed_ms < cutoff
                and (s.log is None or s.log.last_arrival < cutoff)]
        if gone and not stream.deleted:
            stream.shards = [s for s in stream.shards if s not in gone]
            stream.reindex()
            await self._save(stream)
            for shard in gone:
                assert shard.log is not None
                await asyncio.to_thread(self._remove_shard_files, shard.log)

    @staticmethod
    def _remove_shard_files(shard_log: ShardLog) -> None:
        shard_log.close()
        shutil.rmtree(shard_log.directory, ignore_errors=True)

    async def add_tags(self, stream_name: str, tags: dict[str, str]) -> None:
        stream = self.stream(stream_name)
        if not isinstance(tags, dict) or not tags:
            raise errors.validation(tags, "tags", "Member must have length greater than or equal to 1")
        merged = {**stream.tags, **tags}
        if len(merged) > MAX_TAGS:
            raise errors.invalid_argument(f"Failed to add tags to stream {stream_name} under account {self.account} "
                                          f"because a given stream cannot have more than {MAX_TAGS} tags.")
        stream.tags = merged
        await self._save(stream)

    async def remove_tags(self, stream_name: str, tag_keys: list[str]) -> None:
        stream = self.stream(stream_name)
        for key in tag_keys:
            stream.tags.pop(key, None)
        await self._save(stream)

    def list_tags(self, stream_name: str, exclusive_start_tag_key: str | None = None,
                  limit: int | None = None) -> dict[str, Any]:
        stream = self.stream(stream_name)
        limit = self._check_limit(limit, "limit", 50, 50)
        names = sorted(k for k in stream.tags if exclusive_start_tag_key is None or k > exclusive_start_tag_key)
        return {"Tags": [{"Key": k, "Value": stream.tags[k]} for k in names[:limit]],
                "HasMoreTags": len(names) > limit}
