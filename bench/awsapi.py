"""Server CPU per request of the AWS-compatible API: S3 put/get 1 KiB, SQS send / receive / delete.

The request path every service shares (aiohttp, SigV4 verification, routing, error shapes) plus the S3 and SQS
handlers, measured from outside: the API runs in a subprocess (``gateway.awsapi.devserver``, fsync "always") and
unmodified boto3 clients in other processes load it. Server CPU per request is the server process's utime+stime
(``/proc/<pid>/stat``) divided by the requests it answered, so client CPU is not charged to the server.

The client's own CPU per request (one boto3 client in one thread, after the load test) is printed next to it:
when clients and server share the machine's cores, the sum of the two bounds the rate.

A second table takes boto3 out of the way: requests signed by boto3 once, up front, are replayed over raw
keep-alive sockets (one in flight per connection), so the client costs almost nothing and the rate shows what
the server itself can carry.

    python bench/awsapi.py                          # every test, 5 s each
    python bench/awsapi.py --tests s3-put --replays "" --profile api.prof   # cProfile the server too
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pstats
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# bench/sinks.py holds the shared load machinery (client processes, CPU accounting); this file sits next to it.
from sinks import (
    CLK_TCK,
    S3_OBJECT,
    S3_SEED_KEYS,
    Server,
    Step,
    boto3_client,
    edgeloop_server,
    progress,
    run_load,
    s3_get_step,
    s3_put_step,
)

SQS_BODY = "z" * 256
BUCKET = "bench"
QUEUE = "bench"
# The dev server under cProfile timed by the event-loop thread's CPU clock: a loaded machine's preemptions and
# waits (fsync, polls) do not show up as cost. Arguments: the stats file, then the dev server's own.
PROFILED_SERVER = """
import cProfile, sys, time
from gateway.awsapi import devserver
profiler = cProfile.Profile(time.thread_time)
profiler.enable()
try:
    devserver.main(sys.argv[2:])
finally:
    profiler.disable()
    profiler.dump_stats(sys.argv[1])
"""


s3_put = partial(s3_put_step, bucket=BUCKET)  # one put_object of 1 KiB under a unique key: 1 request
s3_get = partial(s3_get_step, bucket=BUCKET)  # one get_object of a seeded 1 KiB object: 1 request


def _queue_url(client: Any) -> str:
    return str(client.get_queue_url(QueueName=QUEUE)["QueueUrl"])


def sqs_send(endpoint: str) -> Step:
    """One send_message of 256 B: 1 request."""
    client = boto3_client("sqs", endpoint)
    url = _queue_url(client)

    def step() -> int:
        client.send_message(QueueUrl=url, MessageBody=SQS_BODY)
        return 1

    return step


def sqs_receive_delete(endpoint: str) -> Step:
    """receive_message (1 message, no wait) then delete_message of what came back: 2 requests (1 when empty)."""
    client = boto3_client("sqs", endpoint)
    url = _queue_url(client)

    def step() -> int:
        messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0,
                                          VisibilityTimeout=60).get("Messages", [])
        for message in messages:
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return 1 + len(messages)

    return step


class _Captured(Exception):
    """Raised from botocore's before-send hook: the request was recorded instead of sent."""


def signed_requests(client: Any, operation: str, calls: list[dict[str, Any]]) -> list[bytes]:
    """The raw HTTP/1.1 bytes boto3 would send for each call of `operation` (signed, with checksums)."""
    recorded: list[bytes] = []

    def record(request: Any, **_: Any) -> None:
        url = urlsplit(request.url)
        body = request.body or b""
        body = body.read() if hasattr(body, "read") else body
        body = body.encode() if isinstance(body, str) else bytes(body)
        headers = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in request.headers.items()}
        names = {k.lower() for k in headers}
        lines = [f"{request.method} {url.path}{'?' + url.query if url.query else ''} HTTP/1.1",
                 *([] if "host" in names else [f"Host: {url.netloc}"]),
                 *([] if "content-length" in names else [f"Content-Length: {len(body)}"]),
                 *(f"{k}: {v}" for k, v in headers.items())]
        recorded.append(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        raise _Captured

    client.meta.events.register("before-send", record)
    try:
        for kwargs in calls:
            with contextlib.suppress(_Captured):
                getattr(client, operation)(**kwargs)
    finally:
        client.meta.events.unregister("before-send", record)
    return recorded


def _read_response(sock: socket.socket, pending: bytes) -> tuple[int, bytes]:
    """Read one final response (skipping ``100 Continue``); (status, bytes already read past it)."""
    while True:
        while b"\r\n\r\n" not in pending:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            pending += chunk
        head, _, pending = pending.partition(b"\r\n\r\n")
        status = int(head[9:12])
        if status != 100:
            break
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                   if line.lower().startswith(b"content-length:")), 0)
    while len(pending) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        pending += chunk
    return status, pending[length:]


