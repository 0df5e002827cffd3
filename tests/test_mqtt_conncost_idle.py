"""What an idle connection costs the broker: memory per connection (bounded), the connect-timeout / keep-alive
deadlines on one wheel, CONNECT authenticators batched into few worker-thread hops, session containers given
back once drained."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.identity.pki import load_certificate
from gateway.identity.policy import Authorizer
from gateway.identity.tls import client_context
from gateway.mqtt.authz import DevAuthenticator
from gateway.mqtt.codec import StreamDecoder, encode
from gateway.mqtt.connection import MqttConnection
from gateway.mqtt.housekeeping import DeadlineWheel
from gateway.mqtt.packets import Connack, Connect, Puback, Publish
from gateway.mqtt.session import NO_DELIVERIES, NO_PACKET_IDS
from gateway.mqtt.topics import TopicTrie
from tests.mqtt_helpers import TIMEOUT, BrokerThread, Client, RawClient, new_event_loop, running_broker

IDLE = 200  # connections opened for the memory bound
MQTT_BYTES_PER_IDLE_CONNECTION = 3072  # allocated by gateway/mqtt itself: about 2,100 now, 4,800 before


def _connect(port: int, client_id: str, version: int = 4) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), TIMEOUT)
    sock.sendall(encode(Connect(client_id, version, keepalive=300), version))
    return sock


def _connack(sock: socket.socket, version: int = 4) -> Connack:
    sock.settimeout(TIMEOUT)
    decoder = StreamDecoder(version=version)
    while True:
        data = sock.recv(1024)
        assert data, "closed before CONNACK"
        packets = decoder.feed(data)
        if packets:
            assert isinstance(packets[0], Connack), packets
            return packets[0]

def _bytes_per_idle_connection(bt: Any, prefix: str, filters: list[tracemalloc.Filter]) -> tuple[float, list[Any]]:
    """Open IDLE connections (after 20 warm-up ones) and return the bytes traced per connection under
    `filters`, with every socket opened (the caller closes them)."""
    warm = [_connect(bt.port, f"warm-{i}") for i in range(20)]  # one-time allocations (pools, caches)
    assert all(_connack(sock).reason_code == 0 for sock in warm)
    gc.collect()
    tracemalloc.start(30)
    try:
        before = tracemalloc.take_snapshot()
        socks = [_connect(bt.port, f"{prefix}-{i}") for i in range(IDLE)]
        assert all(_connack(sock).reason_code == 0 for sock in socks)
        assert bt.run(lambda: bt.broker.metrics["clients_connected"]) == IDLE + len(warm)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.filter_traces(filters).compare_to(before.filter_traces(filters),
                                                                                    "filename"))
    return grown / IDLE, warm + socks


def test_idle_connections_stay_under_a_memory_bound(home: Path) -> None:
    with running_broker(home) as bt:
        ours = [tracemalloc.Filter(True, "*/gateway/mqtt/*", all_frames=True),  # made on behalf of the broker,
                tracemalloc.Filter(False, "*/gateway/identity/*"),  # not the identity component's policy session
                tracemalloc.Filter(False, "*/gateway/mqtt/authz.py")]
        per_connection, socks = _bytes_per_idle_connection(bt, "idle", ours)
        assert 0 < per_connection < MQTT_BYTES_PER_IDLE_CONNECTION, per_connection
        for sock in socks:
            sock.close()


def test_idle_session_gives_its_delivery_containers_back(home: Path) -> None:
    with running_broker(home) as bt:
        sub = RawClient(bt.port, "idle-sub")
        assert sub.subscribe("cmd/#", 1) == [1]
        session_state = lambda: bt.run(lambda: (  # noqa: E731
            bt.broker.sessions["idle-sub"].queue, dict(bt.broker.sessions["idle-sub"].inflight)))
        assert session_state() == (NO_DELIVERIES, {})
        pub = Client(bt.port, "pub")
        pub.c.publish("cmd/reboot", b"now", qos=1).wait_for_publish(TIMEOUT)
        delivery = sub.recv()
        assert isinstance(delivery, Publish) and delivery.payload == b"now" and delivery.qos == 1
        assert bt.run(lambda: len(bt.broker.sessions["idle-sub"].inflight)) == 1  # waiting for our PUBACK
        sub.send(Puback(delivery.packet_id))
        sub.send(Publish("status/ack", b"", 1, packet_id=7))  # answered once the PUBACK before it was handled
        answer = sub.recv()
        assert isinstance(answer, Puback) and answer.packet_id == 7
        assert session_state() == (NO_DELIVERIES, {})
        assert bt.run(lambda: bt.broker.sessions["idle-sub"].incoming_qos2) is NO_PACKET_IDS
        pub.c.disconnect()
        sub.close()


class GatedAuthenticator:
    """The dev authenticator, whose first call waits until the test opens the gate."""

    def __init__(self) -> None:
        self.inner = DevAuthenticator(None, Authorizer("us-east-1", "123456789012"))
        self.gate = threading.Event()
        self.calls = 0

    def __call__(self, conn: MqttConnection, connect: Connect) -> Any:
        self.calls += 1
        if self.calls == 1:
            assert self.gate.wait(TIMEOUT)
        return self.inner(conn, connect)


class FailingAuthenticator:
    def __call__(self, conn: MqttConnection, connect: Connect) -> Any:
        raise RuntimeError("registry unreachable")


def _listen(bt: BrokerThread, authenticate: Any) -> tuple[Any, int]:
    async def start() -> Any:
        return await asyncio.get_running_loop().create_server(
            lambda: MqttConnection(bt.broker, authenticate, "dev"), "127.0.0.1", 0)

    server = bt.call(start())
    return server, server.sockets[0].getsockname()[1]


def test_connects_arriving_together_share_worker_thread_hops(home: Path) -> None:
    with running_broker(home) as bt:
        auth = GatedAuthenticator()
        server, port = _listen(bt, auth)
        try:
            first = _connect(port, "storm-0")
            socks = [_connect(port, f"storm-{i}") for i in range(1, 100)]  # all sent while the first waits
            deadline = time.monotonic() + TIMEOUT  # and all read by the broker before the first batch ends
            while bt.run(lambda: bt.broker.auth_batches.waiting) < 99 and time.monotonic() < deadline:
                time.sleep(0.01)
            auth.gate.set()
            assert all(_connack(sock).reason_code == 0 for sock in [first, *socks])
            assert auth.calls == 100
            batches = bt.run(lambda: bt.broker.auth_batches.batches)
            assert batches == 2, batches  # the gated first one, then the 99 together (one hop each before)
            assert bt.run(lambda: sorted(bt.broker.sessions)) == sorted(f"storm-{i}" for i in range(100))
            for sock in [first, *socks]:
                sock.close()
        finally:
            bt.run(server.close)


def test_a_failing_authenticator_refuses_at_once(home: Path) -> None:
    with running_broker(home, connect_timeout_secs=30) as bt:
        server, port = _listen(bt, FailingAuthenticator())
        try:
            started = time.monotonic()
            v3 = _connect(port, "broken-3")
            assert _connack(v3).reason_code == 3  # server unavailable
            v5 = _connect(port, "broken-5", version=5)
            assert _connack(v5, 5).reason_code == 0x80
            assert time.monotonic() - started < TIMEOUT  # not after the 30 s connect timeout
            assert bt.run(lambda: bt.broker.metrics["connections_rejected"]) == 2
            v3.close()
            v5.close()
        finally:
            bt.run(server.close)


class Member:
    def __init__(self, due: float, fired: list[tuple[Member, float]], done: asyncio.Event, expected: int) -> None:
        self.due = due
        self.fired = fired
        self.done = done
        self.expected = expected

    def deadline_passed(self, now: float) -> None:
        self.fired.append((self, now))
        if len(self.fired) == self.expected:
            self.done.set()


@settings(max_examples=15, deadline=None)
@given(offsets=st.lists(st.tuples(st.floats(0.0, 0.12), st.booleans()), min_size=1, max_size=30))
def test_wheel_fires_each_deadline_once_never_early_and_skips_cancelled(offsets: list[tuple[float, bool]]) -> None:
    loop = new_event_loop()
    try:
        async def run() -> tuple[list[Member], list[tuple[Member, float]]]:
            wheel = DeadlineWheel(asyncio.get_running_loop(), tick=0.02)
            fired: list[tuple[Member, float]] = []
            done = asyncio.Event()
            kept = sum(1 for _, cancel in offsets if not cancel)
            start = time.monotonic()
            members = []
            for offset, cancel in offsets:
                member = Member(start + offset, fired, done, kept)
                slot = wheel.schedule(member, member.due)
                if cancel:
                    wheel.cancel(member, slot)
                else:
                    members.append(member)
            if kept:
                await asyncio.wait_for(done.wait(), TIMEOUT)
            late = Member(time.monotonic() + 0.05, fired, asyncio.Event(), -1)  # lets stragglers show up
            wheel.schedule(late, late.due)
            await asyncio.wait_for(_until(lambda: any(m is late for m, _ in fired)), TIMEOUT)
            wheel.close()
            return members, [(m, now) for m, now in fired if m is not late]

        members, fired = loop.run_until_complete(run())
    finally:
        loop.close()
    assert sorted(map(id, members)) == sorted(id(m) for m, _ in fired)  # each kept one exactly once
    for member, now in fired:
        assert now >= member.due


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.005)


GATEWAY_BYTES_PER_IDLE_CONNECTION = 3072  # broker and identity together, dev policy from the registry: about
# 2,150 now, 7,750 before the policy binding was shared by principals (and the dev policy read once)


def test_idle_connections_with_their_policy_sessions_stay_under_a_memory_bound(home: Path, registry: Any) -> None:
    with running_broker(home, registry) as bt:
        gateway = [tracemalloc.Filter(True, "*/gateway/*", all_frames=True)]
        per_connection, socks = _bytes_per_idle_connection(bt, "policy", gateway)
        assert 0 < per_connection < GATEWAY_BYTES_PER_IDLE_CONNECTION, per_connection
        auth = bt.run(lambda: [bt.broker.sessions[f"policy-{i}"].connection.auth for i in (0, 1)])
        assert auth[0].session.principal.policies is auth[1].session.principal.policies
        assert auth[0].allowed("iot:Publish", "any/topic") and auth[1].allowed("iot:Subscribe", "any/#")
        for sock in socks:
            sock.close()


def test_lifecycle_event_topics_are_matched_but_not_cached() -> None:
    trie: TopicTrie[str] = TopicTrie()
    trie.add("$aws/events/presence/+/#", "watcher", "presence")
    trie.add("t/#", "sub", "telemetry")
    for i in range(50):
        assert trie.match(f"$aws/events/presence/connected/c{i}") == ["presence"]
        assert trie.match(f"t/{i % 5}") == ["telemetry"]
    assert trie.cached_topics == 5  # the five telemetry topics, no lifecycle topic


def test_tls_connections_keep_no_decoded_peer_certificate(home: Path, registry: Any, tmp_path: Path) -> None:
    files = registry.provision_thing("dev1").write(tmp_path / "dev1")
    with running_broker(home, registry) as bt:
        context = client_context(files["ca"], files["certificate"], files["private_key"])
        client = Client(bt.service.ports["mqtts"], "dev1", tls=context, host="localhost")
        transport = bt.run(lambda: bt.broker.sessions["dev1"].connection.transport)
        assert bt.run(lambda: transport.get_extra_info("peercert")) in (None, {})
        der = bt.run(lambda: transport.get_extra_info("ssl_object").getpeercert(binary_form=True))
        assert der == load_certificate(files["certificate"].read_text()).public_bytes(Encoding.DER)
        client.close()
