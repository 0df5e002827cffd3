"""End-to-end rules benchmark: MQTT QoS 1 publish -> broker -> journal (fsync) -> rule -> Kinesis.

Method: the gateway runs in this process (uvloop when installed) with plain MQTT on 127.0.0.1, one
Kinesis stream and one rule ``SELECT * FROM 'bench/+/data'`` -> kinesis (partition key ``${topic(2)}``).
Raw-socket MQTT 3.1.1 publishers in separate processes keep `--window` QoS 1 messages unacknowledged;
each payload carries its send time (ns). A reader task on the gateway's loop reads every shard through
the Kinesis engine (GetRecords every ~5 ms) and computes latency = time the record became readable -
time it was published. Throughput counts records read from Kinesis over the measured window (after a
warm-up); acks/s counts PUBACKs at the publishers. CPU is this process's utime+stime. The garbage
collector's share is reported too (collections and the longest full collection during the measured window):
a full collection pauses the loop for tens of milliseconds once the heap is large.

    python bench/rules_e2e.py                          # journal fsync "always", 4 publishers x 75 in flight, 10 s
    python bench/rules_e2e.py --fsync never --seconds 5
    python bench/rules_e2e.py --no-rule                # the broker alone (QoS 1 acks), for comparison
    python bench/rules_e2e.py --no-rule --null-hook    # the broker plus a hook whose awaitable is already done
    python bench/rules_e2e.py --dispatcher-only        # no MQTT: on_publish -> journal -> rule -> Kinesis
    python bench/rules_e2e.py --no-gc-tune             # without the GC tuning `edgeloop gateway run` does
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import resource
import socket
import struct
import sys
import tempfile
import time
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.mqttload import HARD_DEADLINE, keep_window
from edgeloop.config import load_config
from gateway.app import Gateway, install_uvloop, tune_gc
from gateway.dispatcher.store import RuleFiles

PAYLOAD_TEMPLATE = b'{"t":0000000000000000000,"v":21.5,"unit":"C","device":"bench-device-000"}'
T_OFFSET = 5  # where the 19 timestamp digits start in the payload
TARGET_PER_S = 20_000  # the rules engine's end-to-end target on this kind of machine
TARGET_P99_MS = 50.0
STREAM = "bench"


def publish_packet(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    body = struct.pack(">H", len(topic)) + topic + struct.pack(">H", packet_id) + payload
    n = len(body)
    length = bytearray()
    while True:
        byte, n = n % 128, n // 128
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes([0x32]) + bytes(length) + body


def publisher(port: int, index: int, window: int, acks: Synchronized, connected: Any, go: Event,
              stop: Event) -> None:
    """QoS 1 publisher: keeps `window` messages in flight, stamps each payload with its send time."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client_id = f"bench-{index}".encode()
    connect = b"\x00\x04MQTT\x04\x02\x01\x2c" + struct.pack(">H", len(client_id)) + client_id
    sock.sendall(bytes([0x10, len(connect)]) + connect)
    if sock.recv(4) != b"\x20\x02\x00\x00":
        raise ConnectionError("CONNACK refused")
    connected.release()
    topic = f"bench/d{index}/data".encode()
    go.wait(60)
    sock.settimeout(1.0)

    def next_packets(sent: int, room: int) -> bytes:
        chunk = []
        for packet_id in range(sent + 1, sent + room + 1):
            payload = bytearray(PAYLOAD_TEMPLATE)
            payload[T_OFFSET:T_OFFSET + 19] = b"%019d" % time.time_ns()
            chunk.append(publish_packet(topic, (packet_id - 1) % 65535 + 1, bytes(payload)))
        return b"".join(chunk)

    try:
        keep_window(sock, window, window // 4, next_packets, acks, stop, time.monotonic() + HARD_DEADLINE)
    except OSError:
        pass
    finally:
        sock.close()


class Reader:
    """Reads every shard through the engine; records latency samples once `measuring` is on."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.count = 0
        self.latencies_ms: list[float] = []
        self.measuring = False

    async def run(self, stop: asyncio.Event) -> None:
        stream = self.engine.stream(STREAM)
        iterators = {}
        for shard in list(stream.shards.values()) if isinstance(stream.shards, dict) else list(stream.shards):
            shard_id = shard.shard_id
            iterators[shard_id] = self.engine.get_shard_iterator(STREAM, shard_id, "LATEST")["ShardIterator"]
        while not stop.is_set():
            for shard_id, it in list(iterators.items()):
                page = await self.engine.get_records(it, 10000)
                iterators[shard_id] = page["NextShardIterator"]
                now = time.time_ns()
                if self.measuring:
                    for record in page["Records"]:
                        data = record["Data"]
                        self.latencies_ms.append((now - int(data[T_OFFSET:T_OFFSET + 19])) / 1e6)
                    self.count += len(page["Records"])
            await asyncio.sleep(0.005)


class GcWatch:
    """Time spent in garbage collections while `measuring` is on: per generation, and the longest pause."""

    def __init__(self) -> None:
        self.measuring = False
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = 0.0
        self._start = 0.0

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self.measuring:
            took = time.perf_counter() - self._start
            generation = info["generation"]
            self.count[generation] += 1
            self.seconds[generation] += took
            self.longest = max(self.longest, took)

    def figures(self, messages: int) -> dict[str, float]:
        return {"gc_us_per_msg": sum(self.seconds) / max(1, messages) * 1e6, "gc_full_collections": self.count[2],
                "gc_longest_pause_ms": self.longest * 1e3}


def _after_start(args: argparse.Namespace) -> None:
    if not args.no_gc_tune:  # as `edgeloop gateway run` (gateway.app.run_gateway) does once started
        tune_gc()


class NullHook:
    """A hook that makes the broker take its "await the hook before PUBACK" path at no cost of its own."""

    def __init__(self) -> None:
        self.done: asyncio.Future[None] | None = None

    def on_publish(self, message: Any) -> asyncio.Future[None] | None:
        if message.qos == 0:
            return None
        if self.done is None:
            self.done = asyncio.get_running_loop().create_future()
            self.done.set_result(None)
        return self.done


async def dispatcher_only(args: argparse.Namespace, home: Path) -> dict[str, float]:
    """Feed the dispatcher's hook directly (batches of 200 messages), wait until Kinesis has them all."""
    from gateway.mqtt.message import Message

    config = load_config(overrides={"data_dir": str(home), "durability.fsync": args.fsync, "mqtt.dev": True,
                                    "mqtt.dev_port": 0, "mqtt.port": 0, "mqtt.https_port": 0, "api.port": 0,
                                    "mqtt.sys_interval_secs": 0.0})
    RuleFiles.for_home(home).create("bench", {"sql": "SELECT * FROM 'bench/+/data'", "actions": [{"kinesis": {
        "roleArn": "arn:aws:iam::000000000000:role/bench", "streamName": STREAM, "partitionKey": "${topic(2)}"}}]})
    gateway = Gateway(config)
    await gateway.start()
    _after_start(args)
    try:
        await gateway.services["kinesis"].engine.create_stream(STREAM, args.shards)
        assert gateway.rules is not None
        dispatcher = gateway.rules.dispatcher
        payload = PAYLOAD_TEMPLATE.replace(b"0000000000000000000", b"%019d" % time.time_ns())
        total = int(args.seconds * 5000)
        with GcWatch() as watch:
            watch.measuring = True
            cpu0, t0 = _cpu(), time.monotonic()
            for _ in range(0, total, 200):
                waits = [dispatcher.on_publish(Message("bench/d1/data", payload, 1, client_id="c"))
                         for _ in range(200)]
                await asyncio.gather(*(w for w in waits if w is not None))
            await dispatcher.drain(600)
            elapsed, cpu = time.monotonic() - t0, _cpu() - cpu0
        return {"acks_per_s": total / elapsed, "records_per_s": total / elapsed, "p50_ms": float("nan"),
                "p99_ms": float("nan"), "max_ms": float("nan"), "cpu_us_per_msg": cpu / total * 1e6,
                "cpu_share": cpu / elapsed, "journal_fsync_batches": float(gateway.sync.batches),
                "retried": float(gateway.rules.metrics()["retried"]), **watch.figures(total)}
    finally:
        await gateway.stop()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def run(args: argparse.Namespace, home: Path, port_box: Any, connected: Any, go: Event, stop_pub: Event,
              acks: list[Synchronized]) -> dict[str, float]:
    config = load_config(overrides={
        "data_dir": str(home), "mqtt.dev": True, "mqtt.dev_port": 0, "mqtt.port": 0, "mqtt.https_port": 0,
        "api.port": 0, "mqtt.sys_interval_secs": 0.0, "durability.fsync": args.fsync,
        "mqtt.max_inflight": max(100, args.window)})
    if not args.no_rule:
        RuleFiles.for_home(home).create("bench", {"sql": "SELECT * FROM 'bench/+/data'", "actions": [{"kinesis": {
            "roleArn": "arn:aws:iam::000000000000:role/bench", "streamName": STREAM, "partitionKey": "${topic(2)}"}}]})
    gateway = Gateway(config)
    await gateway.start()
    _after_start(args)
    if args.null_hook:
        assert gateway.mqtt is not None
        gateway.mqtt.broker.add_hook(NullHook())
    try:
        engine = gateway.services["kinesis"].engine
        await engine.create_stream(STREAM, args.shards)
        assert gateway.mqtt is not None
        port_box.put(gateway.mqtt.ports["dev"])
        reader = Reader(engine)
        stop = asyncio.Event()
        reader_task = asyncio.create_task(reader.run(stop))
        for _ in range(args.publishers):  # every publisher has its CONNACK before the clock starts
            if not await asyncio.to_thread(connected.acquire, True, 120):
                raise SystemExit("a publisher did not connect within 120 s")
        go.set()
        await asyncio.sleep(args.warmup)
        with GcWatch() as watch:
            acks0 = sum(a.value for a in acks)
            cpu0 = _cpu()
            reader.measuring = watch.measuring = True
            t0 = time.monotonic()
            await asyncio.sleep(args.seconds)
            elapsed = time.monotonic() - t0
            reader.measuring = watch.measuring = False
            acks1 = sum(a.value for a in acks)
            cpu1 = _cpu()
        stop_pub.set()
        stop.set()
        await reader_task
        metrics = gateway.rules.metrics() if gateway.rules is not None else {}
        return {
            "acks_per_s": (acks1 - acks0) / elapsed,
            "records_per_s": reader.count / elapsed,
            "p50_ms": percentile(reader.latencies_ms, 50),
            "p99_ms": percentile(reader.latencies_ms, 99),
            "max_ms": max(reader.latencies_ms, default=float("nan")),
            "cpu_us_per_msg": (cpu1 - cpu0) / max(1, acks1 - acks0) * 1e6,
            "cpu_share": (cpu1 - cpu0) / elapsed,
            "journal_fsync_batches": float(gateway.sync.batches),
            "retried": float(metrics.get("retried", 0)),
            **watch.figures(acks1 - acks0),
        }
    finally:
        await gateway.stop()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--window", type=int, default=75,
                        help="unacknowledged QoS 1 messages per publisher (in flight in all: publishers x window)")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--fsync", choices=("always", "interval", "never"), default="always")
    parser.add_argument("--no-rule", action="store_true", help="no rule: the broker's QoS 1 path alone")
    parser.add_argument("--null-hook", action="store_true", help="add a hook returning a finished future")
    parser.add_argument("--dispatcher-only", action="store_true", help="no MQTT: call the dispatcher's hook")
    parser.add_argument("--no-gc-tune", action="store_true",
                        help="skip the GC tuning after start-up that `edgeloop gateway run` does (gateway.app.tune_gc)")
    args = parser.parse_args(argv)

    ctx = mp.get_context("spawn")
    port_box = ctx.Queue()
    go, stop_pub, connected = ctx.Event(), ctx.Event(), ctx.Semaphore(0)
    acks = [ctx.Value("q", 0, lock=False) for _ in range(args.publishers)]
    uv = install_uvloop()
    with tempfile.TemporaryDirectory(prefix="rules-e2e-") as tmp:
        loop_result: dict[str, float] = {}
        if args.dispatcher_only:
            loop_result = asyncio.run(dispatcher_only(args, Path(tmp)))
            args.publishers = 0

        async def orchestrate() -> None:
            task = asyncio.create_task(run(args, Path(tmp), port_box, connected, go, stop_pub, acks))
            port = await asyncio.to_thread(port_box.get, True, 60)
            procs = [ctx.Process(target=publisher, args=(port, i, args.window, acks[i], connected, go, stop_pub),
                                 daemon=True) for i in range(args.publishers)]
            for p in procs:
                p.start()
            loop_result.update(await task)
            for p in procs:
                p.join(10)

        if not args.dispatcher_only:
            asyncio.run(orchestrate())
    r = loop_result
    mode = "broker only (no rule)" if args.no_rule else f"rule -> kinesis, journal fsync={args.fsync}"
    mode += " + null hook" if args.null_hook else ""
    mode = f"dispatcher only (no MQTT), journal fsync={args.fsync}" if args.dispatcher_only else mode
    mode += ", no GC tuning" if args.no_gc_tune else ""
    print(f"rules_e2e: {mode}; {args.publishers} publishers x window {args.window}, {args.shards} shards, "
          f"{args.seconds:.0f} s, uvloop={uv}, cpus={os.cpu_count()}")
    print(f"{'metric':<24}{'value':>12}")
    for key, fmt in (("acks_per_s", "{:,.0f}"), ("records_per_s", "{:,.0f}"), ("p50_ms", "{:.1f}"),
                     ("p99_ms", "{:.1f}"), ("max_ms", "{:.1f}"), ("cpu_us_per_msg", "{:.1f}"),
                     ("cpu_share", "{:.2f}"), ("journal_fsync_batches", "{:,.0f}"), ("retried", "{:,.0f}"),
                     ("gc_us_per_msg", "{:.1f}"), ("gc_full_collections", "{:,.0f}"),
                     ("gc_longest_pause_ms", "{:.1f}")):
        print(f"{key:<24}{fmt.format(r[key]):>12}")
    if not args.dispatcher_only and not args.no_rule:
        met = r["records_per_s"] >= TARGET_PER_S and r["p99_ms"] < TARGET_P99_MS
        print(f"target (>= {TARGET_PER_S:,} msgs/s into Kinesis with p99 < {TARGET_P99_MS:.0f} ms): "
              f"{'met' if met else 'not met'}")
    if not r["acks_per_s"] or not r["records_per_s"]:
        print("rules_e2e: no message went through in the measured window", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
