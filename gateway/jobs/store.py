"""`<home>/jobs.db`: jobs and their executions in SQLite (WAL; `synchronous=FULL` unless fsync is off).

Thread-safe (one connection behind a lock); every change happens in `transaction()`, so a request that
fails part-way leaves nothing behind. Blocking: call it from worker threads, never the event loop.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.jobs.model import Execution, Job

JOBS_FILE = "jobs.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, arn TEXT NOT NULL, target_selection TEXT NOT NULL,
    status TEXT NOT NULL, document TEXT NOT NULL, targets TEXT NOT NULL, description TEXT,
    timeout_minutes INTEGER, presigned_url_config TEXT, created_at REAL NOT NULL, last_updated_at REAL NOT NULL,
    completed_at REAL, reason_code TEXT, comment TEXT, force_canceled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS executions (
    job_id TEXT NOT NULL, thing_name TEXT NOT NULL, execution_number INTEGER NOT NULL, status TEXT NOT NULL,
    status_details TEXT NOT NULL, queued_at REAL NOT NULL, started_at REAL, last_updated_at REAL NOT NULL,
    version INTEGER NOT NULL, step_deadline REAL, progress_deadline REAL, force_canceled INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, thing_name)
);
CREATE INDEX IF NOT EXISTS executions_by_thing ON executions (thing_name, status);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_JOB_COLUMNS = ("job_id", "arn", "target_selection", "status", "document", "targets", "description",
                "timeout_minutes", "presigned_url_config", "created_at", "last_updated_at", "completed_at",
                "reason_code", "comment", "force_canceled")
_EXEC_COLUMNS = ("job_id", "thing_name", "execution_number", "status", "status_details", "queued_at", "started_at",
                 "last_updated_at", "version", "step_deadline", "progress_deadline", "force_canceled")


class JobStore:
    """Jobs and executions of one data directory."""

    def __init__(self, home: Path, durable: bool = True) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.path = home / JOBS_FILE
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        self._db.executescript(f"BEGIN IMMEDIATE;{SCHEMA}COMMIT;")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit of work (nested calls join the outer one); rolled back on any exception."""
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _next(self, name: str) -> int:
        with self.transaction():
            row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
            value = (row["value"] if row else 0) + 1
            self._db.execute("INSERT OR REPLACE INTO counters VALUES (?, ?)", (name, value))
        return int(value)

    # -- jobs ----------------------------------------------------------------------------------------

    def insert_job(self, job: Job) -> None:
        with self.transaction():
            values = _job_values(job)
            self._db.execute(
                f"INSERT INTO jobs (seq, {', '.join(_JOB_COLUMNS)}) VALUES (?{', ?' * len(_JOB_COLUMNS)})",
                (self._next("job"), *values),
            )

    def update_job(self, job: Job) -> None:
        with self.transaction():
            sets = ", ".join(f"{c} = ?" for c in _JOB_COLUMNS[1:])
            self._db.execute(f"UPDATE jobs SET {sets} WHERE job_id = ?", (*_job_values(job)[1:], job.job_id))

    def job(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def jobs(self, status: str | None = None, target_selection: str | None = None) -> list[Job]:
        """Every job (newest first), optionally filtered."""
        where, params = ["1 = 1"], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if target_selection is not None:
            where.append("target_selection = ?")
            params.append(target_selection)
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY seq DESC", params)
            return [_job(r) for r in rows.fetchall()]

    def delete_job(self, job_id: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM executions WHERE job_id = ?", (job_id,))
            self._db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    # -- executions ----------------------------------------------------------------------------------

    def new_execution_number(self) -> int:
        return self._next("execution")

    def put_execution(self, execution: Execution) -> None:
        with self.transaction():
            values = _exec_values(execution)
            self._db.execute(
                f"INSERT OR REPLACE INTO executions ({', '.join(_EXEC_COLUMNS)}) VALUES "
                f"(?{', ?' * (len(_EXEC_COLUMNS) - 1)})", values,
            )

    def delete_execution(self, job_id: str, thing_name: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM executions WHERE job_id = ? AND thing_name = ?", (job_id, thing_name))

    def execution(self, job_id: str, thing_name: str) -> Execution | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM executions WHERE job_id = ? AND thing_name = ?", (job_id, thing_name)).fetchone()
        return None if row is None else _execution(row)

    def executions_of_job(self, job_id: str) -> list[Execution]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM executions WHERE job_id = ? ORDER BY execution_number", (job_id,)).fetchall()
        return [_execution(r) for r in rows]

    def executions_of_thing(self, thing_name: str, pending_only: bool = False) -> list[Execution]:
        """A thing's executions in queue order: IN_PROGRESS first, then by when they were queued."""
        extra = " AND status IN ('QUEUED', 'IN_PROGRESS')" if pending_only else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM executions WHERE thing_name = ?{extra} "
                "ORDER BY status != 'IN_PROGRESS', queued_at, execution_number", (thing_name,)).fetchall()
        return [_execution(r) for r in rows]

    def timing_out(self) -> list[Execution]:
        """IN_PROGRESS executions with a deadline, earliest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM executions WHERE status = 'IN_PROGRESS' AND "
                "(step_deadline IS NOT NULL OR progress_deadline IS NOT NULL)").fetchall()
        found = [_execution(r) for r in rows]
        return sorted(found, key=lambda e: e.deadline or 0.0)


def _job_values(job: Job) -> tuple[Any, ...]:
    return (job.job_id, job.arn, job.target_selection, job.status, job.document, json.dumps(job.targets),
            job.description, job.timeout_minutes,
            None if job.presigned_url_config is None else json.dumps(job.presigned_url_config),
            job.created_at, job.last_updated_at, job.completed_at, job.reason_code, job.comment,
            int(job.force_canceled))


def _job(row: sqlite3.Row) -> Job:
    config = row["presigned_url_config"]
    return Job(
        row["job_id"], row["arn"], row["target_selection"], row["status"], row["document"], json.loads(row["targets"]),
        row["description"], row["timeout_minutes"], None if config is None else json.loads(config),
        row["created_at"], row["last_updated_at"], row["completed_at"], row["reason_code"], row["comment"],
        bool(row["force_canceled"]),
    )


def _exec_values(e: Execution) -> tuple[Any, ...]:
    return (e.job_id, e.thing_name, e.execution_number, e.status, json.dumps(e.status_details), e.queued_at,
            e.started_at, e.last_updated_at, e.version, e.step_deadline, e.progress_deadline, int(e.force_canceled))


def _execution(row: sqlite3.Row) -> Execution:
    return Execution(
        row["job_id"], row["thing_name"], row["execution_number"], row["status"], json.loads(row["status_details"]),
        row["queued_at"], row["started_at"], row["last_updated_at"], row["version"], row["step_deadline"],
        row["progress_deadline"], bool(row["force_canceled"]),
    )
