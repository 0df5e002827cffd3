"""Answers meant for one client: AWS sends jobs and fleet-provisioning responses only to the connection
that made the request, even when other clients subscribe to the same response topic (the default thing
policy lets every device subscribe to `$aws/certificates/create/json/accepted`, which carries private keys).

The answer goes to the requester's session when one of its subscriptions matches the topic, at that
subscription's QoS; the broker still checks `iot:Receive` when it sends it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.mqtt.broker import Broker, SessionSubscription, SharedGroup
from gateway.mqtt.message import Message
from gateway.mqtt.session import Delivery


async def reply(broker: Broker, client_id: str | None, topic: str, payload: bytes, qos: int = 1) -> bool:
    """Send `payload` on `topic` to `client_id` only; False when it has no matching subscription.

    Without a client id (an HTTPS publish) the message is published to every subscriber instead.
    """
    if client_id is None:
        await broker.publish(topic, payload, qos)
        return True
    session = broker.sessions.get(client_id)
    if session is None:
        return False
    granted: int | None = None
    ids: list[int] = []
    for entry in broker.trie.match(topic):
        records: list[Any] = []
        if type(entry) is SessionSubscription and entry.session is session:
            records.append(entry.record)
        elif type(entry) is SharedGroup and client_id in entry.members:
            records.append(entry.members[client_id].record)
        for record in records:
            granted = record.qos if granted is None else max(granted, record.qos)
            if record.identifier:
                ids.append(record.identifier)
    if granted is None:
        broker.metrics["publish_dropped_no_subscribers"] += 1
        return False
    message = Message(topic, payload, qos, origin="internal")
    broker.metrics["messages_received"] += 1
    pending = broker.enqueue(session, Delivery(message, min(qos, granted), False, tuple(ids)))
    if pending is not None:
        await asyncio.shield(pending)
    return True
