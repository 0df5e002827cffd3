"""The SQS engine: queues on disk, every operation as an async in-process API (the wire layers translate).

Results are JSON-shaped dicts (what the awsJson protocol returns), so the query/XML layer and in-process
callers (the rules engine, S3 event notifications) see the same thing. Errors are `SqsError` with AWS codes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edgeloop.config import Config
from gateway.sinks.sqs import queue_attributes as qa
from gateway.sinks.sqs.checksums import md5_of_attributes
from gateway.sinks.sqs.errors import SqsError, invalid_parameter, queue_does_not_exist
from gateway.sinks.sqs.messages import (
    check_body,
    check_message_attributes,
    check_system_attributes,
    select_attributes,
)
from gateway.sinks.sqs.oplog import OpLog
from gateway.sinks.sqs.queue import SYSTEM_ATTRIBUTE_NAMES, Queue, SendRequest, Taken
from gateway.storage.durable import GroupSync, atomic_write

log = logging.getLogger("edgeloop.sqs")

MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 1048576
MAX_TAGS = 50
_BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_TRASH_PREFIX = ".deleted-"


class SqsEngine:
    """All queues of the emulated account. `start()` recovers them from disk; `stop()` flushes and closes."""

    def __init__(self, home: Path, config: Config, sync: GroupSync) -> None:
        self.root = Path(home) / "sinks" / "sqs"
        self.config = config
        self.sync = sync
        self.region = config.aws.region
        self.account = config.aws.account_id
        self.queues: dict[str, Queue] = {}
        self._lock = asyncio.Lock()
        self._housekeeper: asyncio.Task[None] | None = None

    # ----- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for directory in sorted(self.root.iterdir()):
            if directory.name.startswith(_TRASH_PREFIX):
                await asyncio.to_thread(shutil.rmtree, directory, True)
                continue
            meta_path = directory / "meta.json"
            if not meta_path.is_file():
                log.warning("sqs: removing %s (queue creation did not finish)", directory)
                await asyncio.to_thread(shutil.rmtree, directory, True)
                continue
            meta = json.loads(meta_path.read_text())
            queue = self._new_queue(meta["name"], meta["attributes"], meta["tags"], meta["created"],
                                    meta["modified"], directory)
            for record in await queue.log.open():
                queue.apply(record)
            queue.finish_replay()
            self.queues[queue.name] = queue
        self._housekeeper = asyncio.get_running_loop().create_task(self._housekeeping())
        log.info("sqs started queues=%d messages=%d", len(self.queues),
                 sum(len(q.messages) for q in self.queues.values()))

    async def stop(self) -> None:
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeper
            self._housekeeper = None
        for queue in self.queues.values():
            queue.deleted = True  # long polls return now
            queue.wake()
            await queue.log.close()
        self.queues.clear()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(self.config.sqs.housekeeping_interval_secs)
            now = time.time()
            for queue in list(self.queues.values()):
                dropped = queue.expire(now)
                if dropped:
                    log.info("sqs expired queue=%s messages=%d", queue.name, dropped)
                    await queue.commit()

    def metrics(self) -> dict[str, int]:
        """Totals over the current queues: queues, messages stored, and the per-queue counters summed."""
        totals = {"queues": len(self.queues), "messages": sum(len(q.messages) for q in self.queues.values())}
        for queue in self.queues.values():
            for name, value in dataclasses.asdict(queue.stats).items():
                totals[f"messages_{name}"] = totals.get(f"messages_{name}", 0) + value
        return totals

    def _new_queue(self, name: str, stored: dict[str, str], tags: dict[str, str], created: float,
                   modified: float, directory: Path) -> Queue:
        return Queue(name, self.arn(name), stored, tags, created, modified, OpLog(directory, self.sync),
                     self.config.sqs.compact_min_records)

    async def _save_meta(self, queue: Queue) -> None:
        meta = {"name": queue.name, "attributes": queue.stored, "tags": queue.tags, "created": queue.created,
                "modified": queue.modified}
        await asyncio.to_thread(atomic_write, queue.log.directory / "meta.json", json.dumps(meta).encode())

    # ----- naming ---------------------------------------------------------------------------------
    def arn(self, name: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{name}"

    def queue_url(self, name: str, host: str | None = None) -> str:
        """The queue URL clients use; `host` is the request's Host header (default: the configured API)."""
        host = host or f"{self.config.api.host}:{self.config.api.port}"
        return f"http://{host}/{self.account}/{name}"

    def queue(self, ref: str) -> Queue:
        """A queue by URL, ARN or name (QueueDoesNotExist otherwise)."""
        if not isinstance(ref, str) or not ref:
            raise SqsError("MissingParameter", "The request must contain the parameter QueueUrl.")
        if "://" in ref:
            name = urlsplit(ref).path.rstrip("/").rsplit("/", 1)[-1]
        elif ref.startswith("arn:"):
            name = ref.rsplit(":", 1)[-1]
        else:
            name = ref
        queue = self.queues.get(name)
        if queue is None:
            raise queue_does_not_exist()
        return queue

    def _queue_by_arn(self, arn: str) -> Queue | None:
        prefix = f"arn:aws:sqs:{self.region}:{self.account}:"
        return self.queues.get(arn[len(prefix):]) if arn.startswith(prefix) else None

    # ----- queue management -----------------------------------------------------------------------
    async def create_queue(self, name: str, attributes: Mapping[str, str] | None = None,
                           tags: Mapping[str, str] | None = None) -> str:
        """Create a queue (idempotent with the same attributes); returns its name."""
        if not isinstance(name, str) or not name:
            raise SqsError("MissingParameter", "The request must contain the parameter QueueName.")
        raw = dict(attributes or {})
        fifo = str(raw.get("FifoQueue", "")).lower() == "true"
        qa.validate_queue_name(name, fifo)
        if not fifo:
            if str(raw.get("FifoQueue", "false")).lower() != "false":
                raise SqsError("InvalidAttributeValue", "Invalid value for the parameter FifoQueue.")
            raw.pop("FifoQueue", None)
        stored = qa.normalize(raw, fifo, creating=True)
        stored.pop("FifoQueue", None)
        checked_tags = _check_tags(tags or {})
        async with self._lock:
            existing = self.queues.get(name)
            if existing is not None:
                current = existing.settings
                for key, value in stored.items():
                    if current.get(key, "") != value:
                        raise SqsError("QueueNameExists", "A queue already exists with the same name and a "
                                       f"different value for attribute {key}")
                return name
            self._check_redrive(name, fifo, stored.get("RedrivePolicy"))
            now = time.time()
            directory = self.root / name
            queue = self._new_queue(name, stored, checked_tags, now, now, directory)
            await queue.log.open()
            await self._save_meta(queue)
            self.queues[name] = queue
        log.info("sqs queue created name=%s fifo=%s", name, fifo)
        return name

    def _check_redrive(self, source_name: str, fifo: bool, policy: str | None) -> None:
        if not policy:
            return
        target_arn = json.loads(policy)["deadLetterTargetArn"]
        target = self._queue_by_arn(target_arn)
        if target is None:
            raise invalid_parameter(f"Value {policy} for parameter RedrivePolicy is invalid. Reason: Dead letter "
                                    "target does not exist.")
        if target.fifo != fifo:
            raise invalid_parameter(f"Value {policy} for parameter RedrivePolicy is invalid. Reason: Dead-letter "
                                    "queue must be the same type of queue as the source queue (FIFO or standard).")
        allow = target.stored.get("RedriveAllowPolicy")
        if allow:
            rule = json.loads(allow)
            permission = rule["redrivePermission"]
            if permission == "denyAll" or (
                    permission == "byQueue" and self.arn(source_name) not in rule.get("sourceQueueArns", [])):
                raise invalid_parameter(f"Value {policy} for parameter RedrivePolicy is invalid. Reason: Queue "
                                        f"{target.name} does not allow this queue to use it as a dead-letter queue.")

    async def delete_queue(self, ref: str) -> None:
        async with self._lock:
            queue = self.queue(ref)
            del self.queues[queue.name]
            queue.deleted = True
            queue.wake()
            await queue.log.close()
            trash = self.root / f"{_TRASH_PREFIX}{uuid.uuid4().hex}"
            await asyncio.to_thread(queue.log.directory.rename, trash)
        await asyncio.to_thread(shutil.rmtree, trash, True)
        log.info("sqs queue deleted name=%s", queue.name)

    async def get_queue_url(self, name: str) -> str:
        """The name of an existing queue (the wire layer turns it into a URL)."""
        if not isinstance(name, str) or not name:
            raise SqsError("MissingParameter", "The request must contain the parameter QueueName.")
        return self.queue(name).name

    def list_queues(self, prefix: str | None = None, max_results: int | None = None,
                    next_token: str | None = None) -> tuple[list[str], str | None]:
        """Queue names (sorted) with an optional prefix, paginated with an opaque token."""
        names = sorted(n for n in self.queues if not prefix or n.startswith(prefix))
        return _paginate(names, max_results, next_token)

    def list_dead_letter_source_queues(self, ref: str, max_results: int | None = None,
                                       next_token: str | None = None) -> tuple[list[str], str | None]:
        target = self.queue(ref)
        names = sorted(q.name for q in self.queues.values() if q.redrive and q.redrive[0] == target.arn)
        return _paginate(names, max_results, next_token)

    def get_queue_attributes(self, ref: str, names: Iterable[str] | None = None) -> dict[str, str]:
        queue = self.queue(ref)
        wanted = list(names or [])
        for name in wanted:
            if name != "All" and name not in qa.READABLE:
                raise SqsError("InvalidAttributeName", f"Unknown Attribute {name}.")
        now = time.time()
        visible, in_flight, delayed = queue.counts(now)
        everything = {
            **queue.settings,
            "QueueArn": queue.arn,
            "ApproximateNumberOfMessages": str(visible),
            "ApproximateNumberOfMessagesNotVisible": str(in_flight),
            "ApproximateNumberOfMessagesDelayed": str(delayed),
            "CreatedTimestamp": str(int(queue.created)),
            "LastModifiedTimestamp": str(int(queue.modified)),
        }
        if "All" in wanted:
            return everything
        return {n: everything[n] for n in wanted if n in everything}

    async def set_queue_attributes(self, ref: str, attributes: Mapping[str, str]) -> None:
        queue = self.queue(ref)
        if not attributes:
            raise SqsError("MissingParameter", "The request must contain the parameter Attribute.Name.")
        changes = qa.normalize(attributes, queue.fifo, creating=False)
        self._check_redrive(queue.name, queue.fifo, changes.get("RedrivePolicy"))
        for key, value in changes.items():
            if value == "":
                queue.stored.pop(key, None)
            else:
                queue.stored[key] = value
        queue.modified = time.time()
        queue.refresh_settings()
        await self._save_meta(queue)
        queue.wake()  # a changed visibility or delay can make messages receivable sooner

    async def tag_queue(self, ref: str, tags: Mapping[str, str]) -> None:
        queue = self.queue(ref)
        merged = {**queue.tags, **_check_tags(tags)}
        if len(merged) > MAX_TAGS:
            raise invalid_parameter(f"Too many tags added for queue {queue.name}: at most {MAX_TAGS} are allowed.")
        queue.tags = merged
        await self._save_meta(queue)

    async def untag_queue(self, ref: str, keys: Iterable[str]) -> None:
        queue = self.queue(ref)
        queue.tags = {k: v for k, v in queue.tags.items() if k not in set(keys)}
        await self._save_meta(queue)

    def list_queue_tags(self, ref: str) -> dict[str, str]:
        return dict(self.queue(ref).tags)

    async def purge_queue(self, ref: str) -> None:
        queue = self.queue(ref)
        now = time.time()
        cooldown = self.config.sqs.purge_cooldown_secs
        if queue.last_purge and now - queue.last_purge < cooldown:
            raise SqsError("PurgeQueueInProgress", f"Only one PurgeQueue operation on {queue.name} is allowed every "
                           f"{cooldown:g} seconds.")
        queue.last_purge = now
        queue.purge()
        await queue.commit()

    # ----- messages -------------------------------------------------------------------------------
    async def send_message(self, queue_url_or_name: str, body: str, attributes: Mapping[str, Any] | None = None,
                           delay: int | None = None, group_id: str | None = None, dedup_id: str | None = None,
                           *, system_attributes: Mapping[str, Any] | None = None,
                           sender_id: str | None = None) -> dict[str, Any]:
        """Send one message; returns SendMessage's result (MessageId, MD5s, SequenceNumber for FIFO)."""
        queue = self.queue(queue_url_or_name)
        result = self._enqueue(queue, self._send_request(body, attributes, delay, group_id, dedup_id,
                                                         system_attributes, sender_id))
        await queue.commit()
        return result

    async def send_message_batch(self, ref: str, entries: Sequence[Mapping[str, Any]],
                                 sender_id: str | None = None) -> dict[str, Any]:
        """SendMessageBatch: entries in wire form (Id, MessageBody, MessageAttributes, ...)."""
        queue = self.queue(ref)
        _check_batch(entries, "SendMessageBatchRequestEntry")
        total = sum(len(str(e.get("MessageBody", "")).encode()) for e in entries)
        if total > MAX_BATCH_BYTES:
            raise SqsError("BatchRequestTooLong", f"Batch requests cannot be longer than {MAX_BATCH_BYTES} bytes. "
                           f"You have sent {total} bytes.")
        successful: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for entry in entries:
            try:
                request = self._send_request(entry.get("MessageBody"), entry.get("MessageAttributes"),
                                             entry.get("DelaySeconds"), entry.get("MessageGroupId"),
                                             entry.get("MessageDeduplicationId"),
                                             entry.get("MessageSystemAttributes"), sender_id)
                successful.append({"Id": entry["Id"], **self._enqueue(queue, request)})
            except SqsError as error:
                failed.append(_failure(entry["Id"], error))
        if successful:
            await queue.commit()
        return {"Successful": successful, "Failed": failed}

    def _send_request(self, body: object, attributes: Mapping[str, Any] | None, delay: object,
                      group_id: object, dedup_id: object, system_attributes: Mapping[str, Any] | None,
                      sender_id: str | None) -> SendRequest:
        if delay is not None:
            delay = _int_param("DelaySeconds", delay, 0, 900)
        for name, value in (("MessageGroupId", group_id), ("MessageDeduplicationId", dedup_id)):
            if value is not None and not isinstance(value, str):
                raise invalid_parameter(f"Value {value} for parameter {name} is invalid. Reason: must be a string.")
        return SendRequest(body=check_body(body), attributes=check_message_attributes(attributes),
                           system=check_system_attributes(system_attributes), sender_id=sender_id or self.account,
                           delay=delay, group_id=group_id, dedup_id=dedup_id)  # type: ignore[arg-type]

    def _enqueue(self, queue: Queue, request: SendRequest) -> dict[str, Any]:
        message, _ = queue.send(request, time.time())
        result: dict[str, Any] = {"MessageId": message.id, "MD5OfMessageBody": message.md5_body}
        if message.attributes:
            result["MD5OfMessageAttributes"] = md5_of_attributes(message.attributes)
        if message.system:
            result["MD5OfMessageSystemAttributes"] = md5_of_attributes(message.system)
        if message.sequence:
            result["SequenceNumber"] = message.sequence
        return result

    async def receive_message(self, ref: str, max_messages: int = 1, wait_time: int | None = None,
                              visibility_timeout: int | None = None,
                              attribute_names: Iterable[str] = (), message_attribute_names: Iterable[str] = (),
                              attempt_id: str | None = None) -> list[dict[str, Any]]:
        """ReceiveMessage: long-polls up to `wait_time` seconds (woken by sends); messages in wire form."""
        queue = self.queue(ref)
        max_messages = _int_param("MaxNumberOfMessages", max_messages, 1, 10)
        wait = queue.wait_seconds if wait_time is None else _int_param("WaitTimeSeconds", wait_time, 0, 20)
        visibility = (queue.visibility_timeout if visibility_timeout is None
                      else _int_param("VisibilityTimeout", visibility_timeout, 0, 43200))
        system_names = set(attribute_names)
        user_names = list(message_attribute_names)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not queue.deleted:
            taken, touched = queue.take(max_messages, visibility, time.time(), attempt_id if queue.fifo else None,
                                        self._queue_by_arn)
            for dead_letter_queue in touched:  # the moved copy is durable before the source forgets it
                await dead_letter_queue.commit()
            if taken or touched:
                await queue.commit()
            if taken:
                return [self._render(queue, t, system_names, user_names) for t in taken]
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await queue.wait_for_messages(remaining)
        return []

    def _render(self, queue: Queue, taken: Taken, system_names: set[str],
                user_names: list[str]) -> dict[str, Any]:
        m = taken.message
        out: dict[str, Any] = {"MessageId": m.id, "ReceiptHandle": taken.receipt_handle, "MD5OfBody": m.md5_body,
                               "Body": m.body}
        if system_names:
            every = {
                "SenderId": m.sender_id,
                "SentTimestamp": str(m.sent_ms),
                "ApproximateReceiveCount": str(m.receive_count),
                "ApproximateFirstReceiveTimestamp": str(m.first_receive_ms),
            }
            optional = {"SequenceNumber": m.sequence, "MessageDeduplicationId": m.dedup_id,
                        "MessageGroupId": m.group_id, "DeadLetterQueueSourceArn": m.dlq_source_arn}
            every.update({k: v for k, v in optional.items() if v})
            if "AWSTraceHeader" in m.system:
                every["AWSTraceHeader"] = m.system["AWSTraceHeader"]["StringValue"]
            wanted = SYSTEM_ATTRIBUTE_NAMES if "All" in system_names else system_names
            out["Attributes"] = {k: v for k, v in every.items() if k in wanted}
        selected = select_attributes(m.attributes, user_names)
        if selected:
            out["MD5OfMessageAttributes"] = md5_of_attributes(selected)
            out["MessageAttributes"] = selected
        return out

    async def delete_message(self, ref: str, receipt_handle: str) -> None:
        queue = self.queue(ref)
        queue.delete(receipt_handle)
        await queue.commit()

    async def delete_message_batch(self, ref: str, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        queue = self.queue(ref)
        _check_batch(entries, "DeleteMessageBatchRequestEntry")

        def one(entry: Mapping[str, Any]) -> None:
            queue.delete(entry.get("ReceiptHandle"))  # type: ignore[arg-type]
        return await self._batch(queue, entries, one)

    async def change_message_visibility(self, ref: str, receipt_handle: str, visibility_timeout: int) -> None:
        queue = self.queue(ref)
        timeout = _int_param("VisibilityTimeout", visibility_timeout, 0, 43200)
        queue.change_visibility(receipt_handle, timeout, time.time())
        await queue.commit()

    async def change_message_visibility_batch(self, ref: str,
                                              entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        queue = self.queue(ref)
        _check_batch(entries, "ChangeMessageVisibilityBatchRequestEntry")

        def one(entry: Mapping[str, Any]) -> None:
            timeout = _int_param("VisibilityTimeout", entry.get("VisibilityTimeout", 0), 0, 43200)
            queue.change_visibility(entry.get("ReceiptHandle"), timeout, time.time())  # type: ignore[arg-type]
        return await self._batch(queue, entries, one)

    async def _batch(self, queue: Queue, entries: Sequence[Mapping[str, Any]], action: Any) -> dict[str, Any]:
        successful: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for entry in entries:
            try:
                action(entry)
                successful.append({"Id": entry["Id"]})
            except SqsError as error:
                failed.append(_failure(entry["Id"], error))
        await queue.commit()
        return {"Successful": successful, "Failed": failed}


def _failure(entry_id: str, error: SqsError) -> dict[str, Any]:
    return {"Id": entry_id, "SenderFault": error.sender, "Code": error.code, "Message": error.message}


def _check_batch(entries: Sequence[Mapping[str, Any]], entry_name: str) -> None:
    if not entries:
        raise SqsError("EmptyBatchRequest", f"There should be at least one {entry_name} in the request.")
    if len(entries) > MAX_BATCH_ENTRIES:
        raise SqsError("TooManyEntriesInBatchRequest", f"Maximum number of entries per request are "
                       f"{MAX_BATCH_ENTRIES}. You have sent {len(entries)}.")
    seen: set[str] = set()
    for entry in entries:
        entry_id = entry.get("Id")
        if not isinstance(entry_id, str) or not _BATCH_ID.match(entry_id):
            raise SqsError("InvalidBatchEntryId", "A batch entry id can only contain alphanumeric characters, "
                           "hyphens and underscores. It can be at most 80 letters long.")
        if entry_id in seen:
            raise SqsError("BatchEntryIdsNotDistinct", f"Id {entry_id} repeated.")
        seen.add(entry_id)


def _int_param(name: str, value: object, low: int, high: int) -> int:
    try:
        number = int(value)  # type: ignore[call-overload]
        if isinstance(value, float) and number != value:
            raise ValueError(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not low <= number <= high:
        raise invalid_parameter(f"Value {value} for parameter {name} is invalid. Reason: Must be between {low} "
                                f"and {high}, if provided.")
    return number


def _check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise invalid_parameter(f"Too many tags: at most {MAX_TAGS} are allowed per queue.")
    for key, value in tags.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128:
            raise invalid_parameter("Tag keys must be between 1 and 128 characters in length.")
        if not isinstance(value, str) or len(value) > 256:
            raise invalid_parameter("Tag values must be between 0 and 256 characters in length.")
    return dict(tags)


def _paginate(names: list[str], max_results: int | None, next_token: str | None) -> tuple[list[str], str | None]:
    start = 0
    if next_token:
        try:
            after = base64.urlsafe_b64decode(next_token.encode()).decode()
        except (ValueError, UnicodeError):
            raise invalid_parameter("Invalid NextToken value.") from None
        start = next((i for i, n in enumerate(names) if n > after), len(names))
    if max_results is None:
        return names[start:start + 1000], None
    limit = _int_param("MaxResults", max_results, 1, 1000)
    page = names[start:start + limit]
    more = start + limit < len(names)
    token = base64.urlsafe_b64encode(page[-1].encode()).decode() if more and page else None
    return page, token
