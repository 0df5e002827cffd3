"""Group commit for SQLite: one connection on one dedicated thread, concurrent writes share one transaction.

The event loop submits writes (``fn(conn, *args)``) and reads; the thread takes everything queued since its last
round at once, runs the reads outside any transaction (they see committed state), then the writes as one
transaction, commits (WAL; ``synchronous`` from the fsync policy: ``always`` -> FULL, so the commit is on disk),
and settles the whole round's futures with a single call back into the loop. A write's future resolves only
after the commit that carries it. Under load one round serves many requests, so the fsync and the thread
hand-offs are shared.

A write that raises fails according to ``isolate_failures``: True -> it ran in its own savepoint and rolls back
alone while the rest of its round commits; False -> the whole round rolls back and every write in it gets the
error (for stores whose writes depend on each other). If the commit itself fails, every write of the round fails.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("edgeloop.storage")

T = TypeVar("T")
Op = Callable[..., Any]

# durability.fsync -> PRAGMA synchronous (WAL mode): FULL fsyncs the WAL on every commit.
SYNCHRONOUS = {"always": "FULL", "interval": "NORMAL", "never": "OFF"}


@dataclass(slots=True)
class _Request:
    fn: Op
    args: tuple[Any, ...]
    future: asyncio.Future[Any] | None  # None: nobody waits (a failure is logged)
    write: bool


_Outcome = tuple[_Request, bool, Any]  # (request, succeeded, its result or exception)


class SqliteCommitter:
    """A SQLite file served by one thread: `write` batches into group commits, `read` runs between them."""

    def __init__(self, path: Path, fsync_policy: str = "always", name: str = "sqlite",
                 isolate_failures: bool = True) -> None:
        if fsync_policy not in SYNCHRONOUS:
            raise ValueError(f"fsync policy must be one of {', '.join(SYNCHRONOUS)}, not {fsync_policy!r}")
        self.path = Path(path)
        self.name = name
        self.isolate_failures = isolate_failures
        self._synchronous = SYNCHRONOUS[fsync_policy]
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self.commits = 0

    async def open(self, setup: Callable[[sqlite3.Connection], T]) -> T:
        """Start the thread, connect (WAL, the policy's ``synchronous``) and return ``setup(conn)``, which runs
        on the thread (schema, loading state). On failure the thread is stopped and the error raised."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
        self._thread.start()
        try:
            return await self.read(self._connect, setup)
        except BaseException:
            await self.close()
            raise

    def _connect(self, _: None, setup: Callable[[sqlite3.Connection], T]) -> T:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            result = setup(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return result

    async def close(self) -> None:
        """Finish (and commit) everything queued, close the file and stop the thread."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._requests.put(None)
        await asyncio.to_thread(self._thread.join)

    def read(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``fn(conn, *args)`` on the database thread, outside any transaction."""
        future: asyncio.Future[T] = self._open_loop().create_future()
        self._requests.put(_Request(fn, args, future, write=False))
        return future

    def write(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``fn(conn, *args)`` in the next group-committed transaction; resolves after that commit."""
        future: asyncio.Future[T] = self._open_loop().create_future()
        self._requests.put(_Request(fn, args, future, write=True))
        return future

    def write_nowait(self, fn: Op, *args: Any) -> None:
        """Queue a write like `write` without a future: for callers that do not wait for durability."""
        self._open_loop()
        self._requests.put(_Request(fn, args, None, write=True))

    def _open_loop(self) -> asyncio.AbstractEventLoop:
        if self._closed or self._loop is None:
            raise RuntimeError(f"the {self.name} database is not open")
        return self._loop

    # ---- the database thread ----------------------------------------------------------------------------------

    def _serve(self) -> None:
        loop = self._loop
        assert loop is not None
        stop = False
        while not stop:
            requests, stop = self._next_round()
            if not requests:
                continue
            outcomes, committed = self._run_round(requests)
            try:
                loop.call_soon_threadsafe(self._deliver, outcomes, committed)
            except RuntimeError:  # the event loop is closed: nobody is waiting any more
                break
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _next_round(self) -> tuple[list[_Request], bool]:
        """Wait for a request, then take every one already queued; True once `close` asked the thread to stop."""
        requests: list[_Request] = []
        item = self._requests.get()
        while item is not None:
            requests.append(item)
            try:
                item = self._requests.get_nowait()
            except queue.Empty:
                return requests, False
        return requests, True

    def _run_round(self, requests: list[_Request]) -> tuple[list[_Outcome], bool]:
        outcomes: list[_Outcome] = []
        writes: list[_Request] = []
        for request in requests:
            if request.write:
                writes.append(request)
                continue
            try:
                outcomes.append((request, True, request.fn(self._conn, *request.args)))
            except Exception as exc:
                outcomes.append((request, False, exc))
        if not writes:
            return outcomes, False
        try:
            written = self._run_writes(writes)
        except Exception as exc:  # the commit itself failed: nothing in the round is durable
            return outcomes + [(request, False, exc) for request in writes], False
        return outcomes + written, any(ok for _, ok, _ in written)

    def _run_writes(self, writes: list[_Request]) -> list[_Outcome]:
        """One transaction for the round's writes; savepoints only when a failure must stay isolated among others."""
        conn = self._conn
        if conn is None:
            raise sqlite3.ProgrammingError(f"the {self.name} database is not open")
        savepoints = self.isolate_failures and len(writes) > 1
        outcomes: list[_Outcome] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for request in writes:
                if savepoints:
                    conn.execute("SAVEPOINT op")
                try:
                    value = request.fn(conn, *request.args)
                except Exception as exc:
                    if not savepoints:  # alone in the round, or the round stands or falls together
                        conn.execute("ROLLBACK")
                        return [(r, False, exc) for r in writes]
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((request, False, exc))
                    continue
                if savepoints:
                    conn.execute("RELEASE op")
                outcomes.append((request, True, value))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes

    # ---- back on the event loop -------------------------------------------------------------------------------

    def _deliver(self, outcomes: list[_Outcome], committed: bool) -> None:
        if committed:
            self.commits += 1
        for request, ok, value in outcomes:
            future = request.future
            if future is None:
                if not ok:
                    log.error("event=sqlite_write_failed db=%s error=%r", self.name, value)
            elif future.done():  # the caller cancelled it
                continue
            elif ok:
                future.set_result(value)
            else:
                future.set_exception(value)


__all__ = ["SYNCHRONOUS", "SqliteCommitter"]
