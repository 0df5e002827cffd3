"""Server CPU per unit of the AWS-compatible API: S3 put/get 1 KiB, SQS send / receive / delete and the full cycle.

The request path every service shares (aiohttp, SigV4 verification, routing, error shapes) plus the S3 and SQS
handlers, measured from outside: the API runs in a subprocess (``gateway.awsapi.devserver``, fsync "always") and
clients in other processes load it. Server CPU per unit is the server process's utime+stime (``/proc/<pid>/stat``)
divided by the units it handled (requests, or messages for the SQS cycle), so client CPU is not charged to it.

Three kinds of client:

- **boto3**: unmodified boto3 clients in threads of several processes. The CPU one boto3 client spends per unit
  (one thread, after the load test) is printed next to the server's.
- **signed**: a cheap client that signs every request itself (``gateway.awsapi.sigv4.sign_headers``) and sends it
  over a raw keep-alive socket, with the headers boto3 sends (SQS: awsJson 1.0 with ``X-Amz-Target``; S3: CRC32
  checksum and ``Expect: 100-continue``, the body sent only after the server's ``100 Continue`` as boto3 does).
  It runs the same step functions as the boto3 tests (bench/sinks.py), so it can do the full SQS cycle (send a
  batch, receive, delete what came back), and it costs little enough that the rate shows what the server carries.
- **replayed**: requests boto3 signed once, up front, replayed over raw keep-alive sockets (body sent at once).

Last, a budget table: for each target of the project, boto3 client CPU per unit × target rate plus server CPU per
unit × target rate, against the machine's cores, so the reader sees whether the target fits this machine.

    python bench/awsapi.py                          # every test, 5 s each
    python bench/awsapi.py --tests sqs-cycle --signed sqs-cycle --replays ""      # the SQS cycle only
    python bench/awsapi.py --tests "" --signed s3-put --replays "" --profile api.prof   # cProfile the server too
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import pstats
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# bench/sinks.py holds the shared load machinery (client processes, CPU accounting); this file sits next to it.
from sinks import (
    S3_OBJECT,
    S3_SEED_KEYS,
    Server,
    Step,
    boto3_client,
    cpu_split,
    edgeloop_server,
    progress,
    run_load,
    s3_get_step,
    s3_put_step,
    sqs_cycle_step,
)

from gateway.awsapi import sigv4  # importable: sinks put the project root on sys.path

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
sqs_cycle = partial(sqs_cycle_step, queue=QUEUE)  # send 10, receive up to 10, delete them: 3 requests


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


def _read_response(sock: socket.socket, pending: bytes, head_only: bool = False,
                   interim: bool = False) -> tuple[int, bytes, bytes]:
    """Read one response: (status, body, bytes already read past it). ``100 Continue`` is skipped unless
    `interim` (then it is returned); `head_only` for answers to HEAD (a Content-Length but no body)."""
    while True:
        while b"\r\n\r\n" not in pending:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            pending += chunk
        head, _, pending = pending.partition(b"\r\n\r\n")
        status = int(head[9:12])
        if status != 100 or interim:
            break
    if status == 100 or head_only:
        return status, b"", pending
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                   if line.lower().startswith(b"content-length:")), 0)
    while len(pending) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        pending += chunk
    return status, pending[:length], pending[length:]


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
                status, _, pending = _read_response(sock, pending)
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


# ================================================================== the cheap client: signed here, per request

ACCESS_KEY = SECRET_KEY = "test"  # what boto3_client uses; the dev server accepts the default test/test
REGION = "us-east-1"
# What boto3 sends unsigned next to the signed headers (shortened user agent).
UNSIGNED_HEADERS = {"User-Agent": "edgeloop-bench/1 md/signed-client", "amz-sdk-request": "attempt=1; max=2"}


class SignedConnection:
    """One keep-alive HTTP/1.1 connection; every request is SigV4-signed when it is sent."""

    def __init__(self, endpoint: str, service: str) -> None:
        url = urlsplit(endpoint)
        self.host = url.netloc
        self.service = service
        self.sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""
        self.invocations = 0

    def request(self, method: str, path: str, signed: dict[str, str], body: bytes = b"",
                expect_continue: bool = False) -> tuple[int, bytes]:
        """(status, body) of one request; with `expect_continue` the body waits for ``100 Continue``."""
        headers = sigv4.sign_headers(method, path, "", {"Host": self.host, **signed}, body, ACCESS_KEY,
                                     SECRET_KEY, REGION, self.service)
        self.invocations += 1
        headers.update(UNSIGNED_HEADERS, **{"amz-sdk-invocation-id": f"{os.getpid()}-{self.invocations}"})
        if expect_continue:
            headers["Expect"] = "100-continue"
        head = "".join([f"{method} {path} HTTP/1.1\r\n", *(f"{k}: {v}\r\n" for k, v in headers.items()),
                        f"Content-Length: {len(body)}\r\n\r\n"]).encode()
        if expect_continue:
            self.sock.sendall(head)
            status, data, self.pending = _read_response(self.sock, self.pending, interim=True)
            if status != 100:
                return status, data
            self.sock.sendall(body)
        else:
            self.sock.sendall(head + body)
        status, data, self.pending = _read_response(self.sock, self.pending, head_only=method == "HEAD")
        return status, data


class RequestRefused(Exception):
    """The server answered a benchmark request with an error status."""


class SignedSqs:
    """The SQS operations the bench steps call, as awsJson 1.0 requests (what current boto3 sends)."""

    def __init__(self, endpoint: str) -> None:
        self.connection = SignedConnection(endpoint, "sqs")

    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        return partial(self._call, "".join(part.title() for part in name.split("_")))  # send_message_batch: ...

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        status, data = self.connection.request("POST", "/", {
            "X-Amz-Target": f"AmazonSQS.{operation}", "Content-Type": "application/x-amz-json-1.0",
            "x-amzn-query-mode": "true"}, json.dumps(params).encode())
        if status >= 300:
            raise RequestRefused(f"{operation}: HTTP {status} {data[:200]!r}")
        return json.loads(data) if data else {}


class SignedS3:
    """head_bucket and put_object as boto3 sends them: CRC32 checksum header, ``Expect: 100-continue`` (unless
    `expect_continue` is False: then the body follows the headers at once, without the Expect header)."""

    def __init__(self, endpoint: str, expect_continue: bool = True) -> None:
        self.connection = SignedConnection(endpoint, "s3")
        self.expect_continue = expect_continue

    def head_bucket(self, Bucket: str) -> None:
        status, _ = self.connection.request("HEAD", f"/{Bucket}", {})
        if status >= 300:
            raise RequestRefused(f"HeadBucket: HTTP {status}")

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:
        crc = base64.b64encode(zlib.crc32(Body).to_bytes(4, "big")).decode()
        status, data = self.connection.request("PUT", f"/{Bucket}/{Key}", {
            "x-amz-checksum-crc32": crc, "x-amz-sdk-checksum-algorithm": "CRC32"}, Body, self.expect_continue)
        if status >= 300:
            raise RequestRefused(f"PutObject: HTTP {status} {data[:200]!r}")


def signed_client(service: str, endpoint: str, expect_continue: bool = True) -> SignedSqs | SignedS3:
    """The cheap client for `service` (a `ClientFactory` for the steps in bench/sinks.py)."""
    return SignedS3(endpoint, expect_continue) if service == "s3" else SignedSqs(endpoint)


# ============================================================================================== the tests


@dataclass
class Test:
    name: str
    services: str
    make_step: Callable[[str], Step]
    what: str
    unit: str = "request"


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

CYCLE = "send_message_batch 10 × 256 B, receive, delete batch"
TESTS = {t.name: t for t in (
    Test("s3-put", "s3", s3_put, "put_object 1 KiB", "object"),
    Test("s3-get", "s3", s3_get, "get_object 1 KiB", "object"),
    Test("sqs-send", "sqs", sqs_send, "send_message 256 B"),
    Test("sqs-receive-delete", "sqs", sqs_receive_delete, "receive_message 1 + delete_message"),
    Test("sqs-cycle", "sqs", sqs_cycle, CYCLE, "message"),
)}

SIGNED = {t.name: t for t in (
    Test("s3-put", "s3", partial(s3_put, make_client=signed_client), "put_object 1 KiB, 100-continue", "object"),
    Test("s3-put-direct", "s3", partial(s3_put, make_client=partial(signed_client, expect_continue=False)),
         "put_object 1 KiB, body sent with the headers", "object"),
    Test("sqs-cycle", "sqs", partial(sqs_cycle, make_client=signed_client), CYCLE, "message"),
)}


@dataclass
class Target:
    """A rate the project aims for through boto3, and the tests that measure its client and server cost."""

    name: str
    rate: float
    unit: str
    test: str  # in TESTS (boto3 client CPU) and SIGNED (server CPU at capacity)


TARGETS = (Target("SQS send+receive+delete", 3000, "msgs", "sqs-cycle"),
           Target("S3 put_object 1 KiB", 1000, "objects", "s3-put"))


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
    unit: str
    rate: float  # units per second
    user_us: float  # server user CPU per unit
    system_us: float  # server kernel CPU per unit
    client_us: float | None = None  # CPU of one client (one thread) per unit

    @property
    def cpu_us(self) -> float:
        return self.user_us + self.system_us


def client_cpu_us(step: Step, calls: int) -> float:
    """CPU of this process per unit while one client makes `calls` steps (after a short warm-up)."""
    for _ in range(10):
        step()
    started = time.process_time()
    units = sum(step() for _ in range(calls))
    return (time.process_time() - started) / max(units, 1) * 1e6


def measured(server: Server, name: str, what: str, unit: str, load: Callable[[], tuple[int, float]]) -> Result:
    """Run `load` (returning units done and seconds taken) and charge the server's CPU to its units."""
    user, system = cpu_split(server.pid)
    units, elapsed = load()
    user_after, system_after = cpu_split(server.pid)
    per = 1e6 / max(units, 1)
    result = Result(name, what, unit, units / elapsed, (user_after - user) * per, (system_after - system) * per)
    progress(f"{name}: {result.rate:,.0f} {unit}s/s, server CPU {result.cpu_us:.0f} µs/{unit}")
    return result


