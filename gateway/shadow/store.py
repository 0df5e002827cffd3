"""Durable shadow storage: SQLite (`<home>/shadows.db`, WAL) behind an in-memory map, with group commit.

Reads come from memory (every record is loaded at open). `put` installs the new record in memory at once,
so the next request on the same shadow sees it, and returns the future of the commit that will carry it:
writes queue up while a commit runs on the thread of the store's `SqliteCommitter` and the next commit takes all
of them in one transaction (one WAL fsync for many updates), and one future serves all of them. Several writes to
one shadow inside a batch collapse to the last. If a commit fails, every waiter gets the error and memory shows the
affected shadows' last committed records again, so nothing unacknowledged stays visible (unless a newer write to
the same shadow, built on the failed one, is already queued: it then commits both changes or fails too).

Durability follows `durability.fsync`: ``always`` -> ``synchronous=FULL`` (the commit fsyncs the WAL),
``interval`` -> ``NORMAL`` (fsync at checkpoints), ``never`` -> ``OFF``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from gateway.shadow.document import RECREATE_WINDOW_SECS, ShadowRecord
from gateway.shadow.errors import ShadowStoreError
from gateway.shadow.topics import ShadowKey
from gateway.storage.sqlite import SYNCHRONOUS, SqliteCommitter

log = logging.getLogger("edgeloop.shadow")

DB_NAME = "shadows.db"
SCHEMA = """
CREATE TABLE IF NOT EXISTS shadows (
    thing TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER,
    document TEXT NOT NULL,
    PRIMARY KEY (thing, name)
) WITHOUT ROWID
"""
# Every column is written, so REPLACE (delete + insert of the key's row) is an upsert; in a WITHOUT ROWID table
# it costs SQLite less than INSERT ... ON CONFLICT DO UPDATE.
UPSERT = ("INSERT OR REPLACE INTO shadows (thing, name, version, updated_at, deleted_at, document) "
          "VALUES (?, ?, ?, ?, ?, ?)")

Row = tuple[str, str, int, int, int | None, str]


def _row(key: ShadowKey, record: ShadowRecord) -> Row:
    return key.thing, key.name, record.version, record.timestamp, record.deleted_at, record.snapshot_json()


def _record(version: int, updated_at: int, deleted_at: int | None, document: str) -> ShadowRecord:
    doc = json.loads(document)
    return ShadowRecord(version, updated_at, doc.get("state", {}), doc.get("metadata", {}), deleted_at)


def _create_and_load(db: sqlite3.Connection, now: int) -> list[Row]:
    """Create the table if needed, purge expired tombstones and return every row (on the database thread)."""
    db.execute(SCHEMA)
    db.execute("DELETE FROM shadows WHERE deleted_at IS NOT NULL AND deleted_at < ?", (now - RECREATE_WINDOW_SECS,))
    return db.execute("SELECT thing, name, version, updated_at, deleted_at, document FROM shadows").fetchall()


def _upsert(db: sqlite3.Connection, items: list[tuple[ShadowKey, ShadowRecord]]) -> None:
    """Write a batch (on the database thread, which also pays for serialising the documents)."""
    db.executemany(UPSERT, [_row(key, record) for key, record in items])


class ShadowStore:
    """The shadow table, cached in memory; open with `await ShadowStore.open(home, fsync)`."""

    def __init__(self, path: Path, fsync: str = "always") -> None:
        if fsync not in SYNCHRONOUS:
            raise ShadowStoreError(f"fsync policy must be one of {', '.join(SYNCHRONOUS)}, not {fsync!r}")
        self.path = path
        self.fsync = fsync
        self.records: dict[ShadowKey, ShadowRecord] = {}
        self._named: dict[str, set[str]] = {}
        self._db = SqliteCommitter(path, fsync, "shadow-store")
        self._closed = True  # until opened
        self._pending: dict[ShadowKey, ShadowRecord] = {}
        self._before: dict[ShadowKey, ShadowRecord | None] = {}  # last committed record of uncommitted keys
        self._batch: asyncio.Future[None] | None = None  # completes when the pending writes are committed
        self._committing: asyncio.Future[None] | None = None  # the batch being committed, until it is settled
        self.commits = 0
        self.rows_written = 0

    @classmethod
    async def open(cls, home: str | Path, fsync: str = "always", now: int | None = None) -> ShadowStore:
        """Open (creating if needed) `<home>/shadows.db` and load every shadow; tombstones past the
        re-creation window are purged."""
        store = cls(Path(home) / DB_NAME, fsync)
        now = int(time.time()) if now is None else now
        try:
            store.path.parent.mkdir(parents=True, exist_ok=True)
            rows = await store._db.open(functools.partial(_create_and_load, now=now))
        except (sqlite3.Error, OSError) as exc:
            raise ShadowStoreError(f"cannot open the shadow database {store.path}: {exc}") from exc
        store._closed = False
        for thing, name, version, updated_at, deleted_at, document in rows:
            store._install(ShadowKey(thing, name), _record(version, updated_at, deleted_at, document))
        log.info("event=shadow_store_opened path=%s shadows=%d", store.path, len(store.records))
        return store

    # -- reads (memory) ----------------------------------------------------------------------------

    def get(self, key: ShadowKey) -> ShadowRecord | None:
        """The current record (possibly a tombstone), or None if the shadow never existed."""
        return self.records.get(key)

    def named_shadows(self, thing: str) -> list[str]:
        """The names of the thing's existing named shadows, sorted."""
        return sorted(self._named.get(thing, ()))

    def _install(self, key: ShadowKey, record: ShadowRecord | None) -> None:
        if record is None:
            self.records.pop(key, None)
        else:
            self.records[key] = record
        if key.name:
            names = self._named.setdefault(key.thing, set())
            if record is not None and record.exists:
                names.add(key.name)
            else:
                names.discard(key.name)

    # -- writes (group commit) ---------------------------------------------------------------------

    def put(self, key: ShadowKey, record: ShadowRecord) -> asyncio.Future[None]:
        """Install `record` now; the returned future completes when it is committed (ShadowStoreError if the
        commit failed). The future is shared by every write of the same commit: await it through
        `asyncio.shield` where the awaiting task may be cancelled."""
        if self._closed:
            raise ShadowStoreError("the shadow store is closed")
        if key not in self._before:
            self._before[key] = self.records.get(key)
        self._install(key, record)
        self._pending[key] = record
        batch = self._batch
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._batch = loop.create_future()
            if self._committing is None:
                loop.call_soon(self._start_commit)  # puts made before then join this batch
        return batch

    def _start_commit(self) -> None:
        """Hand every pending write to the database thread as one transaction."""
        if self._committing is not None or not self._pending:
            return
        rows, self._pending = self._pending, {}
        batch, self._batch = self._batch, None
        assert batch is not None
        self._committing = batch
        committed = self._db.write(_upsert, list(rows.items()))
        committed.add_done_callback(functools.partial(self._committed, rows, batch))

    def _committed(self, rows: dict[ShadowKey, ShadowRecord], batch: asyncio.Future[None],
                   committed: asyncio.Future[None]) -> None:
        """On the loop: settle the batch's waiters, then start the next batch if writes are waiting for one."""
        self._committing = None
        exc = committed.exception()
        if exc is None:
            self._settle(rows, committed=True)
            self.commits += 1
            self.rows_written += len(rows)
            if not batch.done():
                batch.set_result(None)
        else:  # every waiter must hear about any failure
            log.error("event=shadow_commit_failed rows=%d error=%r", len(rows), exc)
            self._settle(rows, committed=False)
            if not batch.done():
                batch.set_exception(ShadowStoreError(f"shadow commit failed: {exc}"))
        self._start_commit()

    def _settle(self, batch: dict[ShadowKey, ShadowRecord], committed: bool) -> None:
        """After a commit: forget the pre-batch records, or (on failure) show them again."""
        for key in batch:
            if key in self._pending:
                continue  # a newer write is queued; it settles this key
            before = self._before.pop(key, None)
            if not committed:
                self._install(key, before)

    async def flush(self) -> None:
        """Wait until everything put so far is committed (or its commit failed)."""
        while (batch := self._batch or self._committing) is not None:
            await asyncio.wait([batch])

    async def close(self) -> None:
        """Commit what is pending, then close the database and its thread."""
        await self.flush()
        self._closed = True
        await self._db.close()

    def stats(self) -> dict[str, Any]:
        return {"shadows": len(self.records), "commits": self.commits, "rows_written": self.rows_written}


__all__ = ["DB_NAME", "ShadowStore"]
