"""SQLite storage of the registry (`<home>/registry.db`): schema, transactions and paging.

One connection per process, shared by threads under a lock. WAL mode with `synchronous=FULL` makes every
committed change durable, and lets the CLI change the registry while a gateway reads it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.identity.awserrors import InvalidRequest, ResourceNotFound
from gateway.identity.names import Arns

SCHEMA = """
CREATE TABLE IF NOT EXISTS thing_types (
    name TEXT PRIMARY KEY, id TEXT NOT NULL, description TEXT, searchable TEXT NOT NULL,
    deprecated INTEGER NOT NULL DEFAULT 0, deprecation_date REAL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS things (
    name TEXT PRIMARY KEY, id TEXT NOT NULL, type TEXT REFERENCES thing_types(name),
    attributes TEXT NOT NULL, version INTEGER NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS things_by_type ON things(type);
CREATE TABLE IF NOT EXISTS thing_groups (
    name TEXT PRIMARY KEY, id TEXT NOT NULL, parent TEXT REFERENCES thing_groups(name),
    description TEXT, attributes TEXT NOT NULL, version INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS group_members (
    group_name TEXT NOT NULL REFERENCES thing_groups(name), thing TEXT NOT NULL REFERENCES things(name),
    PRIMARY KEY (group_name, thing));
CREATE INDEX IF NOT EXISTS group_members_by_thing ON group_members(thing);
CREATE TABLE IF NOT EXISTS ca_certificates (
    id TEXT PRIMARY KEY, pem TEXT NOT NULL, status TEXT NOT NULL, auto_registration TEXT NOT NULL,
    created REAL NOT NULL, modified REAL NOT NULL);
CREATE TABLE IF NOT EXISTS certificates (
    id TEXT PRIMARY KEY, pem TEXT NOT NULL, status TEXT NOT NULL, ca_id TEXT,
    created REAL NOT NULL, modified REAL NOT NULL);
CREATE TABLE IF NOT EXISTS thing_principals (
    thing TEXT NOT NULL REFERENCES things(name), certificate_id TEXT NOT NULL REFERENCES certificates(id),
    type TEXT NOT NULL, PRIMARY KEY (thing, certificate_id));
CREATE INDEX IF NOT EXISTS thing_principals_by_cert ON thing_principals(certificate_id);
CREATE TABLE IF NOT EXISTS policies (
    name TEXT PRIMARY KEY, default_version INTEGER NOT NULL, next_version INTEGER NOT NULL,
    created REAL NOT NULL, modified REAL NOT NULL);
CREATE TABLE IF NOT EXISTS policy_versions (
    policy TEXT NOT NULL REFERENCES policies(name), version INTEGER NOT NULL, document TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (policy, version));
CREATE TABLE IF NOT EXISTS policy_targets (
    policy TEXT NOT NULL REFERENCES policies(name), kind TEXT NOT NULL, target TEXT NOT NULL,
    PRIMARY KEY (policy, kind, target));
CREATE INDEX IF NOT EXISTS policy_targets_by_target ON policy_targets(kind, target);
"""

MAX_PAGE = 250


@dataclass(frozen=True)
class Page:
    """One page of a listing and the token for the next one (None on the last page)."""

    items: list[dict[str, Any]]
    next_token: str | None


class Store:
    """The registry database. Use `transaction()` for every read or write."""

    def __init__(self, path: Path, arns: Arns) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.arns = arns
        self._lock = threading.RLock()
        self._generation = 0
        self._data_version = -1
        self._checked_at = float("-inf")
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._db.executescript(f"BEGIN IMMEDIATE;{SCHEMA}COMMIT;")

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """A transaction (nested calls join the outer one), rolled back on any exception.

        A write transaction takes the database's write lock at once, so read-then-write never conflicts.
        """
        with self._lock:
            if self._db.in_transaction:
                yield self._db
                return
            self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            changes = self._db.total_changes
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            if self._db.total_changes != changes:
                self._generation += 1

    def generation(self, poll_interval: float = 0.25) -> int:
        """A number that changes after every committed change, by this process or (seen within
        `poll_interval` seconds) by another one. Cheap enough to call before every authorization."""
        now = time.monotonic()
        if now - self._checked_at >= poll_interval and self._lock.acquire(blocking=False):
            try:
                self._poll(now)
            finally:
                self._lock.release()
        return self._generation

    def current_generation(self) -> int:
        """`generation()` checked against the database now (waits for the lock): what caches of registry reads
        compare with, so that a change committed by another process is seen at the next read, as without them."""
        with self._lock:
            self._poll(time.monotonic())
        return self._generation

    def _poll(self, now: float) -> None:
        self._checked_at = now
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._data_version = version
            self._generation += 1

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def now() -> float:
        return round(time.time(), 3)

    def page(
        self, select: str, key: str, where: Sequence[str] = (), params: Sequence[Any] = (),
        next_token: str | None = None, max_results: int | None = None,
    ) -> tuple[list[sqlite3.Row], str | None]:
        """`select` (``SELECT … FROM table``) filtered by the `where` conditions, one page at a time in `key` order.

        The token is the last key of the previous page, so pages stay stable while rows are added.
        """
        limit = max_results or MAX_PAGE
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"maxResults must be between 1 and {MAX_PAGE}, not {limit}")
        conditions = " AND ".join([f"{key} > ?", *where])
        query = f"{select} WHERE {conditions} ORDER BY {key} LIMIT ?"
        with self.transaction(write=False) as db:
            rows = db.execute(query, (next_token or "", *params, limit + 1)).fetchall()
        if len(rows) > limit:
            return rows[:limit], str(rows[limit - 1][key])
        return rows, None


def require(db: sqlite3.Connection, table: str, key: str, value: str, what: str) -> sqlite3.Row:
    """The row of `table` whose `key` column is `value`; `ResourceNotFound` ("<what> <value> does not exist")."""
    row = db.execute(f"SELECT * FROM {table} WHERE {key} = ?", (value,)).fetchone()
    if row is None:
        raise ResourceNotFound(f"{what} {value} does not exist")
    return row
