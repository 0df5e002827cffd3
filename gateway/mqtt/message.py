"""The broker's view of one application message, from acceptance to every delivery."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gateway.mqtt.packets import Properties


@dataclass(slots=True)
class Message:
    """An accepted PUBLISH (from a client, a will, or an internal service).

    `expires_at` is an absolute wall-clock deadline (seconds) derived from the v5 message expiry interval;
    `principal` is the publisher's identity when the message came from a client. Hooks and internal
    subscribers receive this object and must not mutate it.
    """

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties | None = None
    client_id: str | None = None
    principal: Any = None
    origin: str = "client"
    received_at: float = field(default_factory=time.time)
    expires_at: float | None = None
    # Encoded forms shared by every subscriber (v3 QoS 0 packet, v5 property block), made on first delivery.
    encoded: dict[Any, bytes] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        props = self.properties
        if self.expires_at is None and props is not None and props.message_expiry_interval is not None:
            self.expires_at = self.received_at + props.message_expiry_interval

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now if now is not None else time.time()) >= self.expires_at

    def remaining_expiry(self, now: float | None = None) -> int | None:
        """Seconds left before expiry (rounded up), for the forwarded message expiry interval."""
        if self.expires_at is None:
            return None
        left = self.expires_at - (now if now is not None else time.time())
        return max(0, int(left + 0.999))