def replay(port: int, requests: list[bytes], connections: int, seconds: float) -> tuple[int, float]:
    """Send `requests` round-robin over keep-alive connections, one in flight on each, for `seconds`.
    Returns (responses, elapsed seconds); an error status from the server stops the benchmark."""
    deadline = time.monotonic() + seconds
    counts = [0] * connections
    failures: list[str] = []

    def connection(i: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pending, turn = b"", i
            while time.monotonic() < deadline:
                sock.sendall(requests[turn % len(requests)])
                turn += connections
                status, pending = _read_response(sock, pending)
                if status >= 300:
                    failures.append(f"HTTP {status}")
                    return
                counts[i] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=connection, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"a replayed request was refused: {failures[0]}")
    return sum(counts), time.monotonic() - started


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


@dataclass
class Test:
    name: str
    services: str
    make_step: Callable[[str], Step]
    what: str


def _replay_s3_put(endpoint: str) -> list[bytes]:
    return signed_requests(boto3_client("s3", endpoint), "put_object",
                           [{"Bucket": BUCKET, "Key": f"replay/{i}", "Body": S3_OBJECT} for i in range(2000)])


def _replay_s3_get(endpoint: str) -> list[bytes]:
    return signed_requests(boto3_client("s3", endpoint), "get_object",
                           [{"Bucket": BUCKET, "Key": f"seed/{i}"} for i in range(S3_SEED_KEYS)])


def _replay_sqs_send(endpoint: str) -> list[bytes]:
    client = boto3_client("sqs", endpoint)
    return signed_requests(client, "send_message", [{"QueueUrl": _queue_url(client), "MessageBody": SQS_BODY}] * 100)


def _replay_sqs_receive(endpoint: str) -> list[bytes]:
    client = boto3_client("sqs", endpoint)
    call = {"QueueUrl": _queue_url(client), "MaxNumberOfMessages": 1, "WaitTimeSeconds": 0, "VisibilityTimeout": 60}
    return signed_requests(client, "receive_message", [call] * 100)


@dataclass
class Replay:
    name: str
    services: str
    capture: Callable[[str], list[bytes]]
    what: str


REPLAYS = {r.name: r for r in (
    Replay("s3-put", "s3", _replay_s3_put, "put_object 1 KiB"),
    Replay("s3-get", "s3", _replay_s3_get, "get_object 1 KiB"),
    Replay("sqs-send", "sqs", _replay_sqs_send, "send_message 256 B"),
    Replay("sqs-receive", "sqs", _replay_sqs_receive, "receive_message 1 (of what sqs-send queued)"),
)}

TESTS = {t.name: t for t in (
    Test("s3-put", "s3", s3_put, "put_object 1 KiB"),
    Test("s3-get", "s3", s3_get, "get_object 1 KiB"),
    Test("sqs-send", "sqs", sqs_send, "send_message 256 B"),
    Test("sqs-receive-delete", "sqs", sqs_receive_delete, "receive_message 1 + delete_message"),
)}


def api_server(services: str, profile: Path | None) -> contextlib.AbstractContextManager[Server]:
    """The dev server in a subprocess (fsync always, fresh data directory), optionally under cProfile."""
    if profile is None:
        return edgeloop_server(services)
    return edgeloop_server(services, ("-c", PROFILED_SERVER, str(profile)))


def prepare(services: str, endpoint: str) -> None:
    if "s3" in services:
        s3 = boto3_client("s3", endpoint)
        s3.create_bucket(Bucket=BUCKET)
        for i in range(S3_SEED_KEYS):
            s3.put_object(Bucket=BUCKET, Key=f"seed/{i}", Body=S3_OBJECT)
    if "sqs" in services:
        boto3_client("sqs", endpoint).create_queue(QueueName=QUEUE)


@dataclass
class Result:
    name: str
    what: str
    rate: float  # requests per second
    user_us: float  # server user CPU per request
    system_us: float  # server kernel CPU per request
    client_us: float | None = None  # CPU of one boto3 client per request (boto3 tests only)

    @property
    def cpu_us(self) -> float:
        return self.user_us + self.system_us


