"""Device-shadow throughput and latency: durable updates per second with delta computation, from many
devices at once, and p50/p99 update -> accepted latency.

Two scenarios:
- ``store``: the shadow service in this process without a broker (parse, merge, metadata, delta, response
  documents, group-committed SQLite write) driven by one coroutine per device, closed loop.
- ``mqtt``: the broker and the shadow service in a child process; devices are raw MQTT 3.1.1 connections
  from this process, each publishing `/update` and waiting for its `/update/accepted` (window 1), so the
  latency includes the broker, the durable commit and the response fan-out.

MQTT traffic (``--traffic``): ``sdk`` (the default) is what an awsiotsdk shadow client does: QoS 1 `/update`,
QoS 1 subscriptions to `update/accepted`, `rejected`, `delta` and `documents`, every delivery acknowledged, so
each update costs the broker one inbound and three outbound QoS 1 messages. ``minimal`` publishes `/update` at
QoS 0 and subscribes (QoS 0) to `accepted` and `rejected` only.

Every update reports a value and leaves a desired key unmet, so each one computes and publishes a delta.
Usage: ``python -m bench.shadow [--devices N] [--seconds S] [--fsync always|interval|never] [--only store|mqtt]
[--traffic sdk|minimal] [--profile FILE]`` (``--profile`` writes cProfile stats of the serving process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import multiprocessing as mp
import os
import platform
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

READY_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
RESPONSE_TIMEOUT = 30.0


@dataclass
class Result:
    """What one scenario measured."""

    updates: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    commits: int = 0
    rejected: int = 0
    cpu_seconds: float = 0.0  # CPU time of the process serving the updates (all its threads)
    responses: int = 0  # response messages the devices received (MQTT)
    client_cpu_seconds: float = 0.0  # CPU time of the load generator (MQTT)

    def row(self, name: str, devices: int) -> dict[str, Any]:
        lat = np.array(self.latencies) * 1000 if self.latencies else np.zeros(1)
        return {
            "scenario": name, "devices": devices, "updates": self.updates,
            "updates/s": self.updates / self.seconds if self.seconds else 0.0,
            "p50 ms": float(np.percentile(lat, 50)), "p99 ms": float(np.percentile(lat, 99)),
            "rows/commit": self.updates / self.commits if self.commits else float("nan"),
            "cpu us/update": self.cpu_seconds / self.updates * 1e6 if self.updates else float("nan"),
            "responses/update": self.responses / self.updates if self.updates else 0.0,
            "client cpu us/update": self.client_cpu_seconds / self.updates * 1e6 if self.updates else float("nan"),
            "rejected": self.rejected,
        }


def update_payload(seq: int) -> bytes:
    """`{"state": {"reported": {"temp": .., "seq": seq}, "desired": {"mode": "eco"}}}` as compact JSON (formatted
    directly: the load generator shares the machine with the gateway)."""
    return b'{"state":{"reported":{"temp":%d,"seq":%d},"desired":{"mode":"eco"}}}' % (20 + seq % 7, seq)


def _config(home: str, fsync: str) -> Any:
    from edgeloop.config import Config

    config = Config(data_dir=home)
    config.durability.fsync = fsync
    config.mqtt.host = "127.0.0.1"
    config.mqtt.dev = True
    config.mqtt.dev_port = 0
    config.mqtt.port = 0
    config.mqtt.https_port = 0
    config.mqtt.sys_interval_secs = 0
    return config


@contextlib.contextmanager
def _profiled(path: str | None) -> Any:
    """cProfile the block (the event loop thread) into `path`, when given."""
    if path is None:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(path)


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()


# -- store level -----------------------------------------------------------------------------------


async def _store_scenario(home: str, devices: int, seconds: float, fsync: str, profile: str | None) -> Result:
    from gateway.shadow.service import ShadowService
    from gateway.shadow.store import ShadowStore
    from gateway.shadow.topics import ShadowKey

    config = _config(home, fsync)
    store = await ShadowStore.open(home, fsync)
    service = ShadowService(config, store)
    result = Result()
    deadline = time.perf_counter() + seconds

    async def device(index: int) -> None:
        key = ShadowKey(f"dev{index}")
        seq = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await service.update(key, update_payload(seq))
            result.latencies.append(time.perf_counter() - started)
            seq += 1

    with _profiled(profile):
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(device(i) for i in range(devices)))
        result.seconds = time.perf_counter() - started
        result.cpu_seconds = time.process_time() - cpu
    result.updates = len(result.latencies)
    result.commits = store.commits
    await service.stop()
    return result


def run_store(devices: int, seconds: float, fsync: str, profile: str | None = None) -> Result:
    _install_uvloop()
    with tempfile.TemporaryDirectory(prefix="shadow-bench-") as home:
        return asyncio.run(_store_scenario(home, devices, seconds, fsync, profile))


# -- through MQTT ----------------------------------------------------------------------------------


def _gateway_child(home: str, fsync: str, profile: str | None, conn: Any) -> None:
    """Child process: broker (plain dev listener) + shadow service until told to stop."""
    import logging

    from gateway.mqtt.server import start_mqtt
    from gateway.shadow.service import start_shadows

    logging.basicConfig(level=logging.ERROR)
    config = _config(home, fsync)

    async def main() -> None:
        mqtt = await start_mqtt(config, None)
        shadows = await start_shadows(config, mqtt.broker)
        conn.send(mqtt.ports["dev"])
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # the load starts
        with _profiled(profile):
            cpu, commits = time.process_time(), shadows.store.commits
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # the load ended
            conn.send((shadows.store.commits - commits, time.process_time() - cpu))
        await shadows.stop()
        await mqtt.stop()

    _install_uvloop()
    asyncio.run(main())


class RawDevice(asyncio.Protocol):
    """One device connection: sends pre-encoded packets, reacts to CONNACK, SUBACK and PUBLISH."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.buf = bytearray()
        self.transport: Any = None
        self.acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.response: asyncio.Future[bytes] | None = None
        self.received: Counter[bytes] = Counter()  # responses by their last topic level

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        start, acks = 0, bytearray()
        while len(buf) - start >= 2:
            length, shift, pos, complete = 0, 0, start + 1, False
            while pos < len(buf):  # the remaining-length varint
                byte = buf[pos]
                length |= (byte & 0x7F) << shift
                pos += 1
                if not byte & 0x80:
                    complete = True
                    break
                shift += 7
            end = pos + length
            if not complete or len(buf) < end:
                break
            first = buf[start]
            kind = first >> 4
            if kind in (2, 9) and not self.acked.done():  # CONNACK, SUBACK
                self.acked.set_result(None)
            elif kind == 3:
                self._on_publish(first, bytes(buf[pos:end]), acks)
            start = end
        del buf[:start]
        if acks:  # one write for every PUBACK of this read, as a client library's I/O loop does
            self.transport.write(bytes(acks))

    def _on_publish(self, first: int, packet: bytes, acks: bytearray) -> None:
        topic_len = int.from_bytes(packet[:2], "big")
        topic = packet[2:2 + topic_len]
        if first & 0x06:  # QoS 1: acknowledge
            acks += b"\x40\x02" + packet[2 + topic_len:4 + topic_len]
        self.received[topic.rsplit(b"/", 1)[-1]] += 1
        if topic.endswith((b"/accepted", b"/rejected")) and self.response is not None and not self.response.done():
            self.response.set_result(topic)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.response is not None and not self.response.done():
            self.response.set_exception(ConnectionError(f"{self.name}: connection lost"))

    async def handshake(self, packet: bytes) -> None:
        self.acked = asyncio.get_running_loop().create_future()
        self.transport.write(packet)
        await asyncio.wait_for(self.acked, CONNECT_TIMEOUT)


