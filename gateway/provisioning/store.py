"""`<home>/provisioning.db`: provisioning templates and outstanding certificate ownership tokens.

Thread-safe (one connection behind a lock); blocking, so call it from worker threads.
"""

from __future__ import annotations

import builtins
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from gateway.provisioning import template as tpl
from gateway.provisioning.errors import InvalidRequest, ResourceAlreadyExists, ResourceNotFound

PROVISIONING_FILE = "provisioning.db"
TEMPLATE_NAME = re.compile(r"[0-9A-Za-z_-]{1,36}")
MAX_PAGE = 250

SCHEMA = """
CREATE TABLE IF NOT EXISTS templates (
    name TEXT PRIMARY KEY, description TEXT, body TEXT NOT NULL, enabled INTEGER NOT NULL, role_arn TEXT NOT NULL,
    type TEXT NOT NULL, created REAL NOT NULL, modified REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, certificate_id TEXT NOT NULL, expires REAL NOT NULL
);
"""


def check_name(name: object) -> str:
    if not isinstance(name, str) or not TEMPLATE_NAME.fullmatch(name):
        raise InvalidRequest(f"invalid templateName {name!r}: must be 1-36 characters of 0-9 A-Z a-z _ -")
    return name


class ProvisioningStore:
    """Templates (the control plane's shapes) and ownership tokens of one data directory."""

    def __init__(self, home: Path, region: str, account_id: str, durable: bool = True) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.arn_prefix = f"arn:aws:iot:{region}:{account_id}:provisioningtemplate/"
        self._lock = threading.RLock()
        self._db = sqlite3.connect(home / PROVISIONING_FILE, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        self._db.executescript(f"BEGIN IMMEDIATE;{SCHEMA}COMMIT;")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _row(self, name: str) -> sqlite3.Row:
        row = self._db.execute("SELECT * FROM templates WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise ResourceNotFound(f"provisioning template {name} does not exist")
        return row

    # -- templates -----------------------------------------------------------------------------------

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """CreateProvisioningTemplate (FLEET_PROVISIONING templates)."""
        name = check_name(body.get("templateName"))
        tpl.parse(body.get("templateBody"))  # type: ignore[arg-type]
        role = body.get("provisioningRoleArn")
        if not isinstance(role, str) or not role:
            raise InvalidRequest("provisioningRoleArn is required")
        kind = body.get("type") or "FLEET_PROVISIONING"
        if kind != "FLEET_PROVISIONING":
            raise InvalidRequest(f"type must be FLEET_PROVISIONING, not {kind!r} (JITP templates are not supported)")
        now = time.time()
        with self._lock:
            try:
                self._db.execute("INSERT INTO templates VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (
                    name, body.get("description"), body["templateBody"], int(bool(body.get("enabled", False))),
                    role, kind, now, now))
            except sqlite3.IntegrityError:
                raise ResourceAlreadyExists(f"provisioning template {name} already exists") from None
        return {"templateArn": self.arn_prefix + name, "templateName": name, "defaultVersionId": 1}

    def describe(self, name: str) -> dict[str, Any]:
        with self._lock:
            row = self._row(name)
        out = {**self._summary(row), "defaultVersionId": 1, "templateBody": row["body"],
               "provisioningRoleArn": row["role_arn"]}
        return out

    def _summary(self, row: sqlite3.Row) -> dict[str, Any]:
        out = {"templateArn": self.arn_prefix + row["name"], "templateName": row["name"],
               "creationDate": row["created"], "lastModifiedDate": row["modified"], "enabled": bool(row["enabled"]),
               "type": row["type"]}
        if row["description"] is not None:
            out["description"] = row["description"]
        return out

    def list(self, max_results: int | None = None, next_token: str | None = None) -> dict[str, Any]:
        limit = max_results or MAX_PAGE
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"maxResults must be between 1 and {MAX_PAGE}, not {limit}")
        with self._lock:
            rows = self._db.execute("SELECT * FROM templates WHERE name > ? ORDER BY name LIMIT ?",
                                    (next_token or "", limit + 1)).fetchall()
        out: dict[str, Any] = {"templates": [self._summary(r) for r in rows[:limit]]}
        if len(rows) > limit:
            out["nextToken"] = rows[limit - 1]["name"]
        return out

    def update(self, name: str, body: dict[str, Any]) -> None:
        """UpdateProvisioningTemplate: description, enabled, provisioningRoleArn (one version only)."""
        version = body.get("defaultVersionId")
        if version is not None and version != 1:
            raise ResourceNotFound(f"provisioning template {name} has no version {version}")
        with self._lock:
            row = self._row(name)
            self._db.execute(
                "UPDATE templates SET description = ?, enabled = ?, role_arn = ?, modified = ? WHERE name = ?", (
                    body.get("description", row["description"]), int(bool(body.get("enabled", row["enabled"]))),
                    body.get("provisioningRoleArn") or row["role_arn"], time.time(), name))

    def delete(self, name: str) -> None:
        with self._lock:
            self._row(name)
            self._db.execute("DELETE FROM templates WHERE name = ?", (name,))

    def template(self, name: str) -> tuple[dict[str, Any], bool]:
        """The parsed template body and whether the template is enabled."""
        with self._lock:
            row = self._row(name)
        return tpl.parse(row["body"]), bool(row["enabled"])

    # -- ownership tokens ----------------------------------------------------------------------------

    def add_token(self, token: str, certificate_id: str, expires: float) -> None:
        with self._lock:
            self._db.execute("INSERT INTO tokens VALUES (?, ?, ?)", (token, certificate_id, expires))

    def token(self, token: str, now: float) -> str | None:
        """The certificate a live token stands for (None when unknown or expired)."""
        with self._lock:
            row = self._db.execute("SELECT * FROM tokens WHERE token = ? AND expires > ?", (token, now)).fetchone()
        return None if row is None else str(row["certificate_id"])

    def drop_token(self, token: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM tokens WHERE token = ?", (token,))

    def expired_tokens(self, now: float) -> builtins.list[tuple[str, str]]:
        with self._lock:
            rows = self._db.execute("SELECT token, certificate_id FROM tokens WHERE expires <= ?", (now,)).fetchall()
        return [(r["token"], r["certificate_id"]) for r in rows]
