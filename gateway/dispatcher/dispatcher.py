"""The rule dispatcher: a broker hook that journals routed messages and per-rule lanes that run actions.

- ``on_publish`` (the broker hook) routes a message through the RuleIndex. QoS >= 1 matches are appended
  to the journal and the returned awaitable (which the broker awaits before PUBACK/PUBREC) makes them
  durable: one shared future per fsync batch, whose records are written with one system call when the batch
  starts. QoS 0 matches skip the journal (best effort, counted).
- Every rule has a lane: a FIFO of messages and one worker. A worker takes its backlog (up to
  ``batch_size`` messages) as a round, evaluates the rule on each, and ships the actions grouped by target
  (Kinesis PutRecords, Firehose PutRecordBatch, SQS SendMessageBatch, S3 and republish in order per
  key/topic), retrying throttling and transient errors with exponential backoff and jitter. When every
  call of a round goes to a target that applies calls in the order they are made (the in-process Kinesis
  and SQS engines), the worker issues the calls and moves on to the next round while they complete, so
  rounds overlap instead of each waiting for the previous one's durable commit. An action that still
  fails, or fails permanently, goes to the rule's errorAction (one document per message with every
  failure); without one, or if the errorAction fails too, the message goes to the dead-letter file.
  Nothing blocks a lane for longer than the bounded retries.
- A message is finished when every rule it matched is done with it; the contiguous finished prefix is the
  watermark written to the journal checkpoint, which lets fully dispatched segments be deleted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.dispatcher.errors import ActionError
from gateway.dispatcher.journal import Journal, SegmentWriter
from gateway.dispatcher.metrics import DispatchMetrics, RuleStats
from gateway.dispatcher.record import NO_PROPERTIES, JournalRecord, MqttProperties
from gateway.dispatcher.retry import Backoff, classify
from gateway.dispatcher.targets import FIREHOSE_BATCH, KINESIS_BATCH, SQS_BATCH, ActionTarget, ItemResults
from gateway.dispatcher.watermark import Watermark
from gateway.storage.durable import GroupSync
from rules import ActionInvocation, MessageContext, RuleIndex, TopicRule, evaluate_rule, render_error_action

log = logging.getLogger("edgeloop.dispatcher")

TargetResolver = Callable[[str | None], ActionTarget]


@dataclass(slots=True, eq=False)
class Pending:
    """One routed message on its way through the lanes of the rules it matched."""

    record: JournalRecord
    journaled: bool
    remaining: int
    ctx: MessageContext | None = None

    def context(self, account_id: str) -> MessageContext:
        if self.ctx is None:
            self.ctx = self.record.context(account_id)
        return self.ctx


@dataclass(slots=True, eq=False)
class Job:
    """One action invocation for one message."""

    pending: Pending
    inv: ActionInvocation
    label: str
    error: str | None = None

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = message


@dataclass(slots=True, eq=False)
class Round:
    """One round of a lane: the messages taken, every invocation (journal order), the groups to send."""

    rule: TopicRule
    batch: list[Pending]
    jobs: list[Job]
    groups: list[list[Job]]


MAX_ROUNDS_IN_FLIGHT = 8  # per lane, when rounds overlap (order-keeping targets)
MAX_FANOUTS = 4096  # remembered routes (lanes of the rules a topic matched)


@dataclass(eq=False)
class Lane:
    """A rule's FIFO of messages and its worker."""

    name: str
    capacity: int
    stats: RuleStats
    queue: deque[Pending] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    room: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    rounds: set[asyncio.Task[None]] = field(default_factory=set)  # rounds whose calls are still in flight

    def __post_init__(self) -> None:
        self.room.set()

    @property
    def full(self) -> bool:
        return len(self.queue) >= self.capacity

    def push(self, p: Pending) -> None:
        self.queue.append(p)
        self.wake.set()
        if self.full:
            self.room.clear()

    def take(self, n: int) -> list[Pending]:
        q = self.queue
        if n >= len(q):
            batch = list(q)
            q.clear()
        else:
            batch = [q.popleft() for _ in range(n)]
        if not self.full:
            self.room.set()
        return batch


