"""A shard's records on disk: append-only segment files, an offset index, crash recovery.

Each record is one frame: ``[u32 body length][u32 CRC-32 of body][body]`` where the body is
``[u64 counter][i64 arrival ms][u16 partition-key length][partition key][data]``. Counters are
dense per shard (1, 2, 3, ...), so the index of a segment is just the byte offset of each record.
A segment rolls over once it passes `segment_bytes`; the sealed segment's index is written beside it
(``<first counter>.idx``) so start-up need not rescan it. The active segment is rescanned on start:
every record's checksum is verified and a torn tail (a write cut short by a crash) is truncated.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import struct
import zlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from gateway.storage.durable import atomic_write, fsync_dir

log = logging.getLogger("edgeloop.kinesis.storage")

FRAME = struct.Struct("<II")
BODY = struct.Struct("<QqH")
HEADER_SIZE = FRAME.size + BODY.size
_IDX_HEAD = struct.Struct("<QQqq")  # record count, segment size, first arrival, last arrival

# (counter, arrival ms, partition key, data)
StoredRecord = tuple[int, int, str, bytes]


class StorageCorruption(Exception):
    """A record read back does not match its checksum."""


class SyncHandle:
    """What GroupSync flushes and fsyncs; harmless once the segment it wraps has been closed."""

    def __init__(self, writer: object, fallback_fd: int) -> None:
        self._writer = writer
        self._fallback_fd = fallback_fd
        self.closed = False

    def flush(self) -> None:
        if not self.closed:
            self._writer.flush()  # type: ignore[attr-defined]

    def fileno(self) -> int:
        return self._fallback_fd if self.closed else self._writer.fileno()  # type: ignore[attr-defined]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()  # type: ignore[attr-defined]


@dataclass
class Segment:
    """One segment file and its in-memory index."""

    path: Path
    first_counter: int
    offsets: array = field(default_factory=lambda: array("Q"))
    size: int = 0
    first_arrival: int = 0
    last_arrival: int = 0
    fd: int = -1
    handle: SyncHandle | None = None

    @property
    def count(self) -> int:
        return len(self.offsets)

    @property
    def last_counter(self) -> int:
        return self.first_counter + len(self.offsets) - 1

    def open_reader(self) -> None:
        if self.fd < 0:
            self.fd = os.open(self.path, os.O_RDONLY)


def _open_append(path: Path) -> object:
    """The buffered writer of an active segment (closed by `SyncHandle.close`)."""
    return open(path, "ab", buffering=1 << 20)


def _segment_name(first_counter: int) -> str:
    return f"{first_counter:020d}.seg"


class ShardLog:
    """The record log of one shard. Appends run on the event loop; `open`/`seal` are blocking."""

    def __init__(self, directory: Path, segment_bytes: int, fallback_fd: int) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.fallback_fd = fallback_fd
        self.segments: list[Segment] = []
        self._firsts: list[int] = []
        self.last_counter = 0  # highest counter appended
        self.last_arrival = 0
        self._retired: list[Segment] = []

    # ---- start-up -------------------------------------------------------------------------------

    def open(self) -> None:
        """Load the segments from disk, verifying and repairing the active one (blocking)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        paths = sorted(self.directory.glob("*.seg"))
        for i, path in enumerate(paths):
            segment = Segment(path, int(path.stem))
            is_last = i == len(paths) - 1
            if is_last or not self._load_index(segment):
                self._scan(segment)
                if not is_last and segment.count:
                    self.seal(segment)
            if segment.count == 0 and not is_last:
                path.unlink()
                path.with_suffix(".idx").unlink(missing_ok=True)
                continue
            segment.open_reader()
            self._add(segment)
        if self.segments:
            last = self.segments[-1]
            self.last_counter = last.last_counter if last.count else last.first_counter - 1
            self.last_arrival = max(s.last_arrival for s in self.segments)
            if last.size < self.segment_bytes:
                last.path.with_suffix(".idx").unlink(missing_ok=True)
                last.handle = SyncHandle(_open_append(last.path), self.fallback_fd)
                fsync_dir(self.directory)
                return
        self._start_segment(self.last_counter + 1)
        fsync_dir(self.directory)

    def _add(self, segment: Segment) -> None:
        self.segments.append(segment)
        self._firsts.append(segment.first_counter)

    def _load_index(self, segment: Segment) -> bool:
        idx = segment.path.with_suffix(".idx")
        try:
            raw = idx.read_bytes()
        except FileNotFoundError:
            return False
        if len(raw) < _IDX_HEAD.size + 4 or zlib.crc32(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
            return False
        count, size, first_arrival, last_arrival = _IDX_HEAD.unpack_from(raw)
        offsets = array("Q")
        offsets.frombytes(raw[_IDX_HEAD.size:-4])
        if len(offsets) != count or segment.path.stat().st_size != size:
            return False
        segment.offsets, segment.size = offsets, size
        segment.first_arrival, segment.last_arrival = first_arrival, last_arrival
        return True

    def _scan(self, segment: Segment) -> None:
        """Rebuild a segment's index from its frames; truncate at the first bad or torn frame."""
        raw = segment.path.read_bytes()
        pos, expected, end = 0, segment.first_counter, len(raw)
        offsets = array("Q")
        first_arrival = last_arrival = 0
        while pos + HEADER_SIZE <= end:
            length, crc = FRAME.unpack_from(raw, pos)
            body_start = pos + FRAME.size
            if length < BODY.size or body_start + length > end:
                break
            if zlib.crc32(raw[body_start:body_start + length]) != crc:
                break
            counter, arrival, _ = BODY.unpack_from(raw, body_start)
            if counter != expected:
                break
            offsets.append(pos)
            first_arrival = first_arrival or arrival
            last_arrival = arrival
            expected += 1
            pos = body_start + length
        if pos != end:
            log.warning("kinesis segment repaired path=%s kept_bytes=%d dropped_bytes=%d", segment.path, pos,
                        end - pos)
            with open(segment.path, "r+b") as f:
                f.truncate(pos)
                os.fsync(f.fileno())
        segment.offsets, segment.size = offsets, pos
        segment.first_arrival, segment.last_arrival = first_arrival, last_arrival

    def _start_segment(self, first_counter: int) -> Segment:
        segment = Segment(self.directory / _segment_name(first_counter), first_counter)
        segment.handle = SyncHandle(_open_append(segment.path), self.fallback_fd)
        segment.open_reader()
        self._add(segment)
        return segment

    # ---- writing ------------------------------------------------------------------------------

    def append(self, entries: list[tuple[bytes, bytes]], arrival_ms: int) -> tuple[int, int, SyncHandle]:
        """Append (partition key, data) entries; return the first counter, the arrival time used (never
        earlier than the previous one) and the handle to sync."""
        arrival_ms = max(arrival_ms, self.last_arrival)
        active = self.segments[-1]
        if active.size >= self.segment_bytes and active.count:
            active = self._roll()
        counter = first = self.last_counter + 1
        pos = active.size
        offsets = active.offsets
        parts: list[bytes] = []
        body_pack, frame_pack, crc32 = BODY.pack, FRAME.pack, zlib.crc32
        for pk, data in entries:
            body = body_pack(counter, arrival_ms, len(pk)) + pk + data
            parts.append(frame_pack(len(body), crc32(body)))
            parts.append(body)
            offsets.append(pos)
            pos += FRAME.size + len(body)
            counter += 1
        handle = active.handle
        assert handle is not None
        handle._writer.write(b"".join(parts))  # type: ignore[attr-defined]
        active.size = pos
        active.first_arrival = active.first_arrival or arrival_ms
        active.last_arrival = arrival_ms
        self.last_counter = counter - 1
        self.last_arrival = arrival_ms
        return first, arrival_ms, handle

    def _roll(self) -> Segment:
        old = self.segments[-1]
        self._retired.append(old)
        return self._start_segment(self.last_counter + 1)

    def take_retired(self) -> list[Segment]:
        """Segments rolled over since the last call: the caller syncs them, then calls `retire`."""
        retired, self._retired = self._retired, []
        return retired

    def retire(self, segment: Segment) -> None:
        """Close a rolled-over segment's writer and write its index (blocking; after its data was synced)."""
        if segment.handle is not None:
            segment.handle.flush()
            os.fsync(segment.handle.fileno())
            segment.handle.close()
        self.seal(segment)

    @staticmethod
    def seal(segment: Segment) -> None:
        """Write a sealed segment's index beside it (blocking)."""
        head = _IDX_HEAD.pack(segment.count, segment.size, segment.first_arrival, segment.last_arrival)
        payload = head + segment.offsets.tobytes()
        atomic_write(segment.path.with_suffix(".idx"), payload + zlib.crc32(payload).to_bytes(4, "little"))

    # ---- reading -------------------------------------------------------------------------------

    def _segment_for(self, counter: int) -> int:
        """Index of the segment holding `counter` (or the first one after it)."""
        return max(bisect.bisect_right(self._firsts, counter) - 1, 0)

    @property
    def first_counter(self) -> int:
        """The oldest counter still on disk (the trim horizon before retention filtering)."""
        for segment in self.segments:
            if segment.count:
                return segment.first_counter
        return self.last_counter + 1

    def estimate_bytes(self, counter: int, limit: int, upto: int) -> int:
        """Roughly how many bytes reading `limit` records from `counter` touches."""
        if counter > upto or not self.segments:
            return 0
        segment = self.segments[self._segment_for(counter)]
        start = max(counter - segment.first_counter, 0)
        end = min(start + limit, segment.count, upto - segment.first_counter + 1)
        if start >= segment.count or end <= start:
            return 0
        stop = segment.offsets[end] if end < segment.count else segment.size
        return stop - segment.offsets[start]

    def read(self, counter: int, limit: int, max_bytes: int, upto: int,
             min_arrival: int = 0) -> tuple[list[StoredRecord], int]:
        """Up to `limit` records from `counter` through `upto`, about `max_bytes` of data at most (at least one
        record), skipping records that arrived before `min_arrival`. Returns them and the next counter to read."""
        out: list[StoredRecord] = []
        total = 0
        segments = list(self.segments)
        ix = max(bisect.bisect_right([s.first_counter for s in segments], counter) - 1, 0)
        while ix < len(segments) and len(out) < limit and counter <= upto:
            segment = segments[ix]
            ix += 1
            if segment.count == 0 or segment.last_counter < counter:
                continue
            counter = max(counter, segment.first_counter)
            start = counter - segment.first_counter
            end = min(start + (limit - len(out)), segment.count, upto - segment.first_counter + 1)
            offsets, count, size = segment.offsets, segment.count, segment.size
            base = offsets[start]
            budget = max_bytes - total
            stop = offsets[end] if end < count else size
            over_budget = stop - base > budget
            if over_budget:  # the largest end whose byte span fits the budget (at least one record)
                lo, hi = start + 1, end
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    if (offsets[mid] if mid < count else size) - base <= budget:
                        lo = mid
                    else:
                        hi = mid - 1
                end = lo
                stop = offsets[end] if end < count else size
            _parse_into(os.pread(segment.fd, stop - base, base), out, min_arrival, segment.path)
            total += stop - base
            counter = segment.first_counter + end
            if over_budget or total >= max_bytes:
                break
        return out, max(counter, min(self.first_counter, upto + 1))

    def arrival_of(self, counter: int) -> int:
        """The arrival time of a stored record (ms)."""
        segment = self.segments[self._segment_for(counter)]
        offset = segment.offsets[counter - segment.first_counter]
        return BODY.unpack_from(os.pread(segment.fd, HEADER_SIZE, offset), FRAME.size)[1]

    def counter_at(self, timestamp_ms: int) -> int:
        """The first counter whose record arrived at or after `timestamp_ms` (last + 1 when none did)."""
        candidates = [s for s in self.segments if s.count and s.last_arrival >= timestamp_ms]
        if not candidates:
            return self.last_counter + 1
        segment = candidates[0]
        if segment.first_arrival >= timestamp_ms:
            return segment.first_counter
        lo, hi = segment.first_counter, segment.last_counter
        while lo < hi:
            mid = (lo + hi) // 2
            if self.arrival_of(mid) >= timestamp_ms:
                hi = mid
            else:
                lo = mid + 1
        return lo

    # ---- trimming and shutdown ----------------------------------------------------------------

    def expired_segments(self, cutoff_ms: int) -> list[Segment]:
        """Detach sealed segments whose newest record arrived before `cutoff_ms` (the caller deletes them)."""
        expired: list[Segment] = []
        while len(self.segments) > 1 and self.segments[0].count and self.segments[0].last_arrival < cutoff_ms:
            expired.append(self.segments.pop(0))
            self._firsts.pop(0)
        return expired

    def handles(self) -> list[SyncHandle]:
        return [s.handle for s in self.segments if s.handle is not None and not s.handle.closed]

    def close(self) -> None:
        """Flush, fsync and close every file (blocking)."""
        for segment in self.segments + self._retired:
            close_segment(segment)


def close_segment(segment: Segment) -> None:
    """Flush, fsync and close a segment's files (blocking)."""
    if segment.handle is not None and not segment.handle.closed:
        segment.handle.flush()
        os.fsync(segment.handle.fileno())
        segment.handle.close()
    if segment.fd >= 0:
        with contextlib.suppress(OSError):
            os.close(segment.fd)
        segment.fd = -1


def delete_segment(segment: Segment) -> None:
    """Close and remove an expired segment (blocking)."""
    close_segment(segment)
    segment.path.unlink(missing_ok=True)
    segment.path.with_suffix(".idx").unlink(missing_ok=True)


def _parse_into(raw: bytes, out: list[StoredRecord], min_arrival: int, path: Path) -> None:
    pos, end = 0, len(raw)
    unpack_frame, unpack_body, crc32 = FRAME.unpack_from, BODY.unpack_from, zlib.crc32
    view = memoryview(raw)
    while pos < end:
        length, crc = unpack_frame(raw, pos)
        body_start = pos + FRAME.size
        body_end = body_start + length
        if crc32(view[body_start:body_end]) != crc:
            raise StorageCorruption(f"record at byte {pos} of a read from {path} fails its checksum")
        counter, arrival, pk_len = unpack_body(raw, body_start)
        if arrival >= min_arrival:
            key_start = body_start + BODY.size
            out.append((counter, arrival, raw[key_start:key_start + pk_len].decode("utf-8"),
                        raw[key_start + pk_len:body_end]))
        pos = body_end
