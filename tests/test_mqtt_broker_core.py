"""Broker semantics over the dev listener, driven by paho-mqtt (3.1.1 and 5.0)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from tests.mqtt_helpers import TIMEOUT, Client, running_broker


@pytest.fixture
def bt(home: Path):
    with running_broker(home) as b:
        yield b


@pytest.mark.parametrize("v5", [False, True])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_subscribe_each_qos(bt, v5: bool, qos: int) -> None:
    sub = Client(bt.port, "sub", v5=v5)
    sub.subscribe("sensors/+/temp", qos)
    pub = Client(bt.port, "pub", v5=not v5)
    for i in range(5):
        pub.publish(f"sensors/{i}/temp", str(i), qos)
    got = [sub.get() for _ in range(5)]
    assert [m.payload for m in got] == [b"0", b"1", b"2", b"3", b"4"]  # per-client order
    assert {m.qos for m in got} == {qos}
    sub.close()
    pub.close()


def test_wildcards_and_dollar_topics(bt) -> None:
    sub = Client(bt.port, "sub")
    sub.subscribe("#", 0)
    sub.subscribe("sensor/#", 1)
    pub = Client(bt.port, "pub")
    pub.publish("$aws/things/x/shadow/update", "dollar", 1)
    pub.publish("sensor", "parent", 1)  # MQTT: sensor/# matches sensor
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == ("sensor", b"parent", 1)  # one delivery, max QoS of both matches
    sub.assert_nothing()


def test_retained_delivered_and_cleared(bt) -> None:
    pub = Client(bt.port, "pub")
    pub.publish("cfg/a", "one", 1, retain=True)
    pub.publish("cfg/b", "two", 1, retain=True)
    pub.publish("cfg/b", "", 1, retain=True)  # clears
    sub = Client(bt.port, "sub")
    sub.subscribe("cfg/#", 1)
    m = sub.get()
    assert (m.topic, m.payload, m.retain) == ("cfg/a", b"one", True)
    sub.assert_nothing()
    pub.publish("cfg/a", "live", 0)
    assert sub.get().retain is False


def test_will_on_abrupt_close_but_not_on_disconnect(bt) -> None:
    watcher = Client(bt.port, "watcher")
    watcher.subscribe("wills/#", 1)
    dying = Client(bt.port, "dying", will=("wills/dying", b"gone", 1, False))
    polite = Client(bt.port, "polite", will=("wills/polite", b"gone", 1, False))
    polite.close()
    dying.kill()
    m = watcher.get()
    assert (m.topic, m.payload) == ("wills/dying", b"gone")
    watcher.assert_nothing()


def test_will_delay_cancelled_by_reconnect(bt) -> None:
    watcher = Client(bt.port, "watcher", v5=True)
    watcher.subscribe("wills/#", 1)
    props = Properties(PacketTypes.WILLMESSAGE)
    props.WillDelayInterval = 30
    cprops = Properties(PacketTypes.CONNECT)
    cprops.SessionExpiryInterval = 60
    first = Client(bt.port, "delayed", v5=True, clean=False, will=("wills/delayed", b"x", 1, False),
                   will_properties=props, connect_properties=cprops)
    first.kill()
    again = Client(bt.port, "delayed", v5=True, clean=False, connect_properties=cprops)
    assert again.connacks.empty()
    watcher.assert_nothing()
    assert bt.run(lambda: bt.broker.metrics["wills_published"]) == 0
    again.close()


def test_takeover_new_connection_wins(bt) -> None:
    old = Client(bt.port, "dup", v5=True)
    new = Client(bt.port, "dup", v5=True)
    assert old.disconnected() == 0x8E  # session taken over
    new.subscribe("t", 1)
    new.publish("t", "still here", 1)
    assert new.get().payload == b"still here"
    assert bt.run(lambda: bt.broker.metrics["takeovers"]) == 1


def test_persistent_session_queues_qos1_while_offline(bt) -> None:
    sub = Client(bt.port, "durable", clean=False)
    sub.subscribe("q/#", 1)
    sub.close()
    pub = Client(bt.port, "pub")
    for i in range(3):
        pub.publish(f"q/{i}", str(i), 1)
    pub.publish("q/zero", "qos0 is not queued", 0)
    pub.publish("elsewhere", "sync", 1)  # its PUBACK means the QoS 0 one before it was routed (per-client order)
    back = Client(bt.port, "durable", clean=False, connect=False)
    flags, _, _ = back.connect()
    assert flags.session_present
    assert [back.get().payload for _ in range(3)] == [b"0", b"1", b"2"]
    back.assert_nothing()


def test_queue_is_bounded_and_drops_are_counted(home: Path) -> None:
    with running_broker(home, max_queued_messages=2) as bt:
        sub = Client(bt.port, "slow", clean=False)
        sub.subscribe("q", 1)
        sub.close()
        pub = Client(bt.port, "pub")
        for i in range(5):
            pub.publish("q", str(i), 1)
        assert bt.run(lambda: bt.broker.metrics["publish_dropped_queue_full"]) == 3
        back = Client(bt.port, "slow", clean=False)
        assert [back.get().payload for _ in range(2)] == [b"0", b"1"]


def test_clean_start_discards_session(bt) -> None:
    a = Client(bt.port, "c1", clean=False)
    a.subscribe("x", 1)
    a.close()
    b = Client(bt.port, "c1", clean=True, connect=False)
    flags, _, _ = b.connect()
    assert not flags.session_present
    pub = Client(bt.port, "pub")
    pub.publish("x", "nobody", 1)
    b.assert_nothing()


def test_shared_subscription_balances(bt) -> None:
    a = Client(bt.port, "a", v5=True)
    b = Client(bt.port, "b")
    a.subscribe("$share/workers/jobs/#", 1)
    b.subscribe("$share/workers/jobs/#", 1)
    pub = Client(bt.port, "pub")
    for i in range(10):
        pub.publish("jobs/x", str(i), 1)
    got_a = [a.get().payload for _ in range(5)]
    got_b = [b.get().payload for _ in range(5)]
    assert sorted(got_a + got_b) == sorted(str(i).encode() for i in range(10))
    a.assert_nothing(0.1)
    b.assert_nothing(0.1)


def test_keepalive_expiry_closes_and_fires_will(bt) -> None:
    import socket

    watcher = Client(bt.port, "watcher")
    watcher.subscribe("wills/#", 1)
    sock = socket.create_connection(("127.0.0.1", bt.port), TIMEOUT)
    # CONNECT v3.1.1, keepalive 1 s, will wills/silent "zzz" QoS 0
    var = b"\x00\x04MQTT\x04\x06\x00\x01"
    payload = b"\x00\x06silent" + b"\x00\x0cwills/silent" + b"\x00\x03zzz"
    body = var + payload
    sock.sendall(bytes([0x10, len(body)]) + body)
    assert sock.recv(4) == b"\x20\x02\x00\x00"
    m = watcher.get(timeout=4)
    assert (m.topic, m.payload) == ("wills/silent", b"zzz")
    sock.settimeout(TIMEOUT)
    assert sock.recv(10) == b""  # closed by the broker
    assert bt.run(lambda: bt.broker.metrics["keepalive_timeouts"]) == 1


def test_v5_properties_forwarded(bt) -> None:
    sub = Client(bt.port, "sub", v5=True)
    sub.subscribe("req", 1)
    pub = Client(bt.port, "pub", v5=True)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "resp/pub"
    props.CorrelationData = b"\x01\x02"
    props.ContentType = "application/json"
    props.PayloadFormatIndicator = 1
    props.UserProperty = [("k", "v"), ("k", "w")]
    pub.publish("req", json.dumps({"a": 1}), 1, properties=props)
    m = sub.get()
    p = m.properties
    assert p.ResponseTopic == "resp/pub"
    assert p.CorrelationData == b"\x01\x02"
    assert p.ContentType == "application/json"
    assert p.PayloadFormatIndicator == 1
    assert p.UserProperty == [("k", "v"), ("k", "w")]


def test_v5_subscription_options_and_identifiers(bt) -> None:
    c = Client(bt.port, "self", v5=True)
    props = Properties(PacketTypes.SUBSCRIBE)
    props.SubscriptionIdentifier = 7
    c.c.subscribe("loop/#", options=SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True),
                  properties=props)
    c.subacks.get(timeout=TIMEOUT)
    other = Client(bt.port, "other", v5=True)
    c.publish("loop/x", "mine", 1)  # no-local: not echoed
    other.publish("loop/y", "theirs", 1, retain=True)
    m = c.get()
    assert m.payload == b"theirs"
    assert m.retain is True  # retain-as-published
    assert m.properties.SubscriptionIdentifier == [7]
    c.assert_nothing()
    late = Client(bt.port, "late", v5=True)
    late.c.subscribe("loop/#", options=SubscribeOptions(qos=1, retainHandling=2))
    late.subacks.get(timeout=TIMEOUT)
    other.publish("loop/z", "control", 1)
    assert late.get().payload == b"control"  # the retained loop/y was not sent


def test_v5_message_expiry_drops_stale_queued_messages(bt) -> None:
    cprops = Properties(PacketTypes.CONNECT)
    cprops.SessionExpiryInterval = 60
    sub = Client(bt.port, "exp", v5=True, clean=False, connect_properties=cprops)
    sub.subscribe("e", 1)
    sub.close()
    pub = Client(bt.port, "pub", v5=True)
    expired = Properties(PacketTypes.PUBLISH)
    expired.MessageExpiryInterval = 1
    pub.publish("e", "stale", 1, properties=expired)
    bt.run(lambda: [setattr(d.message, "expires_at", 0.0) for d in bt.broker.sessions["exp"].queue])
    pub.publish("e", "fresh", 1)
    back = Client(bt.port, "exp", v5=True, clean=False, connect_properties=cprops)
    assert back.get().payload == b"fresh"
    back.assert_nothing()
    assert bt.run(lambda: bt.broker.metrics["publish_dropped_expired"]) == 1


def test_v5_topic_alias_from_client(bt) -> None:
    sub = Client(bt.port, "sub", v5=True)
    sub.subscribe("long/topic/name", 1)
    pub = Client(bt.port, "pub", v5=True)
    first = Properties(PacketTypes.PUBLISH)
    first.TopicAlias = 3
    pub.publish("long/topic/name", "1", 1, properties=first)
    pub.publish("", "2", 1, properties=first)
    assert [sub.get().topic for _ in range(2)] == ["long/topic/name", "long/topic/name"]


def test_v5_server_assigns_topic_aliases_when_allowed(bt) -> None:
    cprops = Properties(PacketTypes.CONNECT)
    cprops.TopicAliasMaximum = 5
    sub = Client(bt.port, "aliased", v5=True, connect_properties=cprops)
    sub.subscribe("a/b", 0)
    pub = Client(bt.port, "pub")
    pub.publish("a/b", "1", 1)
    pub.publish("a/b", "2", 1)
    got = [sub.get() for _ in range(2)]
    # paho 2.x does not resolve incoming aliases: the wire shows topic + alias once, then the alias alone
    assert [(m.topic, m.properties.TopicAlias) for m in got] == [("a/b", 1), ("", 1)]


def test_v5_server_keepalive_and_limits_in_connack(bt) -> None:
    c = Client(bt.port, "", v5=True, keepalive=0, connect=False)
    _, rc, props = c.connect()
    assert rc == 0
    assert props.ServerKeepAlive == 1200
    assert props.AssignedClientIdentifier.startswith("edgeloop-")
    assert props.ReceiveMaximum == 100
    assert props.TopicAliasMaximum == 32


def test_hooks_see_messages_before_puback(bt) -> None:
    import asyncio

    seen: list[str] = []
    release = threading.Event()

    class SlowHook:
        async def on_publish(self, message):
            seen.append(message.topic)
            while not release.is_set():
                await asyncio.sleep(0.01)

    bt.run(lambda: bt.broker.add_hook(SlowHook()))
    pub = Client(bt.port, "pub", v5=True)
    info = pub.publish("h/1", "x", 1, wait=False)
    info.wait_for_publish(0.3)
    assert not info.is_published()  # not acknowledged while the hook runs
    assert "h/1" in seen
    release.set()
    info.wait_for_publish(TIMEOUT)
    assert info.is_published()


def test_failing_hook_gives_v5_reason_0x80(bt) -> None:
    class Broken:
        def on_publish(self, message):
            if message.topic.startswith("h/"):
                raise RuntimeError("journal full")

    bt.run(lambda: bt.broker.add_hook(Broken()))
    pub = Client(bt.port, "pub", v5=True)
    pub.publish("h/2", "x", 1, wait=False)
    _, rc = pub.pubacks.get(timeout=TIMEOUT)
    assert rc == 0x80
    assert bt.run(lambda: bt.broker.metrics["hook_errors"]) == 1


def test_internal_publish_and_subscribe(bt) -> None:
    got = []
    done = threading.Event()

    def on_request(message):
        got.append((message.topic, message.payload, message.client_id))
        done.set()

    bt.run(lambda: bt.broker.subscribe_internal("$aws/things/+/shadow/get", on_request))
    dev = Client(bt.port, "thing1")
    dev.subscribe("$aws/things/thing1/shadow/get/accepted", 1)
    dev.publish("$aws/things/thing1/shadow/get", "{}", 1)
    assert done.wait(TIMEOUT)
    assert got == [("$aws/things/thing1/shadow/get", b"{}", "thing1")]
    bt.call(bt.broker.publish("$aws/things/thing1/shadow/get/accepted", b'{"state":{}}', qos=1))
    assert dev.get().payload == b'{"state":{}}'


def test_lifecycle_events_and_sys_stats(home: Path) -> None:
    with running_broker(home, sys_interval_secs=0.2) as bt:
        watcher = Client(bt.port, "watcher")
        watcher.subscribe("$aws/events/#", 1)
        assert json.loads(watcher.get().payload)["clientId"] == "watcher"  # its own subscription event
        dev = Client(bt.port, "dev1")
        connected = json.loads(watcher.get().payload)
        assert connected["eventType"] == "connected" and connected["clientId"] == "dev1"
        assert {"timestamp", "sessionIdentifier", "principalIdentifier", "ipAddress", "versionNumber"} <= set(
            connected
        )
        dev.subscribe("a/b", 0)
        subscribed = json.loads(watcher.get().payload)
        assert subscribed["eventType"] == "subscribed" and subscribed["topics"] == ["a/b"]
        dev.close()
        gone = json.loads(watcher.get().payload)
        assert gone["eventType"] == "disconnected"
        assert gone["clientInitiatedDisconnect"] is True
        assert gone["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"
        sysc = Client(bt.port, "sys")
        sysc.subscribe("$SYS/broker/clients/connected", 0)
        values = [int(sysc.get().payload) for _ in range(3)]  # retained snapshot, then fresh ones
        assert values[-1] == 2  # watcher and sys itself