@dataclass
class Results:
    boto3: list[Result]
    signed: list[Result]
    replayed: list[Result]


def run(tests: list[Test], signed: list[Test], replays: list[Replay], args: argparse.Namespace) -> Results:
    """Every kind of test; everything that needs the same services shares one server."""
    out = Results([], [], [])
    kinds = ((tests, out.boto3, args.processes, args.threads), (signed, out.signed, args.signed_processes,
                                                                 args.signed_connections))
    for services in dict.fromkeys([t.services for t in tests + signed] + [r.services for r in replays]):
        profile = args.profile.with_suffix(f".{services}.prof") if args.profile else None
        with api_server(services, profile) as server:
            prepare(services, server.endpoint)
            port = int(server.endpoint.rsplit(":", 1)[1])
            for chosen, results, processes, threads in kinds:
                for test in (t for t in chosen if t.services == services):
                    load = partial(run_load, test.make_step, (server.endpoint,), processes, threads, args.seconds)
                    result = measured(server, test.name, test.what, test.unit, load)
                    result.client_us = client_cpu_us(test.make_step(server.endpoint), args.client_calls)
                    results.append(result)
            for r in (r for r in replays if r.services == services):
                load = partial(replay, port, r.capture(server.endpoint), args.connections, args.seconds)
                out.replayed.append(measured(server, r.name, r.what, "request", load))
        if profile is not None:
            pstats.Stats(str(profile), stream=sys.stderr).sort_stats("tottime").print_stats(args.profile_rows)
    return out


