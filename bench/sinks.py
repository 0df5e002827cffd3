"""Sink benchmarks: the emulated AWS services under unmodified boto3 load, next to peer emulators.

One function per service (`SECTIONS`); each returns rows of figures and is run in the same invocation as
the peers it compares with. The gateway side runs in a subprocess (`gateway.awsapi.devserver`) with
fsync "always" (every acknowledged write is on disk); the load comes from boto3 clients in separate
processes (threads inside each), so client CPU is not charged to the server. Server CPU per record is the
server process's utime+stime (``/proc/<pid>/stat``) divided by the records handled.

Peers are optional and never part of the project: ``--install-peers`` puts kinesalite (npm) and
moto[server] (pip, own venv) into ``--peers-dir``; when they are missing their rows say "skipped".

    python bench/sinks.py                                   # every section, 5 s per test
    python bench/sinks.py --sections kinesis --seconds 10 --install-peers
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT = 60.0
DEFAULT_PEERS_DIR = Path(tempfile.gettempdir()) / "edgeloop-bench-peers"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Row:
    section: str
    test: str
    system: str
    value: float | None  # None: skipped
    unit: str
    note: str = ""


# ====================================================================================== shared helpers


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    return sum(cpu_split(pid))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


@dataclass
class Server:
    """A server process under test: where it listens and its pid (for CPU accounting)."""

    name: str
    endpoint: str
    pid: int


@contextlib.contextmanager
def edgeloop_server(services: str, launcher: Sequence[str] = ("-m", "gateway.awsapi.devserver")) -> Iterator[Server]:
    """The gateway's AWS-compatible API in a subprocess, fsync always, on a fresh data directory.
    `launcher` is what follows the Python interpreter on the command line (the dev server by default)."""
    home = Path(tempfile.mkdtemp(prefix="edgeloop-bench-"))
    proc = subprocess.Popen([sys.executable, *launcher, "--home", str(home), "--port", "0",
                             "--services", services, "--fsync", "always"], stdout=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parent.parent)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("listening "):
            raise RuntimeError(f"dev server did not start: {line!r}")
        yield Server("edgeloop", f"http://127.0.0.1:{line.split()[1]}", proc.pid)
    finally:
        stop_process(proc)
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def peer_server(name: str, command: list[str], port: int) -> Iterator[Server]:
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        yield Server(name, f"http://127.0.0.1:{port}", proc.pid)
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def boto3_client(service: str, endpoint: str, pool: int = 10) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test",
                        config=Config(retries={"max_attempts": 1}, max_pool_connections=pool, read_timeout=60))


Step = Callable[[], int]
# Makes a client for (service, endpoint): boto3 by default; bench/awsapi.py passes a cheap signing client with the
# same method names for the operations the steps call.
ClientFactory = Callable[[str, str], Any]


def run_load(make_step: Callable[..., Step], args: tuple[Any, ...], processes: int, threads: int,
             seconds: float) -> tuple[int, float]:
    """Call `make_step(*args)` once per thread in `processes` processes × `threads` threads, then, once every
    process is ready, run each step in a loop for `seconds`. Returns (units done, elapsed seconds)."""
    ctx = mp.get_context("spawn")
    ready = ctx.Barrier(processes + 1)
    results: Any = ctx.Queue()
    procs = [ctx.Process(target=_load_process, args=(make_step, args, threads, seconds, ready, results))
             for _ in range(processes)]
    for proc in procs:
        proc.start()
    try:
        ready.wait(READY_TIMEOUT)
        outcomes = [results.get(timeout=seconds + READY_TIMEOUT) for _ in procs]
    finally:
        for proc in procs:
            proc.join(READY_TIMEOUT)
            if proc.is_alive():
                proc.kill()
    return sum(units for units, _ in outcomes), max(elapsed for _, elapsed in outcomes)


def _load_process(make_step: Callable[..., Step], args: tuple[Any, ...], threads: int, seconds: float,
                  ready: Any, results: Any) -> None:
    steps = [make_step(*args) for _ in range(threads)]  # clients built and warmed up before the clock starts
    done = [0] * threads
    ready.wait(READY_TIMEOUT)
    started = time.time()
    deadline = started + seconds

    def run(i: int) -> None:
        while time.time() < deadline:
            done[i] += steps[i]()

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    results.put((sum(done), time.time() - started))


def measure(server: Server, make_step: Callable[..., Step], args: tuple[Any, ...], processes: int, threads: int,
            seconds: float) -> tuple[float, float]:
    """(units per second, server CPU µs per unit) of one load run."""
    cpu_before = cpu_seconds(server.pid)
    units, elapsed = run_load(make_step, args, processes, threads, seconds)
    cpu = cpu_seconds(server.pid) - cpu_before
    return units / elapsed, (cpu / units * 1e6) if units else float("nan")


# ============================================================================================ Kinesis

KINESIS_SHARDS = 4
KINESIS_BATCH = 500
KINESIS_RECORD = b"x" * 100


def _wait_active(client: Any, stream: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if client.describe_stream(StreamName=stream)["StreamDescription"]["StreamStatus"] == "ACTIVE":
                return
        time.sleep(0.1)
    raise RuntimeError(f"stream {stream} never became ACTIVE")


def kinesis_put_step(endpoint: str, stream: str) -> Step:
    """One put_records of 500 × 100 B per step; units = records acknowledged."""
    client = boto3_client("kinesis", endpoint)
    records = [{"Data": KINESIS_RECORD, "PartitionKey": f"pk-{os.getpid()}-{i}"} for i in range(KINESIS_BATCH)]
    client.describe_stream_summary(StreamName=stream)  # connection and credentials warmed up

    def step() -> int:
        return KINESIS_BATCH - int(client.put_records(StreamName=stream, Records=records).get("FailedRecordCount", 0))

    return step


def kinesis_get_step(endpoint: str, stream: str) -> Step:
    """One get_records (Limit 10000) per step on one shard, from TRIM_HORIZON, starting over when caught up."""
    client = boto3_client("kinesis", endpoint)
    shards = [s["ShardId"] for s in client.list_shards(StreamName=stream)["Shards"]]
    shard = shards[int.from_bytes(os.urandom(2), "big") % len(shards)]

    def fresh() -> str:
        return str(client.get_shard_iterator(StreamName=stream, ShardId=shard,
                                             ShardIteratorType="TRIM_HORIZON")["ShardIterator"])

    iterator = [fresh()]

    def step() -> int:
        page = client.get_records(ShardIterator=iterator[0], Limit=10000)
        iterator[0] = page.get("NextShardIterator") or fresh()
        if not page["Records"]:
            iterator[0] = fresh()
        return len(page["Records"])

    return step


@contextlib.asynccontextmanager
async def engine_in_process(engine_class: Any) -> AsyncIterator[Any]:
    """A started sink engine over a fresh data folder, fsync "always" (what the gateway acknowledges with)."""
    from edgeloop.config import load_config
    from gateway.storage.durable import GroupSync

    home = Path(tempfile.mkdtemp(prefix="edgeloop-bench-"))
    sync = GroupSync("always")
    engine = engine_class(home, load_config(overrides={"data_dir": str(home), "durability.fsync": "always"}), sync)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()
        await sync.close()
        shutil.rmtree(home, ignore_errors=True)


async def rate_of(worker: Callable[[int, float], Awaitable[int]], callers: int, seconds: float) -> float:
    """Run `callers` copies of ``worker(index, deadline)`` (each returns the units it did) for `seconds`: units/s."""
    start = time.monotonic()
    done = await asyncio.gather(*(worker(i, start + seconds) for i in range(callers)))
    return sum(done) / (time.monotonic() - start)


def kinesis_in_process(seconds: float, producers: int = 64) -> float:
    """Records/s through the engine's in-process API (no HTTP), fsync always, `producers` concurrent callers."""
    from gateway.sinks.kinesis.engine import KinesisEngine

    async def run() -> float:
        async with engine_in_process(KinesisEngine) as engine:
            await engine.create_stream("bench", KINESIS_SHARDS)
            records = [{"Data": KINESIS_RECORD, "PartitionKey": f"pk-{i}"} for i in range(KINESIS_BATCH)]

            async def producer(_: int, end: float) -> int:
                done = 0
                while time.monotonic() < end:
                    await engine.put_records("bench", records)
                    done += KINESIS_BATCH
                return done

            return await rate_of(producer, producers, seconds)

    return asyncio.run(run())


