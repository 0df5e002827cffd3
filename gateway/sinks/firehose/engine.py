"""The Firehose engine: delivery streams that buffer records durably and deliver them to S3.

A buffer is delivered as one S3 object when it reaches SizeInMBs, when IntervalInSeconds has passed since its
first record, and on shutdown. Records are concatenated as sent (no delimiter) and optionally gzipped. A
delivery that fails (for instance, the bucket does not exist yet) is retried; its records stay on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeloop.config import Config
from gateway.sinks.firehose import errors, keys
from gateway.sinks.firehose.buffer import DurableBuffer, Segment
from gateway.sinks.firehose.model import DeliveryStream, apply_update, from_request
from gateway.storage.durable import GroupSync, atomic_write

log = logging.getLogger("edgeloop.sinks.firehose")

MAX_RECORD = 1_024_000
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
RETRY_SECONDS = 5.0
MAX_TAGS = 50


@dataclass
class _Live:
    """A delivery stream's runtime state."""

    stream: DeliveryStream
    buffer: DurableBuffer
    pending: list[Segment] = field(default_factory=list)  # sealed, not yet delivered
    timer: asyncio.TimerHandle | None = None
    delivering: asyncio.Task[None] | None = None
    reader: asyncio.Task[None] | None = None

    @property
    def backlog(self) -> int:
        current = self.buffer.current.size if self.buffer.current else 0
        return current + sum(s.size for s in self.pending)