SDK_RESPONSES = ("accepted", "rejected", "delta", "documents")


async def _mqtt_load(port: int, devices: int, seconds: float, traffic: str, conn: Any) -> Result:
    from gateway.mqtt.codec import encode, encode_publish
    from gateway.mqtt.packets import Connect, Subscribe, Subscription

    qos, responses = (1, SDK_RESPONSES) if traffic == "sdk" else (0, SDK_RESPONSES[:2])
    loop = asyncio.get_running_loop()
    clients: list[RawDevice] = []
    for i in range(devices):
        _, proto = await loop.create_connection(lambda i=i: RawDevice(f"dev{i}"), "127.0.0.1", port)
        await proto.handshake(encode(Connect(f"dev{i}", keepalive=300), 4))
        prefix = f"$aws/things/dev{i}/shadow/update"
        await proto.handshake(encode(Subscribe(1, [Subscription(f"{prefix}/{r}", qos) for r in responses]), 4))
        clients.append(proto)
    result = Result()
    conn.send("start")
    deadline = time.perf_counter() + seconds

    async def drive(index: int, proto: RawDevice) -> None:
        topic = f"$aws/things/dev{index}/shadow/update"
        seq = 0
        while time.perf_counter() < deadline:
            proto.response = loop.create_future()
            started = time.perf_counter()
            packet_id = seq % 65535 + 1 if qos else None
            proto.transport.write(encode_publish(topic, update_payload(seq), qos, False, False, packet_id, 4))
            answer = await proto.response  # a stuck device fails the whole run (the timeout below)
            if answer.endswith(b"/accepted"):
                result.latencies.append(time.perf_counter() - started)
            else:
                result.rejected += 1
            seq += 1

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.wait_for(asyncio.gather(*(drive(i, c) for i, c in enumerate(clients))), seconds + RESPONSE_TIMEOUT)
    result.seconds = time.perf_counter() - started
    result.client_cpu_seconds = time.process_time() - cpu
    result.updates = len(result.latencies)
    for c in clients:
        result.responses += sum(c.received.values())
        c.transport.close()
    return result