@dataclass(frozen=True)
class DispatchSettings:
    account_id: str = "000000000000"
    batch_size: int = 5000
    max_pending_per_rule: int = 100000
    checkpoint_interval: float = 0.1
    backoff: Backoff = field(default_factory=Backoff)


class Dispatcher:
    """The broker hook plus the lanes. Create, `start(recovered)`, add as a broker hook, `stop()`."""

    def __init__(self, journal: Journal, index: RuleIndex, sync: GroupSync, targets: TargetResolver,
                 settings: DispatchSettings | None = None) -> None:
        self.journal = journal
        self.index = index
        self.sync = sync
        self.targets = targets
        self.settings = settings or DispatchSettings()
        self.metrics = DispatchMetrics()
        self.watermark = Watermark(journal.checkpointed)
        self.lanes: dict[str, Lane] = {}
        self._fanouts: dict[int, tuple[list[TopicRule], list[Lane], tuple[str, ...]]] = {}
        self.outstanding = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._moved = asyncio.Event()
        self._checkpointer: asyncio.Task[None] | None = None
        self._running = False
        self._ack: asyncio.Future[None] | None = None  # shared by the messages of one fsync batch
        self._ack_writers: set[SegmentWriter] = set()
        self._ack_lanes: set[Lane] = set()
        self._ack_tasks: set[asyncio.Task[None]] = set()
        self._interval_armed: set[SegmentWriter] = set()
        p = uuid.uuid4().hex
        self._trace_head = f"{p[:8]}-{p[8:12]}-{p[12:16]}-{p[16:20]}-"  # random per process, then a counter
        self._trace_counter = 0

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, recovered: Sequence[JournalRecord] = ()) -> None:
        """Start the checkpointer and queue the journal's undispatched records, in journal order."""
        self._running = True
        self._checkpointer = asyncio.get_running_loop().create_task(self._checkpoint_forever())
        for record in recovered:
            self.watermark.add(record.seq)
            self._enqueue(Pending(record, True, len(record.rules)), [self._lane(n) for n in record.rules])
        if recovered:
            log.info("event=journal_replay messages=%d from_seq=%d", len(recovered), recovered[0].seq)

    async def drain(self, timeout: float) -> bool:
        """Wait until every queued message is finished; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
            return True
        except TimeoutError:
            return False

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Finish what is queued (bounded), stop the workers, write the last checkpoint."""
        if not await self.drain(drain_timeout):
            log.warning("event=dispatcher_stop_undrained messages=%d (redelivered after restart)", self.outstanding)
        self._running = False
        if self._ack_tasks:  # acknowledgements still waiting for their fsync (or for room in a full lane)
            await asyncio.wait(list(self._ack_tasks), timeout=max(drain_timeout, 1.0))
        tasks = [t for t in (*(lane.task for lane in self.lanes.values()), self._checkpointer) if t is not None]
        tasks += [t for lane in self.lanes.values() for t in lane.rounds]
        tasks += list(self._ack_tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.watermark.value > self.journal.checkpointed:
            await asyncio.to_thread(self.journal.write_checkpoint, self.watermark.value)

    # -- the broker hook -----------------------------------------------------------------------

    def on_publish(self, message: Any) -> Awaitable[None] | None:
        """Route one accepted message; for QoS >= 1 return what makes its journal record durable."""
        rules, topic = self.index.route(message.topic)
        if not rules or not self._running:
            return None
        fanout = self._fanouts.get(id(rules))
        if fanout is None or fanout[0] is not rules:
            fanout = self._fanout(rules)
        _, lanes, names = fanout
        self.metrics.totals["matched"] += len(lanes)
        for lane in lanes:
            lane.stats.counts["matched"] += 1
        principal = message.principal
        props = message.properties
        record = JournalRecord(0, int(message.received_at * 1000), message.qos, topic, message.payload, names,
                               message.client_id, None if principal is None else _principal_id(principal),
                               self._trace_id(), NO_PROPERTIES if props is None else _properties(props))
        if message.qos == 0:
            if any(lane.full for lane in lanes):
                for n in names:
                    self.metrics.count(n, "qos0_dropped")
                dropped = self.metrics.totals["qos0_dropped"]
                if dropped == 1 or dropped % 1000 == 0:  # counted always, logged sparingly
                    log.warning("event=qos0_dropped topic=%s rules=%s reason=lane_full total=%d", message.topic,
                                ",".join(names), dropped)
                return None
            self.metrics.totals["qos0_dispatched"] += 1
            self._enqueue(Pending(record, False, len(names)), lanes)
            return None
        record.seq = self.journal.allocate()
        writer = self.journal.append(record)
        self.metrics.totals["journaled"] += 1
        self.watermark.add(record.seq)
        self._enqueue(Pending(record, True, len(lanes)), lanes)
        full = lanes[0].full if len(lanes) == 1 else any(lane.full for lane in lanes)
        if self.sync.policy != "always" and not full:
            writer.commit()  # in the kernel before the ack survives kill -9; fsync is the policy's business
            if self.sync.policy == "interval" and writer not in self._interval_armed:
                self._interval_armed.add(writer)
                self._spawn(self._arm_interval(writer))
            return None  # the broker acknowledges at once: far cheaper than awaiting anything
        return self._ack_future(writer, lanes)

    def _fanout(self, rules: list[TopicRule]) -> tuple[list[TopicRule], list[Lane], tuple[str, ...]]:
        """The lanes and rule names of a route. The rule index returns the same list for a topic until its rules
        change, so this is remembered per list (the entry keeps the list alive: its id cannot be reused)."""
        if len(self._fanouts) >= MAX_FANOUTS:
            self._fanouts.clear()
        lanes = [self._lane(rule.name) for rule in rules]
        fanout = (rules, lanes, tuple([lane.name for lane in lanes]))
        self._fanouts[id(rules)] = fanout
        return fanout

    def _trace_id(self) -> str:
        """A UUID-shaped id, unique per message (random per process, then a counter): cheaper than uuid4."""
        self._trace_counter += 1
        return f"{self._trace_head}{self._trace_counter:012x}"

    def _ack_future(self, writer: SegmentWriter, lanes: list[Lane]) -> asyncio.Future[None]:
        """One future for every message appended before the next fsync batch starts: awaiting a shared
        future costs the broker far less than a coroutine per message. The batch's records are written
        with one system call when the batch starts (`_make_durable`)."""
        self._ack_writers.add(writer)
        if len(lanes) == 1:
            self._ack_lanes.add(lanes[0])
        else:
            self._ack_lanes.update(lanes)
        if self._ack is None:
            loop = asyncio.get_running_loop()
            self._ack = loop.create_future()
            self._spawn(self._make_durable(self._ack))
        return self._ack

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._ack_tasks.add(task)
        task.add_done_callback(self._ack_tasks.discard)

    async def _arm_interval(self, writer: SegmentWriter) -> None:
        """"interval" policy: hand the segment to GroupSync's periodic fsync (it returns at once)."""
        try:
            await self.sync.sync(writer)
        finally:
            self._interval_armed.discard(writer)

    async def _make_durable(self, fut: asyncio.Future[None]) -> None:
        writers, lanes = self._ack_writers, self._ack_lanes
        self._ack, self._ack_writers, self._ack_lanes = None, set(), set()  # later appends: the next batch
        try:
            for writer in writers:  # every record of the batch: one write each (a roll-over committed at close)
                writer.commit()
            for writer in writers:
                await self.sync.sync(writer)
            for lane in lanes:  # backpressure: the acknowledgement waits while a rule is far behind
                if lane.full:
                    await lane.room.wait()
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except Exception as exc:  # the broker sees it through the future: negative ack / disconnect
            if not fut.done():
                fut.set_exception(exc)
            return
        if not fut.done():
            fut.set_result(None)

    # -- lanes ---------------------------------------------------------------------------------

    def _lane(self, name: str) -> Lane:
        lane = self.lanes.get(name)
        if lane is None:
            lane = self.lanes[name] = Lane(name, self.settings.max_pending_per_rule, self.metrics.rule(name))
            lane.task = asyncio.get_running_loop().create_task(self._run_lane(lane), name=f"rule-lane-{name}")
        return lane

    def _enqueue(self, p: Pending, lanes: list[Lane]) -> None:
        self.outstanding += 1
        self._idle.clear()
        for lane in lanes:
            lane.push(p)

    def _finish(self, p: Pending) -> None:
        p.remaining -= 1
        if p.remaining > 0:
            return
        self.outstanding -= 1
        if self.outstanding == 0:
            self._idle.set()
        if p.journaled and self.watermark.done(p.record.seq):
            self._moved.set()

    async def _run_lane(self, lane: Lane) -> None:
        """Take the backlog, plan a round, send it. When every call of the round may overlap the next round's
        (`overlap_kinds`: the target applies calls in the order they are made), the calls are created here, in
        journal order, and the lane moves on to the next round while they complete (up to
        MAX_ROUNDS_IN_FLIGHT): a round no longer waits for the previous round's durable commit. Otherwise
        earlier rounds finish first and the round runs inline."""
        loop = asyncio.get_running_loop()
        while True:
            if not lane.queue:
                lane.wake.clear()
                await lane.wake.wait()
                continue
            if len(lane.rounds) >= MAX_ROUNDS_IN_FLIGHT:
                await asyncio.wait(lane.rounds, return_when=asyncio.FIRST_COMPLETED)
                continue
            batch = lane.take(self.settings.batch_size)
            rule = self.index.get(lane.name)
            if rule is None or rule.disabled:
                self.metrics.count(lane.name, "skipped", len(batch))
                self._finish_all(batch)
                continue
            try:
                plan = self._plan(rule, batch)
                calls = self._overlapping_calls(plan)
            except Exception as exc:  # a bug must not stall the lane or lose the messages
                await self._internal_error(lane.name, batch, exc)
                continue
            if calls is not None:
                tasks = [loop.create_task(call) for call in calls]  # they start in this order: journal order
                round_task = loop.create_task(self._complete(plan, tasks))
                lane.rounds.add(round_task)
                round_task.add_done_callback(lane.rounds.discard)
                continue
            if lane.rounds:  # their calls must go out before this round's
                await asyncio.wait(list(lane.rounds))
            await self._complete(plan, None)

    def _finish_all(self, batch: list[Pending]) -> None:
        for p in batch:
            self._finish(p)

    async def _internal_error(self, rule: str, batch: list[Pending], exc: Exception) -> None:
        log.error("event=dispatch_error rule=%s error=%r", rule, exc, exc_info=exc)
        await self._dead_letter_all(rule, batch, f"internal error: {exc!r}")
        self._finish_all(batch)

    # -- one round of one rule -------------------------------------------------------------------

    def _plan(self, rule: TopicRule, batch: list[Pending]) -> Round:
        """Evaluate the rule on every message and group the invocations by (kind, endpoint, resource)."""
        account = self.settings.account_id
        labels = [f"{action.kind}#{i}" for i, action in enumerate(rule.actions)]
        groups: dict[tuple[Any, ...], list[Job]] = {}
        jobs: list[Job] = []  # every invocation of the batch, in journal order
        filtered = 0
        for p in batch:
            ctx = p.ctx
            if ctx is None:
                ctx = p.ctx = p.record.context(account)  # shared by every rule the message matched
            invocations = evaluate_rule(rule, ctx)
            if not invocations:
                filtered += 1
                continue
            for inv, label in zip(invocations, labels, strict=True):
                job = Job(p, inv, label, inv.error)
                jobs.append(job)
                if inv.error is None:
                    key = _group_key(inv)
                    group = groups.get(key)
                    if group is None:
                        groups[key] = [job]
                    else:
                        group.append(job)
        if filtered:
            self.metrics.count(rule.name, "filtered", filtered)
        return Round(rule, batch, jobs, list(groups.values()))

    def _overlapping_calls(self, plan: Round) -> list[Coroutine[Any, Any, None]] | None:
        """Every call of the round, in journal order, if every group may overlap the next round; else None."""
        specs = []
        for group in plan.groups:
            inv = group[0].inv
            target = self._target(inv, group)
            if target is None:
                continue  # the group failed already (no such endpoint)
            if inv.kind not in target.overlap_kinds:
                return None
            spec = _batch_spec(inv, group, target)
            if spec is None:
                return None
            specs.append(spec)
        name = plan.rule.name
        return [self._deliver(name, owners[a:b], items[a:b], call)
                for owners, items, limits, call, size in specs for a, b in _chunks(items, limits, size)]

    async def _complete(self, plan: Round, calls: list[asyncio.Task[None]] | None) -> None:
        """Wait for the round's calls (or send them, one group after the other), then count outcomes and run
        the errorAction of every message with a failed action; the round's messages are finished after."""
        name = plan.rule.name
        try:
            if calls is not None:
                await asyncio.gather(*calls)
            elif len(plan.groups) == 1:
                await self._ship(name, plan.groups[0])
            elif plan.groups:
                await asyncio.gather(*(self._ship(name, group) for group in plan.groups))
            self._count_outcomes(name, plan.jobs)
            failed: dict[Pending, list[Job]] = {}  # per message, in journal order
            for job in plan.jobs:
                if job.error is not None:
                    failed.setdefault(job.pending, []).append(job)
            if failed:
                await asyncio.gather(*(self._error_action(plan.rule, p, f) for p, f in failed.items()))
        except Exception as exc:  # a bug must not stall the lane or lose the messages
            await self._internal_error(name, plan.batch, exc)
            return
        self._finish_all(plan.batch)

    def _count_outcomes(self, rule: str, jobs: list[Job]) -> None:
        """`dispatched` / `failed` per action, counted once per round."""
        tally: dict[tuple[str, str], int] = {}
        for job in jobs:
            key = (job.label, "failed" if job.error is not None else "dispatched")
            tally[key] = tally.get(key, 0) + 1
        for (label, outcome), n in tally.items():
            self.metrics.count_action(rule, label, outcome, n)

    async def _ship(self, rule: str, jobs: list[Job]) -> None:
        """Send one group (same kind, target and resource) in order, in calls as large as the API allows.
        For order-keeping targets the calls are all in flight at once (their durable commits share the group
        fsync) instead of each waiting for the previous one."""
        inv = jobs[0].inv
        target = self._target(inv, jobs)
        if target is None:
            return
        spec = _batch_spec(inv, jobs, target)
        if spec is None:
            for job in jobs:
                await self._send_one(rule, job, target)
            return
        owners, items, limits, call, size = spec
        bounds = _chunks(items, limits, size)
        if len(bounds) == 1:
            await self._deliver(rule, owners, items, call)
        elif inv.kind in target.ordered_kinds:
            await asyncio.gather(*(self._deliver(rule, owners[a:b], items[a:b], call) for a, b in bounds))
        else:
            for a, b in bounds:
                await self._deliver(rule, owners[a:b], items[a:b], call)

    def _target(self, inv: ActionInvocation, jobs: list[Job]) -> ActionTarget | None:
        try:
            return self.targets(inv.endpoint_url)
        except ActionError as exc:
            for job in jobs:
                job.fail(str(exc))
            return None

    async def _send_one(self, rule: str, job: Job, target: ActionTarget) -> None:
        params = job.inv.params

        async def call(_items: list[Any]) -> ItemResults:
            if job.inv.kind == "s3":
                await target.s3_put_object(params["bucketName"], params["key"], params["body"])
            else:
                await target.republish(params["topic"], params["qos"], job.inv.payload, params["properties"])
            return [None]

        await self._deliver(rule, [job], [None], call)

    async def _deliver(self, rule: str, jobs: list[Job], items: list[Any],
                       call: Callable[[list[Any]], Awaitable[ItemResults]]) -> None:
        """Send items; retry the ones refused with a retryable error, with backoff, up to max_attempts."""
        backoff = self.settings.backoff
        attempt = 0
        while items:
            try:
                results: ItemResults = await call(items)
                if len(results) != len(items):
                    raise ActionError(f"the service answered {len(results)} results for {len(items)} items",
                                      "InternalError", True)
            except Exception as exc:
                err = classify(exc)
                results = [err] * len(items)
            if results.count(None) == len(results):  # all delivered (the common case)
                return
            again_jobs: list[Job] = []
            again_items: list[Any] = []
            for job, item, result in zip(jobs, items, results, strict=True):
                if result is None:
                    continue
                if result.retryable and attempt + 1 < backoff.max_attempts:
                    again_jobs.append(job)
                    again_items.append(item)
                else:
                    job.fail(str(result))
            if again_jobs:
                for job in again_jobs:
                    self.metrics.count_action(rule, job.label, "retried")
                log.info("event=action_retry rule=%s kind=%s items=%d attempt=%d", rule, again_jobs[0].inv.kind,
                         len(again_jobs), attempt + 1)
                await asyncio.sleep(backoff.delay(attempt))
                attempt += 1
            jobs, items = again_jobs, again_items

    # -- failures --------------------------------------------------------------------------------

    async def _error_action(self, rule: TopicRule, p: Pending, failed: list[Job]) -> None:
        ctx = p.context(self.settings.account_id)
        failures = [job.inv.failure(job.error) for job in failed]
        for job in failed:
            log.warning("event=action_failed rule=%s action=%s resource=%s error=%s", rule.name, job.label,
                        job.inv.resource, job.error)
        inv = render_error_action(rule, ctx, failures)
        if inv is None:
            await self._dead_letter(rule.name, p, [f.to_json() for f in failures], "the rule has no errorAction")
            return
        self.metrics.count(rule.name, "error_actions")
        job = Job(p, inv, "errorAction")
        if inv.error is not None:
            job.fail(inv.error)
        else:
            await self._ship(rule.name, [job])
        self.metrics.count_action(rule.name, job.label, "failed" if job.error else "dispatched")
        if job.error is not None:
            self.metrics.count(rule.name, "error_action_failed")
            await self._dead_letter(rule.name, p, [f.to_json() for f in failures],
                                    f"the errorAction failed too: {job.error}")

    async def _dead_letter(self, rule: str, p: Pending, failures: list[dict[str, str]], reason: str) -> None:
        r = p.record
        entry = {"ruleName": rule, "seq": r.seq if p.journaled else None, "topic": r.topic, "clientId": r.client_id,
                 "timestamp": r.timestamp_ms, "traceId": r.trace_id, "reason": reason, "failures": failures,
                 "base64OriginalPayload": base64.b64encode(r.payload).decode("ascii")}
        self.metrics.count(rule, "dead_lettered")
        log.error("event=dead_letter rule=%s topic=%s reason=%s", rule, r.topic, reason)
        try:
            await asyncio.to_thread(self.journal.dead_letter, entry)
        except OSError as exc:
            log.error("event=dead_letter_write_failed rule=%s error=%s entry=%s", rule, exc, entry)

    async def _dead_letter_all(self, rule: str, batch: list[Pending], reason: str) -> None:
        for p in batch:
            await self._dead_letter(rule, p, [], reason)

    # -- checkpoints -----------------------------------------------------------------------------

    async def _checkpoint_forever(self) -> None:
        interval = self.settings.checkpoint_interval
        while True:
            await self._moved.wait()
            self._moved.clear()
            seq = self.watermark.value
            if seq > self.journal.checkpointed:
                try:
                    await asyncio.to_thread(self.journal.write_checkpoint, seq)
                except OSError as exc:
                    log.warning("event=checkpoint_failed seq=%d error=%s", seq, exc)
                    self._moved.set()
            await asyncio.sleep(interval)  # rate limit: at most one checkpoint write per interval

    def snapshot(self) -> dict[str, Any]:
        """Counters plus queue state (what `metrics` exposes)."""
        return {**self.metrics.to_dict(), "outstanding": self.outstanding, "watermark": self.watermark.value,
                "checkpointed": self.journal.checkpointed,
                "queued": {name: len(lane.queue) for name, lane in sorted(self.lanes.items())},
                **self.journal.metrics}


BatchSpec = tuple[list["Job"], list[Any], tuple[int, int], Callable[[list[Any]], Awaitable[ItemResults]],
                  Callable[[Any], int]]


def _batch_spec(inv: ActionInvocation, jobs: list[Job], target: ActionTarget) -> BatchSpec | None:
    """For a batched kind: the owner of each item, the items, AWS's call limits, the call and the item size.
    None for the kinds sent one at a time (S3, republish)."""
    kind = inv.kind
    if kind == "kinesis":
        stream = inv.params["streamName"]
        records = [(job.inv.params["data"], job.inv.params["partitionKey"]) for job in jobs]
        return (jobs, records, KINESIS_BATCH, lambda items: target.kinesis_put_records(stream, items),
                lambda item: len(item[0]) + len(item[1]))
    if kind == "firehose":
        delivery = inv.params["deliveryStreamName"]
        owners = [job for job in jobs for _ in job.inv.params["records"]]  # batchMode: several per message
        blobs = [record for job in jobs for record in job.inv.params["records"]]
        return owners, blobs, FIREHOSE_BATCH, lambda items: target.firehose_put_records(delivery, items), len
    if kind == "sqs":
        url = inv.params["queueUrl"]
        bodies = [job.inv.params["messageBody"] for job in jobs]
        return (jobs, bodies, SQS_BATCH, lambda items: target.sqs_send_messages(url, items),
                lambda body: len(body.encode("utf-8")))
    return None


def _chunks(items: list[Any], limits: tuple[int, int], size: Callable[[Any], int]) -> list[tuple[int, int]]:
    """[start, end) bounds of consecutive calls, each within AWS's (count, bytes) limits."""
    max_count, max_bytes = limits
    bounds: list[tuple[int, int]] = []
    start = total = 0
    for i, item in enumerate(items):
        n = size(item)
        if i > start and (i - start >= max_count or total + n > max_bytes):
            bounds.append((start, i))
            start, total = i, 0
        total += n
    bounds.append((start, len(items)))
    return bounds


def _group_key(inv: ActionInvocation) -> tuple[Any, ...]:
    """Invocations with the same key go out in order, batched; different keys go out concurrently."""
    p = inv.params
    if inv.kind == "s3":
        return ("s3", inv.endpoint_url, p["bucketName"], p["key"])
    return (inv.kind, inv.endpoint_url, inv.resource)


def _principal_id(principal: Any) -> str | None:
    """What principal() returns: the certificate id of an X.509 device, the access key of a SigV4 connection."""
    if principal is None:
        return None
    for name in ("certificate_id", "access_key"):
        value = getattr(principal, name, None)
        if isinstance(value, str):
            return value
    return None


def _properties(props: Any) -> MqttProperties:
    if props is None:
        return NO_PROPERTIES
    return MqttProperties(
        tuple(props.user_properties or ()), props.content_type, props.payload_format_indicator,
        props.response_topic, props.correlation_data, props.message_expiry_interval,
    )
