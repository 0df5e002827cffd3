"""Session state (MQTT §4.1): subscriptions, queued and in-flight QoS 1/2 deliveries, pending QoS 2 ids.

A session outlives its network connection while its expiry interval runs. The broker owns sessions;
a connection attaches to one and drains its queue within the client's receive window.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
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


@dataclass(eq=False, slots=True)
class Session:
    """The server side of one client identifier (slotted: one per device, ten thousand of them and more)."""

    client_id: str
    protocol: int = 4
    expiry_interval: int = 0
    subscriptions: dict[str, SubscriptionRecord] = field(default_factory=dict)
    queue: deque[Delivery] = field(default_factory=deque)
    inflight: dict[int, Delivery] = field(default_factory=dict)
    incoming_qos2: set[int] = field(default_factory=set)
    connection: MqttConnection | None = None
    disconnected_at: float | None = None
    expiry_handle: asyncio.TimerHandle | None = None
    will_handle: asyncio.TimerHandle | None = None
    _next_packet_id: int = 1

    @property
    def persistent(self) -> bool:
        return self.expiry_interval > 0

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
