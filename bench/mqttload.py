"""Raw-socket MQTT 3.1.1 load generator for `bench/broker.py`: publishers, subscribers and connection storms.

Every role runs in its own process (multiprocessing) and talks plain sockets with pre-encoded packets, so
the generator spends as little CPU as possible next to the broker under test. Counters live in shared
memory; processes stop on an event or at a hard deadline, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import selectors
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event

import numpy as np

from gateway.mqtt.codec import encode, encode_publish
from gateway.mqtt.packets import Connect, Subscribe, Subscription

CONNECT_TIMEOUT = 10.0
HARD_DEADLINE = 600.0  # no role process lives longer than this, whatever happens
PUBACK = 0x40


@dataclass(frozen=True)
class Target:
    """Where and how to connect: host, port, and client TLS material (None = plain TCP)."""

    host: str
    port: int
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def tls_context(self) -> ssl.SSLContext | None:
        if self.ca_file is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        ctx.check_hostname = False
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def raise_nofile_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE towards `wanted` (the hard limit too when privileged); return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    if hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            wanted = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


def publish_packet(topic: str, size: int, qos: int, packet_id: int | None) -> bytes:
    """A 3.1.1 PUBLISH of `size` bytes on the wire (the payload pads it out; one byte less where the
    remaining-length field would grow, e.g. 130; the smallest packet when `size` is below that)."""
    overhead = len(encode_publish(topic, b"", qos, False, False, packet_id, 4))
    payload = b"x" * max(size - overhead, 0)
    packet = encode_publish(topic, payload, qos, False, False, packet_id, 4)
    if len(packet) != size:  # a longer remaining-length field: shave the payload accordingly
        packet = encode_publish(topic, payload[: len(payload) - (len(packet) - size)], qos, False, False, packet_id, 4)
    return packet


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection during the handshake")
        data += chunk
    return data


def open_client(target: Target, client_id: str, context: ssl.SSLContext | None = None) -> socket.socket:
    """A connected, CONNACKed MQTT 3.1.1 client socket."""
    sock = socket.create_connection((target.host, target.port), timeout=CONNECT_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="localhost")
    sock.sendall(encode(Connect(client_id, keepalive=300), 4))
    connack = _recv_exact(sock, 4)
    if connack != b"\x20\x02\x00\x00":
        sock.close()
        raise ConnectionError(f"CONNACK refused: {connack.hex()}")
    return sock


def subscribe(sock: socket.socket, topic_filter: str, qos: int) -> None:
    sock.sendall(encode(Subscribe(1, [Subscription(topic_filter, qos)]), 4))
    suback = _recv_exact(sock, 5)
    if suback[0] != 0x90 or suback[4] == 0x80:
        raise ConnectionError(f"SUBSCRIBE refused: {suback.hex()}")


def scan_publishes(buf: bytes, acks: list[bytes] | None) -> tuple[int, int]:
    """Count the complete PUBLISH packets in `buf`; collect QoS>0 packet ids into `acks`; return (count, used)."""
    n = len(buf)
    pos = 0
    count = 0
    while pos + 2 <= n:
        first = buf[pos]
        length = buf[pos + 1]
        header = 2
        if length & 0x80:
            length &= 0x7F
            shift = 7
            while True:
                if pos + header >= n:
                    return count, pos
                byte = buf[pos + header]
                header += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80 or header == 5:
                    break
                shift += 7
        end = pos + header + length
        if end > n:
            break
        if first >> 4 == 3:
            count += 1
            if first & 0x06 and acks is not None:
                body = pos + header
                at = body + 2 + ((buf[body] << 8) | buf[body + 1])
                acks.append(buf[at : at + 2])
        pos = end
    return count, pos


def count_fixed_size(buf: bytes | memoryview, size: int, qos: int) -> tuple[int, int, bytes] | None:
    """Fast path when every packet is a PUBLISH of `size` bytes with a 1-byte remaining length (the load this
    generator makes): (count, bytes used, PUBACKs to send), validated row by row; None when it does not apply."""
    full = len(buf) // size
    if not full or size > 129:
        return None
    rows = np.frombuffer(buf, np.uint8, full * size).reshape(full, size)
    if not ((rows[:, 0] & 0xF0) == 0x30).all() or not (rows[:, 1] == size - 2).all() or (rows[:, 2] != 0).any():
        return None
    if not qos:
        return full, full * size, b""
    at = 4 + rows[:, 3].astype(np.intp)  # packet id follows the topic (topic length < 256 here)
    index = np.arange(full)
    acks = np.empty((full, 4), np.uint8)
    acks[:, 0], acks[:, 1] = PUBACK, 2
    acks[:, 2], acks[:, 3] = rows[index, at], rows[index, at + 1]
    return full, full * size, acks.tobytes()


def subscriber_process(target: Target, n_sockets: int, name: str, topic_filter: str, qos: int, size: int,
                       counter: Synchronized, ready: Event, stop: Event, failed: Event) -> None:
    """Hold `n_sockets` subscriptions; count every PUBLISH received into `counter`; PUBACK QoS 1.

    `size` is the expected packet size, for a vectorised counting fast path (any packet is still counted)."""
    deadline = time.monotonic() + HARD_DEADLINE
    context = target.tls_context()
    selector = selectors.DefaultSelector()
    try:
        raise_nofile_limit(n_sockets + 64)
        for i in range(n_sockets):
            sock = open_client(target, f"{name}-{i}", context)
            subscribe(sock, topic_filter, qos)
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, _Inbox())
    except (OSError, ConnectionError) as exc:
        print(f"subscriber {name}: {exc!r}", file=sys.stderr)
        failed.set()
        return
    ready.set()
    while not stop.is_set() and time.monotonic() < deadline:
        for key, _ in selector.select(0.1):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            inbox: _Inbox = key.data
            if not inbox.fill(sock):
                selector.unregister(sock)
            count, pubacks = inbox.take(size, qos)
            counter.value += count
            if pubacks:
                sock.setblocking(True)
                sock.sendall(pubacks)
                sock.setblocking(False)
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]


class _Inbox:
    """A subscriber socket's receive buffer: drained in one go (TLS delivers one record per read)."""

    CAPACITY = 1 << 20

    def __init__(self) -> None:
        self.buf = bytearray(self.CAPACITY)
        self.view = memoryview(self.buf)
        self.filled = 0

    def fill(self, sock: socket.socket) -> bool:
        """Read everything available without blocking; False when the connection is gone."""
        while self.filled < self.CAPACITY:
            try:
                n = sock.recv_into(self.view[self.filled :])
            except (BlockingIOError, ssl.SSLWantReadError):
                return True
            except OSError:
                return False
            if not n:
                return False
            self.filled += n
        return True

    def take(self, size: int, qos: int) -> tuple[int, bytes]:
        """Consume the complete packets: (PUBLISH count, PUBACKs to send)."""
        data = self.view[: self.filled]
        fast = count_fixed_size(data, size, qos)
        if fast is not None:
            count, used, pubacks = fast
        else:
            acks: list[bytes] | None = [] if qos else None
            count, used = scan_publishes(bytes(data), acks)
            pubacks = b"".join(b"\x40\x02" + pid for pid in acks or ())
        data.release()
        rest = self.filled - used
        self.buf[:rest] = self.buf[used : self.filled]
        self.filled = rest
        return count, pubacks


