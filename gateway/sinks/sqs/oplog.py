"""A queue's append-only operation log with snapshot compaction.

Files are ``ops.<generation>.log``. Each line is ``<crc32 hex8><json>\\n``; a generation starts with a
snapshot (the live state as records) closed by a ``{"o": "Z"}`` marker, followed by operations appended
since. Recovery reads the newest generation whose snapshot is complete and stops at the first torn or
corrupt line (the tail a crash left half-written), truncating it away. Compaction writes the next
generation off the event loop while new commits wait, then removes the old file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gateway.awsapi.jsonenc import compact_encoder
from gateway.storage.durable import GroupSync, fsync_dir

log = logging.getLogger("edgeloop.sqs")

SNAPSHOT_END = {"o": "Z"}
_to_json = compact_encoder(ensure_ascii=False)
_FILE = re.compile(r"^ops\.(\d+)\.log$")


def encode(record: dict[str, Any]) -> bytes:
    return encode_json(_to_json(record))


def encode_json(text: str) -> bytes:
    """The log line of a record already in (compact) JSON text."""
    payload = text.encode("utf-8")
    return b"%08x" % zlib.crc32(payload) + payload + b"\n"


def decode_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """The intact records of a log file and the byte length they cover (a torn tail is excluded)."""
    records: list[dict[str, Any]] = []
    good = 0
    while good < len(data):
        end = data.find(b"\n", good)
        if end < 0:
            break
        line = data[good:end]
        if len(line) < 8 or b"%08x" % zlib.crc32(line[8:]) != line[:8]:
            break
        records.append(json.loads(line[8:]))
        good = end + 1
    return records, good


def _generations(directory: Path) -> list[int]:
    found = [int(m.group(1)) for p in directory.iterdir() if (m := _FILE.match(p.name))]
    return sorted(found, reverse=True)


def _load(directory: Path) -> tuple[int, list[dict[str, Any]]]:
    """Pick the newest complete generation, drop incomplete newer ones, truncate a torn tail."""
    for generation in _generations(directory):
        path = directory / f"ops.{generation}.log"
        records, good = decode_lines(path.read_bytes())
        if SNAPSHOT_END not in records:
            log.warning("sqs log %s has no complete snapshot (crash during compaction); using an older one", path)
            path.unlink()
            continue
        if good != path.stat().st_size:
            log.warning("sqs log %s: dropping a torn tail at byte %d", path, good)
            with open(path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        for older in _generations(directory):
            if older < generation:
                (directory / f"ops.{older}.log").unlink()
        return generation, records
    return 0, []


def write_all(f: Any, data: bytes) -> None:
    """Unbuffered writes may be short; keep writing until every byte is in the file."""
    view = memoryview(data)
    while view:
        view = view[f.write(view):]


def _write_generation(path: Path, data: bytes) -> Any:
    f = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open as the log's append handle
    try:
        write_all(f, data)
        os.fsync(f.fileno())
        fsync_dir(path.parent)
    except BaseException:
        f.close()
        raise
    return f


class OpLog:
    """Append records, then `await commit()`: durable per the GroupSync policy when it returns."""

    def __init__(self, directory: Path, sync: GroupSync) -> None:
        self.directory = directory
        self._sync = sync
        self._generation = 0
        self._file: Any = None
        self._pending: list[bytes] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._inflight = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self.records_since_snapshot = 0

    async def open(self) -> list[dict[str, Any]]:
        """Recover: return the records to replay (snapshot then operations, marker removed)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._generation, records = await asyncio.to_thread(_load, self.directory)
        if self._generation == 0:
            self._generation = 1
            self._file = await asyncio.to_thread(_write_generation, self._path(1), encode(SNAPSHOT_END))
            return []
        self._file = await asyncio.to_thread(open, self._path(self._generation), "ab", buffering=0)
        marker = records.index(SNAPSHOT_END)
        self.records_since_snapshot = len(records) - marker - 1
        return records[:marker] + records[marker + 1:]

    def _path(self, generation: int) -> Path:
        return self.directory / f"ops.{generation}.log"

    def append(self, record: dict[str, Any]) -> None:
        self._pending.append(encode(record))
        self.records_since_snapshot += 1

    def append_json(self, text: str) -> None:
        """Append a record given as its JSON text (hot paths format their fixed-shape records themselves)."""
        self._pending.append(encode_json(text))
        self.records_since_snapshot += 1

    async def commit(self) -> None:
        """Write what was appended and wait until it is durable."""
        while not self._idle.is_set():
            await self._idle.wait()
        self._inflight += 1
        self._drained.clear()
        try:
            if self._pending:
                data, self._pending = b"".join(self._pending), []
                write_all(self._file, data)
            await self._sync.sync(self._file)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._drained.set()

    async def compact(self, snapshot: Iterable[dict[str, Any]]) -> None:
        """Start a new generation holding `snapshot` (the live state right now); drop the old one."""
        if not self._idle.is_set():
            return
        self._idle.clear()
        try:
            data = b"".join(encode(r) for r in snapshot) + encode(SNAPSHOT_END)
            old_file, old_path = self._file, self._path(self._generation)
            if self._pending:  # appended before the snapshot was taken: covered by it, but make them durable
                write_all(old_file, b"".join(self._pending))
                self._pending = []
            new_file = await asyncio.to_thread(_write_generation, self._path(self._generation + 1), data)
            self._generation += 1
            self._file = new_file
            self.records_since_snapshot = 0
            await self._drained.wait()  # commits still syncing the old file finish first
            await asyncio.to_thread(_retire, old_file, old_path)
        finally:
            self._idle.set()

    async def close(self) -> None:
        if self._file is None:
            return
        await self.commit()
        await asyncio.to_thread(self._file.close)
        self._file = None


def _retire(f: Any, path: Path) -> None:
    f.close()
    path.unlink(missing_ok=True)
