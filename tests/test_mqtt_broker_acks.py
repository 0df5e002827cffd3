"""Acknowledgements held back by hooks: sent only after every hook finished, in PUBLISH order, negative (v5) or
a close (3.1.1) when a hook fails; `AckQueue` itself under random completion orders (hypothesis)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mqtt.acks import AckQueue
from gateway.mqtt.packets import Puback, Publish, Pubrec, Pubrel
from tests.mqtt_helpers import BrokerThread, RawClient, running_broker
from tests.test_mqtt_broker_flow import _wait


class GatedHook:
    """Each message's hook future is completed by the test: `release(topic)` or `fail(topic)`."""

    def __init__(self, shared: bool = False) -> None:
        self.shared = shared  # one future for every message, like a journal's fsync batch
        self.futures: dict[str, asyncio.Future[None]] = {}

    def on_publish(self, message: Any) -> asyncio.Future[None] | None:
        if not message.topic.startswith("in/"):
            return None
        key = "batch" if self.shared else message.topic
        if key not in self.futures:
            self.futures[key] = asyncio.get_running_loop().create_future()
        return self.futures[key]

    def release(self, key: str) -> None:
        self.futures[key].set_result(None)

    def fail(self, key: str) -> None:
        self.futures[key].set_exception(RuntimeError("journal append failed"))


@pytest.fixture
def gated(home: Path) -> Iterator[tuple[BrokerThread, GatedHook]]:
    with running_broker(home) as bt:
        hook = GatedHook()
        bt.run(lambda: bt.broker.add_hook(hook))
        yield bt, hook


def publish_all(bt: BrokerThread, hook: GatedHook, client: RawClient, qos: int, count: int) -> None:
    for pid in range(1, count + 1):
        client.send(Publish(f"in/{pid}", b"x", qos, packet_id=pid))
    _wait(bt, lambda: len(hook.futures) == count)


def no_packet(client: RawClient) -> bool:
    try:
        client.recv(timeout=0.2)
    except TimeoutError:
        return True
    return False


@pytest.mark.parametrize("version", [4, 5])
def test_acks_wait_for_their_hook_and_keep_publish_order(gated: tuple[BrokerThread, GatedHook], version: int) -> None:
    bt, hook = gated
    client = RawClient(bt.port, "ordered", version=version)
    publish_all(bt, hook, client, 1, 3)
    bt.run(lambda: hook.release("in/3"))
    assert no_packet(client)  # 3 is done, but 1 and 2 are not acknowledged yet
    bt.run(lambda: hook.release("in/1"))
    assert client.recv().packet_id == 1
    assert no_packet(client)
    bt.run(lambda: hook.release("in/2"))
    assert [client.recv().packet_id for _ in range(2)] == [2, 3]


def test_one_shared_future_acknowledges_its_whole_batch_in_order(home: Path) -> None:
    with running_broker(home) as bt:
        hook = GatedHook(shared=True)
        bt.run(lambda: bt.broker.add_hook(hook))
        client = RawClient(bt.port, "batch", version=5)
        for pid in range(1, 21):
            client.send(Publish(f"in/{pid}", b"x", 1, packet_id=pid))
        _wait(bt, lambda: bt.broker.metrics["messages_received"] >= 20)
        assert no_packet(client)
        bt.run(lambda: hook.release("batch"))
        acks = [client.recv() for _ in range(20)]
        assert [(type(a), a.packet_id, a.reason_code) for a in acks] == [(Puback, pid, 0) for pid in range(1, 21)]


def test_v5_failed_hook_gets_0x80_in_its_place(gated: tuple[BrokerThread, GatedHook]) -> None:
    bt, hook = gated
    client = RawClient(bt.port, "v5", version=5)
    publish_all(bt, hook, client, 1, 3)
    bt.run(lambda: (hook.release("in/3"), hook.fail("in/2"), hook.release("in/1")))
    acks = [client.recv() for _ in range(3)]
    assert [(a.packet_id, a.reason_code) for a in acks] == [(1, 0), (2, 0x80), (3, 0)]
    assert acks[1].properties.reason_string
    assert bt.run(lambda: bt.broker.metrics["ack_failures"]) == 1


