"""Object bodies: small ones inline (kept in the index), large ones as files, streamed and never held whole.

A body is first spooled: chunks are hashed as they arrive; once it outgrows `inline_max` it continues into a
temp file (written and hashed off the event loop). `publish` then fsyncs the file (group commit), renames it
into ``data/<xx>/<name>`` and fsyncs that directory, so a file is either absent or whole after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gateway.sinks.s3.checksums import Digests
from gateway.sinks.s3.errors import entity_too_large
from gateway.storage.durable import GroupSync

CHUNK = 1024 * 1024
Body = bytes | bytearray | memoryview | AsyncIterator[bytes]


@dataclass
class Spooled:
    """A received body: `data` when small, else a fsynced temp file at `temp`."""

    digests: Digests
    data: bytes | None = None
    temp: Path | None = None

    @property
    def size(self) -> int:
        return self.digests.size


class _DirHandle:
    """A directory fd shaped like a file, so GroupSync can batch directory fsyncs too."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)

    def flush(self) -> None:
        return None

    def fileno(self) -> int:
        return self.fd


async def _chunks_of(data: bytes) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), CHUNK):
        yield bytes(view[start:start + CHUNK])


def _write_hashed(f: BinaryIO, digests: Digests, data: bytes) -> None:
    digests.update(data)
    f.write(data)


class BlobStore:
    """Files under `root`: ``data/`` (published bodies) and ``tmp/`` (bodies being received)."""

    def __init__(self, root: Path, sync: GroupSync, inline_max: int) -> None:
        self.root = root
        self.data = root / "data"
        self.tmp = root / "tmp"
        self.sync = sync
        self.inline_max = inline_max
        self._dirs: dict[str, _DirHandle] = {}

    def prepare(self) -> None:
        """Create the layout and drop bodies of interrupted uploads (blocking: call in a thread)."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        for i in range(256):
            (self.data / f"{i:02x}").mkdir(parents=True, exist_ok=True)

    def sweep(self, referenced: set[str]) -> int:
        """Delete published files no index row refers to (a crash between rename and commit). Blocking."""
        removed = 0
        for sub in self.data.iterdir():
            for f in sub.iterdir():
                if f"{sub.name}/{f.name}" not in referenced:
                    f.unlink(missing_ok=True)
                    removed += 1
        return removed

    def close(self) -> None:
        for handle in self._dirs.values():
            os.close(handle.fd)
        self._dirs.clear()

    async def spool(self, source: Body, algorithms: Iterable[str] = (), max_size: int = 5 * 1024**3) -> Spooled:
        """Receive a body: hash it, keep it in memory up to `inline_max`, else stream it to a durable temp file."""
        digests = Digests(tuple(algorithms))
        if isinstance(source, bytes | bytearray | memoryview):
            data = bytes(source)
            if len(data) > max_size:
                raise entity_too_large(len(data), max_size)
            if len(data) <= self.inline_max:
                digests.update(data)
                return Spooled(digests, data=data)
            source = _chunks_of(data)
        buf = bytearray()
        f: BinaryIO | None = None
        path: Path | None = None
        try:
            async for chunk in source:
                buf += chunk
                if digests.size + len(buf) > max_size:
                    raise entity_too_large(digests.size + len(buf), max_size)
                if f is None and len(buf) > self.inline_max:
                    path = self.tmp / uuid.uuid4().hex
                    f = await asyncio.to_thread(open, path, "wb")
                if f is not None and len(buf) >= CHUNK:
                    await asyncio.to_thread(_write_hashed, f, digests, bytes(buf))
                    buf.clear()
            if f is None:
                digests.update(bytes(buf))
                return Spooled(digests, data=bytes(buf))
            if buf:
                await asyncio.to_thread(_write_hashed, f, digests, bytes(buf))
            await self.sync.sync(f)
            await asyncio.to_thread(f.close)
            return Spooled(digests, temp=path)
        except BaseException:
            if f is not None:
                f.close()
            if path is not None:
                path.unlink(missing_ok=True)
            raise

    async def write_temp(self, data: bytes) -> Path:
        """Write a small body to a fsynced temp file (parts are always files)."""
        path = self.tmp / uuid.uuid4().hex
        f = await asyncio.to_thread(open, path, "wb")
        try:
            await asyncio.to_thread(f.write, data)
            await self.sync.sync(f)
        finally:
            f.close()
        return path

    async def publish(self, temp: Path) -> str:
        """Move a fsynced temp file into ``data/`` durably; returns its name relative to ``data/``."""
        name = uuid.uuid4().hex
        sub = name[:2]
        await asyncio.to_thread(os.replace, temp, self.data / sub / name)
        if self.sync.policy != "never":
            handle = self._dirs.get(sub)
            if handle is None:
                handle = self._dirs[sub] = _DirHandle(self.data / sub)
            await self.sync.sync(handle)
        return f"{sub}/{name}"

    async def concat(self, names: list[str]) -> Path:
        """Join published files into one fsynced temp file (completing a multipart upload)."""
        path = self.tmp / uuid.uuid4().hex

        def join() -> BinaryIO:
            out = open(path, "wb")  # noqa: SIM115 - handed back to the caller for fsync
            for name in names:
                with open(self.data / name, "rb") as part:
                    shutil.copyfileobj(part, out, CHUNK)
            return out

        try:
            out = await asyncio.to_thread(join)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        try:
            await self.sync.sync(out)
        finally:
            out.close()
        return path

    def open_blocking(self, name: str) -> BinaryIO:
        """Open a published file (blocking: the engine calls it on the index thread, see `S3Engine.get_object`)."""
        return open(self.data / name, "rb")  # closed by `read`, or by the engine's `release`

    async def read(self, name: str, start: int, end: int, handle: BinaryIO | None = None) -> AsyncIterator[bytes]:
        """Yield bytes ``start..end`` (inclusive) of a published file (or of `handle`), read off the event loop."""
        f = handle if handle is not None else await asyncio.to_thread(open, self.data / name, "rb")
        try:
            await asyncio.to_thread(f.seek, start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = await asyncio.to_thread(f.read, min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            f.close()

    async def remove(self, names: Iterable[str]) -> None:
        """Delete published files (after the index stopped referring to them)."""
        paths = [self.data / n for n in names]
        if paths:
            await asyncio.to_thread(_unlink_all, paths)

    async def discard(self, temp: Path | None) -> None:
        if temp is not None:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(temp.unlink)


def _unlink_all(paths: list[Path]) -> None:
    for p in paths:
        p.unlink(missing_ok=True)
