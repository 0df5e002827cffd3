"""Durable broker state in SQLite under ``<home>/broker/``: retained messages, persistent sessions
(subscriptions, pending incoming QoS 2 ids) and their queued / in-flight QoS 1/2 deliveries.

All SQL runs on the thread of a `SqliteCommitter`. Writes are batched: every write submitted while a batch is
being committed joins the next batch, so N concurrent acknowledgements cost about one commit; a batch stands or
falls as a whole (a failing write rolls it back and every waiter gets the error). With
``durability.fsync = "always"`` the commit is ``synchronous=FULL`` and callers await the returned future
before acknowledging; with ``interval`` / ``never`` they do not wait (WAL, ``synchronous=NORMAL``/``OFF``).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.mqtt.message import Message
from gateway.mqtt.packets import Properties
from gateway.storage.sqlite import SqliteCommitter

SCHEMA = """
CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, payload BLOB, qos INTEGER, props TEXT,
    received_at REAL, expires_at REAL);
CREATE TABLE IF NOT EXISTS sessions (client_id TEXT PRIMARY KEY, protocol INTEGER, expiry_interval INTEGER,
    disconnected_at REAL, subscriptions TEXT, incoming_qos2 TEXT);
CREATE TABLE IF NOT EXISTS deliveries (seq INTEGER PRIMARY KEY, client_id TEXT, topic TEXT, payload BLOB,
    qos INTEGER, retain INTEGER, props TEXT, sub_ids TEXT, received_at REAL, expires_at REAL,
    packet_id INTEGER, state INTEGER, publisher TEXT);
