"""What every connection of a broker shares so that each one stays cheap.

- `DeadlineWheel`: the connect timeouts and keep-alive checks of every connection on one loop timer, in slots
  of `tick` seconds, instead of a `call_later` handle per connection.
- `AuthenticationBatches`: CONNECT authenticators block (registry lookups), so they run in a worker thread;
  the CONNECTs that arrive while a batch runs go together in the next one: one thread hop per batch instead
  of a task, an executor job and a wake-up of the loop per connection.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gateway.mqtt.connection import MqttConnection
    from gateway.mqtt.packets import Connect

log = logging.getLogger("edgeloop.mqtt")

Slot = set[Any]  # the members of one wheel slot; a member keeps its slot to leave it in O(1)


class Timed(Protocol):
    def deadline_passed(self, now: float) -> None: ...


class DeadlineWheel:
    """Deadlines of many objects on one timer. A deadline fires in the first slot boundary at or after it (never
    early, at most `tick` seconds late), by calling `member.deadline_passed(now)` with `time.monotonic()` time."""

    __slots__ = ("_armed_at", "_heap", "_loop", "_slots", "_tick", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float = 0.25) -> None:
        self._loop = loop
        self._tick = tick
        self._slots: dict[int, Slot] = {}
        self._heap: list[int] = []  # slot numbers with a set in `_slots` (or emptied since), earliest first
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at: int | None = None

    def __len__(self) -> int:
        return sum(len(members) for members in self._slots.values())

    def schedule(self, member: Timed, when: float) -> Slot:
        """Call `member.deadline_passed` once `time.monotonic()` reaches `when`; returns the slot to `cancel` with."""
        number = -int(-when // self._tick)  # ceil: the slot's boundary is never before `when`
        slot = self._slots.get(number)
        if slot is None:
            slot = self._slots[number] = set()
            heapq.heappush(self._heap, number)
            if self._armed_at is None or number < self._armed_at:
                self._arm(number)
        slot.add(member)
        return slot

    @staticmethod
    def cancel(member: Timed, slot: Slot) -> None:
        slot.discard(member)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._armed_at = None
        self._slots.clear()
        self._heap.clear()

    def _arm(self, number: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed_at = number
        self._timer = self._loop.call_later(max(0.0, number * self._tick - time.monotonic()), self._fire)

    def _fire(self) -> None:
        self._timer = self._armed_at = None
        now = time.monotonic()
        current = int(now // self._tick)
        heap, slots = self._heap, self._slots
        due: list[Slot] = []
        while heap and heap[0] <= current:
            slot = slots.pop(heapq.heappop(heap), None)
            if slot:
                due.append(slot)
        if heap:
            self._arm(heap[0])
        for slot in due:
            for member in slot:
                try:
                    member.deadline_passed(now)
                except Exception:
                    log.exception("event=deadline_failed member=%r", member)


class AuthenticationBatches:
    """Runs the blocking CONNECT authenticators in a worker thread, one batch at a time.

    `submit(conn, connect)` queues `conn.authenticate(conn, connect)`; once it returned or raised, the loop calls
    `conn.authenticated(connect, auth, error)`, in submission order. CONNECTs that arrive while a batch runs form
    the next batch. `batches` counts the worker-thread hops so far.
    """

    __slots__ = ("_loop", "_pending", "_running", "_scheduled", "_track", "batches")

    def __init__(self, loop: asyncio.AbstractEventLoop, track: Callable[[asyncio.Future[Any]], None]) -> None:
        self._loop = loop
        self._track = track  # keeps the batch referenced (and awaited at shutdown)
        self._pending: list[tuple[MqttConnection, Connect]] = []
        self._running = False
        self._scheduled = False
        self.batches = 0

    @property
    def waiting(self) -> int:
        """CONNECTs queued for the next batch."""
        return len(self._pending)

    def submit(self, conn: MqttConnection, connect: Connect) -> None:
        self._pending.append((conn, connect))
        if not self._running and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._start)  # the CONNECTs of this loop iteration go together

    def _start(self) -> None:
        self._scheduled = False
        if self._running or not self._pending:
            return
        batch, self._pending = self._pending, []
        self._running = True
        self.batches += 1
        try:
            future = self._loop.run_in_executor(None, _authenticate_all, batch)
        except RuntimeError as exc:  # the executor is shut down: the loop is stopping
            future = self._loop.create_future()
            future.set_exception(exc)
        else:
            self._track(future)
        future.add_done_callback(lambda done: self._finished(batch, done))

    def _finished(self, batch: list[tuple[MqttConnection, Connect]], done: asyncio.Future[Any]) -> None:
        self._running = False
        if self._pending:
            self._start()
        if done.cancelled():
            outcomes: list[tuple[Any, BaseException | None]] = [(None, asyncio.CancelledError())] * len(batch)
        elif done.exception() is not None:
            outcomes = [(None, done.exception())] * len(batch)
        else:
            outcomes = done.result()
        for (conn, connect), (auth, error) in zip(batch, outcomes, strict=True):
            try:
                conn.authenticated(connect, auth, error)
            except Exception:
                log.exception("event=connect_failed client_id=%s", conn.client_id)


def _authenticate_all(batch: list[tuple[MqttConnection, Connect]]) -> list[tuple[Any, BaseException | None]]:
    """Worker thread: every authenticator of a batch, each outcome kept apart."""
    outcomes: list[tuple[Any, BaseException | None]] = []
    for conn, connect in batch:
        try:
            outcomes.append((conn.authenticate(conn, connect), None))
        except Exception as exc:
            outcomes.append((None, exc))
    return outcomes


__all__ = ["AuthenticationBatches", "DeadlineWheel"]
