"""Answers meant for one client: AWS sends jobs and fleet-provisioning responses only to the connection
that made the request, even when other clients subscribe to the same response topic (the default thing
policy lets every device subscribe to `$aws/certificates/create/json/accepted`, which carries private keys).

`Broker.publish_to` delivers the answer to the requester alone, when it is connected and one of its
subscriptions matches the topic (at that subscription's QoS, `iot:Receive` checked).
"""

from __future__ import annotations

from gateway.mqtt.broker import Broker


async def reply(broker: Broker, client_id: str | None, topic: str, payload: bytes, qos: int = 1) -> bool:
    """Send `payload` on `topic` to `client_id` only; False when it is not connected or not subscribed.

    Without a client id (an HTTPS publish) the message is published to every subscriber instead.
    """
    if client_id is None:
        await broker.publish(topic, payload, qos)
        return True
    return await broker.publish_to(client_id, topic, payload, qos)