CREATE INDEX IF NOT EXISTS deliveries_by_client ON deliveries (client_id, seq);
"""
_BYTES_FIELDS = ("correlation_data", "authentication_data")


def props_to_json(props: Properties | None) -> str | None:
    """Properties as compact JSON (bytes fields base64), None when absent."""
    if props is None:
        return None
    out: dict[str, Any] = {}
    for f in dataclasses.fields(props):
        value = getattr(props, f.name)
        if value is None or value == []:
            continue
        out[f.name] = base64.b64encode(value).decode() if f.name in _BYTES_FIELDS else value
    return json.dumps(out, separators=(",", ":"))


def props_from_json(text: str | None) -> Properties | None:
    if text is None:
        return None
    raw = json.loads(text)
    for name in _BYTES_FIELDS:
        if name in raw:
            raw[name] = base64.b64decode(raw[name])
    if "user_properties" in raw:
        raw["user_properties"] = [tuple(p) for p in raw["user_properties"]]
    return Properties(**raw)


@dataclass(slots=True)
class StoredDelivery:
    """A queued or in-flight QoS 1/2 delivery of a persistent session, as loaded at start-up."""

    seq: int
    message: Message
    qos: int
    retain: bool
    sub_ids: tuple[int, ...]
    packet_id: int | None
    state: int


@dataclass(slots=True)
class StoredSession:
    client_id: str
    protocol: int
    expiry_interval: int
    disconnected_at: float | None
    subscriptions: list[dict[str, Any]]
    incoming_qos2: list[int]
    deliveries: list[StoredDelivery] = field(default_factory=list)


@dataclass(slots=True)
class LoadedState:
    retained: list[Message]
    sessions: list[StoredSession]
    next_seq: int


def _create_and_load(db: sqlite3.Connection) -> LoadedState:
    """Create the schema if needed and load everything (on the database thread)."""
    db.executescript(SCHEMA)
    retained = [
        Message(topic, bytes(payload), qos, True, props_from_json(props), origin="retained",
                received_at=received_at, expires_at=expires_at)
        for topic, payload, qos, props, received_at, expires_at in db.execute("SELECT * FROM retained")
    ]
    sessions: dict[str, StoredSession] = {}
    for cid, protocol, expiry, disc, subs, q2 in db.execute("SELECT * FROM sessions"):
        sessions[cid] = StoredSession(cid, protocol, expiry, disc, json.loads(subs), json.loads(q2))
    for row in db.execute("SELECT * FROM deliveries ORDER BY seq"):
        seq, cid, topic, payload, qos, retain, props, sub_ids, received_at, expires_at, pid, state, pub = row
        session = sessions.get(cid)
        if session is None:
            continue
        msg = Message(topic, bytes(payload), qos, bool(retain), props_from_json(props), client_id=pub,
                      origin="stored", received_at=received_at, expires_at=expires_at)
        session.deliveries.append(
            StoredDelivery(seq, msg, qos, bool(retain), tuple(json.loads(sub_ids)), pid, state)
        )
    next_seq = (db.execute("SELECT COALESCE(MAX(seq), 0) FROM deliveries").fetchone()[0] or 0) + 1
    return LoadedState(retained, list(sessions.values()), next_seq)


def _run(db: sqlite3.Connection, op: Callable[[sqlite3.Connection], object]) -> None:
    op(db)


class BrokerStore:
    """SQLite persistence with a single writer thread and batched commits."""

    def __init__(self, directory: Path, fsync: str = "always") -> None:
        self.path = Path(directory) / "broker.db"
        self.fsync = fsync
        self.wait_for_commit = fsync == "always"
        self._db = SqliteCommitter(self.path, fsync, "mqtt-store", isolate_failures=False)

    @property
    def commits(self) -> int:
        """Transactions committed so far."""
        return self._db.commits

    async def open(self) -> LoadedState:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return await self._db.open(_create_and_load)

    # -- writes ----------------------------------------------------------------------------------

    def _submit(self, op: Callable[[sqlite3.Connection], object]) -> asyncio.Future[None] | None:
        """Queue a write; returns a future resolved after its commit (None when not waiting). After `close` the
        write is refused the same way: the future carries the error (and without a future it is dropped)."""
        try:
            if self.wait_for_commit:
                return self._db.write(_run, op)
            self._db.write_nowait(_run, op)
        except RuntimeError as exc:  # the store is closed
            if self.wait_for_commit:
                refused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                refused.set_exception(exc)
                return refused
        return None

    def put_retained(self, msg: Message) -> asyncio.Future[None] | None:
        row = (msg.topic, msg.payload, msg.qos, props_to_json(msg.properties), msg.received_at, msg.expires_at)
        return self._submit(lambda db: db.execute("INSERT OR REPLACE INTO retained VALUES (?,?,?,?,?,?)", row))

    def delete_retained(self, topic: str) -> asyncio.Future[None] | None:
        return self._submit(lambda db: db.execute("DELETE FROM retained WHERE topic=?", (topic,)))

    def save_session(self, client_id: str, protocol: int, expiry_interval: int, disconnected_at: float | None,
                     subscriptions: list[dict[str, Any]], incoming_qos2: list[int]) -> asyncio.Future[None] | None:
        row = (client_id, protocol, expiry_interval, disconnected_at, json.dumps(subscriptions),
               json.dumps(incoming_qos2))
        return self._submit(lambda db: db.execute("INSERT OR REPLACE INTO sessions VALUES (?,?,?,?,?,?)", row))

    def delete_session(self, client_id: str) -> asyncio.Future[None] | None:
        def op(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM sessions WHERE client_id=?", (client_id,))
            db.execute("DELETE FROM deliveries WHERE client_id=?", (client_id,))

        return self._submit(op)

    def add_delivery(self, seq: int, client_id: str, msg: Message, qos: int, retain: bool,
                     sub_ids: tuple[int, ...]) -> asyncio.Future[None] | None:
        row = (seq, client_id, msg.topic, msg.payload, qos, int(retain), props_to_json(msg.properties),
               json.dumps(list(sub_ids)), msg.received_at, msg.expires_at, None, 0, msg.client_id)
        return self._submit(
            lambda db: db.execute("INSERT OR REPLACE INTO deliveries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
        )

    def update_delivery(self, seq: int, packet_id: int | None, state: int) -> asyncio.Future[None] | None:
        return self._submit(
            lambda db: db.execute("UPDATE deliveries SET packet_id=?, state=? WHERE seq=?", (packet_id, state, seq))
        )

    def remove_delivery(self, seq: int) -> asyncio.Future[None] | None:
        return self._submit(lambda db: db.execute("DELETE FROM deliveries WHERE seq=?", (seq,)))

    async def close(self) -> None:
        """Commit everything pending and close the database."""
        await self._db.close()
