"""SQLite on one dedicated thread, with group commit: concurrent writes share one transaction and one fsync.

Each write is a function ``fn(conn, *args)`` run inside a savepoint, so one failing write (raising, e.g.,
NoSuchBucket) rolls back alone while the rest of its batch commits. Reads run on the same thread, between
batches, so they always see committed state. Nothing touches SQLite on the event loop thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Op = Callable[..., Any]

# durability.fsync -> PRAGMA synchronous (WAL mode): FULL fsyncs the WAL on every commit.
_SYNCHRONOUS = {"always": "FULL", "interval": "NORMAL", "never": "OFF"}


class Database:
    """A SQLite file served by one thread; `write` batches, `read` queues behind pending batches."""

    def __init__(self, path: Path, schema: str, fsync_policy: str = "always", name: str = "db") -> None:
        self.path = path
        self._schema = schema
        self._synchronous = _SYNCHRONOUS[fsync_policy]
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[Op, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.commits = 0

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.executescript(self._schema)
        self._conn = conn

    async def close(self) -> None:
        if self._drainer is not None:
            await self._drainer
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, self._conn, *args)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in the next group-committed transaction; returns after the commit."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._pending.append((fn, args, fut))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                outcomes = await loop.run_in_executor(self._executor, self._run_batch, [(f, a) for f, a, _ in batch])
            except Exception as exc:  # the commit itself failed: nothing in the batch is durable
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.commits += 1
            for (_, _, fut), (ok, value) in zip(batch, outcomes, strict=True):
                if fut.done():
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)

    def _run_batch(self, batch: list[tuple[Op, tuple[Any, ...]]]) -> list[tuple[bool, Any]]:
        conn = self._conn
        assert conn is not None
        outcomes: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for fn, args in batch:
                conn.execute("SAVEPOINT op")
                try:
                    outcomes.append((True, fn(conn, *args)))
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    outcomes.append((False, exc))
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes
