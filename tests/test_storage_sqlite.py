"""SqliteCommitter: rounds group writes into one transaction, failure isolation, reads, close, settings."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from gateway.storage.sqlite import SqliteCommitter

SCHEMA = "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL);"
TIMEOUT = 30


def create(conn: sqlite3.Connection) -> str:
    conn.executescript(SCHEMA)
    return "ready"


def put(conn: sqlite3.Connection, key: str, value: str) -> str:
    conn.execute("INSERT INTO kv VALUES (?, ?)", (key, value))
    return key


def get(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def keys(conn: sqlite3.Connection) -> list[str]:
    return [str(k) for (k,) in conn.execute("SELECT k FROM kv ORDER BY k")]


def put_then_collide(conn: sqlite3.Connection, key: str) -> None:
    put(conn, key, "partial")
    put(conn, "taken", "again")  # IntegrityError: "taken" exists


async def opened(path: Path, policy: str = "never", isolate: bool = True) -> SqliteCommitter:
    db = SqliteCommitter(path, policy, "test-sqlite", isolate_failures=isolate)
    assert await asyncio.wait_for(db.open(create), TIMEOUT) == "ready"
    return db


async def held_round(db: SqliteCommitter) -> tuple[threading.Event, asyncio.Future[None]]:
    """Occupy the database thread with a read until the returned event is set, so later requests queue up."""
    release, started = threading.Event(), threading.Event()

    def wait(_: sqlite3.Connection) -> None:
        started.set()
        if not release.wait(TIMEOUT):
            raise TimeoutError("the test never released the database thread")

    blocker = db.read(wait)
    assert await asyncio.to_thread(started.wait, TIMEOUT)
    return release, blocker


async def one_round(db: SqliteCommitter, *writes: tuple[Any, ...]) -> list[Any]:
    """Submit `writes` ((fn, *args) each) so that the thread takes them in one round; their results or errors."""
    release, blocker = await held_round(db)
    futures: list[asyncio.Future[Any]] = [db.write(*w) for w in writes]
    release.set()
    await blocker
    return await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), TIMEOUT)


async def test_writes_queued_during_a_round_share_the_next_transaction(home: Path) -> None:
    db = await opened(home / "t.db", "always")
    try:
        release, blocker = await held_round(db)
        writes = [db.write(put, f"k{i:02}", "v") for i in range(50)]
        release.set()
        await asyncio.wait_for(blocker, TIMEOUT)
        assert await asyncio.wait_for(asyncio.gather(*writes), TIMEOUT) == [f"k{i:02}" for i in range(50)]
        assert db.commits == 1, "fifty writes queued together must cost one commit"
        assert len(await db.read(keys)) == 50
    finally:
        await db.close()


async def test_isolated_failure_rolls_back_only_the_failing_write(home: Path) -> None:
    db = await opened(home / "t.db", isolate=True)
    try:
        await db.write(put, "taken", "first")
        with pytest.raises(sqlite3.IntegrityError):  # alone in its round
            await db.write(put_then_collide, "alone")
        outcomes = await one_round(db, (put, "a", "1"), (put_then_collide, "b"), (put, "c", "3"))
        assert outcomes[0] == "a" and outcomes[2] == "c"
        assert isinstance(outcomes[1], sqlite3.IntegrityError)
        assert await db.read(keys) == ["a", "c", "taken"]
    finally:
        await db.close()


async def test_atomic_rounds_fail_every_write_of_the_round(home: Path) -> None:
    db = await opened(home / "t.db", isolate=False)
    try:
        await db.write(put, "taken", "first")
        outcomes = await one_round(db, (put, "a", "1"), (put_then_collide, "b"), (put, "c", "3"))
        assert all(isinstance(o, sqlite3.IntegrityError) for o in outcomes)
        assert outcomes[0] is outcomes[1] is outcomes[2], "every waiter hears the error that sank the round"
        assert await db.read(keys) == ["taken"]
        assert await db.write(put, "after", "ok") == "after"  # the next round is unaffected
        assert db.commits == 2
    finally:
        await db.close()


async def test_a_broken_transaction_fails_the_whole_round(home: Path) -> None:
    db = await opened(home / "t.db", isolate=True)
    try:
        def end_transaction(conn: sqlite3.Connection) -> None:
            conn.execute("ROLLBACK")  # the savepoint / commit after it can no longer succeed

        outcomes = await one_round(db, (put, "a", "1"), (end_transaction,), (put, "c", "3"))
        assert all(isinstance(o, sqlite3.OperationalError) for o in outcomes)
        assert await db.read(keys) == []
        assert db.commits == 0
    finally:
        await db.close()


async def test_reads_see_committed_writes_and_return_errors(home: Path) -> None:
    db = await opened(home / "t.db")
    try:
        for i in range(10):
            await db.write(put, f"k{i}", str(i))
            assert await db.read(get, f"k{i}") == str(i)

        def broken(_: sqlite3.Connection) -> None:
            raise LookupError("no such thing")

        with pytest.raises(LookupError, match="no such thing"):
            await db.read(broken)
    finally:
        await db.close()


async def test_close_commits_everything_queued_then_refuses_more(home: Path) -> None:
    db = await opened(home / "t.db", "always")
    waited = [db.write(put, f"w{i:02}", "v") for i in range(30)]
    for i in range(30):
        db.write_nowait(put, f"n{i:02}", "v")
    await asyncio.wait_for(db.close(), TIMEOUT)
    assert all(w.done() and not w.exception() for w in waited)
    with pytest.raises(RuntimeError, match="not open"):
        db.write(put, "late", "v")
    with pytest.raises(RuntimeError, match="not open"):
        db.write_nowait(put, "late", "v")
    reopened = await opened(home / "t.db", "always")
    try:
        assert len(await reopened.read(keys)) == 60
    finally:
        await reopened.close()


async def test_an_unawaited_write_that_fails_is_logged(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = await opened(home / "t.db")
    try:
        await db.write(put, "taken", "first")
        with caplog.at_level(logging.ERROR, logger="edgeloop.storage"):
            db.write_nowait(put, "taken", "again")
            await db.read(keys)  # a later round: the failed write has been settled
        assert "sqlite_write_failed" in caplog.text and "test-sqlite" in caplog.text
    finally:
        await db.close()


@pytest.mark.parametrize(("policy", "level"), [("always", 2), ("interval", 1), ("never", 0)])
async def test_policy_sets_wal_and_synchronous(home: Path, policy: str, level: int) -> None:
    db = await opened(home / "t.db", policy)
    try:
        settings = await db.read(lambda conn: (conn.execute("PRAGMA journal_mode").fetchone()[0],
                                               conn.execute("PRAGMA synchronous").fetchone()[0]))
        assert settings == ("wal", level)
    finally:
        await db.close()


async def test_setup_failure_is_raised_and_leaves_it_closed(home: Path) -> None:
    def bad_setup(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE broken (")

    db = SqliteCommitter(home / "t.db", "never", "test-sqlite")
    with pytest.raises(sqlite3.OperationalError):
        await asyncio.wait_for(db.open(bad_setup), TIMEOUT)
    with pytest.raises(RuntimeError, match="not open"):
        db.read(keys)
    with pytest.raises(ValueError, match="fsync policy must be one of always, interval, never"):
        SqliteCommitter(home / "t.db", "sometimes")
