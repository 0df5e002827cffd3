"""The S3 index database on the shared SQLite committer: group commit, per-write rollback, a failed open
(reads, errors and shutdown are the committer's own tests: tests/test_storage_sqlite.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gateway.sinks.s3.db import Database
from tests.test_storage_sqlite import SCHEMA, get, put


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM kv").fetchone()[0])


async def test_concurrent_writes_share_commits(home: Path) -> None:
    db = Database(home / "t.db", SCHEMA, "always", "test-db")
    await db.open()
    try:
        keys = await asyncio.wait_for(asyncio.gather(*(db.write(put, f"k{i}", "v") for i in range(200))), 30)
        assert keys == [f"k{i}" for i in range(200)]
        assert await db.read(count) == 200
        assert 1 <= db.commits < 200  # writes queued while a commit ran went into a shared one
    finally:
        await db.close()


async def test_a_failing_write_rolls_back_alone(home: Path) -> None:
    db = Database(home / "t.db", SCHEMA, "never", "test-db")
    await db.open()
    try:
        await db.write(put, "taken", "first")

        def put_twice(conn: sqlite3.Connection, key: str) -> None:
            put(conn, key, "partial")  # undone with the savepoint when the second insert fails
            put(conn, "taken", "again")

        with pytest.raises(sqlite3.IntegrityError):  # alone in its transaction
            await db.write(put_twice, "alone")
        assert await db.read(get, "alone") is None
        outcomes = await asyncio.gather(db.write(put, "a", "1"), db.write(put_twice, "b"), db.write(put, "c", "3"),
                                        return_exceptions=True)
        assert outcomes[0] == "a" and outcomes[2] == "c"
        assert isinstance(outcomes[1], sqlite3.IntegrityError)
        assert [await db.read(get, k) for k in ("a", "b", "c", "taken")] == ["1", None, "3", "first"]
    finally:
        await db.close()


async def test_open_failure_is_reported_and_stops_the_thread(home: Path) -> None:
    db = Database(home / "missing-dir" / "t.db", SCHEMA, "always", "test-db")
    with pytest.raises(sqlite3.OperationalError):
        await asyncio.wait_for(db.open(), 30)
    with pytest.raises(RuntimeError, match="not open"):
        await db.read(count)