def print_results(title: str, results: list[Result], client_column: bool) -> None:
    if not results:
        return
    print(title)
    print(f"{'test':<20} {'what':<60} {'rate /s':>9} {'server CPU µs/unit':>19} {'(user + sys)':>14}"
          + (f" {'client CPU µs/unit':>19}" if client_column else ""))
    for r in results:
        client = f" {r.client_us or 0:>19.0f}" if client_column else ""
        print(f"{r.name:<20} {r.what + f' (unit: {r.unit})':<60} {r.rate:>9,.0f} {r.cpu_us:>19.0f} "
              f"{f'{r.user_us:.0f} + {r.system_us:.0f}':>14}{client}")


def print_budget(results: Results) -> None:
    """Cores each target needs: boto3 client CPU per unit and server CPU per unit, times the target rate."""
    cores = os.cpu_count() or 1
    rows = []
    for target in TARGETS:
        boto3 = next((r for r in results.boto3 if r.name == target.test), None)
        server = next((r for r in results.signed if r.name == target.test), boto3)
        if boto3 is None or server is None or boto3.client_us is None:
            continue
        client_cores = boto3.client_us * target.rate / 1e6
        server_cores = server.cpu_us * target.rate / 1e6
        rows.append((target, boto3.client_us, client_cores, server.cpu_us, server_cores))
    if not rows:
        return
    print(f"budget at each target rate on this machine ({cores} cores): "
          "CPU per unit × rate, boto3 clients + server")
    print(f"{'target':<26} {'rate /s':>8} {'boto3 client µs':>16} {'client cores':>13} {'server µs':>10} "
          f"{'server cores':>13} {'total cores':>12}  fits")
    for target, client_us, client_cores, server_us, server_cores in rows:
        total = client_cores + server_cores
        print(f"{target.name:<26} {target.rate:>8,.0f} {client_us:>16.0f} {client_cores:>13.2f} {server_us:>10.0f} "
              f"{server_cores:>13.2f} {total:>12.2f}  {'yes' if total <= cores else 'no'}"
              f" (at most {cores / (client_us + server_us) * 1e6:,.0f} {target.unit}/s)")


