"""One queue's state machine: standard or FIFO, visibility, delays, dedup, redrive, long-poll wake-ups.

All state changes happen on the event loop; each is appended to the queue's operation log and the caller
awaits `commit()` before answering, so whatever a client was told is on disk (and a message handed to one
consumer is recorded as in flight before anyone sees it).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gateway.sinks.sqs import queue_attributes as qa
from gateway.sinks.sqs.errors import SqsError, invalid_parameter
from gateway.sinks.sqs.messages import (
    Message,
    attributes_size,
    new_message_id,
    new_receipt_handle,
    parse_receipt_handle,
)
from gateway.sinks.sqs.oplog import OpLog

DEDUP_WINDOW_SECS = 300.0
ATTEMPT_WINDOW_SECS = 300.0
FIRST_SEQUENCE = 10**19
SYSTEM_ATTRIBUTE_NAMES = frozenset({
    "SenderId", "SentTimestamp", "ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp", "SequenceNumber",
    "MessageDeduplicationId", "MessageGroupId", "AWSTraceHeader", "DeadLetterQueueSourceArn",
})


def now_ms(now: float) -> int:
    return int(now * 1000)


@dataclass
class SendRequest:
    body: str
    attributes: dict[str, dict[str, str]]
    system: dict[str, dict[str, str]]
    sender_id: str
    delay: int | None = None
    group_id: str | None = None
    dedup_id: str | None = None


@dataclass
class Taken:
    """A message handed to a consumer by one receive, with the handle it got."""

    message: Message
    receipt_handle: str


@dataclass
class QueueStats:
    """Counters since start: every message dropped (expired) or moved (redriven) is counted."""

    sent: int = 0
    received: int = 0
    deleted: int = 0
    expired: int = 0
    redriven: int = 0


@dataclass
class _Attempt:
    expires: float
    taken: list[Taken] = field(default_factory=list)


class Queue:
    """A queue's messages and indexes; `log` makes every change durable."""

    def __init__(self, name: str, arn: str, stored: dict[str, str], tags: dict[str, str], created: float,
                 modified: float, log: OpLog, compact_min_records: int = 10000) -> None:
        self.name = name
        self.arn = arn
        self.fifo = qa.is_fifo_name(name)
        self.stored = stored
        self.tags = tags
        self.created = created
        self.modified = modified
        self.log = log
        self.compact_min_records = compact_min_records
        self.deleted = False
        self.stats = QueueStats()
        self.last_purge = 0.0
        self.messages: dict[str, Message] = {}
        self._ready: deque[tuple[str, int]] = deque()
        self._timers: list[tuple[float, int, str, int]] = []
        self._counter = itertools.count()
        self._groups: OrderedDict[str, deque[str]] = OrderedDict()
        self._dedup: dict[str, tuple[float, str, str | None]] = {}
        self._attempts: dict[str, _Attempt] = {}
        self._sequence = FIRST_SEQUENCE
        self._waiters: set[asyncio.Future[None]] = set()
        self.settings: dict[str, str] = {}
        self.refresh_settings()

    # ----- settings -------------------------------------------------------------------------------
    def refresh_settings(self) -> None:
        self.settings = qa.effective(self.stored, self.fifo)
        self.visibility_timeout = int(self.settings["VisibilityTimeout"])
        self.max_message_size = int(self.settings["MaximumMessageSize"])
        self.retention = int(self.settings["MessageRetentionPeriod"])
        self.delay_seconds = int(self.settings["DelaySeconds"])
        self.wait_seconds = int(self.settings["ReceiveMessageWaitTimeSeconds"])
        self.redrive = qa.redrive_target(self.stored)
        self.content_dedup = self.settings.get("ContentBasedDeduplication") == "true"
        self.group_scoped_dedup = self.settings.get("DeduplicationScope") == "messageGroup"

    # ----- replay and snapshot --------------------------------------------------------------------
    def apply(self, record: dict[str, Any]) -> None:
        """Replay one log record (recovery)."""
        op = record["o"]
        if op == "S":
            self._add(Message.from_record(record))
        elif op == "R":
            m = self.messages.get(record["id"])
            if m is not None:
                m.receive_count, m.first_receive_ms, m.receipt = record["c"], record["f"], record["r"]
                m.visible_at = record["v"]
        elif op == "V":
            m = self.messages.get(record["id"])
            if m is not None:
                m.visible_at = record["v"]
        elif op == "D":
            self._remove(record["id"])
        elif op == "P":
            self._clear()
        elif op == "X":
            self._dedup[record["k"]] = (record["e"], record["id"], record.get("n"))
        elif op == "N":
            self._sequence = max(self._sequence, record["n"])

    def finish_replay(self) -> None:
        """Rebuild the delivery indexes from the replayed messages."""
        self._ready.clear()
        self._timers.clear()
        for m in self.messages.values():
            self._schedule(m)

    def snapshot(self) -> Iterator[dict[str, Any]]:
        now = time.time()
        yield {"o": "N", "n": self._sequence}
        for key, (expires, message_id, sequence) in self._dedup.items():
            if expires > now:
                yield {"o": "X", "k": key, "e": expires, "id": message_id, "n": sequence}
        for m in self.messages.values():
            yield {"o": "S", **m.to_record()}

    async def commit(self) -> None:
        await self.log.commit()
        if self.log.records_since_snapshot > max(self.compact_min_records, 4 * len(self.messages)):
            await self.log.compact(self.snapshot())

    # ----- indexes --------------------------------------------------------------------------------
    def _add(self, m: Message) -> None:
        self.messages[m.id] = m
        if self.fifo:
            assert m.group_id is not None
            self._groups.setdefault(m.group_id, deque()).append(m.id)
            if m.sequence:
                self._sequence = max(self._sequence, int(m.sequence))
            if m.dedup_id:
                self._dedup[self._dedup_key(m.group_id, m.dedup_id)] = (
                    m.sent_ms / 1000 + DEDUP_WINDOW_SECS, m.id, m.sequence)

    def _remove(self, message_id: str) -> Message | None:
        m = self.messages.pop(message_id, None)
        if m is not None and self.fifo and m.group_id is not None:
            group = self._groups.get(m.group_id)
            if group is not None:
                if group and group[0] == message_id:
                    group.popleft()
                else:
                    group.remove(message_id)
                if not group:
                    del self._groups[m.group_id]
        return m

    def _clear(self) -> None:
        self.messages.clear()
        self._groups.clear()
        self._ready.clear()
        self._timers.clear()

    def _schedule(self, m: Message) -> None:
        """Index a message by when it becomes visible (standard queues; FIFO scans its groups)."""
        if self.fifo:
            return
        if m.visible_at <= time.time():
            self._ready.append((m.id, m.version))
        else:
            heapq.heappush(self._timers, (m.visible_at, next(self._counter), m.id, m.version))
            if len(self._timers) > 2 * len(self.messages) + 1024:
                self._prune_timers()

    @property
    def timer_entries(self) -> int:
        """Size of the visibility-timer index (stale entries included)."""
        return len(self._timers)

    def _prune_timers(self) -> None:
        """Drop timer entries of deleted or re-scheduled messages (they are skipped lazily otherwise)."""
        self._timers = [t for t in self._timers if (m := self.messages.get(t[2])) is not None and m.version == t[3]]
        heapq.heapify(self._timers)

    def _set_visible_at(self, m: Message, visible_at: float) -> None:
        m.visible_at = visible_at
        m.version += 1
        self._schedule(m)

    def _dedup_key(self, group_id: str, dedup_id: str) -> str:
        return f"{group_id}\x00{dedup_id}" if self.group_scoped_dedup else dedup_id

    def next_visible_at(self) -> float | None:
        """When the next invisible message becomes visible (so a long poll can wake for it)."""
        if self.fifo:
            heads = (self.messages[g[0]].visible_at for g in self._groups.values())
            return min(heads, default=None)
        while self._timers:
            at, _, message_id, version = self._timers[0]
            m = self.messages.get(message_id)
            if m is not None and m.version == version:
                return at
            heapq.heappop(self._timers)
        return None

    # ----- waiters --------------------------------------------------------------------------------
    def wake(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def wait_for_messages(self, timeout: float) -> None:
        """Sleep until a send (or visibility change) wakes us, a message becomes visible, or `timeout`."""
        next_at = self.next_visible_at()
        if next_at is not None:
            timeout = min(timeout, max(0.0, next_at - time.time()) + 0.001)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(fut)

    # ----- sending --------------------------------------------------------------------------------
    def send(self, req: SendRequest, now: float) -> tuple[Message, bool]:
        """Enqueue (and log) a validated message; (message, False) when FIFO dedup swallowed it."""
        size = len(req.body.encode("utf-8")) + attributes_size(req.attributes)
        if size > self.max_message_size:
            raise invalid_parameter(f"One or more parameters are invalid. Reason: Message must be shorter than "
                                    f"{self.max_message_size} bytes.")
        if self.fifo:
            return self._send_fifo(req, now)
        if req.group_id is not None and req.group_id == "":
            raise invalid_parameter("Value for parameter MessageGroupId is invalid. Reason: must not be empty.")
        if req.dedup_id is not None:
            raise invalid_parameter("The request include parameter that is not valid for this queue type. "
                                    "Reason: MessageDeduplicationId is only valid for FIFO queues.")
        delay = self.delay_seconds if req.delay is None else req.delay
        m = Message(id=new_message_id(), body=req.body, attributes=req.attributes, system=req.system,
                    sent_ms=now_ms(now), sender_id=req.sender_id, visible_at=now + delay, group_id=req.group_id)
        self._add(m)
        self._schedule(m)
        self.log.append({"o": "S", **m.to_record()})
        self.stats.sent += 1
        if delay == 0:
            self.wake()
        return m, True

    def _send_fifo(self, req: SendRequest, now: float) -> tuple[Message, bool]:
        if not req.group_id:
            raise SqsError("MissingParameter", "The request must contain the parameter MessageGroupId.")
        _check_fifo_token("MessageGroupId", req.group_id)
        if req.delay:
            raise invalid_parameter(f"Value {req.delay} for parameter DelaySeconds is invalid. Reason: The request "
                                    "include parameter that is not valid for this queue type.")
        dedup_id = req.dedup_id
        if dedup_id is None:
            if not self.content_dedup:
                raise invalid_parameter("The queue should either have ContentBasedDeduplication enabled or "
                                        "MessageDeduplicationId provided explicitly")
            dedup_id = hashlib.sha256(req.body.encode("utf-8")).hexdigest()
        _check_fifo_token("MessageDeduplicationId", dedup_id)
        key = self._dedup_key(req.group_id, dedup_id)
        seen = self._dedup.get(key)
        if seen is not None and seen[0] > now:
            duplicate = Message(id=seen[1], body=req.body, attributes=req.attributes, system=req.system,
                                sent_ms=now_ms(now), sender_id=req.sender_id, visible_at=now, sequence=seen[2])
            return duplicate, False
        self._sequence += 1
        m = Message(id=new_message_id(), body=req.body, attributes=req.attributes, system=req.system,
                    sent_ms=now_ms(now), sender_id=req.sender_id, visible_at=now + self.delay_seconds,
                    group_id=req.group_id, dedup_id=dedup_id, sequence=f"{self._sequence:020d}")
        self._add(m)
        self.log.append({"o": "S", **m.to_record()})
        self.stats.sent += 1
        self.wake()
        return m, True

    def accept_moved(self, m: Message, source_arn: str, now: float) -> None:
        """Take a message redriven from a source queue (dead-letter move)."""
        moved = Message(id=m.id, body=m.body, attributes=m.attributes, system=m.system, sent_ms=m.sent_ms,
                        sender_id=m.sender_id, visible_at=now, group_id=m.group_id, dedup_id=m.dedup_id,
                        receive_count=m.receive_count, first_receive_ms=m.first_receive_ms,
                        dlq_source_arn=source_arn)
        if self.fifo:
            self._sequence += 1
            moved.sequence = f"{self._sequence:020d}"
            moved.group_id = moved.group_id or "dlq"
        self._add(moved)
        self._schedule(moved)
        self.log.append({"o": "S", **moved.to_record()})
        self.wake()

    # ----- receiving ------------------------------------------------------------------------------
    def take(self, max_messages: int, visibility: int, now: float, attempt_id: str | None,
             resolve_dlq: Callable[[str], Queue | None]) -> tuple[list[Taken], set[Queue]]:
        """Hand out up to `max_messages` visible messages (logged as in flight); also the DLQs touched."""
        if attempt_id is not None:
            replay = self._replay_attempt(attempt_id, now)
            if replay is not None:
                return replay, set()
        candidates = self._fifo_candidates(now) if self.fifo else self._standard_candidates(now)
        taken: list[Taken] = []
        touched: set[Queue] = set()
        for m in candidates:
            if m.sent_ms / 1000 + self.retention <= now:
                self._drop(m.id)
                self.stats.expired += 1
                continue
            if self.redrive is not None and m.receive_count >= self.redrive[1]:
                dlq = resolve_dlq(self.redrive[0])
                if dlq is not None and dlq is not self:
                    self._drop(m.id)
                    self.stats.redriven += 1
                    dlq.accept_moved(m, self.arn, now)
                    touched.add(dlq)
                    continue
            taken.append(self._deliver(m, visibility, now))
            if len(taken) >= max_messages:
                break
        if attempt_id is not None and taken:
            self._attempts[attempt_id] = _Attempt(now + ATTEMPT_WINDOW_SECS, taken)
        return taken, touched

    def _standard_candidates(self, now: float) -> Iterator[Message]:
        while self._timers and self._timers[0][0] <= now:
            _, _, message_id, version = heapq.heappop(self._timers)
            self._ready.append((message_id, version))
        for _ in range(len(self._ready)):  # entries re-queued during this receive (visibility 0) wait for the next
            message_id, version = self._ready.popleft()
            m = self.messages.get(message_id)
            if m is not None and m.version == version and m.visible_at <= now:
                yield m

    def _fifo_candidates(self, now: float) -> Iterator[Message]:
        """Per group, in order: nothing while the head is in flight (group locked) or delayed."""
        for group_id in list(self._groups):
            group = self._groups.get(group_id)
            if not group or self.messages[group[0]].visible_at > now:
                continue
            for message_id in list(group):
                m = self.messages.get(message_id)
                if m is None:
                    continue
                if m.visible_at > now:
                    break
                yield m

    def _deliver(self, m: Message, visibility: int, now: float) -> Taken:
        nonce, handle = new_receipt_handle(m.id)
        m.receive_count += 1
        self.stats.received += 1
        if not m.first_receive_ms:
            m.first_receive_ms = now_ms(now)
        m.receipt = nonce
        self._set_visible_at(m, now + visibility)
        # The same line json would write for {"o": "R", "id": ..., "c": ..., "f": ..., "r": ..., "v": ...}: ids
        # and nonces are hex and dashes, the rest numbers (the repr of an int or a float is its JSON form).
        self.log.append_json(f'{{"o":"R","id":"{m.id}","c":{m.receive_count},"f":{m.first_receive_ms},'
                             f'"r":"{nonce}","v":{m.visible_at!r}}}')
        return Taken(m, handle)

    def _replay_attempt(self, attempt_id: str, now: float) -> list[Taken] | None:
        attempt = self._attempts.get(attempt_id)
        if attempt is None or attempt.expires <= now:
            return None
        if all(self.messages.get(t.message.id) is t.message and t.message.receipt == parse_receipt_handle(
                t.receipt_handle)[1] for t in attempt.taken):
            return attempt.taken
        return None

    def _drop(self, message_id: str) -> None:
        if self._remove(message_id) is not None:
            self.log.append_json(f'{{"o":"D","id":"{message_id}"}}')  # a stored message's id: hex and dashes

    # ----- acknowledging --------------------------------------------------------------------------
    def _in_flight_message(self, receipt_handle: str) -> tuple[Message | None, str]:
        message_id, nonce = parse_receipt_handle(receipt_handle)
        return self.messages.get(message_id), nonce

    def delete(self, receipt_handle: str) -> None:
        """Delete by the latest receipt handle; an older handle of a re-received message deletes nothing."""
        m, nonce = self._in_flight_message(receipt_handle)
        if m is None or m.receipt != nonce:
            return
        self._drop(m.id)
        self.stats.deleted += 1
        if self.fifo:
            self.wake()  # the group may be unlocked now

    def change_visibility(self, receipt_handle: str, timeout: int, now: float) -> None:
        m, nonce = self._in_flight_message(receipt_handle)
        if m is None or m.receipt != nonce:
            raise invalid_parameter(f"Value {receipt_handle} for parameter ReceiptHandle is invalid. Reason: "
                                    "Message does not exist or is not available for visibility timeout change.")
        if m.visible_at <= now:
            raise SqsError("MessageNotInflight", "Message is not inflight.")
        self._set_visible_at(m, now + timeout)
        self.log.append({"o": "V", "id": m.id, "v": m.visible_at})
        if timeout == 0:
            self.wake()

    def purge(self) -> None:
        self._clear()
        self.log.append({"o": "P"})

    # ----- housekeeping and stats -----------------------------------------------------------------
    def expire(self, now: float) -> int:
        """Drop messages past the retention period and forget old dedup ids; return how many were dropped."""
        cutoff_ms = now_ms(now - self.retention)
        expired = [m.id for m in self.messages.values() if m.sent_ms <= cutoff_ms]
        for message_id in expired:
            self._drop(message_id)
        self.stats.expired += len(expired)
        self._dedup = {k: v for k, v in self._dedup.items() if v[0] > now}
        self._attempts = {k: v for k, v in self._attempts.items() if v.expires > now}
        return len(expired)

    def counts(self, now: float) -> tuple[int, int, int]:
        """(visible, in flight, delayed)."""
        visible = in_flight = delayed = 0
        for m in self.messages.values():
            if m.visible_at <= now:
                visible += 1
            elif m.receive_count:
                in_flight += 1
            else:
                delayed += 1
        return visible, in_flight, delayed


def _check_fifo_token(name: str, value: str) -> None:
    """Group and deduplication ids: 1-128 printable ASCII characters."""
    if not 1 <= len(value) <= 128 or any(not 33 <= ord(c) <= 126 for c in value):
        raise invalid_parameter(f"Value {value} for parameter {name} is invalid. Reason: it must be 1 to 128 "
                                "characters from alphanumeric and punctuation (!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~).")