def publisher_process(target: Target, name: str, topic: str, size: int, qos: int, window: int,
                      counter: Synchronized, ready: Event, go: Event, stop: Event, failed: Event) -> None:
    """Publish pre-encoded packets as fast as the broker takes them (QoS 1: `window` unacknowledged)."""
    os.nice(10)  # as in the peer method: publishers must not starve the subscriber of CPU
    deadline = time.monotonic() + HARD_DEADLINE
    try:
        sock = open_client(target, name, target.tls_context())
    except (OSError, ConnectionError) as exc:
        print(f"publisher {name}: {exc!r}", file=sys.stderr)
        failed.set()
        return
    ready.set()
    if not go.wait(HARD_DEADLINE):
        return
    try:
        if qos == 0:
            # Blocking writes without a timeout: a broker that stalls its reader must not make us give up
            # (or resend half a batch); the harness terminates publishers still blocked when a test ends.
            sock.settimeout(None)
            batch = publish_packet(topic, size, 0, None) * 64
            while not stop.is_set() and time.monotonic() < deadline:
                sock.sendall(batch)
                counter.value += 64
        else:
            sock.settimeout(1.0)
            _publish_qos1(sock, topic, size, window, counter, stop, deadline)
    except OSError:
        pass
    finally:
        sock.close()


