"""The durable journal: routed QoS >= 1 messages, written before the broker acknowledges them.

Layout of ``<home>/journal/``:

- ``seg-<first seq, 20 digits>.log``: records framed as ``u32 length · u32 crc32(body) · body``;
- ``checkpoint``: ``{"seq": N}``, every record with ``seq <= N`` was dispatched (or dead-lettered);
- ``dead-letter.jsonl``: what could not be delivered and had no working errorAction.

Appends go to the newest segment (buffered write; the caller makes them durable with the shared
GroupSync). Recovery reads every segment, keeps records past the checkpoint, and truncates a torn tail
(a short frame, a CRC mismatch or an undecodable body) so that new appends follow the last good record.
Segments that hold only checkpointed records are deleted.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import struct
import weakref
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from gateway.dispatcher.errors import JournalError
from gateway.dispatcher.record import JournalRecord, RecordDecodeError
from gateway.storage.durable import atomic_write, fsync_dir

log = logging.getLogger("edgeloop.dispatcher")

FRAME = struct.Struct("<II")
MAX_RECORD_BYTES = 64 * 1024 * 1024
SEGMENT_PREFIX = "seg-"
SEGMENT_SUFFIX = ".log"
CHECKPOINT_FILE = "checkpoint"
DEAD_LETTER_FILE = "dead-letter.jsonl"


def frame(body: bytes) -> bytes:
    """One framed record."""
    return FRAME.pack(len(body), zlib.crc32(body)) + body


def read_frames(data: bytes) -> tuple[list[bytes], int]:
    """The complete, CRC-valid record bodies at the start of `data` and the offset where they end."""
    bodies: list[bytes] = []
    pos = 0
    end = len(data)
    while pos + FRAME.size <= end:
        length, crc = FRAME.unpack_from(data, pos)
        start = pos + FRAME.size
        if length > MAX_RECORD_BYTES or start + length > end:
            break
        body = data[start:start + length]
        if zlib.crc32(body) != crc:
            break
        bodies.append(body)
        pos = start + length
    return bodies, pos


def segment_name(first_seq: int) -> str:
    return f"{SEGMENT_PREFIX}{first_seq:020d}{SEGMENT_SUFFIX}"


class SegmentWriter:
    """The open newest segment. Handed to GroupSync, which may flush and fsync it from a worker thread
    even after the journal rolled over and closed it: `fileno()` is a private duplicate descriptor that
    lives as long as this object, and `flush()` after close is a no-op."""

    def __init__(self, path: Path, first_seq: int) -> None:
        self.path = path
        self.first_seq = first_seq
        self.file: BinaryIO = open(path, "ab")  # noqa: SIM115 - lives as long as the segment is the newest
        self.size = self.file.tell()
        self._sync_fd = os.dup(self.file.fileno())
        weakref.finalize(self, os.close, self._sync_fd)

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.size += len(data)

    def flush(self) -> None:
        with contextlib.suppress(ValueError):  # closed after a roll-over: its data was flushed at close
            self.file.flush()

    def fileno(self) -> int:
        return self._sync_fd

    def close(self) -> None:
        self.file.close()


@dataclass
class Recovery:
    """What `Journal.open()` found."""

    pending: list[JournalRecord] = field(default_factory=list)
    checkpoint: int = 0
    records: int = 0
    torn_bytes: int = 0
    segments: int = 0


class Journal:
    """Append-only segments plus a checkpoint. Not thread-safe: appends run on the event loop; only
    `write_checkpoint` / `delete_covered` may run in a worker thread (they touch other files)."""

    def __init__(self, directory: Path, segment_bytes: int = 16 * 1024 * 1024) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.next_seq = 1
        self.checkpointed = 0
        self.writer: SegmentWriter | None = None
        self._segments: list[tuple[int, Path]] = []  # (first seq, path), oldest first; the last is `writer`
        self.metrics: dict[str, int] = {"journal_appended": 0, "journal_bytes": 0, "journal_segments_deleted": 0,
                                        "journal_torn_bytes": 0, "journal_recovered": 0}

    # -- opening and recovery ------------------------------------------------------------------

    def open(self) -> Recovery:
        """Recover: read the checkpoint and the segments, truncate torn tails, open a fresh segment."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"cannot create the journal directory {self.directory}: {exc}") from exc
        recovery = Recovery(checkpoint=self._read_checkpoint())
        last_seq = recovery.checkpoint
        for first, path in self._list_segments():
            recovery.segments += 1
            data = path.read_bytes()
            bodies, good = read_frames(data)
            records: list[JournalRecord] = []
            for i, body in enumerate(bodies):
                try:
                    records.append(JournalRecord.decode(body))
                except RecordDecodeError as exc:
                    log.warning("event=journal_bad_record segment=%s error=%s", path.name, exc)
                    good = sum(FRAME.size + len(b) for b in bodies[:i])
                    break
            if good < len(data):
                recovery.torn_bytes += len(data) - good
                log.warning("event=journal_torn_tail segment=%s kept_bytes=%d dropped_bytes=%d", path.name, good,
                            len(data) - good)
                with open(path, "r+b") as f:
                    f.truncate(good)
                    f.flush()
                    os.fsync(f.fileno())
            for record in records:
                recovery.records += 1
                last_seq = max(last_seq, record.seq)
                if record.seq > recovery.checkpoint:
                    recovery.pending.append(record)
            self._segments.append((first, path))
        self.checkpointed = recovery.checkpoint
        self.next_seq = last_seq + 1
        self.metrics["journal_torn_bytes"] += recovery.torn_bytes
        self.metrics["journal_recovered"] = len(recovery.pending)
        self._roll()
        self.delete_covered(self.checkpointed)
        return recovery

    def _read_checkpoint(self) -> int:
        path = self.directory / CHECKPOINT_FILE
        try:
            return int(json.loads(path.read_text())["seq"])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError) as exc:
            # A checkpoint is written atomically, so this is damage: replaying everything is the safe side.
            log.warning("event=journal_bad_checkpoint path=%s error=%s; replaying every segment", path, exc)
            return 0

    def _list_segments(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"):
            digits = path.name[len(SEGMENT_PREFIX):-len(SEGMENT_SUFFIX)]
            if digits.isdigit():
                found.append((int(digits), path))
        return sorted(found)

    # -- appending -----------------------------------------------------------------------------

    def allocate(self) -> int:
        """The next sequence number."""
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def append(self, record: JournalRecord) -> SegmentWriter:
        """Write one record (buffered); returns the writer to pass to GroupSync for durability."""
        writer = self.writer
        if writer is None:
            raise JournalError("the journal is not open")
        if writer.size >= self.segment_bytes:
            writer = self._roll(record.seq)
        data = frame(record.encode())
        writer.write(data)
        self.metrics["journal_appended"] += 1
        self.metrics["journal_bytes"] += len(data)
        return writer

    def _roll(self, first_seq: int | None = None) -> SegmentWriter:
        first = self.next_seq if first_seq is None else first_seq
        old = self.writer
        if old is not None:
            old.close()
        if self._segments and self._segments[-1][0] == first:
            path = self._segments[-1][1]  # an empty newest segment left by the previous run: reuse it
        else:
            path = self.directory / segment_name(first)
            self._segments.append((first, path))
        self.writer = SegmentWriter(path, first)
        fsync_dir(self.directory)
        return self.writer

    # -- checkpointing (worker thread) -----------------------------------------------------------

    def write_checkpoint(self, seq: int) -> None:
        """Record that every record up to `seq` was dispatched, then delete the segments it covers."""
        atomic_write(self.directory / CHECKPOINT_FILE, json.dumps({"seq": seq}).encode())
        self.checkpointed = seq
        self.delete_covered(seq)

    def delete_covered(self, seq: int) -> None:
        """Delete every segment (but the newest) whose records all have ``seq <= seq``."""
        segments = list(self._segments)
        deleted = 0
        for (_, path), (next_first, _) in itertools.pairwise(segments):
            if next_first - 1 > seq:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            deleted += 1
        if deleted:
            del self._segments[:deleted]
            self.metrics["journal_segments_deleted"] += deleted
            fsync_dir(self.directory)

    def segment_paths(self) -> list[Path]:
        return [p for _, p in self._segments]

    def close(self) -> None:
        """Flush and fsync the newest segment, then close it (clean shutdown)."""
        if self.writer is not None:
            self.writer.file.flush()
            os.fsync(self.writer.file.fileno())
            self.writer.close()
            self.writer = None

    # -- dead letters --------------------------------------------------------------------------

    def dead_letter(self, entry: dict[str, Any]) -> None:
        """Append one undeliverable message (JSON line, fsynced) to ``dead-letter.jsonl``."""
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with open(self.directory / DEAD_LETTER_FILE, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def iter_dead_letters(directory: Path) -> Iterator[dict[str, Any]]:
    """The dead-letter entries, oldest first."""
    path = directory / DEAD_LETTER_FILE
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)
