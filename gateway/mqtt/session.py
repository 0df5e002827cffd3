"""Session state (MQTT §4.1): subscriptions, queued and in-flight QoS 1/2 deliveries, pending QoS 2 ids.

A session outlives its network connection while its expiry interval runs. The broker owns sessions;
a connection attaches to one and drains its queue within the client's receive window.

An idle session holds no containers of its own: `queue`, `inflight` and `incoming_qos2` are shared empty,
read-only stand-ins until something is added (an empty deque alone is 760 bytes), and go back to them once
drained. Read them freely; add and remove through the methods.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from gateway.mqtt.message import Message

if TYPE_CHECKING:
    from gateway.mqtt.connection import MqttConnection

QUEUED, SENT, RELEASED = 0, 1, 2  # delivery states: waiting, PUBLISH sent, PUBREL sent (QoS 2)


@dataclass(slots=True)
class SubscriptionRecord:
    """One subscription of a session with its MQTT 5 options."""

    topic_filter: str  # as subscribed, including any $share/<group>/ prefix
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    identifier: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "f": self.topic_filter, "q": self.qos, "nl": self.no_local, "rap": self.retain_as_published,
            "rh": self.retain_handling, "id": self.identifier,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SubscriptionRecord:
        return cls(raw["f"], raw["q"], raw["nl"], raw["rap"], raw["rh"], raw["id"])


@dataclass(slots=True)
class Delivery:
    """One message on its way to one session."""

    message: Message
    qos: int
    retain: bool
    sub_ids: tuple[int, ...] = ()
    packet_id: int | None = None
    state: int = QUEUED
    seq: int | None = None  # row in the store when the session is persistent


NO_DELIVERIES: tuple[Delivery, ...] = ()  # the queue of a session with nothing queued
NO_INFLIGHT: Mapping[int, Delivery] = MappingProxyType({})  # in flight: nothing
NO_PACKET_IDS: frozenset[int] = frozenset()  # incoming QoS 2 packet ids: none pending


@dataclass(eq=False, slots=True)
class Session:
    """The server side of one client identifier (slotted: one per device, ten thousand of them and more)."""

    client_id: str
    protocol: int = 4
    expiry_interval: int = 0
    subscriptions: dict[str, SubscriptionRecord] = field(default_factory=dict)
    queue: deque[Delivery] | tuple[Delivery, ...] = NO_DELIVERIES
    inflight: Mapping[int, Delivery] = field(default_factory=lambda: NO_INFLIGHT)
    incoming_qos2: set[int] | frozenset[int] = NO_PACKET_IDS
    connection: MqttConnection | None = None
    disconnected_at: float | None = None
    expiry_handle: asyncio.TimerHandle | None = None
    will_handle: asyncio.TimerHandle | None = None
    _next_packet_id: int = 1

    @property
    def persistent(self) -> bool:
        return self.expiry_interval > 0

    def writable_queue(self) -> deque[Delivery]:
        """The queue, to add to (made on first use)."""
        queue = self.queue
        if type(queue) is not deque:
            queue = self.queue = deque()
        return queue

    def queue_drained(self) -> None:
        """Give an empty queue's memory back."""
        if not self.queue:
            self.queue = NO_DELIVERIES

    def writable_inflight(self) -> dict[int, Delivery]:
        """The in-flight map, to add to (made on first use)."""
        inflight = self.inflight
        if type(inflight) is not dict:
            inflight = self.inflight = {}
        return inflight

    def take_inflight(self, packet_id: int) -> Delivery | None:
        """Remove and return the in-flight delivery with `packet_id` (None when there is none)."""
        inflight = self.inflight
        if packet_id not in inflight:
            return None
        delivery = inflight.pop(packet_id)  # type: ignore[attr-defined]
        if not inflight:
            self.inflight = NO_INFLIGHT
        return delivery

    def add_incoming_qos2(self, packet_id: int) -> None:
        ids = self.incoming_qos2
        if type(ids) is not set:
            ids = self.incoming_qos2 = set()
        ids.add(packet_id)

    def discard_incoming_qos2(self, packet_id: int) -> None:
        ids = self.incoming_qos2
        if packet_id in ids:
            ids.discard(packet_id)  # type: ignore[union-attr]
            if not ids:
                self.incoming_qos2 = NO_PACKET_IDS

    def allocate_packet_id(self) -> int | None:
        """A packet id not in use by an in-flight delivery, or None when all 65535 are taken."""
        if len(self.inflight) >= 65535:
            return None
        pid = self._next_packet_id
        while pid in self.inflight:
            pid = pid % 65535 + 1
        self._next_packet_id = pid % 65535 + 1
        return pid

    def cancel_timers(self) -> None:
        for handle in (self.expiry_handle, self.will_handle):
            if handle is not None:
                handle.cancel()
        self.expiry_handle = self.will_handle = None

    def subscriptions_json(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.subscriptions.values()]