def run_mqtt(devices: int, seconds: float, fsync: str, traffic: str = "sdk", profile: str | None = None) -> Result:
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="shadow-bench-") as home:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_gateway_child, args=(home, fsync, profile, child), daemon=True)
        proc.start()
        try:
            if not parent.poll(READY_TIMEOUT):
                raise RuntimeError("the gateway process did not start")
            port = parent.recv()
            _install_uvloop()
            result = asyncio.run(_mqtt_load(port, devices, seconds, traffic, parent))
            parent.send("stop")
            if parent.poll(READY_TIMEOUT):
                result.commits, result.cpu_seconds = parent.recv()
        finally:
            proc.join(15)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
    return result


# -- report ----------------------------------------------------------------------------------------


def print_table(rows: list[dict[str, Any]]) -> None:
    headers = list(rows[0])
    cells = [[f"{r[h]:,.1f}" if isinstance(r[h], float) else str(r[h]) for h in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for c in cells:
        print(" | ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--fsync", choices=("always", "interval", "never"), default="always")
    parser.add_argument("--only", choices=("store", "mqtt"))
    parser.add_argument("--traffic", choices=("sdk", "minimal"), default="sdk")
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats of the serving process "
                        "(FILE.store / FILE.mqtt when both scenarios run)")
    args = parser.parse_args(argv)
    print(f"# shadow benchmark: {args.devices} devices, {args.seconds:g} s per scenario, fsync={args.fsync}, "
          f"mqtt traffic={args.traffic}, python {platform.python_version()}, {os.cpu_count()} cpus")
    print("# no peer shadow service runs here (AWS's own and Greengrass's are not local Python processes)")

    def profile_path(scenario: str) -> str | None:
        return None if args.profile is None else args.profile if args.only else f"{args.profile}.{scenario}"

    rows = []
    if args.only in (None, "store"):
        result = run_store(args.devices, args.seconds, args.fsync, profile_path("store"))
        rows.append(result.row("store", args.devices))
    if args.only in (None, "mqtt"):
        result = run_mqtt(args.devices, args.seconds, args.fsync, args.traffic, profile_path("mqtt"))
        rows.append(result.row(f"mqtt {args.traffic}", args.devices))
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
