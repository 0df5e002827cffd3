"""The durable journal: routed QoS >= 1 messages, written before the broker acknowledges them.

Layout of ``<home>/journal/``:

- ``seg-<first seq, 20 digits>.log``: records framed as ``u32 length · u32 crc32(body) · body``;
- ``checkpoint``: ``{"seq": N}``, every record with ``seq <= N`` was dispatched (or dead-lettered);
- ``dead-letter.jsonl``: what could not be delivered and had no working errorAction.

Appends are queued in the newest segment's writer and written with one system call per commit (the
caller commits, then makes them durable with the shared GroupSync). Recovery reads every segment, keeps
records past the checkpoint, and truncates a torn tail (a short frame, a CRC mismatch or an undecodable
body) so that new appends follow the last good record. Segments that hold only checkpointed records are
deleted.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import struct
import threading
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
    """The open newest segment.

    Appends are framed and queued in memory; :meth:`commit` writes everything queued with one system call
    (the dispatcher commits once per fsync batch, or per message for the ``interval`` / ``never`` policies,
    before anything is acknowledged). Appends and commits run on the event loop thread only. The writer is
    handed to GroupSync, which calls ``flush()`` and fsyncs ``fileno()`` from a worker thread, possibly after
    the journal rolled over and closed it: the file is unbuffered (nothing to flush; committed data is in
    the kernel) and `fileno()` is a private duplicate descriptor that lives as long as this object."""

    def __init__(self, path: Path, first_seq: int) -> None:
        self.path = path
        self.first_seq = first_seq
        # Raw (unbuffered) file, so a commit is exactly one write(2).
        self.file: BinaryIO = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the segment is the newest
        self.size = os.fstat(self.file.fileno()).st_size  # committed + queued bytes
        self._committed = self.size
        self._queued: list[bytes] = []
        self._sync_fd = os.dup(self.file.fileno())
        weakref.finalize(self, os.close, self._sync_fd)

    def append(self, body: bytes) -> int:
        """Frame one record body and queue it for the next commit; returns the framed size."""
        self._queued += (FRAME.pack(len(body), zlib.crc32(body)), body)
        n = FRAME.size + len(body)
        self.size += n
        return n

    @property
    def queued(self) -> bool:
        return bool(self._queued)

    def commit(self) -> None:
        """Write every queued frame to the kernel, in one system call (short writes are continued).

        If the write fails (disk full, I/O error) the file is cut back to the last commit, so no partial frame
        sits between good records, and the error propagates: the records of this batch are not acknowledged.
        """
        queued = self._queued
        if not queued:
            return
        self._queued = []
        data = memoryview(b"".join(queued))
        try:
            while data:
                written = self.file.write(data)
                data = data[written or 0:]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.file.fileno(), self._committed)
            self.size = self._committed
            raise
        self._committed = self.size

    def flush(self) -> None:
        """GroupSync's hook (any thread): nothing is buffered in user space once committed."""

    def fileno(self) -> int:
        return self._sync_fd

    def close(self) -> None:
        """Commit what is queued and close the file (the duplicate descriptor stays valid for fsync)."""
        if not self.file.closed:
            self.commit()
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
        # One checkpoint write at a time: a cancelled checkpointer's thread may still be writing when the
        # final checkpoint of a shutdown starts (both use the same temporary file).
        self._checkpoint_lock = threading.Lock()
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
        """Queue one record in the newest segment; returns the writer, which the caller must `commit()`
        (then hand to GroupSync for durability) before anything depends on the record being written."""
        writer = self.writer
        if writer is None:
            raise JournalError("the journal is not open")
        if writer.size >= self.segment_bytes:
            writer = self._roll(record.seq)
        n = writer.append(record.encode())
        metrics = self.metrics
        metrics["journal_appended"] += 1
        metrics["journal_bytes"] += n
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
        """Record that every record up to `seq` was dispatched, then delete the segments it covers.
        Thread-safe; a checkpoint never moves back (an older `seq` arriving late is ignored)."""
        with self._checkpoint_lock:
            if seq <= self.checkpointed:
                return
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
            self.writer.commit()
            os.fsync(self.writer.fileno())
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
