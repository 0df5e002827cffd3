"""SQLite on one dedicated thread, with group commit: concurrent writes share one transaction and one fsync.

Each write is a function ``fn(conn, *args)`` run inside a savepoint, so one failing write (raising, e.g.,
NoSuchBucket) rolls back alone while the rest of its batch commits. Reads run on the same thread outside any
transaction, so they always see committed state. Nothing touches SQLite on the event loop thread.

The thread takes everything queued since its last round at once: the reads, then the writes as one transaction,
and hands all the results back to the event loop in one call. Under load a round serves many requests, so the
thread hand-offs (each costing tens of microseconds of CPU) are shared the way the fsync is.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Op = Callable[..., Any]

# durability.fsync -> PRAGMA synchronous (WAL mode): FULL fsyncs the WAL on every commit.
_SYNCHRONOUS = {"always": "FULL", "interval": "NORMAL", "never": "OFF"}


@dataclass
class _Request:
    fn: Op
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    write: bool


# (request, succeeded, its result or exception)
_Outcome = tuple[_Request, bool, Any]


class Database:
    """A SQLite file served by one thread; `write` batches into group commits, `read` runs between them."""

    def __init__(self, path: Path, schema: str, fsync_policy: str = "always", name: str = "db") -> None:
        self.path = path
        self._schema = schema
        self._synchronous = _SYNCHRONOUS[fsync_policy]
        self._name = name
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self.commits = 0

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
        self._thread.start()
        try:
            await self.read(self._open)
        except BaseException:
            await self.close()
            raise

    def _open(self, _: None) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.executescript(self._schema)
        self._conn = conn

    async def close(self) -> None:
        """Finish what is queued, close the file and stop the thread."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._requests.put(None)
        await asyncio.to_thread(self._thread.join)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on the database thread, outside any transaction."""
        return await self._submit(fn, args, write=False)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in the next group-committed transaction; returns after the commit."""
        return await self._submit(fn, args, write=True)

    def _submit(self, fn: Op, args: tuple[Any, ...], write: bool) -> asyncio.Future[Any]:
        if self._closed or self._loop is None:
            raise RuntimeError(f"the {self._name} database is not open")
        future = self._loop.create_future()
        self._requests.put(_Request(fn, args, future, write))
        return future

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
        for request in requests:
            if not request.write:
                try:
                    outcomes.append((request, True, request.fn(self._conn, *request.args)))
                except Exception as exc:
                    outcomes.append((request, False, exc))
        writes = [r for r in requests if r.write]
        if not writes:
            return outcomes, False
        try:
            written = self._run_batch(writes)
        except Exception as exc:  # the commit itself failed: nothing in the batch is durable
            return outcomes + [(request, False, exc) for request in writes], False
        return outcomes + written, any(ok for _, ok, _ in written)

    def _run_batch(self, batch: list[_Request]) -> list[_Outcome]:
        conn = self._conn
        assert conn is not None
        if len(batch) == 1:
            return [self._run_alone(conn, batch[0])]
        outcomes: list[_Outcome] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for request in batch:
                conn.execute("SAVEPOINT op")
                try:
                    outcomes.append((request, True, request.fn(conn, *request.args)))
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    outcomes.append((request, False, exc))
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes

    @staticmethod
    def _run_alone(conn: sqlite3.Connection, request: _Request) -> _Outcome:
        """A write with nothing to share its transaction with: no savepoint needed, a failure rolls it all back."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            value = request.fn(conn, *request.args)
        except Exception as exc:
            conn.execute("ROLLBACK")
            return request, False, exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return request, True, value

    # ---- back on the event loop -------------------------------------------------------------------------------

    def _deliver(self, outcomes: list[_Outcome], committed: bool) -> None:
        if committed:
            self.commits += 1
        for request, ok, value in outcomes:
            if request.future.done():  # the caller was cancelled
                continue
            if ok:
                request.future.set_result(value)
            else:
                request.future.set_exception(value)