def _names(value: str, known: dict[str, Any], parser: argparse.ArgumentParser) -> list[str]:
    names = [n for n in value.split(",") if n]
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", default=",".join(TESTS), help=f"boto3 tests: {', '.join(TESTS)} ('' for none)")
    parser.add_argument("--signed", default=",".join(SIGNED),
                        help=f"cheap signing-client tests: {', '.join(SIGNED)} ('' for none)")
    parser.add_argument("--replays", default=",".join(REPLAYS),
                        help=f"replay tests: {', '.join(REPLAYS)} ('' for none)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per test")
    parser.add_argument("--processes", type=int, default=4, help="boto3 client processes")
    parser.add_argument("--threads", type=int, default=4, help="boto3 threads per client process")
    parser.add_argument("--signed-processes", type=int, default=2, help="signing-client processes")
    parser.add_argument("--signed-connections", type=int, default=4,
                        help="signing-client threads per process (each with its own connections)")
    parser.add_argument("--connections", type=int, default=8, help="raw connections for the replay tests")
    parser.add_argument("--client-calls", type=int, default=300, help="steps timed for the client CPU column")
    parser.add_argument("--profile", type=Path, help="cProfile the server; stats go to PROFILE.<services>.prof")
    parser.add_argument("--profile-rows", type=int, default=40, help="functions to print from each profile")
    args = parser.parse_args(argv)
    results = run([TESTS[n] for n in _names(args.tests, TESTS, parser)],
                  [SIGNED[n] for n in _names(args.signed, SIGNED, parser)],
                  [REPLAYS[n] for n in _names(args.replays, REPLAYS, parser)], args)
    print_results(f"boto3 clients: {args.processes} processes × {args.threads} threads", results.boto3, True)
    print_results(f"signing client: {args.signed_processes} processes × {args.signed_connections} threads, "
                  "requests signed per request over keep-alive sockets", results.signed, True)
    print_results(f"boto3-signed requests replayed over {args.connections} raw keep-alive connections",
                  results.replayed, False)
    print_budget(results)
    print(f"server fsync always; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
