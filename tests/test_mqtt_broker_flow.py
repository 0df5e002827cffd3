"""Flow control on live sockets: QoS 0 backpressure drops on a stalled subscriber, the bounded QoS 1 queue of a
slow subscriber, and the inbound receive maximum (DISCONNECT 0x93)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.mqtt.packets import Properties, Puback, Pubcomp, Publish, Pubrec, Pubrel
from tests.mqtt_helpers import TIMEOUT, RawClient, running_broker


def test_qos0_past_the_buffer_is_dropped_for_a_stalled_subscriber(home: Path) -> None:
    limit = 128 * 1024
    with running_broker(home, max_qos0_buffer_bytes=limit) as bt:
        slow = RawClient(bt.port, "slow", rcvbuf=4096)
        assert slow.subscribe("firehose", 0) == [0]
        payload = bytes(16384)
        metrics = bt.broker.metrics

        async def flood() -> tuple[int, int, int]:
            """Publish until the broker has dropped 20 messages: (published, largest write buffer, high water)."""
            conn = bt.broker.sessions["slow"].connection
            published = largest = 0
            while metrics["publish_dropped_qos0_backpressure"] < 20 and published < 5000:
                await bt.broker.publish("firehose", b"%08d" % published + payload)
                published += 1
                await asyncio.sleep(0)  # lets the coalesced write reach the transport
                largest = max(largest, conn.transport.get_write_buffer_size())
            return published, largest, conn.transport.get_write_buffer_limits()[1]

        published, largest, high_water = bt.call(flood(), timeout=30)
        dropped = bt.run(lambda: metrics["publish_dropped_qos0_backpressure"])
        assert dropped >= 20
        assert largest <= high_water + limit + 2 * (len(payload) + 64)  # bounded: transport high water + budget
        expected = published - dropped
        seqs = [int(slow.recv(TIMEOUT).payload[:8]) for _ in range(expected)]
        assert seqs == sorted(seqs) and len(set(seqs)) == expected  # in order, no duplicates
        bt.call(bt.broker.publish("firehose", b"after the drain"))  # the budget is back once writing resumed
        assert slow.recv().payload == b"after the drain"
        assert bt.run(lambda: metrics["publish_dropped_qos0_backpressure"]) == dropped
        slow.close()


@pytest.mark.parametrize("qos", [1, 2])
def test_slow_subscriber_queue_is_bounded_and_drops_are_counted(home: Path, qos: int) -> None:
    with running_broker(home, max_inflight=2, max_queued_messages=3) as bt:
        slow = RawClient(bt.port, "slow")
        assert slow.subscribe("q", qos) == [qos]

        async def publish(payloads: list[bytes]) -> None:
            for payload in payloads:
                await bt.broker.publish("q", payload, qos)

        bt.call(publish([str(i).encode() for i in range(10)]))
        assert bt.run(lambda: bt.broker.metrics["publish_dropped_queue_full"]) == 5  # 2 in flight + 3 queued kept
        assert _acknowledge(slow, 5) == [b"0", b"1", b"2", b"3", b"4"]
        bt.call(publish([b"later"]))  # the window and the queue are free again
        assert _acknowledge(slow, 1) == [b"later"]


def _acknowledge(client: RawClient, count: int) -> list[bytes]:
    """Receive `count` QoS 1/2 deliveries, completing each handshake (PUBACK, or PUBREC / PUBREL / PUBCOMP)."""
    received: list[bytes] = []
    while len(received) < count:
        packet = client.recv()
        if isinstance(packet, Pubrel):
            client.send(Pubcomp(packet.packet_id))
            continue
        assert isinstance(packet, Publish) and packet.qos in (1, 2), packet
        received.append(packet.payload)
        client.send(Puback(packet.packet_id) if packet.qos == 1 else Pubrec(packet.packet_id))
    return received


class StallingHook:
    """A hook whose acknowledgement waits until the test releases it."""

    def __init__(self) -> None:
        self.pending: list[asyncio.Future[None]] = []

    def on_publish(self, message: Any) -> asyncio.Future[None] | None:
        if message.origin == "lifecycle":
            return None
        fut = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        return fut

    def release(self) -> None:
        for fut in self.pending:
            if not fut.done():
                fut.set_result(None)


def test_inbound_receive_maximum_exceeded_disconnects_0x93(home: Path) -> None:
    with running_broker(home, max_inflight=3) as bt:
        hook = StallingHook()
        bt.run(lambda: bt.broker.add_hook(hook))
        try:
            client = RawClient(bt.port, "eager", version=5)
            assert client.connack.properties.receive_maximum == 3
            for pid in range(1, 5):  # one more than the broker's Receive Maximum, none acknowledged yet
                client.send(Publish("in", b"x", 1, packet_id=pid))
            packets = client.until_closed()
            assert [type(p).__name__ for p in packets] == ["Disconnect"]
            assert packets[0].reason_code == 0x93
            assert bt.run(lambda: bt.broker.metrics["protocol_errors"]) == 1
        finally:
            bt.run(hook.release)


def test_receive_maximum_is_per_connection_and_acks_free_it(home: Path) -> None:
    with running_broker(home, max_inflight=2) as bt:
        hook = StallingHook()
        bt.run(lambda: bt.broker.add_hook(hook))
        try:
            client = RawClient(bt.port, "steady", version=5, properties=Properties(receive_maximum=10))
            for pid in (1, 2):
                client.send(Publish("in", b"x", 1, packet_id=pid))
            _wait(bt, lambda: len(hook.pending) == 2)
            bt.run(hook.release)
            assert [client.recv().packet_id for _ in range(2)] == [1, 2]  # PUBACKs in PUBLISH order
            for pid in (3, 4):
                client.send(Publish("in", b"x", 1, packet_id=pid))
            _wait(bt, lambda: len(hook.pending) == 4)
            bt.run(hook.release)
            assert [client.recv().packet_id for _ in range(2)] == [3, 4]
        finally:
            bt.run(hook.release)


def _wait(bt: Any, predicate: Any, timeout: float = TIMEOUT) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    bt.call(asyncio.wait_for(poll(), timeout), timeout + 1)