def kinesis_peers(peers_dir: Path) -> list[tuple[str, list[str] | None, int]]:
    """(name, command or None when not installed, port) of each Kinesis peer."""
    out: list[tuple[str, list[str] | None, int]] = []
    node = shutil.which("node")
    kinesalite = peers_dir / "kinesalite" / "node_modules" / "kinesalite" / "cli.js"
    port = free_port()
    out.append(("kinesalite", [node, str(kinesalite), "--port", str(port), "--createStreamMs", "0",
                               "--shardLimit", "100"] if node and kinesalite.exists() else None, port))
    moto = peers_dir / "moto-venv" / "bin" / "moto_server"
    port = free_port()
    out.append(("moto", [str(moto), "-H", "127.0.0.1", "-p", str(port)] if moto.exists() else None, port))
    return out


def install_peers(peers_dir: Path) -> None:
    """kinesalite from npm and moto[server] from pip into `peers_dir` (outside the project)."""
    peers_dir.mkdir(parents=True, exist_ok=True)
    if shutil.which("npm") and not (peers_dir / "kinesalite" / "node_modules" / "kinesalite").exists():
        (peers_dir / "kinesalite").mkdir(exist_ok=True)
        progress("installing kinesalite (npm)")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "kinesalite@3.3.3"], cwd=peers_dir / "kinesalite",
                       check=False, stdout=subprocess.DEVNULL)
    if not (peers_dir / "moto-venv" / "bin" / "moto_server").exists():
        progress("installing moto[server] (pip, own venv)")
        subprocess.run([sys.executable, "-m", "venv", str(peers_dir / "moto-venv")], check=False)
        subprocess.run([str(peers_dir / "moto-venv" / "bin" / "pip"), "install", "-q", "moto[server]"], check=False)


