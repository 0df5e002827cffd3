"""Server CPU per request of the AWS-compatible API: S3 put/get 1 KiB, SQS send / receive / delete.

The request path every service shares (aiohttp, SigV4 verification, routing, error shapes) plus the S3 and SQS
handlers, measured from outside: the API runs in a subprocess (``gateway.awsapi.devserver``, fsync "always") and
unmodified boto3 clients in other processes load it. Server CPU per request is the server process's utime+stime
(``/proc/<pid>/stat``) divided by the requests it answered, so client CPU is not charged to the server.

The client's own CPU per request (one boto3 client in one thread, after the load test) is printed next to it:
when clients and server share the machine's cores, the sum of the two bounds the rate.

    python bench/awsapi.py                          # every test, 5 s each
    python bench/awsapi.py --tests s3-put --profile /tmp/api.prof   # cProfile the server too
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# bench/sinks.py holds the shared load machinery (client processes, CPU accounting); this file sits next to it.
from sinks import CLK_TCK, Server, Step, boto3_client, progress, run_load, stop_process

ROOT = Path(__file__).resolve().parent.parent
S3_OBJECT = b"x" * 1024
S3_SEED_KEYS = 100
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


def s3_put(endpoint: str) -> Step:
    """One put_object of 1 KiB under a unique key: 1 request."""
    client = boto3_client("s3", endpoint)
    client.head_bucket(Bucket=BUCKET)
    prefix = f"{os.getpid()}-{os.urandom(4).hex()}"
    count = [0]

    def step() -> int:
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/{count[0]}", Body=S3_OBJECT)
        count[0] += 1
        return 1

    return step


def s3_get(endpoint: str) -> Step:
    """One get_object of a seeded 1 KiB object: 1 request."""
    client = boto3_client("s3", endpoint)
    client.head_bucket(Bucket=BUCKET)
    count = [int.from_bytes(os.urandom(2), "big")]

    def step() -> int:
        client.get_object(Bucket=BUCKET, Key=f"seed/{count[0] % S3_SEED_KEYS}")["Body"].read()
        count[0] += 1
        return 1

    return step


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


TESTS = {t.name: t for t in (
    Test("s3-put", "s3", s3_put, "put_object 1 KiB"),
    Test("s3-get", "s3", s3_get, "get_object 1 KiB"),
    Test("sqs-send", "sqs", sqs_send, "send_message 256 B"),
    Test("sqs-receive-delete", "sqs", sqs_receive_delete, "receive_message 1 + delete_message"),
)}


@contextlib.contextmanager
def api_server(services: str, profile: Path | None) -> Iterator[Server]:
    """The dev server in a subprocess (fsync always, fresh data directory), optionally under cProfile."""
    home = Path(tempfile.mkdtemp(prefix="edgeloop-bench-api-"))
    server_args = ["--home", str(home), "--port", "0", "--services", services, "--fsync", "always"]
    if profile is None:
        command = [sys.executable, "-m", "gateway.awsapi.devserver", *server_args]
    else:
        command = [sys.executable, "-c", PROFILED_SERVER, str(profile), *server_args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("listening "):
            raise RuntimeError(f"dev server did not start: {line!r}")
        yield Server("edgeloop", f"http://127.0.0.1:{line.split()[1]}", proc.pid)
    finally:
        stop_process(proc)
        shutil.rmtree(home, ignore_errors=True)


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
    test: Test
    rate: float  # requests per second
    user_us: float  # server user CPU per request
    system_us: float  # server kernel CPU per request
    client_us: float  # CPU of one boto3 client per request

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


def run(tests: list[Test], args: argparse.Namespace) -> list[Result]:
    """One `Result` per test; tests that need the same services share a server."""
    out: list[Result] = []
    for services in dict.fromkeys(t.services for t in tests):
        profile = args.profile.with_suffix(f".{services}.prof") if args.profile else None
        with api_server(services, profile) as server:
            prepare(services, server.endpoint)
            for test in (t for t in tests if t.services == services):
                user, system = cpu_split(server.pid)
                requests, elapsed = run_load(test.make_step, (server.endpoint,), args.processes, args.threads,
                                             args.seconds)
                user_after, system_after = cpu_split(server.pid)
                per = 1e6 / max(requests, 1)
                result = Result(test, requests / elapsed, (user_after - user) * per, (system_after - system) * per,
                                client_cpu_us(test.make_step(server.endpoint), args.client_calls))
                progress(f"{test.name}: {result.rate:,.0f} requests/s, server CPU {result.cpu_us:.0f} µs/request")
                out.append(result)
        if profile is not None:
            pstats.Stats(str(profile), stream=sys.stderr).sort_stats("tottime").print_stats(args.profile_rows)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", default=",".join(TESTS), help=f"comma-separated: {', '.join(TESTS)}")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per test")
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--threads", type=int, default=4, help="boto3 threads per client process")
    parser.add_argument("--client-calls", type=int, default=300, help="calls timed for the client CPU column")
    parser.add_argument("--profile", type=Path, help="cProfile the server; stats go to PROFILE.<services>.prof")
    parser.add_argument("--profile-rows", type=int, default=40, help="functions to print from each profile")
    args = parser.parse_args(argv)
    unknown = [n for n in args.tests.split(",") if n not in TESTS]
    if unknown:
        parser.error(f"unknown tests {', '.join(unknown)} (known: {', '.join(TESTS)})")
    results = run([TESTS[n] for n in args.tests.split(",")], args)
    print(f"{'test':<20} {'what':<36} {'requests/s':>11} {'server CPU µs/request':>22} {'(user + sys)':>14} "
          f"{'client CPU µs/request':>22}")
    for r in results:
        print(f"{r.test.name:<20} {r.test.what:<36} {r.rate:>11,.0f} {r.cpu_us:>22.0f} "
              f"{f'{r.user_us:.0f} + {r.system_us:.0f}':>14} {r.client_us:>22.0f}")
    print(f"clients: {args.processes} processes × {args.threads} threads of boto3; server fsync always; "
          f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
