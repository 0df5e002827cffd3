"""Broker counters: a plain dict of named integers, ready for a Prometheus exporter."""

from __future__ import annotations

from collections import defaultdict

from gateway.mqtt.tlsaccept import FAILURE_REASONS

COUNTERS = (
    "connections_accepted",
    "connections_rejected",
    "clients_connected",
    "messages_received",
    "messages_sent",
    "bytes_received",
    "bytes_sent",
    "publish_dropped_qos0_backpressure",
    "publish_dropped_queue_full",
    "publish_dropped_expired",
    "publish_dropped_no_subscribers",
    "publish_to_not_connected",
    "publish_unauthorized",
    "subscribe_unauthorized",
    "receive_unauthorized",
    "connect_unauthorized",
    "decode_errors",
    "protocol_errors",
    "keepalive_timeouts",
    "connect_timeouts",
    "takeovers",
    "hook_errors",
    "wills_published",
    "sessions_expired",
    "retained_messages",
    "tls_failures",
    *(f"tls_failures_{reason}" for reason in FAILURE_REASONS),
    "revoked_disconnects",
    "ack_failures",
)


class Metrics(defaultdict[str, int]):
    """Counter map: ``metrics["publish_dropped_queue_full"] += 1``; unknown names start at zero."""

    def __init__(self) -> None:
        super().__init__(int)
        for name in COUNTERS:
            self[name] = 0

    def snapshot(self) -> dict[str, int]:
        return dict(self)