def kinesis_section(args: argparse.Namespace) -> list[Row]:
    rows = [Row("kinesis", "in-process put_records 500×100 B", "edgeloop", kinesis_in_process(args.seconds),
                "records/s", "64 concurrent callers, fsync always")]
    progress(f"kinesis in-process: {rows[0].value:,.0f} records/s")
    systems: list[tuple[str, Callable[[], contextlib.AbstractContextManager[Server]] | None]] = [
        ("edgeloop", lambda: edgeloop_server("kinesis"))]
    for name, command, port in kinesis_peers(args.peers_dir):
        systems.append((name, (lambda c=command, n=name, p=port: peer_server(n, c, p)) if command else None))
    for name, start in systems:
        if start is None:
            for test in ("boto3 put_records 500×100 B", "boto3 get_records"):
                rows.append(Row("kinesis", test, name, None, "records/s", "skipped: not installed"))
            continue
        with start() as server:
            client = boto3_client("kinesis", server.endpoint)
            client.create_stream(StreamName="bench", ShardCount=KINESIS_SHARDS)
            _wait_active(client, "bench")
            put_rate, put_cpu = measure(server, kinesis_put_step, (server.endpoint, "bench"), args.processes,
                                        args.threads, args.seconds)
            progress(f"kinesis {name} put: {put_rate:,.0f} records/s")
            get_rate, get_cpu = measure(server, kinesis_get_step, (server.endpoint, "bench"), args.processes,
                                        1, args.seconds)
            progress(f"kinesis {name} get: {get_rate:,.0f} records/s")
        clients = f"{args.processes} processes × {args.threads} threads"
        rows.append(Row("kinesis", "boto3 put_records 500×100 B", name, put_rate, "records/s",
                        f"{clients}; server CPU {put_cpu:.1f} µs/record"))
        rows.append(Row("kinesis", "boto3 get_records", name, get_rate, "records/s",
                        f"{args.processes} readers; server CPU {get_cpu:.1f} µs/record"))
    return rows


