"""The S3 engine: the in-process API (what the rules engine calls) behind the rest-xml wire layer.

Buckets, object versions and multipart uploads live in a SQLite index (group-committed); bodies up to
`inline_max` are stored in the index, larger ones as files (see `blobs`). A write is acknowledged only after
its body and its index row are durable, and it becomes visible atomically with the index commit.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from edgeloop.config import Config
from gateway.sinks.s3 import errors, index, names, notifications
from gateway.sinks.s3.blobs import BlobStore, Body, Spooled
from gateway.sinks.s3.checksums import ALGORITHMS, decode_content_md5, is_valid_encoding, multipart_etag
from gateway.sinks.s3.db import Database
from gateway.sinks.s3.model import NULL_VERSION, Bucket, Listing, ObjectVersion, Part, Upload
from gateway.storage.durable import GroupSync

log = logging.getLogger("edgeloop.sinks.s3")

MAX_OBJECT = 5 * 1024**3
MIN_PART = 5 * 1024 * 1024
MAX_PARTS = 10000
SendMessage = Callable[[str, str], Awaitable[Any]]


def _checksum_fields(checksums: dict[str, str]) -> dict[str, str]:
    return {f"Checksum{alg.upper()}": value for alg, value in checksums.items()}


class S3Engine:
    """Emulated S3. Coroutines raise `S3Error` (an `AwsError`) with AWS's codes."""

    min_part_size = MIN_PART

    def __init__(self, home: Path, config: Config, sync: GroupSync, sqs: Any = None, *,
                 inline_max: int = 64 * 1024) -> None:
        self.root = home / "sinks" / "s3"
        self.region = config.aws.region
        self.account = config.aws.account_id
        self.sync = sync
        self.sqs = sqs  # an SQS engine (``send_message(queue, body)``), or a callable returning one or None
        self.db = Database(self.root / "index.db", index.SCHEMA, config.durability.fsync, "s3-index")
        self.blobs = BlobStore(self.root, sync, inline_max)
        self._notification_configs: dict[str, dict[str, Any]] = {}
        self._buckets: set[str] = set()  # names of existing buckets, for cheap checks before receiving a body
        self.notifications_sent = 0
        self.notification_failures = 0

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(self.blobs.prepare)
        await self.db.open()
        removed = await asyncio.to_thread(self.blobs.sweep, await self.db.read(index.referenced_paths))
        if removed:
            log.info("removed unreferenced bodies count=%d", removed)
        for bucket in await self.db.read(index.list_buckets):
            self._buckets.add(bucket.name)
            if bucket.notification:
                self._notification_configs[bucket.name] = bucket.notification

    async def stop(self) -> None:
        await self.db.close()
        self.blobs.close()

    def metrics(self) -> dict[str, int]:
        """Counters for the metrics endpoint."""
        return {"s3_index_commits": self.db.commits, "s3_notifications_sent": self.notifications_sent,
                "s3_notification_failures": self.notification_failures}

    # ---- buckets -----------------------------------------------------------------------------------------------

    async def create_bucket(self, bucket: str, region: str | None = None) -> None:
        names.check_bucket_name(bucket)
        await self.db.write(index.create_bucket, bucket, region or self.region, time.time())
        self._buckets.add(bucket)

    async def delete_bucket(self, bucket: str) -> None:
        paths = await self.db.write(index.delete_bucket, bucket)
        self._buckets.discard(bucket)
        self._notification_configs.pop(bucket, None)
        await self.blobs.remove(paths)

    async def head_bucket(self, bucket: str) -> Bucket:
        return await self.db.read(index.get_bucket, bucket)

    async def list_buckets(self) -> list[Bucket]:
        return await self.db.read(index.list_buckets)

    async def put_bucket_versioning(self, bucket: str, status: str) -> None:
        if status not in ("Enabled", "Suspended"):
            raise errors.malformed_xml()
        await self.db.write(index.set_bucket_field, bucket, "versioning", status)

    async def put_bucket_tagging(self, bucket: str, tags: dict[str, str]) -> None:
        await self.db.write(index.set_bucket_field, bucket, "tags", tags)

    async def get_bucket_tagging(self, bucket: str) -> dict[str, str]:
        tags = (await self.head_bucket(bucket)).tags
        if not tags:
            raise errors.no_such_tag_set(bucket)
        return tags

    async def put_bucket_notification(self, bucket: str, config: dict[str, Any], request_id: str = "") -> None:
        """Save a notification configuration after sending the test event to every queue in it."""
        await self.head_bucket(bucket)
        for queue in config.get("QueueConfigurations", []):
            for event in queue.get("Events", []):
                if event not in notifications.EVENT_TYPES:
                    raise errors.invalid_argument(f"The event is not supported for notifications: {event}",
                                                  "Event", event)
            try:
                await self._send(queue["QueueArn"], notifications.test_event(bucket, request_id, time.time()))
            except Exception as exc:
                raise errors.invalid_argument(
                    f"Unable to validate the following destination configurations: {queue['QueueArn']} ({exc})",
                    queue["QueueArn"], "SQS queue does not exist or cannot be reached") from None
        await self.db.write(index.set_bucket_field, bucket, "notification", config)
        self._notification_configs[bucket] = config

    # ---- objects -----------------------------------------------------------------------------------------------

    async def put_object(self, bucket: str, key: str, body: Body, metadata: dict[str, str] | None = None,
                         content_type: str | None = None, *, headers: dict[str, str] | None = None,
                         checksums: dict[str, str] | None = None, checksum_algorithm: str = "",
                         content_md5: str | None = None, content_sha256: str | None = None,
                         if_none_match: str | None = None,
                         if_match: str | None = None, request_id: str = "") -> dict[str, Any]:
        """Store an object; returns ``{"ETag": '"<md5>"', "VersionId"?, "Checksum<ALG>"?...}``.

        `checksums` are values the client sent (``{"crc32": base64}``): verified, stored and returned.
        """
        names.check_key(key)
        self._require_bucket(bucket)
        kept = self._claimed_checksums(checksums, checksum_algorithm)
        spooled = await self.blobs.spool(body, _with_sha256(kept, content_sha256), MAX_OBJECT)
        try:
            computed = self._verify(spooled, checksums or {}, kept, content_md5, content_sha256)
            path = await self._persist(spooled)
        except BaseException:
            await self.blobs.discard(spooled.temp)
            raise
        v = ObjectVersion(bucket, key, size=spooled.size, etag=spooled.digests.etag(), last_modified=time.time(),
                          content_type=content_type or "binary/octet-stream", metadata=dict(metadata or {}),
                          headers=dict(headers or {}), checksums=computed, path=path, body=spooled.data)
        v = await self._commit(_conditional_put, v, if_none_match, if_match)
        await self._notify("ObjectCreated:Put", v, request_id)
        result: dict[str, Any] = {"ETag": f'"{v.etag}"', **_checksum_fields(v.checksums)}
        if v.version_id != NULL_VERSION:
            result["VersionId"] = v.version_id
        return result

    async def head_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectVersion:
        """Metadata of the latest (or given) version, no body; 404/405 like S3 for delete markers."""
        return self._visible(await self.db.read(index.get_version, bucket, key, version_id, False), version_id, "HEAD")

    async def get_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectVersion:
        """The version to serve, with its body: inline bytes, or its file already open (so a concurrent overwrite
        that deletes the file cannot break the download). Stream it with `read_body`, or `release` it."""
        return self._visible(await self.db.read(self._get_and_open, bucket, key, version_id), version_id, "GET")

    def _get_and_open(self, conn: Any, bucket: str, key: str, version_id: str | None) -> ObjectVersion:
        # On the index thread: files are deleted only after a commit that stops referring to them, and commits
        # run on this same thread, so the file this row names still exists here.
        v = index.get_version(conn, bucket, key, version_id, True)
        if v.path is not None:
            v.handle = self.blobs.open_blocking(v.path)
        return v

    def read_body(self, v: ObjectVersion, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield bytes ``start..end`` (inclusive) of a version returned by `get_object` (closes its file)."""
        last = v.size - 1 if end is None else end
        if v.path is None:
            return _once((v.body or b"")[start:last + 1])
        handle, v.handle = v.handle, None
        return self.blobs.read(v.path, start, last, handle)

    @staticmethod
    def release(v: ObjectVersion) -> None:
        """Close the body file of a version from `get_object` whose body will not be read."""
        if v.handle is not None:
            v.handle.close()
            v.handle = None

    async def read_object(self, bucket: str, key: str, version_id: str | None = None) -> bytes:
        """The whole body of an object (convenience for small objects and tests)."""
        v = await self.get_object(bucket, key, version_id)
        return b"".join([chunk async for chunk in self.read_body(v)])

    async def copy_object(self, src_bucket: str, src_key: str, bucket: str, key: str, *,
                          src_version_id: str | None = None, metadata_directive: str = "COPY",
                          metadata: dict[str, str] | None = None, content_type: str | None = None,
                          headers: dict[str, str] | None = None, request_id: str = "") -> tuple[ObjectVersion,
                                                                                                 ObjectVersion]:
        """Copy a version; returns (source version, new version)."""
        names.check_key(key)
        if metadata_directive not in ("COPY", "REPLACE"):
            raise errors.invalid_argument("Unknown metadata directive.", "x-amz-metadata-directive",
                                          metadata_directive)
        if (src_bucket, src_key) == (bucket, key) and metadata_directive == "COPY" and src_version_id is None:
            raise errors.invalid_request(
                "This copy request is illegal because it is trying to copy an object to itself without changing "
                "the object's metadata, storage class, website redirect location or encryption attributes.")
        self._require_bucket(bucket)
        src = await self.get_object(src_bucket, src_key, src_version_id)
        source: Body | None = src.body if src.path is None else self.read_body(src)
        spooled = await self.blobs.spool(source or b"", tuple(src.checksums), MAX_OBJECT)
        try:
            path = await self._persist(spooled)
        except BaseException:
            await self.blobs.discard(spooled.temp)
            raise
        replace = metadata_directive == "REPLACE"
        v = ObjectVersion(bucket, key, size=spooled.size, etag=spooled.digests.etag(), last_modified=time.time(),
                          content_type=(content_type or "binary/octet-stream") if replace else src.content_type,
                          metadata=dict(metadata or {}) if replace else src.metadata,
                          headers=dict(headers or {}) if replace else src.headers,
                          checksums=spooled.digests.checksums(), path=path, body=spooled.data)
        v = await self._commit(_conditional_put, v, None, None)
        await self._notify("ObjectCreated:Copy", v, request_id)
        return src, v

    async def delete_object(self, bucket: str, key: str, version_id: str | None = None,
                            request_id: str = "") -> dict[str, Any]:
        """DeleteObject; returns ``{"VersionId"?, "DeleteMarker"?}``."""
        result, paths = await self.db.write(index.delete_object, bucket, key, version_id, time.time())
        await self.blobs.remove(paths)
        created_marker = version_id is None and result.get("DeleteMarker")
        event = "ObjectRemoved:DeleteMarkerCreated" if created_marker else "ObjectRemoved:Delete"
        await self._notify(event, ObjectVersion(bucket, key, result.get("VersionId", NULL_VERSION)), request_id)
        return result

    async def delete_objects(self, bucket: str, objects: list[tuple[str, str | None]],
                             request_id: str = "") -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        """DeleteObjects: (deleted entries, error entries) in request order."""
        self._require_bucket(bucket)

        async def one(key: str, version_id: str | None) -> tuple[bool, dict[str, Any]]:
            try:
                result = await self.delete_object(bucket, key, version_id, request_id)
            except errors.S3Error as exc:
                return False, {"Key": key, "Code": exc.code, "Message": exc.message}
            entry: dict[str, Any] = {"Key": key}
            if version_id is not None:
                entry["VersionId"] = version_id
            if result.get("DeleteMarker"):
                entry["DeleteMarker"] = True
                if version_id is None:
                    entry["DeleteMarkerVersionId"] = result["VersionId"]
            return True, entry

        outcomes = await asyncio.gather(*(one(k, v) for k, v in objects))
        return [e for ok, e in outcomes if ok], [e for ok, e in outcomes if not ok]

    async def list_objects(self, bucket: str, prefix: str = "", delimiter: str = "", marker: str = "",
                           max_keys: int = 1000) -> Listing:
        """Current objects after `marker` (V1 marker / V2 StartAfter or continuation), grouped by `delimiter`."""
        return await self.db.read(index.list_current, bucket, prefix, delimiter, marker, max_keys)

    async def list_object_versions(self, bucket: str, prefix: str = "", delimiter: str = "", key_marker: str = "",
                                   version_id_marker: str = "", max_keys: int = 1000) -> Listing:
        return await self.db.read(index.list_versions, bucket, prefix, delimiter, key_marker, version_id_marker,
                                  max_keys)

    # ---- multipart uploads -------------------------------------------------------------------------------------

    async def create_multipart_upload(self, bucket: str, key: str, metadata: dict[str, str] | None = None,
                                      content_type: str | None = None, *, headers: dict[str, str] | None = None,
                                      checksum_algorithm: str = "") -> str:
        names.check_key(key)
        upload = Upload(uuid.uuid4().hex + uuid.uuid4().hex, bucket, key, time.time(),
                        content_type or "binary/octet-stream", dict(metadata or {}), dict(headers or {}),
                        checksum_algorithm.lower())
        await self.db.write(index.create_upload, upload)
        return upload.upload_id

    async def upload_part(self, bucket: str, key: str, upload_id: str, part_number: int, body: Body, *,
                          checksums: dict[str, str] | None = None, content_md5: str | None = None,
                          content_sha256: str | None = None, checksum_algorithm: str = "") -> Part:
        if not 1 <= part_number <= MAX_PARTS:
            raise errors.invalid_argument("Part number must be an integer between 1 and 10000, inclusive",
                                          "partNumber", str(part_number))
        upload = await self.db.read(index.get_upload, bucket, key, upload_id)
        kept = self._claimed_checksums(checksums, checksum_algorithm or upload.checksum_algorithm)
        spooled = await self.blobs.spool(body, _with_sha256(kept, content_sha256), MAX_OBJECT)
        try:
            computed = self._verify(spooled, checksums or {}, kept, content_md5, content_sha256)
            path = await self._persist(spooled, always_file=True)
        except BaseException:
            await self.blobs.discard(spooled.temp)
            raise
        part = Part(part_number, spooled.size, spooled.digests.etag(), time.time(), computed, path or "")
        replaced = await self._commit_paths(index.put_part, [part.path], bucket, key, upload_id, part)
        await self.blobs.remove(replaced)
        return part

    async def complete_multipart_upload(self, bucket: str, key: str, upload_id: str,
                                        parts: list[tuple[int, str]], request_id: str = "") -> ObjectVersion:
        """Assemble the listed (part number, ETag) parts into the object."""
        upload, stored = await self.db.read(index.list_parts, bucket, key, upload_id)
        if not parts:
            raise errors.malformed_xml()
        numbers = [n for n, _ in parts]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise errors.invalid_part_order()
        by_number = {p.part_number: p for p in stored}
        chosen: list[Part] = []
        for number, etag in parts:
            part = by_number.get(number)
            if part is None or etag.strip('"') != part.etag:
                raise errors.invalid_part(number, etag)
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < self.min_part_size:
                raise errors.entity_too_small(part.size, self.min_part_size)
        temp = await self.blobs.concat([p.path for p in chosen])
        try:
            path = await self.blobs.publish(temp)
        except BaseException:
            await self.blobs.discard(temp)
            raise
        v = ObjectVersion(bucket, key, size=sum(p.size for p in chosen), etag=multipart_etag([p.etag for p in chosen]),
                          last_modified=time.time(), content_type=upload.content_type, metadata=upload.metadata,
                          headers=upload.headers, parts=len(chosen), path=path)
        v = await self._commit(index.complete_upload, v, upload_id)
        await self._notify("ObjectCreated:CompleteMultipartUpload", v, request_id)
        return v

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self.blobs.remove(await self.db.write(index.drop_upload, bucket, key, upload_id))

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> tuple[Upload, list[Part]]:
        return await self.db.read(index.list_parts, bucket, key, upload_id)

    async def list_multipart_uploads(self, bucket: str, prefix: str = "") -> list[Upload]:
        return await self.db.read(index.list_uploads, bucket, prefix)

    # ---- internals ---------------------------------------------------------------------------------------------

    @staticmethod
    def _claimed_checksums(checksums: dict[str, str] | None, algorithm: str) -> list[str]:
        algs = [a for a in (checksums or {}) if a in ALGORITHMS]
        if algorithm and algorithm.lower() in ALGORITHMS and algorithm.lower() not in algs:
            algs.append(algorithm.lower())
        return algs

    @staticmethod
    def _verify(spooled: Spooled, claimed: dict[str, str], kept: list[str], content_md5: str | None,
                content_sha256: str | None) -> dict[str, str]:
        """Check Content-MD5, x-amz-content-sha256 and x-amz-checksum-* against the body; returns the
        checksums to store (those the client declared)."""
        if content_md5 is not None:
            expected = decode_content_md5(content_md5)
            if expected is None:
                raise errors.invalid_digest()
            if expected != spooled.digests.etag():
                raise errors.bad_digest("Content-MD5")
        computed = spooled.digests.checksums()
        if _is_hex_sha256(content_sha256):
            assert content_sha256 is not None
            if base64.b64decode(computed["sha256"]).hex() != content_sha256.lower():
                raise errors.content_sha256_mismatch(content_sha256)
        for alg, value in claimed.items():
            if alg not in ALGORITHMS:
                continue
            if not is_valid_encoding(alg, value):
                raise errors.invalid_request(f"Value for x-amz-checksum-{alg} header is invalid.")
            if computed.get(alg) != value:
                raise errors.bad_digest(alg.upper())
        return {alg: computed[alg] for alg in kept}

    async def _persist(self, spooled: Spooled, always_file: bool = False) -> str | None:
        """Publish a spooled file body; small bodies stay inline unless `always_file`."""
        if spooled.temp is None and always_file:
            spooled.temp = await self.blobs.write_temp(spooled.data or b"")
        if spooled.temp is None:
            return None
        path = await self.blobs.publish(spooled.temp)
        spooled.temp = None
        return path

    async def _commit(self, op: Callable[..., tuple[ObjectVersion, list[str]]], v: ObjectVersion,
                      *args: Any) -> ObjectVersion:
        stored, replaced = await self._commit_paths(op, [v.path] if v.path else [], v, *args)
        await self.blobs.remove(replaced)
        return stored

    async def _commit_paths(self, op: Callable[..., Any], new_paths: list[str], *args: Any) -> Any:
        """Run an index write; if it fails, the freshly published files are orphans: delete them."""
        try:
            return await self.db.write(op, *args)
        except BaseException:
            await self.blobs.remove([p for p in new_paths if p])
            raise

    def _require_bucket(self, bucket: str) -> None:
        """NoSuchBucket before a body is received (the index checks again when the write commits)."""
        if bucket not in self._buckets:
            raise errors.no_such_bucket(bucket)

    def _visible(self, v: ObjectVersion, version_id: str | None, method: str) -> ObjectVersion:
        if not v.delete_marker:
            return v
        if version_id is None:
            raise errors.no_such_key(v.key, delete_marker=v.version_id)
        error = errors.method_not_allowed(method, "DeleteMarker")
        error.headers.update({"x-amz-delete-marker": "true", "x-amz-version-id": v.version_id})
        raise error

    async def _send(self, queue_arn: str, body: str) -> None:
        sqs = self.sqs() if callable(self.sqs) else self.sqs
        if sqs is None:
            raise RuntimeError("no SQS service is running")
        await sqs.send_message(notifications.queue_name_of(queue_arn), body)

    async def _notify(self, event_name: str, v: ObjectVersion, request_id: str) -> None:
        config = self._notification_configs.get(v.bucket)
        if not config:
            return
        now = time.time()
        for config_id, queue_arn in notifications.matching_queues(config, event_name, v.key):
            body = notifications.event_record(event_name, self.region, self.account, request_id or uuid.uuid4().hex,
                                              config_id, v, now)
            try:
                await self._send(queue_arn, body)
                self.notifications_sent += 1
            except Exception:
                self.notification_failures += 1
                log.warning("event notification failed bucket=%s key=%s queue=%s", v.bucket, v.key, queue_arn,
                            exc_info=True)


def _conditional_put(conn: Any, v: ObjectVersion, if_none_match: str | None,
                     if_match: str | None) -> tuple[ObjectVersion, list[str]]:
    """put_version guarded by If-None-Match: * / If-Match (conditional writes), checked in the same transaction."""
    if if_none_match is not None or if_match is not None:
        try:
            current: ObjectVersion | None = index.get_version(conn, v.bucket, v.key, None, False)
        except errors.S3Error as exc:
            if exc.code != "NoSuchKey":
                raise
            current = None
        exists = current is not None and not current.delete_marker
        if if_none_match is not None and exists:
            raise errors.precondition_failed("If-None-Match")
        if if_match is not None:
            if not exists:
                raise errors.no_such_key(v.key)
            assert current is not None
            if if_match.strip('"') not in ("*", current.etag):
                raise errors.precondition_failed("If-Match")
    return index.put_version(conn, v)


_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _is_hex_sha256(value: str | None) -> bool:
    return value is not None and _HEX_SHA256.fullmatch(value) is not None


def _with_sha256(algorithms: list[str], content_sha256: str | None) -> list[str]:
    """The algorithms to compute: the kept ones, plus SHA-256 when the signed payload hash must be checked."""
    return [*algorithms, "sha256"] if _is_hex_sha256(content_sha256) and "sha256" not in algorithms else algorithms


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
