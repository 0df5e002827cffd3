"""Interop with clients nobody here wrote: aiomqtt (asyncio) and mosquitto_pub / mosquitto_sub."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiomqtt
import pytest

from tests.mqtt_helpers import TIMEOUT, Client, running_broker

pytestmark = pytest.mark.interop


def test_aiomqtt_v5_request_response(home: Path) -> None:
    with running_broker(home) as bt:
        port = bt.port

        async def scenario() -> tuple[str, bytes, bytes | None]:
            async with aiomqtt.Client("127.0.0.1", port, identifier="responder",
                                      protocol=aiomqtt.ProtocolVersion.V5) as responder, \
                    aiomqtt.Client("127.0.0.1", port, identifier="requester",
                                   protocol=aiomqtt.ProtocolVersion.V5) as requester:
                await responder.subscribe("svc/req", qos=1)
                await requester.subscribe("svc/resp/requester", qos=1)
                from paho.mqtt.packettypes import PacketTypes
                from paho.mqtt.properties import Properties

                props = Properties(PacketTypes.PUBLISH)
                props.ResponseTopic = "svc/resp/requester"
                props.CorrelationData = b"corr-1"
                await requester.publish("svc/req", b"ping", qos=1, properties=props)
                async for msg in responder.messages:
                    reply = Properties(PacketTypes.PUBLISH)
                    reply.CorrelationData = msg.properties.CorrelationData
                    await responder.publish(msg.properties.ResponseTopic, b"pong", qos=1, properties=reply)
                    break
                async for msg in requester.messages:
                    return str(msg.topic), msg.payload, msg.properties.CorrelationData
            raise AssertionError("no reply")

        topic, payload, corr = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
        assert (topic, payload, corr) == ("svc/resp/requester", b"pong", b"corr-1")


def test_mosquitto_sub_and_pub_on_dev_listener(home: Path) -> None:
    with running_broker(home) as bt:
        port = str(bt.port)
        watcher = Client(bt.port, "watcher")
        watcher.subscribe("$aws/events/subscriptions/subscribed/#", 0)
        assert watcher.get().topic.endswith("/watcher")  # the watcher's own subscription event
        sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-t", "m/#", "-q", "2", "-C", "2",
                                "-W", "10", "-v", "-V", "mqttv311"], stdout=subprocess.PIPE)
        try:
            watcher.get()  # mosquitto_sub's subscription is in place
            for i, version in enumerate(("mqttv311", "mqttv5")):
                subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t", f"m/{i}", "-m", version,
                                "-q", "2", "-V", version], check=True, timeout=10)
            out, _ = sub.communicate(timeout=10)
        finally:
            sub.kill()
            sub.wait()
        assert out.decode().splitlines() == ["m/0 mqttv311", "m/1 mqttv5"]
