"""The S3 index in SQLite: buckets, object versions (small bodies inline), uploads and parts.

Every function takes the connection first and runs on the database thread (see `db.Database`); writers run
inside a group-committed transaction and return the names of body files that became unreferenced, which the
engine deletes after the commit.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from gateway.sinks.s3 import errors
from gateway.sinks.s3.model import NULL_VERSION, Bucket, Listing, ObjectVersion, Part, Upload

SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY, created REAL NOT NULL, region TEXT NOT NULL, versioning TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '{}', notification TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT NOT NULL, is_latest INTEGER NOT NULL,
    delete_marker INTEGER NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL, last_modified REAL NOT NULL,
    content_type TEXT NOT NULL, metadata TEXT NOT NULL, headers TEXT NOT NULL, checksums TEXT NOT NULL,
    parts INTEGER NOT NULL, path TEXT, body BLOB, PRIMARY KEY (bucket, key, version_id));
CREATE INDEX IF NOT EXISTS objects_current ON objects (bucket, key) WHERE is_latest = 1 AND delete_marker = 0;
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, initiated REAL NOT NULL,
    content_type TEXT NOT NULL, metadata TEXT NOT NULL, headers TEXT NOT NULL, checksum_algorithm TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL, part_number INTEGER NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
    last_modified REAL NOT NULL, checksums TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY (upload_id, part_number));
"""

_COLUMNS = ("bucket, key, version_id, is_latest, delete_marker, size, etag, last_modified, content_type, metadata, "
            "headers, checksums, parts, path")


def new_version_id() -> str:
    return secrets.token_urlsafe(24)


def _version(row: tuple[Any, ...], body: bytes | None = None) -> ObjectVersion:
    return ObjectVersion(row[0], row[1], row[2], bool(row[3]), bool(row[4]), row[5], row[6], row[7], row[8],
                         json.loads(row[9]), json.loads(row[10]), json.loads(row[11]), row[12], row[13], body)


# ---- buckets ---------------------------------------------------------------------------------------------------

def get_bucket(conn: sqlite3.Connection, name: str) -> Bucket:
    row = conn.execute("SELECT name, created, region, versioning, tags, notification FROM buckets WHERE name = ?",
                       (name,)).fetchone()
    if row is None:
        raise errors.no_such_bucket(name)
    return Bucket(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]))


def bucket_versioning(conn: sqlite3.Connection, name: str) -> str:
    """A bucket's versioning status ("" when never set); NoSuchBucket when it does not exist. The cheap lookup
    for object operations, which need no tags or notification settings."""
    row = conn.execute("SELECT versioning FROM buckets WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise errors.no_such_bucket(name)
    return str(row[0])


def list_buckets(conn: sqlite3.Connection) -> list[Bucket]:
    names = [r[0] for r in conn.execute("SELECT name FROM buckets ORDER BY name")]
    return [get_bucket(conn, n) for n in names]


def create_bucket(conn: sqlite3.Connection, name: str, region: str, now: float) -> None:
    if conn.execute("SELECT 1 FROM buckets WHERE name = ?", (name,)).fetchone():
        raise errors.bucket_owned(name)
    conn.execute("INSERT INTO buckets (name, created, region) VALUES (?, ?, ?)", (name, now, region))


def delete_bucket(conn: sqlite3.Connection, name: str) -> list[str]:
    get_bucket(conn, name)
    if conn.execute("SELECT 1 FROM objects WHERE bucket = ? LIMIT 1", (name,)).fetchone():
        raise errors.bucket_not_empty(name)
    paths = [r[0] for r in conn.execute(
        "SELECT p.path FROM parts p JOIN uploads u USING (upload_id) WHERE u.bucket = ?", (name,))]
    conn.execute("DELETE FROM parts WHERE upload_id IN (SELECT upload_id FROM uploads WHERE bucket = ?)", (name,))
    conn.execute("DELETE FROM uploads WHERE bucket = ?", (name,))
    conn.execute("DELETE FROM buckets WHERE name = ?", (name,))
    return paths


def set_bucket_field(conn: sqlite3.Connection, name: str, column: str, value: Any) -> None:
    if column not in ("versioning", "tags", "notification"):
        raise ValueError(f"not a bucket setting: {column}")
    get_bucket(conn, name)
    stored = value if isinstance(value, str) else json.dumps(value)
    conn.execute(f"UPDATE buckets SET {column} = ? WHERE name = ?", (stored, name))


# ---- object versions -------------------------------------------------------------------------------------------

def put_version(conn: sqlite3.Connection, v: ObjectVersion) -> tuple[ObjectVersion, list[str]]:
    """Store `v` as the new latest version; returns it (with its version id) and the files it replaced."""
    versioning = bucket_versioning(conn, v.bucket)
    v.version_id = new_version_id() if versioning == "Enabled" else NULL_VERSION
    replaced: list[str] = []
    if v.version_id == NULL_VERSION:
        row = conn.execute("SELECT path FROM objects WHERE bucket = ? AND key = ? AND version_id = ?",
                           (v.bucket, v.key, NULL_VERSION)).fetchone()
        if row is not None:
            if row[0]:
                replaced.append(row[0])
            conn.execute("DELETE FROM objects WHERE bucket = ? AND key = ? AND version_id = ?",
                         (v.bucket, v.key, NULL_VERSION))
    if versioning:  # a bucket never versioned holds only null versions, and the key's was just removed
        conn.execute("UPDATE objects SET is_latest = 0 WHERE bucket = ? AND key = ? AND is_latest = 1",
                     (v.bucket, v.key))
    conn.execute(f"INSERT INTO objects ({_COLUMNS}, body) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (v.bucket, v.key, v.version_id, int(v.delete_marker), v.size, v.etag, v.last_modified,
                  v.content_type, json.dumps(v.metadata), json.dumps(v.headers), json.dumps(v.checksums), v.parts,
                  v.path, v.body))
    v.is_latest = True
    return v, replaced