def test_v311_failed_hook_closes_after_the_earlier_acks(gated: tuple[BrokerThread, GatedHook]) -> None:
    bt, hook = gated
    client = RawClient(bt.port, "v3", version=4)
    publish_all(bt, hook, client, 1, 3)
    bt.run(lambda: (hook.release("in/1"), hook.fail("in/2"), hook.release("in/3")))
    assert [(type(p), p.packet_id) for p in client.until_closed()] == [(Puback, 1)]


def test_qos2_pubrec_waits_and_a_failed_one_can_be_resent(gated: tuple[BrokerThread, GatedHook]) -> None:
    bt, hook = gated
    client = RawClient(bt.port, "q2", version=5)
    publish_all(bt, hook, client, 2, 2)
    bt.run(lambda: (hook.fail("in/1"), hook.release("in/2")))
    first, second = client.recv(), client.recv()
    assert (type(first), first.packet_id, first.reason_code) == (Pubrec, 1, 0x80)
    assert (type(second), second.packet_id, second.reason_code) == (Pubrec, 2, 0)
    client.send(Pubrel(2))
    assert client.recv().packet_id == 2  # PUBCOMP
    assert bt.run(lambda: 1 not in bt.broker.sessions["q2"].incoming_qos2)  # the refused id is free again


def test_done_futures_and_coroutines_from_hooks(home: Path) -> None:
    class Mixed:
        def on_publish(self, message: Any) -> Any:
            if message.topic == "in/done":
                fut = asyncio.get_running_loop().create_future()
                fut.set_result(None)
                return fut
            if message.topic == "in/coro":
                return asyncio.sleep(0)
            return None

    with running_broker(home) as bt:
        bt.run(lambda: bt.broker.add_hook(Mixed()))
        client = RawClient(bt.port, "mixed", version=5)
        for pid, topic in enumerate(("in/done", "in/coro", "in/none"), start=1):
            client.send(Publish(topic, b"x", 1, packet_id=pid))
        assert [client.recv().packet_id for _ in range(3)] == [1, 2, 3]


def test_hooks_given_to_start_mqtt_are_attached_before_the_listeners_open(home: Path) -> None:
    hook = GatedHook()
    with running_broker(home, hooks=(hook,)) as bt:
        assert bt.run(lambda: list(bt.broker.hooks)) == [hook]
        client = RawClient(bt.port, "first", version=5)  # the very first connection is routed to the hook
        publish_all(bt, hook, client, 1, 1)
        assert no_packet(client)
        bt.run(lambda: hook.release("in/1"))
        assert client.recv().packet_id == 1


# -- AckQueue alone --------------------------------------------------------------------------------------------

entries = st.lists(st.lists(st.integers(0, 5), max_size=3), min_size=1, max_size=12)  # future indexes per ack


@settings(max_examples=150, deadline=None)
@given(entries=entries, order=st.permutations(range(6)), fail=st.sets(st.integers(0, 5), max_size=2))
def test_ack_queue_sends_in_order_and_only_after_its_futures(entries: list[list[int]], order: list[int],
                                                             fail: set[int]) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(6)]
        sent: list[tuple[int, bool]] = []

        def send(ack: int, failure: BaseException | None) -> None:
            assert all(futures[i].done() for i in entries[ack])  # never before its own waits
            sent.append((ack, failure is not None))

        queue = AckQueue(send, lambda fut: None)
        for ack, indexes in enumerate(entries):
            queue.add(ack, [futures[i] for i in indexes])
        for i in order:
            if i in fail:
                futures[i].set_exception(RuntimeError(str(i)))
            else:
                futures[i].set_result(None)
            await asyncio.sleep(0)  # run the done-callbacks
        assert sent == [(ack, bool(fail & set(ix))) for ack, ix in enumerate(entries)]
        assert len(queue) == 0

    asyncio.run(scenario())