def client_cpu_us(step: Step, calls: int) -> float:
    """CPU of this process per request while one boto3 client makes `calls` steps (after a short warm-up)."""
    for _ in range(10):
        step()
    started = time.process_time()
    requests = sum(step() for _ in range(calls))
    return (time.process_time() - started) / max(requests, 1) * 1e6


def measured(server: Server, name: str, what: str, load: Callable[[], tuple[int, float]]) -> Result:
    """Run `load` (returning requests answered and seconds taken) and charge the server's CPU to its requests."""
    user, system = cpu_split(server.pid)
    requests, elapsed = load()
    user_after, system_after = cpu_split(server.pid)
    per = 1e6 / max(requests, 1)
    result = Result(name, what, requests / elapsed, (user_after - user) * per, (system_after - system) * per)
    progress(f"{name}: {result.rate:,.0f} requests/s, server CPU {result.cpu_us:.0f} µs/request")
    return result


def run(tests: list[Test], replays: list[Replay], args: argparse.Namespace) -> tuple[list[Result], list[Result]]:
    """(boto3 results, replay results); everything that needs the same services shares one server."""
    loaded: list[Result] = []
    replayed: list[Result] = []
    for services in dict.fromkeys([t.services for t in tests] + [r.services for r in replays]):
        profile = args.profile.with_suffix(f".{services}.prof") if args.profile else None
        with api_server(services, profile) as server:
            prepare(services, server.endpoint)
            port = int(server.endpoint.rsplit(":", 1)[1])
            for test in (t for t in tests if t.services == services):
                load = partial(run_load, test.make_step, (server.endpoint,), args.processes, args.threads,
                               args.seconds)
                result = measured(server, test.name, test.what, load)
                result.client_us = client_cpu_us(test.make_step(server.endpoint), args.client_calls)
                loaded.append(result)
            for r in (r for r in replays if r.services == services):
                load = partial(replay, port, r.capture(server.endpoint), args.connections, args.seconds)
                replayed.append(measured(server, r.name, r.what, load))
        if profile is not None:
            pstats.Stats(str(profile), stream=sys.stderr).sort_stats("tottime").print_stats(args.profile_rows)
    return loaded, replayed


def _names(value: str, known: dict[str, Any], parser: argparse.ArgumentParser) -> list[str]:
    names = [n for n in value.split(",") if n]
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", default=",".join(TESTS), help=f"boto3 tests: {', '.join(TESTS)} ('' for none)")
    parser.add_argument("--replays", default=",".join(REPLAYS),
                        help=f"replay tests: {', '.join(REPLAYS)} ('' for none)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per test")
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--threads", type=int, default=4, help="boto3 threads per client process")
    parser.add_argument("--connections", type=int, default=8, help="raw connections for the replay tests")
    parser.add_argument("--client-calls", type=int, default=300, help="calls timed for the client CPU column")
    parser.add_argument("--profile", type=Path, help="cProfile the server; stats go to PROFILE.<services>.prof")
    parser.add_argument("--profile-rows", type=int, default=40, help="functions to print from each profile")
    args = parser.parse_args(argv)
    loaded, replayed = run([TESTS[n] for n in _names(args.tests, TESTS, parser)],
                           [REPLAYS[n] for n in _names(args.replays, REPLAYS, parser)], args)
    header = f"{'test':<20} {'what':<44} {'requests/s':>11} {'server CPU µs/request':>22} {'(user + sys)':>14}"
    if loaded:
        print(f"boto3 clients: {args.processes} processes × {args.threads} threads")
        print(f"{header} {'client CPU µs/request':>22}")
        for r in loaded:
            print(f"{r.name:<20} {r.what:<44} {r.rate:>11,.0f} {r.cpu_us:>22.0f} "
                  f"{f'{r.user_us:.0f} + {r.system_us:.0f}':>14} {r.client_us or 0:>22.0f}")
    if replayed:
        print(f"boto3-signed requests replayed over {args.connections} raw keep-alive connections")
        print(header)
        for r in replayed:
            print(f"{r.name:<20} {r.what:<44} {r.rate:>11,.0f} {r.cpu_us:>22.0f} "
                  f"{f'{r.user_us:.0f} + {r.system_us:.0f}':>14}")
    print(f"server fsync always; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
