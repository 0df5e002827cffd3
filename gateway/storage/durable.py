"""Group-commit fsync: many writers, one fsync per batch, off the event loop.

Writers append to their files themselves (buffered writes are cheap), then ``await syncer.sync(f)``.
Concurrent requests are coalesced: while one fsync batch runs on the syncer's own thread, new requests
queue up and are served by the next batch, so N concurrent acknowledgements cost about one fsync per
file. A dedicated thread fed by a queue costs less per batch than a hop through the default executor.

Policies (config ``durability.fsync``):
- ``always``: ``sync`` returns only after the data is on disk (the default; what "acknowledged" means).
- ``interval``: ``sync`` returns at once; a background task fsyncs dirty files every ``interval_ms``.
- ``never``: leave it to the OS (tests and benchmarks that measure something else).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from pathlib import Path
from typing import Protocol


class Flushable(Protocol):
    def flush(self) -> None: ...
    def fileno(self) -> int: ...


Batch = dict[int, tuple[Flushable, list[asyncio.Future[None]]]]  # by file descriptor: the file, its waiters


class GroupSync:
    """Coalesces fsync requests from many coroutines into batches run in a thread.

    One batch at a time is on the syncer's thread; requests arriving meanwhile wait for the next batch, which
    starts (policy "always") the moment the previous one is settled. The thread settles a batch's waiters with a
    single call back into the loop: no task, and no loop round-trip beyond that one, per batch.
    """

    def __init__(self, policy: str = "always", interval_ms: int = 50) -> None:
        if policy not in ("always", "interval", "never"):
            raise ValueError(f"fsync policy must be always, interval or never, not {policy!r}")
        self.policy = policy
        self.interval = interval_ms / 1000.0
        self._pending: Batch = {}
        self._in_flight: asyncio.Future[None] | None = None  # the batch on the thread, until it is settled
        self._ticker: asyncio.Task[None] | None = None
        self._jobs: queue.SimpleQueue[tuple[Batch, asyncio.AbstractEventLoop] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.fsyncs = 0

    async def sync(self, f: Flushable) -> None:
        """Make what was written to `f` durable according to the policy."""
        if self.policy == "never":
            f.flush()
            return
        loop = asyncio.get_running_loop()
        if self.policy == "interval":
            f.flush()
            self._pending.setdefault(f.fileno(), (f, []))
            if self._ticker is None or self._ticker.done():
                self._ticker = loop.create_task(self._tick())
            return
        fut: asyncio.Future[None] = loop.create_future()
        self._pending.setdefault(f.fileno(), (f, []))[1].append(fut)
        if self._in_flight is None:
            self._start(loop)
        await fut

    def _start(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """Hand every pending file to the syncer's thread (started on first use); returns the batch's future."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="groupsync", daemon=True)
            self._thread.start()
        batch, self._pending = self._pending, {}
        done = self._in_flight = loop.create_future()
        self._jobs.put((batch, loop))
        return done

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            batch, loop = job
            error: OSError | ValueError | None = None
            try:
                _flush_and_fsync([f for f, _ in batch.values()])
            except (OSError, ValueError) as exc:  # ValueError: a file was closed while its sync was pending
                error = exc
            loop.call_soon_threadsafe(self._settle, batch, error)

    def _settle(self, batch: Batch, error: OSError | ValueError | None) -> None:
        """On the loop: answer the batch's waiters, start the next batch if anyone is waiting for one."""
        done, self._in_flight = self._in_flight, None
        if error is None:
            self.batches += 1
            self.fsyncs += len(batch)
        for _, futs in batch.values():
            for fut in futs:
                if not fut.done():
                    if error is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(error)
        if self._pending and self.policy == "always":
            self._start(asyncio.get_running_loop())
        if done is not None and not done.done():
            done.set_result(None)

    async def _drain(self) -> None:
        """Wait for the batch in flight, then sync whatever is still pending."""
        while self._in_flight is not None:
            await asyncio.shield(self._in_flight)
        if self._pending:
            await self._start(asyncio.get_running_loop())

    async def _tick(self) -> None:
        while self._pending:
            await asyncio.sleep(self.interval)
            await self._drain()

    async def close(self) -> None:
        """Flush everything still pending (used on clean shutdown)."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self._drain()
        if self._thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None


def _flush_and_fsync(files: list[Flushable]) -> None:
    for f in files:
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path: str | Path) -> None:
    """fsync a directory so that a file created or renamed in it survives power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write `data` to `path` atomically (temp file + rename), fsynced when `durable`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


__all__ = ["GroupSync", "atomic_write", "fsync_dir"]
