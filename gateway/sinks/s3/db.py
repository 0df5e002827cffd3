"""The S3 index's SQLite file, served by a `SqliteCommitter`: concurrent writes share one transaction and fsync.

Each write is a function ``fn(conn, *args)`` run inside a savepoint, so one failing write (raising, e.g.,
NoSuchBucket) rolls back alone while the rest of its round commits. Reads run on the same thread outside any
transaction, so they always see committed state. Nothing touches SQLite on the event loop thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gateway.storage.sqlite import SqliteCommitter

T = TypeVar("T")


class Database:
    """A SQLite file with `schema`, served by one thread; `write` batches into group commits, `read` runs between."""

    def __init__(self, path: Path, schema: str, fsync_policy: str = "always", name: str = "db") -> None:
        self.path = path
        self._schema = schema
        self._committer = SqliteCommitter(path, fsync_policy, name, isolate_failures=True)

    @property
    def commits(self) -> int:
        return self._committer.commits

    async def open(self) -> None:
        """Start the database thread, connect and create the schema."""
        await self._committer.open(self._create_schema)

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        conn.executescript(self._schema)

    async def close(self) -> None:
        """Finish what is queued, close the file and stop the thread."""
        await self._committer.close()

    def read(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``fn(conn, *args)`` on the database thread, outside any transaction."""
        return self._committer.read(fn, *args)

    def write(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``fn(conn, *args)`` in the next group-committed transaction; resolves after the commit."""
        return self._committer.write(fn, *args)