def get_version(conn: sqlite3.Connection, bucket: str, key: str, version_id: str | None = None,
                with_body: bool = True) -> ObjectVersion:
    """The latest (or the given) version of a key; delete markers are returned, not raised."""
    bucket_versioning(conn, bucket)
    cols = _COLUMNS + (", body" if with_body else "")
    if version_id is None:
        row = conn.execute(f"SELECT {cols} FROM objects WHERE bucket = ? AND key = ? AND is_latest = 1",
                           (bucket, key)).fetchone()
        if row is None:
            raise errors.no_such_key(key)
    else:
        row = conn.execute(f"SELECT {cols} FROM objects WHERE bucket = ? AND key = ? AND version_id = ?",
                           (bucket, key, version_id)).fetchone()
        if row is None:
            if version_id == NULL_VERSION:
                raise errors.no_such_key(key)
            raise errors.no_such_version(key, version_id)
    return _version(row, row[14] if with_body else None)


def _promote_newest(conn: sqlite3.Connection, bucket: str, key: str) -> None:
    conn.execute("UPDATE objects SET is_latest = 1 WHERE rowid = (SELECT rowid FROM objects WHERE bucket = ? AND "
                 "key = ? ORDER BY rowid DESC LIMIT 1)", (bucket, key))


def delete_object(conn: sqlite3.Connection, bucket: str, key: str, version_id: str | None,
                  now: float) -> tuple[dict[str, Any], list[str]]:
    """DeleteObject semantics; returns ({"VersionId"?, "DeleteMarker"?}, files no longer referenced)."""
    versioning = bucket_versioning(conn, bucket)
    if version_id is not None:
        row = conn.execute("SELECT path, is_latest, delete_marker FROM objects WHERE bucket = ? AND key = ? AND "
                           "version_id = ?", (bucket, key, version_id)).fetchone()
        if row is None:  # deleting a version that does not exist succeeds, as on AWS
            return {"VersionId": version_id}, []
        conn.execute("DELETE FROM objects WHERE bucket = ? AND key = ? AND version_id = ?", (bucket, key, version_id))
        if row[1]:
            _promote_newest(conn, bucket, key)
        result: dict[str, Any] = {"VersionId": version_id}
        if row[2]:
            result["DeleteMarker"] = True
        return result, [row[0]] if row[0] else []
    if not versioning:
        row = conn.execute("SELECT path FROM objects WHERE bucket = ? AND key = ? AND version_id = ?",
                           (bucket, key, NULL_VERSION)).fetchone()
        conn.execute("DELETE FROM objects WHERE bucket = ? AND key = ?", (bucket, key))
        return {}, [row[0]] if row and row[0] else []
    marker = ObjectVersion(bucket, key, delete_marker=True, last_modified=now, content_type="")
    marker, replaced = put_version(conn, marker)
    return {"VersionId": marker.version_id, "DeleteMarker": True}, replaced


def referenced_paths(conn: sqlite3.Connection) -> set[str]:
    paths = {r[0] for r in conn.execute("SELECT path FROM objects WHERE path IS NOT NULL")}
    paths.update(r[0] for r in conn.execute("SELECT path FROM parts"))
    return paths


def _walk(rows: Iterable[tuple[str, Any]], prefix: str, delimiter: str, marker: str, max_keys: int,
          key_marker_of: Any = None) -> Listing:
    """Group ordered (key, entry) rows into a page of entries and common prefixes."""
    entries: list[Any] = []
    prefixes: list[str] = []
    last_prefix: str | None = None
    next_marker: str | None = None
    next_version: str | None = None
    for key, entry in rows:
        if not key.startswith(prefix):
            break
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                common = key[:cut + len(delimiter)]
                if common == last_prefix or (marker and marker.startswith(common)):
                    continue
                if len(entries) + len(prefixes) >= max_keys:
                    return Listing(entries, prefixes, True, next_marker, next_version)
                prefixes.append(common)
                last_prefix = next_marker = common
                next_version = None
                continue
        if len(entries) + len(prefixes) >= max_keys:
            return Listing(entries, prefixes, True, next_marker, next_version)
        entries.append(entry)
        next_marker = key
        next_version = key_marker_of(entry) if key_marker_of else None
    return Listing(entries, prefixes, False, None, None)