# ============================================================================================ S3 + Firehose

S3_OBJECT = b"x" * 1024
S3_SEED_KEYS = 100
FIREHOSE_BATCH = 500
FIREHOSE_RECORD = b"y" * 99 + b"\n"


def s3_put_step(endpoint: str, bucket: str, make_client: ClientFactory = boto3_client) -> Step:
    """One put_object of 1 KiB (a unique key) per step; units = objects acknowledged."""
    client = make_client("s3", endpoint)
    client.head_bucket(Bucket=bucket)
    prefix = f"{os.getpid()}-{os.urandom(4).hex()}"
    done = [0]

    def step() -> int:
        client.put_object(Bucket=bucket, Key=f"{prefix}/{done[0]}", Body=S3_OBJECT)
        done[0] += 1
        return 1

    return step


def s3_get_step(endpoint: str, bucket: str) -> Step:
    """One get_object of a seeded 1 KiB object per step; units = objects read."""
    client = boto3_client("s3", endpoint)
    client.head_bucket(Bucket=bucket)
    done = [0]

    def step() -> int:
        client.get_object(Bucket=bucket, Key=f"seed/{done[0] % S3_SEED_KEYS}")["Body"].read()
        done[0] += 1
        return 1

    return step


def firehose_put_step(endpoint: str, stream: str) -> Step:
    """One put_record_batch of 500 × 100 B per step; units = records acknowledged."""
    client = boto3_client("firehose", endpoint)
    records = [{"Data": FIREHOSE_RECORD}] * FIREHOSE_BATCH
    client.describe_delivery_stream(DeliveryStreamName=stream)

    def step() -> int:
        result = client.put_record_batch(DeliveryStreamName=stream, Records=records)
        return FIREHOSE_BATCH - int(result["FailedPutCount"])

    return step


def s3_in_process(seconds: float, callers: int = 64) -> tuple[float, float]:
    """(puts/s, gets/s) of 1 KiB objects through the S3 engine's in-process API, fsync always."""
    from gateway.sinks.s3.engine import S3Engine

    async def run() -> tuple[float, float]:
        async with engine_in_process(S3Engine) as engine:
            await engine.create_bucket("bench")
            for j in range(S3_SEED_KEYS):
                await engine.put_object("bench", f"seed/{j}", S3_OBJECT)

            async def putter(i: int, end: float) -> int:
                done = 0
                while time.monotonic() < end:
                    await engine.put_object("bench", f"{i}/{done}", S3_OBJECT)
                    done += 1
                return done

            async def getter(i: int, end: float) -> int:
                done = 0
                while time.monotonic() < end:
                    await engine.read_object("bench", f"seed/{(i + done) % S3_SEED_KEYS}")
                    done += 1
                return done

            return await rate_of(putter, callers, seconds), await rate_of(getter, callers, seconds)

    return asyncio.run(run())


def moto_peer(peers_dir: Path) -> tuple[list[str] | None, int]:
    moto = peers_dir / "moto-venv" / "bin" / "moto_server"
    port = free_port()
    return ([str(moto), "-H", "127.0.0.1", "-p", str(port)] if moto.exists() else None), port


