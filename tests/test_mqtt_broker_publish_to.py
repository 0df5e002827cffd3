"""`Broker.publish_to`: a message for one connected client only (jobs and fleet-provisioning answers), at the
QoS of its matching subscription, with the Receive policy honoured, seen by no one else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.identity.registry import Registry
from gateway.mqtt.topics import TopicError
from tests.mqtt_helpers import BrokerThread, Client, broker_config, running_broker


@pytest.fixture
def bt(home: Path) -> Iterator[BrokerThread]:
    with running_broker(home) as b:
        yield b


def publish_to(bt: BrokerThread, client_id: str, topic: str, payload: bytes, qos: int = 1, **kwargs: Any) -> bool:
    return bt.call(bt.broker.publish_to(client_id, topic, payload, qos, **kwargs))


def test_only_the_named_client_gets_it(bt: BrokerThread) -> None:
    seen: list[str] = []

    class Recorder:
        def on_publish(self, message: Any) -> None:
            seen.append(message.topic)

    bt.run(lambda: bt.broker.add_hook(Recorder()))
    requester, bystander = Client(bt.port, "requester"), Client(bt.port, "bystander")
    for client in (requester, bystander):
        client.subscribe("$aws/certificates/create/json/accepted", 1)
    assert publish_to(bt, "requester", "$aws/certificates/create/json/accepted", b"private key")
    message = requester.get()
    assert (message.topic, message.payload, message.qos) == ("$aws/certificates/create/json/accepted",
                                                             b"private key", 1)
    bystander.assert_nothing()
    assert [topic for topic in seen if not topic.startswith("$aws/events/")] == []  # no hook, nothing retained
    assert bt.run(lambda: dict(bt.broker.retained)) == {}


def test_qos_is_capped_by_the_subscription_and_ids_are_forwarded(bt: BrokerThread) -> None:
    low = Client(bt.port, "low")
    low.subscribe("jobs/#", 0)
    assert publish_to(bt, "low", "jobs/notify", b"q0")
    assert low.get().qos == 0
    v5 = Client(bt.port, "v5", v5=True)
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.SUBSCRIBE)
    props.SubscriptionIdentifier = 7
    v5.c.subscribe("jobs/+", options=SubscribeOptions(qos=1), properties=props)
    v5.subacks.get(timeout=5)
    assert publish_to(bt, "v5", "jobs/notify", b"q1", qos=2)
    message = v5.get()
    assert message.qos == 1
    assert message.properties.SubscriptionIdentifier == [7]


def test_false_when_not_subscribed_or_not_connected(bt: BrokerThread) -> None:
    quiet = Client(bt.port, "quiet")
    quiet.subscribe("other/topic", 1)
    assert not publish_to(bt, "quiet", "jobs/notify", b"x")
    assert not publish_to(bt, "nobody", "jobs/notify", b"x")
    offline = Client(bt.port, "offline", clean=False)
    offline.subscribe("jobs/#", 1)
    offline.close()
    offline.disconnected()
    assert not publish_to(bt, "offline", "jobs/notify", b"x")  # its session lives on, but it is not connected
    metrics = bt.run(lambda: bt.broker.metrics.snapshot())
    assert metrics["publish_dropped_no_subscribers"] >= 1
    assert metrics["publish_to_not_connected"] == 2
    quiet.assert_nothing()


def test_a_shared_subscription_member_gets_it_regardless_of_turn(bt: BrokerThread) -> None:
    first, second = Client(bt.port, "first"), Client(bt.port, "second")
    for client in (first, second):
        client.subscribe("$share/workers/jobs/#", 1)
    for _ in range(3):
        assert publish_to(bt, "second", "jobs/notify", b"mine")
        assert second.get().payload == b"mine"
    first.assert_nothing()


def test_invalid_topic_or_qos_is_refused(bt: BrokerThread) -> None:
    with pytest.raises(TopicError):
        publish_to(bt, "x", "jobs/+", b"x")
    with pytest.raises(ValueError, match="qos"):
        publish_to(bt, "x", "jobs/a", b"x", qos=3)


def test_receive_policy_is_honoured(home: Path) -> None:
    config = broker_config(home, dev_policy="no-secrets")
    with Registry.open(config) as registry:
        registry.policies.create("no-secrets", {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["iot:Connect", "iot:Subscribe"], "Resource": "*"},
            {"Effect": "Allow", "Action": "iot:Receive", "Resource": "arn:aws:iot:*:*:topic/jobs/public"},
        ]})
        with running_broker(home, registry, dev_policy="no-secrets") as bt:
            client = Client(bt.port, "reader")
            client.subscribe("jobs/#", 1)
            assert not publish_to(bt, "reader", "jobs/secret", b"no")
            assert publish_to(bt, "reader", "jobs/public", b"yes")
            assert client.get().payload == b"yes"
            assert bt.run(lambda: bt.broker.metrics["receive_unauthorized"]) == 1