def _publish_qos1(sock: socket.socket, topic: str, size: int, window: int, counter: Synchronized, stop: Event,
                  deadline: float) -> None:
    cycle = max(window * 4, 256)
    packets = [publish_packet(topic, size, 1, pid) for pid in range(1, cycle + 1)]

    def next_packets(sent: int, room: int) -> bytes:
        start = sent % cycle
        chunk = packets[start : start + room]
        if len(chunk) < room:
            chunk += packets[: room - len(chunk)]
        return b"".join(chunk)

    keep_window(sock, window, window // 2, next_packets, counter, stop, deadline)


def keep_window(sock: socket.socket, window: int, refill: int, next_packets: Callable[[int, int], bytes],
                counter: Synchronized, stop: Event, deadline: float) -> None:
    """Keep `window` QoS 1 PUBLISHes unacknowledged: whenever `refill` slots are free (or nothing is in flight),
    send ``next_packets(sent so far, free slots)``. `counter` follows the PUBACKs received (4 bytes each; a
    publisher receives nothing else). Needs a socket timeout, so that `stop` and `deadline` are checked."""
    sent = acked = 0
    received = 0
    while not stop.is_set() and time.monotonic() < deadline:
        room = window - (sent - acked)
        if room >= refill or sent == acked:
            sock.sendall(next_packets(sent, room))
            sent += room
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        if not data:
            return
        received += len(data)
        acked = received // 4
        counter.value = acked


# ------------------------------------------------------------------------------------------------ storms


def storm_process(target: Target, name: str, count: int, parallel: int, results: object, go: Event,
                  release: Event) -> None:
    """Open `count` connections, `parallel` handshakes at a time (asyncio); report (connected, failed,
    seconds); keep them all open and idle until `release`."""
    raise_nofile_limit(count + 64)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(_storm(target, name, count, parallel, results, go, release))


async def _storm(target: Target, name: str, count: int, parallel: int, results: object, go: Event,
                 release: Event) -> None:
    context = target.tls_context()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, go.wait, HARD_DEADLINE)
    gate = asyncio.Semaphore(parallel)  # more SYNs at once than the listen backlog only measures SYN retries

    async def one(i: int) -> asyncio.StreamWriter | None:
        async with gate:
            return await connect_one(i)

    async def connect_one(i: int) -> asyncio.StreamWriter | None:
        try:
            reader, writer = await asyncio.open_connection(
                target.host, target.port, ssl=context, server_hostname="localhost" if context else None,
                limit=256)
            writer.write(encode(Connect(f"{name}-{i}", keepalive=300), 4))
            if await reader.readexactly(4) != b"\x20\x02\x00\x00":
                writer.close()
                return None
            return writer
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            return None

    started = time.monotonic()
    try:
        writers = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), HARD_DEADLINE / 2)
    except TimeoutError:
        writers = []
    elapsed = time.monotonic() - started
    open_writers = [w for w in writers if w is not None]
    results.put((len(open_writers), count - len(open_writers), elapsed))  # type: ignore[attr-defined]
    await loop.run_in_executor(None, release.wait, HARD_DEADLINE)
    for writer in open_writers:
        writer.close()