def s3_section(args: argparse.Namespace) -> list[Row]:
    put_rate, get_rate = s3_in_process(args.seconds)
    rows = [Row("s3", "in-process put 1 KiB", "edgeloop", put_rate, "objects/s", "64 concurrent callers, fsync always"),
            Row("s3", "in-process get 1 KiB", "edgeloop", get_rate, "objects/s", "64 concurrent callers")]
    progress(f"s3 in-process: put {put_rate:,.0f}/s get {get_rate:,.0f}/s")
    command, port = moto_peer(args.peers_dir)
    systems: list[tuple[str, Callable[[], contextlib.AbstractContextManager[Server]] | None]] = [
        ("edgeloop", lambda: edgeloop_server("s3,firehose")),
        ("moto", (lambda: peer_server("moto", command, port)) if command else None)]
    clients = f"{args.processes} processes × {args.threads} threads"
    for name, start in systems:
        if start is None:
            for test, unit in (("boto3 put_object 1 KiB", "objects/s"), ("boto3 get_object 1 KiB", "objects/s"),
                               ("boto3 firehose batch 500×100 B", "records/s")):
                rows.append(Row("s3", test, name, None, unit, "skipped: not installed"))
            continue
        with start() as server:
            s3 = boto3_client("s3", server.endpoint)
            s3.create_bucket(Bucket="bench")
            for i in range(S3_SEED_KEYS):
                s3.put_object(Bucket="bench", Key=f"seed/{i}", Body=S3_OBJECT)
            put, put_cpu = measure(server, s3_put_step, (server.endpoint, "bench"), args.processes, args.threads,
                                   args.seconds)
            progress(f"s3 {name} put: {put:,.0f} objects/s")
            get, get_cpu = measure(server, s3_get_step, (server.endpoint, "bench"), args.processes, args.threads,
                                   args.seconds)
            progress(f"s3 {name} get: {get:,.0f} objects/s")
            boto3_client("firehose", server.endpoint).create_delivery_stream(
                DeliveryStreamName="bench", DeliveryStreamType="DirectPut",
                ExtendedS3DestinationConfiguration={"RoleARN": "arn:aws:iam::000000000000:role/b",
                                                    "BucketARN": "arn:aws:s3:::bench",
                                                    "BufferingHints": {"SizeInMBs": 5, "IntervalInSeconds": 60}})
            fh, fh_cpu = measure(server, firehose_put_step, (server.endpoint, "bench"), args.processes, 1,
                                 args.seconds)
            progress(f"firehose {name} put_record_batch: {fh:,.0f} records/s")
        rows += [Row("s3", "boto3 put_object 1 KiB", name, put, "objects/s",
                     f"{clients}; server CPU {put_cpu:.0f} µs/object"),
                 Row("s3", "boto3 get_object 1 KiB", name, get, "objects/s",
                     f"{clients}; server CPU {get_cpu:.0f} µs/object"),
                 Row("s3", "boto3 firehose batch 500×100 B", name, fh, "records/s",
                     f"{args.processes} clients; server CPU {fh_cpu:.1f} µs/record")]
    return rows


# ============================================================================================ SQS

SQS_BODY = "z" * 256
SQS_BATCH = 10


def _sqs_queue_url(client: Any, queue: str) -> str:
    return str(client.get_queue_url(QueueName=queue)["QueueUrl"])


def sqs_send_step(endpoint: str, queue: str, make_client: ClientFactory = boto3_client) -> Step:
    """One send_message_batch of 10 × 256 B per step; units = messages acknowledged."""
    client = make_client("sqs", endpoint)
    url = _sqs_queue_url(client, queue)
    entries = [{"Id": str(i), "MessageBody": SQS_BODY} for i in range(SQS_BATCH)]

    def step() -> int:
        return len(client.send_message_batch(QueueUrl=url, Entries=entries)["Successful"])

    return step


def sqs_receive_delete_step(endpoint: str, queue: str, make_client: ClientFactory = boto3_client) -> Step:
    """One receive_message (up to 10, long poll 1 s) + delete_message_batch per step; units = messages deleted."""
    client = make_client("sqs", endpoint)
    url = _sqs_queue_url(client, queue)

    def step() -> int:
        messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=SQS_BATCH, WaitTimeSeconds=1,
                                          VisibilityTimeout=60).get("Messages", [])
        if not messages:
            return 0
        result = client.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        return len(result["Successful"])

    return step


def sqs_cycle_step(endpoint: str, queue: str, make_client: ClientFactory = boto3_client) -> Step:
    """Send a batch of 10, receive up to 10, delete them: units = messages that went all the way through."""
    send = sqs_send_step(endpoint, queue, make_client)
    receive_delete = sqs_receive_delete_step(endpoint, queue, make_client)

    def step() -> int:
        send()
        return receive_delete()

    return step


