"""AWS IoT lifecycle events and the ``$SYS/broker/...`` statistics.

Presence: ``$aws/events/presence/{connected,disconnected}/<clientId>``; subscriptions:
``$aws/events/subscriptions/{subscribed,unsubscribed}/<clientId>``, with AWS IoT's JSON shapes. They go
through the normal publish path (Receive policy, hooks, rules). Clients whose id contains ``+`` or ``#``
get no lifecycle events, as on AWS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from gateway.mqtt.message import Message

if TYPE_CHECKING:
    from gateway.mqtt.broker import Broker
    from gateway.mqtt.connection import MqttConnection

log = logging.getLogger("edgeloop.mqtt")
_JSON = json.JSONEncoder(separators=(",", ":"))  # json.dumps(body, separators=...) without a new encoder per event


def _emit(broker: Broker, topic: str, body: dict[str, Any]) -> None:
    message = Message(topic, _JSON.encode(body).encode(), 0, False, origin="lifecycle")
    waits, _ = broker.accept(message)
    for w in waits:
        broker.spawn(w)


def _base(conn: MqttConnection, event: str) -> dict[str, Any] | None:
    cid = conn.client_id
    if cid is None or "+" in cid or "#" in cid:
        return None
    body: dict[str, Any] = {
        "clientId": cid,
        "timestamp": int(time.time() * 1000),
        "eventType": event,
        "sessionIdentifier": conn.session_id,
        "principalIdentifier": (conn.auth.principal_id if conn.auth is not None else None) or "anonymous",
    }
    return body


def connected(broker: Broker, conn: MqttConnection) -> None:
    body = _base(conn, "connected")
    if body is None:
        return
    body["ipAddress"] = conn.peer
    body["versionNumber"] = 0
    _emit(broker, f"$aws/events/presence/connected/{conn.client_id}", body)


def disconnected(broker: Broker, conn: MqttConnection) -> None:
    body = _base(conn, "disconnected")
    if body is None:
        return
    body["clientInitiatedDisconnect"] = conn.client_initiated
    body["disconnectReason"] = conn.disconnect_reason
    body["versionNumber"] = 0
    _emit(broker, f"$aws/events/presence/disconnected/{conn.client_id}", body)


def subscriptions(broker: Broker, conn: MqttConnection, event: str, topics: list[str]) -> None:
    body = _base(conn, event)
    if body is None:
        return
    body["topics"] = topics
    _emit(broker, f"$aws/events/subscriptions/{event}/{conn.client_id}", body)


def sys_stats(broker: Broker) -> dict[str, Any]:
    m = broker.metrics
    return {
        "clients/connected": m["clients_connected"],
        "clients/total": len(broker.sessions),
        "messages/received": m["messages_received"],
        "messages/sent": m["messages_sent"],
        "messages/dropped": sum(v for k, v in m.items() if k.startswith("publish_dropped")),
        "messages/retained/count": len(broker.retained),
        "subscriptions/count": broker.trie.count,
        "bytes/received": m["bytes_received"],
        "bytes/sent": m["bytes_sent"],
        "uptime": int(time.time() - broker.started_at),
    }


async def publish_sys_forever(broker: Broker, interval: float) -> None:
    """Publish the statistics as retained ``$SYS/broker/<name>`` messages every `interval` seconds."""
    while True:
        for name, value in sys_stats(broker).items():
            try:
                await broker.publish(f"$SYS/broker/{name}", str(value), retain=True, origin="sys")
            except Exception:
                log.exception("event=sys_publish_failed name=%s", name)
        await asyncio.sleep(interval)