def list_current(conn: sqlite3.Connection, bucket: str, prefix: str, delimiter: str, marker: str,
                 max_keys: int) -> Listing:
    """Latest non-deleted versions with keys after `marker`, in binary UTF-8 key order."""
    get_bucket(conn, bucket)
    start = max(marker, prefix)
    op = ">" if marker and marker >= prefix else ">="
    cursor = conn.execute(f"SELECT {_COLUMNS} FROM objects WHERE bucket = ? AND is_latest = 1 AND delete_marker = 0 "
                          f"AND key {op} ? ORDER BY key", (bucket, start))
    return _walk(((row[1], _version(row)) for row in cursor), prefix, delimiter, marker, max_keys)


def list_versions(conn: sqlite3.Connection, bucket: str, prefix: str, delimiter: str, key_marker: str,
                  version_marker: str, max_keys: int) -> Listing:
    """Every version and delete marker, by key then newest first, after (key_marker, version_marker)."""
    get_bucket(conn, bucket)
    start = max(key_marker, prefix)
    cursor = conn.execute(f"SELECT {_COLUMNS} FROM objects WHERE bucket = ? AND key >= ? ORDER BY key, rowid DESC",
                          (bucket, start))

    def after_marker() -> Iterator[tuple[str, ObjectVersion]]:
        passed = not version_marker
        for row in cursor:
            v = _version(row)
            if key_marker and v.key <= key_marker:
                if v.key < key_marker or not version_marker:
                    continue
                if not passed:
                    passed = v.version_id == version_marker
                    continue
            yield v.key, v

    return _walk(after_marker(), prefix, delimiter, key_marker, max_keys, lambda v: v.version_id)


# ---- multipart uploads -----------------------------------------------------------------------------------------

def create_upload(conn: sqlite3.Connection, upload: Upload) -> None:
    get_bucket(conn, upload.bucket)
    conn.execute("INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 (upload.upload_id, upload.bucket, upload.key, upload.initiated, upload.content_type,
                  json.dumps(upload.metadata), json.dumps(upload.headers), upload.checksum_algorithm))


def get_upload(conn: sqlite3.Connection, bucket: str, key: str, upload_id: str) -> Upload:
    get_bucket(conn, bucket)
    row = conn.execute("SELECT upload_id, bucket, key, initiated, content_type, metadata, headers, checksum_algorithm "
                       "FROM uploads WHERE upload_id = ?", (upload_id,)).fetchone()
    if row is None or row[1] != bucket or row[2] != key:
        raise errors.no_such_upload(upload_id)
    return Upload(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), json.loads(row[6]), row[7])


def put_part(conn: sqlite3.Connection, bucket: str, key: str, upload_id: str, part: Part) -> list[str]:
    get_upload(conn, bucket, key, upload_id)
    old = conn.execute("SELECT path FROM parts WHERE upload_id = ? AND part_number = ?",
                       (upload_id, part.part_number)).fetchone()
    conn.execute("INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (upload_id, part.part_number, part.size, part.etag, part.last_modified, json.dumps(part.checksums),
                  part.path))
    return [old[0]] if old else []


def list_parts(conn: sqlite3.Connection, bucket: str, key: str, upload_id: str) -> tuple[Upload, list[Part]]:
    upload = get_upload(conn, bucket, key, upload_id)
    parts = [Part(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in conn.execute(
        "SELECT part_number, size, etag, last_modified, checksums, path FROM parts WHERE upload_id = ? "
        "ORDER BY part_number", (upload_id,))]
    return upload, parts


def list_uploads(conn: sqlite3.Connection, bucket: str, prefix: str) -> list[Upload]:
    get_bucket(conn, bucket)
    rows = conn.execute("SELECT upload_id, key FROM uploads WHERE bucket = ? AND key >= ? ORDER BY key, initiated",
                        (bucket, prefix)).fetchall()
    return [get_upload(conn, bucket, key, upload_id) for upload_id, key in rows if key.startswith(prefix)]


def drop_upload(conn: sqlite3.Connection, bucket: str, key: str, upload_id: str) -> list[str]:
    """Forget an upload and its parts; returns the part files to delete."""
    get_upload(conn, bucket, key, upload_id)
    paths = [r[0] for r in conn.execute("SELECT path FROM parts WHERE upload_id = ?", (upload_id,))]
    conn.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
    conn.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))
    return paths


def complete_upload(conn: sqlite3.Connection, v: ObjectVersion, upload_id: str) -> tuple[ObjectVersion, list[str]]:
    """Publish the assembled object and drop the upload, in one transaction."""
    part_paths = drop_upload(conn, v.bucket, v.key, upload_id)
    v, replaced = put_version(conn, v)
    return v, replaced + part_paths