def sqs_in_process(seconds: float, callers: int = 64) -> tuple[float, float]:
    """(send_message/s, receive+delete_message/s) through the SQS engine's in-process API, fsync always."""
    from gateway.sinks.sqs.engine import SqsEngine

    async def run() -> tuple[float, float]:
        async with engine_in_process(SqsEngine) as engine:
            await engine.create_queue("bench")

            async def sender(_: int, end: float) -> int:
                done = 0
                while time.monotonic() < end:
                    await engine.send_message("bench", SQS_BODY)
                    done += 1
                return done

            async def consumer(_: int, end: float) -> int:
                done = 0
                while time.monotonic() < end:
                    for m in await engine.receive_message("bench", SQS_BATCH, 0, 60):
                        await engine.delete_message("bench", m["ReceiptHandle"])
                        done += 1
                return done

            return await rate_of(sender, callers, seconds), await rate_of(consumer, callers, seconds)

    return asyncio.run(run())


def sqs_section(args: argparse.Namespace) -> list[Row]:
    send_rate, consume_rate = sqs_in_process(args.seconds)
    rows = [Row("sqs", "in-process send_message 256 B", "edgeloop", send_rate, "msgs/s",
                "64 concurrent callers, fsync always"),
            Row("sqs", "in-process receive+delete", "edgeloop", consume_rate, "msgs/s",
                "64 concurrent callers, receive 10 then delete each")]
    progress(f"sqs in-process: send {send_rate:,.0f}/s receive+delete {consume_rate:,.0f}/s")
    command, port = moto_peer(args.peers_dir)
    systems: list[tuple[str, Callable[[], contextlib.AbstractContextManager[Server]] | None]] = [
        ("edgeloop", lambda: edgeloop_server("sqs")),
        ("moto", (lambda: peer_server("moto", command, port)) if command else None)]
    clients = f"{args.processes} processes × {args.threads} threads"
    tests = (("boto3 send_message_batch 10×256 B", sqs_send_step),
             ("boto3 receive+delete batch", sqs_receive_delete_step),
             ("boto3 send+receive+delete", sqs_cycle_step))
    for name, start in systems:
        if start is None:
            rows += [Row("sqs", test, name, None, "msgs/s", "skipped: not installed") for test, _ in tests]
            continue
        with start() as server:
            boto3_client("sqs", server.endpoint).create_queue(QueueName="bench")
            for test, make_step in tests:  # the receive test drains what the send test queued
                rate, cpu = measure(server, make_step, (server.endpoint, "bench"), args.processes, args.threads,
                                    args.seconds)
                progress(f"sqs {name} {test}: {rate:,.0f} msgs/s")
                rows.append(Row("sqs", test, name, rate, "msgs/s", f"{clients}; server CPU {cpu:.0f} µs/msg"))
    return rows


# ============================================================================================ driver

# One function per service; each section returns its rows. Add new services here.
SECTIONS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "kinesis": kinesis_section,
    "s3": s3_section,
    "sqs": sqs_section,
}


def print_table(rows: list[Row]) -> None:
    print(f"{'section':<9} {'test':<30} {'system':<11} {'value':>12} {'unit':<10} {'vs edgeloop':>11}  note")
    for row in rows:
        base = next((r.value for r in rows if r.section == row.section and r.test == row.test
                     and r.system == "edgeloop"), None)
        value = f"{row.value:,.0f}" if row.value is not None else "—"
        ratio = f"{base / row.value:.1f}×" if base and row.value and row.system != "edgeloop" else ""
        print(f"{row.section:<9} {row.test:<30} {row.system:<11} {value:>12} {row.unit:<10} {ratio:>11}  {row.note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per test")
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--threads", type=int, default=2, help="boto3 threads per client process")
    parser.add_argument("--peers-dir", type=Path, default=DEFAULT_PEERS_DIR, help="where peer emulators live")
    parser.add_argument("--install-peers", action="store_true", help="install kinesalite and moto into --peers-dir")
    args = parser.parse_args(argv)
    if args.install_peers:
        install_peers(args.peers_dir)
    rows: list[Row] = []
    for name in args.sections.split(","):
        if name not in SECTIONS:
            parser.error(f"unknown section {name!r} (known: {', '.join(SECTIONS)})")
        rows += SECTIONS[name](args)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