class FirehoseEngine:
    """Emulated Firehose with S3 destinations. `s3` is the S3 engine; `kinesis` (optional) an engine or a
    callable returning one, used by KinesisStreamAsSource delivery streams."""

    def __init__(self, home: Path, config: Config, sync: GroupSync, s3: Any, kinesis: Any = None, *,
                 max_backlog_bytes: int = 256 * 1024 * 1024) -> None:
        self.root = home / "sinks" / "firehose"
        self.region = config.aws.region
        self.account = config.aws.account_id
        self.sync = sync
        self.s3 = s3
        self.kinesis = kinesis
        self.max_backlog_bytes = max_backlog_bytes
        self.streams: dict[str, _Live] = {}
        self.delivered_objects = 0
        self.delivered_records = 0
        self.delivery_failures = 0
        self.throttled_records = 0
        self._delivered = asyncio.Condition()

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread((self.root / "buffers").mkdir, parents=True, exist_ok=True)
        state = self.root / "streams.json"
        saved = json.loads(await asyncio.to_thread(state.read_text)) if state.exists() else []
        for data in saved:
            live = self._live(DeliveryStream.from_json(data))
            live.pending = await asyncio.to_thread(live.buffer.recover)
            self.streams[live.stream.name] = live
            if live.pending:
                self._start_delivery(live)
            self._start_reader(live)

    async def stop(self) -> None:
        """Deliver everything buffered (what cannot be delivered stays on disk for the next start)."""
        for live in list(self.streams.values()):
            if live.reader is not None:
                live.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await live.reader
            try:
                await self.flush(live.stream.name)
            except errors.FirehoseError:
                log.warning("records stay buffered on disk stream=%s records=%d", live.stream.name,
                            sum(len(seg.records) for seg in live.pending))
            if live.timer is not None:
                live.timer.cancel()
                live.timer = None

    def metrics(self) -> dict[str, int]:
        """Counters for the metrics endpoint (every refused record and failed delivery is counted)."""
        return {"firehose_delivered_objects": self.delivered_objects,
                "firehose_delivered_records": self.delivered_records,
                "firehose_delivery_failures": self.delivery_failures,
                "firehose_throttled_records": self.throttled_records,
                "firehose_buffered_bytes": sum(live.backlog for live in self.streams.values())}

    def _live(self, stream: DeliveryStream) -> _Live:
        return _Live(stream, DurableBuffer(self.root / "buffers" / stream.name, self.sync))

    async def _save(self) -> None:
        data = json.dumps([live.stream.to_json() for live in self.streams.values()], indent=1).encode()
        await asyncio.to_thread(atomic_write, self.root / "streams.json", data, 0o644,
                                self.sync.policy != "never")

    def _get(self, name: str) -> _Live:
        live = self.streams.get(name)
        if live is None:
            raise errors.not_found(name, self.account)
        return live

    # ---- control plane -----------------------------------------------------------------------------------------

    async def create_delivery_stream(self, request: dict[str, Any]) -> str:
        """CreateDeliveryStream (wire-shaped request); returns the ARN. The stream is ACTIVE at once."""
        stream = from_request(request, self.region, self.account, time.time())
        if stream.name in self.streams:
            raise errors.in_use(stream.name, self.account)
        if stream.kinesis_arn and self._kinesis() is None:
            raise errors.invalid("KinesisStreamAsSource needs the Kinesis service, which is not running")
        live = self._live(stream)
        await asyncio.to_thread(live.buffer.recover)
        self.streams[stream.name] = live
        await self._save()
        self._start_reader(live)
        return stream.arn

    async def delete_delivery_stream(self, name: str) -> None:
        """Delete a stream after delivering what it buffered."""
        live = self._get(name)
        if live.reader is not None:
            live.reader.cancel()
        await self.flush(name)
        del self.streams[name]
        if live.timer is not None:
            live.timer.cancel()
        await self._save()
        await asyncio.to_thread(shutil.rmtree, live.buffer.directory, True)

    async def update_destination(self, name: str, current_version: str, destination_id: str,
                                 update: dict[str, Any]) -> None:
        """UpdateDestination for the S3 destination: buffered records are delivered with the old settings first."""
        live = self._get(name)
        if str(current_version) != str(live.stream.version):
            raise errors.FirehoseError("ConcurrentModificationException", f"Firehose {name} has version "
                                       f"{live.stream.version}, not {current_version}")
        if destination_id != "destinationId-000000000001":
            raise errors.invalid(f"Destination {destination_id} does not exist; this stream has "
                                 "destinationId-000000000001")
        self._seal(live)
        updated = DeliveryStream.from_json(live.stream.to_json())
        apply_update(updated, update)
        live.stream = updated
        await self._save()

    async def tag_delivery_stream(self, name: str, tags: dict[str, str]) -> None:
        live = self._get(name)
        merged = {**live.stream.tags, **tags}
        if len(merged) > MAX_TAGS:
            raise errors.FirehoseError("LimitExceededException", f"A delivery stream can have at most {MAX_TAGS} "
                                       "tags")
        live.stream.tags = merged
        await self._save()

    async def untag_delivery_stream(self, name: str, keys: list[str]) -> None:
        live = self._get(name)
        live.stream.tags = {k: v for k, v in live.stream.tags.items() if k not in keys}
        await self._save()

    def list_tags(self, name: str, exclusive_start: str | None = None, limit: int = 50) -> tuple[dict[str, str], bool]:
        tags = sorted(self._get(name).stream.tags.items())
        if exclusive_start:
            tags = [t for t in tags if t[0] > exclusive_start]
        return dict(tags[:limit]), len(tags) > limit

    def describe_delivery_stream(self, name: str) -> dict[str, Any]:
        return self._get(name).stream.describe()

    def list_delivery_streams(self, limit: int = 10, stream_type: str | None = None,
                              exclusive_start: str | None = None) -> tuple[list[str], bool]:
        names = sorted(n for n, live in self.streams.items()
                       if stream_type is None or live.stream.stream_type == stream_type)
        if exclusive_start:
            names = [n for n in names if n > exclusive_start]
        return names[:limit], len(names) > limit

    # ---- data plane --------------------------------------------------------------------------------------------

    async def put_record(self, stream_name: str, data: bytes) -> str:
        """Buffer one record durably; returns its RecordId."""
        live = self._direct(stream_name)
        _check_record(data)
        if live.backlog + len(data) > self.max_backlog_bytes:
            self.throttled_records += 1
            raise errors.slow_down()
        await self._append(live, [data])
        return _record_id()

    async def put_record_batch(self, stream_name: str, records: list[bytes]) -> dict[str, Any]:
        """Buffer up to 500 records; returns PutRecordBatch's result (throttled records fail individually)."""
        live = self._direct(stream_name)
        if not 1 <= len(records) <= MAX_BATCH_RECORDS:
            raise errors.invalid(f"Records must hold 1 to {MAX_BATCH_RECORDS} records, not {len(records)}")
        total = sum(len(r) for r in records)
        if total > MAX_BATCH_BYTES:
            raise errors.invalid(f"The records of one PutRecordBatch may total at most {MAX_BATCH_BYTES} bytes, "
                                 f"not {total}")
        for r in records:
            _check_record(r)
        room = self.max_backlog_bytes - live.backlog
        accepted: list[bytes] = []
        responses: list[dict[str, Any]] = []
        for r in records:
            if len(r) <= room:
                room -= len(r)
                accepted.append(r)
                responses.append({"RecordId": _record_id()})
            else:
                responses.append({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."})
        failed = len(records) - len(accepted)
        self.throttled_records += failed
        if accepted:
            await self._append(live, accepted)
        return {"FailedPutCount": failed, "Encrypted": False, "RequestResponses": responses}

    def _direct(self, name: str) -> _Live:
        live = self._get(name)
        if live.stream.stream_type != "DirectPut":
            raise errors.invalid(f"This operation is not permitted on KinesisStreamAsSource delivery stream type: "
                                 f"{name}")
        return live

    async def _append(self, live: _Live, records: list[bytes]) -> None:
        segment = await live.buffer.append(records, time.time())
        if segment is not live.buffer.current:
            return  # sealed while we waited for the fsync: already on its way
        if segment.size >= live.stream.size_limit or live.stream.interval_s == 0:
            self._seal(live)
        elif live.timer is None:
            live.timer = asyncio.get_running_loop().call_later(live.stream.interval_s, self._seal, live)

    # ---- delivery ----------------------------------------------------------------------------------------------

    def _seal(self, live: _Live) -> None:
        if live.timer is not None:
            live.timer.cancel()
            live.timer = None
        segment = live.buffer.seal()
        if segment is not None:
            segment.settings = live.stream  # UpdateDestination replaces live.stream; this buffer keeps its own
            live.pending.append(segment)
        self._start_delivery(live)

    def _start_delivery(self, live: _Live) -> None:
        if live.delivering is None or live.delivering.done():
            live.delivering = asyncio.get_running_loop().create_task(self._deliver_all(live))

    async def _deliver_all(self, live: _Live) -> None:
        while live.pending:
            segment = live.pending[0]
            try:
                await self._deliver(segment.settings or live.stream, segment)
            except Exception as exc:
                self.delivery_failures += 1
                log.warning("delivery failed stream=%s bucket=%s records=%d error=%s", live.stream.name,
                            live.stream.bucket, len(segment.records), exc)
                if live.timer is None:
                    live.timer = asyncio.get_running_loop().call_later(
                        min(RETRY_SECONDS, max(live.stream.interval_s, 0.5)), self._seal, live)
                return
            live.pending.pop(0)
            await live.buffer.discard(segment)
            async with self._delivered:
                self._delivered.notify_all()

    async def _deliver(self, stream: DeliveryStream, segment: Segment) -> None:
        body = b"".join(segment.records)
        extension = stream.file_extension
        if stream.compression == "GZIP":
            body = await asyncio.to_thread(gzip.compress, body, 6)
            extension = extension or ".gz"
        key = keys.object_key(stream.prefix, stream.name, stream.version, segment.oldest or time.time(), extension)
        await self.s3.put_object(stream.bucket, key, body,
                                 content_type="application/octet-stream" if stream.compression == "GZIP" else None)
        self.delivered_objects += 1
        self.delivered_records += len(segment.records)

    async def flush(self, name: str) -> None:
        """Deliver what `name` buffers now; raises the delivery's error if it fails."""
        live = self._get(name)
        self._seal(live)
        if live.delivering is not None:
            await live.delivering
        if live.pending:
            raise errors.FirehoseError("ServiceUnavailableException", f"Delivery to bucket {live.stream.bucket} "
                                       "failed; the records stay buffered and delivery will be retried", 503,
                                       sender=False)

    async def wait_delivered(self, objects: int, timeout: float) -> None:
        """Wait until at least `objects` objects were delivered in total (tests and tools)."""
        async with asyncio.timeout(timeout), self._delivered:
            await self._delivered.wait_for(lambda: self.delivered_objects >= objects)

    # ---- Kinesis source ----------------------------------------------------------------------------------------

    def _kinesis(self) -> Any:
        return self.kinesis() if callable(self.kinesis) else self.kinesis

    def _start_reader(self, live: _Live) -> None:
        if not live.stream.kinesis_arn:
            return
        from gateway.sinks.firehose.kinesis_source import read_forever

        live.reader = asyncio.get_running_loop().create_task(
            read_forever(self._kinesis, live.stream.kinesis_stream, self.root / "checkpoints" / live.stream.name,
                         lambda records: self._append(live, records)))


def _check_record(data: bytes) -> None:
    if len(data) > MAX_RECORD:
        raise errors.invalid(f"A record may hold at most {MAX_RECORD} bytes (1,000 KiB), not {len(data)}")


def _record_id() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


__all__ = ["FirehoseEngine"]
