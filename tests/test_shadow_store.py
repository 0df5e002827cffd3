"""The durable shadow store: persistence, group commit, tombstones, failure handling."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gateway.shadow.document import RECREATE_WINDOW_SECS, ShadowRecord
from gateway.shadow.errors import ShadowStoreError
from gateway.shadow.store import DB_NAME, ShadowStore
from gateway.shadow.topics import ShadowKey

NOW = 1_700_000_000


def record(version: int, value: int = 0, deleted: bool = False) -> ShadowRecord:
    if deleted:
        return ShadowRecord(version, NOW, deleted_at=NOW)
    return ShadowRecord(version, NOW, {"reported": {"v": value}}, {"reported": {"v": {"timestamp": NOW}}})


def test_records_survive_reopen_and_the_database_uses_wal(home: Path) -> None:
    async def scenario() -> None:
        store = await ShadowStore.open(home, "always", now=NOW)
        await store.put(ShadowKey("t1"), record(1, 5))
        await store.put(ShadowKey("t1", "cfg"), record(3, 7))
        await store.put(ShadowKey("t2", "gone"), record(4, deleted=True))
        await store.close()
        again = await ShadowStore.open(home, "always", now=NOW)
        assert again.get(ShadowKey("t1")) == record(1, 5)
        assert again.get(ShadowKey("t1", "cfg")) == record(3, 7)
        tomb = again.get(ShadowKey("t2", "gone"))
        assert tomb is not None and not tomb.exists and tomb.version == 4
        assert again.named_shadows("t1") == ["cfg"] and again.named_shadows("t2") == []
        assert again.get(ShadowKey("nobody")) is None
        await again.close()

    asyncio.run(scenario())
    with sqlite3.connect(home / DB_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_concurrent_puts_share_commits_and_the_last_write_wins(home: Path) -> None:
    async def scenario() -> None:
        store = await ShadowStore.open(home, "always", now=NOW)
        keys = [ShadowKey(f"dev{i}") for i in range(300)]
        await asyncio.gather(*(store.put(k, record(1, i)) for i, k in enumerate(keys)),
                             *(store.put(keys[0], record(v, v)) for v in range(2, 6)))
        assert store.commits < 50, f"{store.commits} commits for 304 writes: no group commit"
        assert store.get(keys[0]) == record(5, 5)
        await store.close()
        again = await ShadowStore.open(home, "always", now=NOW)
        assert len(again.records) == 300 and again.get(keys[0]) == record(5, 5)
        assert again.get(keys[299]) == record(1, 299)
        await again.close()

    asyncio.run(scenario())


def test_tombstones_past_the_recreation_window_are_purged_on_open(home: Path) -> None:
    async def scenario() -> None:
        store = await ShadowStore.open(home, "always", now=NOW)
        await store.put(ShadowKey("old"), record(9, deleted=True))
        await store.put(ShadowKey("live"), record(2))
        await store.close()
        later = await ShadowStore.open(home, "always", now=NOW + RECREATE_WINDOW_SECS + 1)
        assert later.get(ShadowKey("old")) is None and later.get(ShadowKey("live")) == record(2)
        await later.close()

    asyncio.run(scenario())


def test_a_failed_commit_fails_its_waiters_and_restores_the_stored_state(home: Path) -> None:
    async def scenario() -> None:
        store = await ShadowStore.open(home, "always", now=NOW)
        key = ShadowKey("t")
        await store.put(key, record(1, 1))
        with sqlite3.connect(home / DB_NAME) as other:  # the table vanishes under the store: commits fail
            other.execute("ALTER TABLE shadows RENAME TO moved")
        with pytest.raises(ShadowStoreError):
            await store.put(key, record(2, 2))
        assert store.get(key) == record(1, 1), "after the failure memory shows the committed record again"
        with pytest.raises(ShadowStoreError):
            await store.put(ShadowKey("new"), record(1))
        assert store.get(ShadowKey("new")) is None
        with sqlite3.connect(home / DB_NAME) as other:
            other.execute("ALTER TABLE moved RENAME TO shadows")
        await store.put(ShadowKey("u"), record(1))
        await store.close()
        again = await ShadowStore.open(home, "always", now=NOW)
        assert again.get(key) == record(1, 1)
        await again.close()

    asyncio.run(scenario())


def test_invalid_policy_and_closed_store_are_errors(home: Path) -> None:
    with pytest.raises(ShadowStoreError, match="fsync policy"):
        ShadowStore(home / DB_NAME, "sometimes")

    async def scenario() -> None:
        store = await ShadowStore.open(home, "never", now=NOW)
        await store.close()
        with pytest.raises(ShadowStoreError, match="closed"):
            store.put(ShadowKey("t"), record(1))

    asyncio.run(scenario())


def test_writes_queued_together_share_one_commit(home: Path) -> None:
    async def scenario() -> None:
        store = await ShadowStore.open(home, "always", now=NOW)
        first = store.put(ShadowKey("a"), record(1))
        assert store.put(ShadowKey("b"), record(1)) is first, "one future per commit, not per write"
        await first
        later = store.put(ShadowKey("a"), record(2))
        assert later is not first
        await later
        assert (store.commits, store.rows_written) == (2, 3)
        await store.close()

    asyncio.run(scenario())
