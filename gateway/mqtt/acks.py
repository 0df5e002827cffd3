"""The acknowledgement queue of one connection: PUBACK/PUBREC/PUBCOMP in arrival order, each sent once what
it waits for (hook awaitables, durable writes) is done.

No task per message. Each pending future gets one done-callback per connection (consecutive messages waiting on
the same future, such as a journal's fsync batch, share it), and a callback sends every acknowledgement at the
head of the queue whose futures are all done. When nothing waits, an acknowledgement goes out at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

Ack = Any  # a Packet, or the pre-encoded bytes of a plain PUBACK
AckSender = Callable[[Ack, "BaseException | None"], None]


class _Pending:
    __slots__ = ("ack", "failure", "waits")

    def __init__(self, ack: Ack, waits: list[asyncio.Future[Any]], failure: BaseException | None) -> None:
        self.ack = ack
        self.waits = waits
        self.failure = failure


class AckQueue:
    """Acknowledgements held back until their waits finish; `send(ack, failure)` is called in arrival order."""

    __slots__ = ("_pending", "_send", "_spawn", "_watched")

    def __init__(self, send: AckSender, spawn: Callable[[asyncio.Future[Any]], None]) -> None:
        self._send = send
        self._spawn = spawn  # keeps a task made from a plain awaitable referenced (and awaited at shutdown)
        self._pending: deque[_Pending] = deque()
        self._watched: asyncio.Future[Any] | None = None  # the future most recently given our callback

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, ack: Ack, waits: list[Awaitable[Any]], failure: BaseException | None = None) -> None:
        """Send `ack` once every one of `waits` is done and every earlier acknowledgement was sent.

        `failure` (or the first exception of a wait) is passed on to `send`, which answers negatively.
        """
        futures: list[asyncio.Future[Any]] = []
        ready = True
        for wait in waits:
            if asyncio.isfuture(wait):
                fut: asyncio.Future[Any] = wait
            else:
                fut = asyncio.ensure_future(wait)
                self._spawn(fut)
            futures.append(fut)
            if not fut.done():
                ready = False
                if fut is not self._watched:
                    fut.add_done_callback(self._progress)
                    self._watched = fut
        if ready and not self._pending:
            self._send(ack, _first_failure(futures, failure))
            return
        self._pending.append(_Pending(ack, futures, failure))

    def _progress(self, _fut: asyncio.Future[Any]) -> None:
        pending = self._pending
        while pending:
            head = pending[0]
            for fut in head.waits:
                if not fut.done():
                    return
            pending.popleft()
            self._send(head.ack, _first_failure(head.waits, head.failure))


def _first_failure(futures: list[asyncio.Future[Any]], failure: BaseException | None) -> BaseException | None:
    for fut in futures:  # retrieve every exception, so that none is reported as never retrieved
        exc = asyncio.CancelledError() if fut.cancelled() else fut.exception()
        if exc is not None and failure is None:
            failure = exc
    return failure


__all__ = ["AckQueue"]
