"""A delivery stream's durable buffer: records are appended to a segment file and fsynced (group commit)
before PutRecord is acknowledged; a segment is deleted only after its S3 object is written.

Segment files hold frames ``[u32 length][f64 arrival time][data]``. A torn final frame (a crash during an
append that was never acknowledged) is ignored on recovery. Open segment files are never closed explicitly:
GroupSync may still hold one for a pending fsync, and dropping the last reference closes it.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from gateway.storage.durable import GroupSync

_FRAME = struct.Struct(">Id")
_INLINE_WRITE = 64 * 1024


@dataclass
class Segment:
    """Records buffered together; delivered as one S3 object."""

    path: Path
    records: list[bytes] = field(default_factory=list)
    size: int = 0
    oldest: float = 0.0
    file: BinaryIO | None = None
    settings: Any = None  # the delivery stream's configuration when the segment was sealed

    def add(self, data: bytes, arrival: float) -> None:
        if not self.records:
            self.oldest = arrival
        self.records.append(data)
        self.size += len(data)


def encode(records: list[bytes], arrival: float) -> bytes:
    return b"".join(_FRAME.pack(len(r), arrival) + r for r in records)


def decode(blob: bytes) -> tuple[list[bytes], float]:
    """Records of a segment file and the oldest arrival time; stops at a torn final frame."""
    records: list[bytes] = []
    oldest = 0.0
    offset = 0
    while offset + _FRAME.size <= len(blob):
        length, arrival = _FRAME.unpack_from(blob, offset)
        start = offset + _FRAME.size
        if start + length > len(blob):
            break
        if not records:
            oldest = arrival
        records.append(blob[start:start + length])
        offset = start + length
    return records, oldest


class DurableBuffer:
    """Segment files under `directory` for one delivery stream."""

    def __init__(self, directory: Path, sync: GroupSync) -> None:
        self.directory = directory
        self.sync = sync
        self.current: Segment | None = None
        self._counter = itertools.count(1)
        self._opening = asyncio.Lock()

    def recover(self) -> list[Segment]:
        """Segments left by a previous run, oldest first (blocking: call in a thread)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        segments = []
        numbers = []
        for path in sorted(self.directory.glob("*.seg"), key=lambda p: int(p.stem)):
            numbers.append(int(path.stem))
            records, oldest = decode(path.read_bytes())
            if records:
                segment = Segment(path)
                segment.records, segment.size, segment.oldest = records, sum(map(len, records)), oldest
                segments.append(segment)
            else:
                path.unlink()
        self._counter = itertools.count(max(numbers, default=0) + 1)
        return segments

    async def append(self, records: list[bytes], arrival: float) -> Segment:
        """Append records to the current segment and make them durable; returns that segment."""
        async with self._opening:
            segment = self.current
            if segment is None:
                fresh = Segment(self.directory / f"{next(self._counter)}.seg")
                fresh.file = await asyncio.to_thread(open, fresh.path, "ab")
                segment = self.current = fresh
        f = segment.file
        assert f is not None
        for r in records:
            segment.add(r, arrival)
        frames = encode(records, arrival)
        if len(frames) > _INLINE_WRITE:
            await asyncio.to_thread(f.write, frames)
        else:
            f.write(frames)
        await self.sync.sync(f)
        return segment

    def seal(self) -> Segment | None:
        """Stop appending to the current segment; returns it (None when nothing is buffered)."""
        segment, self.current = self.current, None
        if segment is not None:
            segment.file = None
        return segment

    async def discard(self, segment: Segment) -> None:
        """Forget a delivered segment."""
        await asyncio.to_thread(_unlink, segment.path)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
