"""MQTT broker benchmark: mosquitto and edgeloop's broker under the same raw-socket load.

Method (as in the peer baselines): raw-socket MQTT 3.1.1 clients in separate processes send pre-encoded
64-byte PUBLISH packets. Fan-in: 8 publishers (nice 10) on t/<i> -> 1 subscriber on t/#, QoS 0 and QoS 1
(publishers keep 100 unacknowledged). Fan-out: 1 publisher -> 100 subscribers. Mutual TLS fan-in. Connection
storms: N connections opened at once (mutual TLS and plain): connects/s and broker RSS per idle connection.
Delivered messages are counted at the subscribers over the measured window; broker CPU per message is
utime+stime of the broker process (from /proc/<pid>/stat) divided by the messages delivered.

    python bench/broker.py                       # every test, 5 s each, both brokers when available
    python bench/broker.py --tests fanin-qos0,storm-tls --storm 10000 --json out.json
    python bench/broker.py --tests codec         # codec micro-benchmark only
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.mqttload import (
    Target,
    publisher_process,
    raise_nofile_limit,
    storm_process,
    subscriber_process,
)

TESTS = ("fanin-qos0", "fanin-qos1", "fanout-qos0", "fanin-qos0-tls", "storm-tls", "storm-plain", "codec")
BROKER_TESTS = TESTS[:-1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT = 60.0
FANOUT_SUBSCRIBERS = 100
FANOUT_PROCESSES = 2


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ================================================================================================ /proc


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ================================================================================================ certificates


@dataclass(frozen=True)
class TlsFiles:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def make_pki(directory: Path) -> TlsFiles:
    """A throw-away ECDSA P-256 CA, a server certificate for localhost and one client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey,
              ca: bool, usage: x509.ObjectIdentifier | None) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            import ipaddress

            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[str, str]:
        cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return str(cert_path), str(key_path)

    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = issue("bench CA", ca_key, "bench CA", ca_key, True, None)
    ca_path, _ = write("ca", ca, ca_key)
    server = write("server", issue("localhost", server_key, "bench CA", ca_key, False,
                                   ExtendedKeyUsageOID.SERVER_AUTH), server_key)
    client = write("client", issue("bench-device", client_key, "bench CA", ca_key, False,
                                   ExtendedKeyUsageOID.CLIENT_AUTH), client_key)
    return TlsFiles(ca_path, *server, *client)


# ================================================================================================ brokers


@dataclass
class BrokerHandle:
    name: str
    pid: int
    plain: Target
    tls: Target | None
    stop: Callable[[], None]
    notes: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, alive: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("broker exited during start-up")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)  # polling a port that is not open yet: nothing to wait on but time
    raise RuntimeError(f"broker did not listen on port {port} within {timeout} s")


@contextlib.contextmanager
def mosquitto(workdir: Path, pki: TlsFiles) -> Iterator[BrokerHandle]:
    """mosquitto with a plain listener and a mutual-TLS listener on ephemeral loopback ports."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    plain_port, tls_port = free_port(), free_port()
    conf = workdir / "mosquitto.conf"
    lines = [
        "per_listener_settings false", "allow_anonymous true", "persistence false", "log_dest stderr",
        "log_type error", "max_queued_messages 1000", "max_inflight_messages 100",
        f"listener {plain_port} 127.0.0.1",
        f"listener {tls_port} 127.0.0.1", f"cafile {pki.ca}", f"certfile {pki.server_cert}",
        f"keyfile {pki.server_key}", "require_certificate true", "use_identity_as_username true",
    ]
    if os.geteuid() == 0:
        lines.insert(0, "user root")  # keep access to the 0700 temporary directory holding the keys
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(plain_port, lambda: proc.poll() is None)
        wait_listening(tls_port, lambda: proc.poll() is None)
        version = subprocess.run([exe, "-h"], capture_output=True, text=True).stdout.splitlines()[0]
        yield BrokerHandle("mosquitto", proc.pid, Target("127.0.0.1", plain_port),
                           Target("127.0.0.1", tls_port, pki.ca, pki.client_cert, pki.client_key),
                           lambda: None, [version])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def edgeloop_unavailable() -> str | None:
    """Why edgeloop's broker cannot run here, or None when it can."""
    try:
        from gateway.mqtt.server import start_mqtt  # noqa: F401
    except ImportError as exc:
        return f"edgeloop broker not available ({exc})"
    return None


_EDGELOOP_TOML = """\
[mqtt]
host = "127.0.0.1"
port = 0
https_port = 0
dev = true
dev_port = 0
sys_interval_secs = 0
"""


def _edgeloop_child(home: str, with_tls: bool, conn: Any) -> None:
    """Child process: run edgeloop's broker (plain dev listener, plus mutual TLS when asked) until told to stop."""
    import asyncio
    import logging

    from edgeloop.config import load_config
    from gateway.mqtt.server import start_mqtt

    logging.basicConfig(level=logging.ERROR)  # as mosquitto's "log_type error": no per-message log lines
    config = load_config(str(Path(home) / "edgeloop.toml"), {"data_dir": home})

    async def main() -> None:
        registry = None
        if with_tls:
            from gateway.identity.registry import Registry

            registry = Registry.open(config)
        service = await start_mqtt(config, registry)
        conn.send(dict(service.ports))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await service.stop()

    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(main())


def _edgeloop_identity(home: Path) -> Target | None:
    """Provision a thing with the allow-all dev policy in edgeloop's registry; its files as a TLS target."""
    from edgeloop.config import load_config
    from gateway.identity.registry import DEV_POLICY, Registry

    config = load_config(str(home / "edgeloop.toml"), {"data_dir": str(home)})
    with Registry.open(config) as registry:
        identity = registry.provision_thing("bench-device", policies=(DEV_POLICY,))
        registry.server_certificate()
    files = identity.write(home / "device")
    return Target("127.0.0.1", 0, str(files["ca"]), str(files["certificate"]), str(files["private_key"]))


@contextlib.contextmanager
def edgeloop(workdir: Path) -> Iterator[BrokerHandle]:
    """edgeloop's broker in its own process (so /proc figures are the broker's alone)."""
    home = workdir / "edgeloop-home"
    home.mkdir()
    (home / "edgeloop.toml").write_text(_EDGELOOP_TOML)
    notes: list[str] = []
    try:
        tls_target = _edgeloop_identity(home)
    except Exception as exc:  # the identity component may not be there yet: run the plain tests anyway
        tls_target = None
        notes.append(f"edgeloop TLS not available ({type(exc).__name__}: {exc})")
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_edgeloop_child, args=(str(home), tls_target is not None, child), daemon=True)
    proc.start()
    try:
        if not parent.poll(READY_TIMEOUT):
            raise RuntimeError("edgeloop broker did not start")
        ports = parent.recv()
        tls = None
        if tls_target is not None and "mqtts" in ports:
            tls = Target("127.0.0.1", ports["mqtts"], tls_target.ca_file, tls_target.cert_file, tls_target.key_file)
        yield BrokerHandle("edgeloop", proc.pid or 0, Target("127.0.0.1", ports["dev"]), tls, lambda: None, notes)
    finally:
        with contextlib.suppress(OSError):
            parent.send("stop")
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


# ================================================================================================ tests


@dataclass
class Roles:
    """The load-generator processes of one test and the events that pace them."""

    ctx: Any
    stop: Any
    go: Any
    failed: Any
    procs: list[Any] = field(default_factory=list)
    ready: list[Any] = field(default_factory=list)

    def spawn(self, target: Callable[..., None], *args: Any, go: bool = False) -> None:
        ready = self.ctx.Event()
        extra = (ready, self.go, self.stop, self.failed) if go else (ready, self.stop, self.failed)
        proc = self.ctx.Process(target=target, args=(*args, *extra), daemon=True)
        proc.start()
        self.procs.append(proc)
        self.ready.append(ready)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        for ready in self.ready:
            while not ready.wait(0.2):
                if self.failed.is_set() or time.monotonic() > deadline:
                    raise RuntimeError("a load-generator client could not connect")
        self.ready.clear()

    def finish(self) -> None:
        """Stop every role: 5 s to exit on their own (a publisher may sit in a blocked write), then SIGTERM."""
        self.stop.set()
        deadline = time.monotonic() + 5.0
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


def measure(broker: BrokerHandle, counters: list[Any], duration: float) -> dict[str, float]:
    """Let the load settle, then measure delivered messages and broker CPU over `duration` seconds."""
    time.sleep(min(1.0, duration / 5))  # warm-up: fixed wall-clock window, this is what is measured
    count0, cpu0, t0 = sum(c.value for c in counters), cpu_seconds(broker.pid), time.monotonic()
    time.sleep(duration)
    count1, cpu1, t1 = sum(c.value for c in counters), cpu_seconds(broker.pid), time.monotonic()
    delivered = count1 - count0
    return {
        "delivered_per_s": delivered / (t1 - t0),
        "broker_cpu_us_per_msg": (cpu1 - cpu0) * 1e6 / delivered if delivered else float("nan"),
        "broker_cpu_share": (cpu1 - cpu0) / (t1 - t0),
        "broker_rss_mib": rss_kib(broker.pid) / 1024,
    }


def run_fan(broker: BrokerHandle, target: Target, publishers: int, subscribers: int, qos: int, size: int,
            duration: float) -> dict[str, float]:
    ctx = mp.get_context("fork")
    roles = Roles(ctx, ctx.Event(), ctx.Event(), ctx.Event())
    delivered = [ctx.RawValue("q", 0) for _ in range(min(subscribers, FANOUT_PROCESSES))]
    published = [ctx.RawValue("q", 0) for _ in range(publishers)]
    try:
        per_proc = [subscribers // len(delivered) + (i < subscribers % len(delivered)) for i in range(len(delivered))]
        for i, (n, counter) in enumerate(zip(per_proc, delivered, strict=True)):
            roles.spawn(subscriber_process, target, n, f"bench-sub-{i}", "t/#", qos, size, counter)
        roles.wait_ready()
        for i, counter in enumerate(published):
            roles.spawn(publisher_process, target, f"bench-pub-{i}", f"t/{i}", size, qos, 100, counter, go=True)
        roles.wait_ready()
        roles.go.set()
        result = measure(broker, delivered, duration)
        result["published_per_s"] = sum(c.value for c in published) / (duration + min(1.0, duration / 5))
        return result
    finally:
        roles.finish()


def run_storm(broker: BrokerHandle, target: Target, count: int, parallel: int) -> dict[str, float]:
    ctx = mp.get_context("fork")
    processes = max(1, min(4, os.cpu_count() or 1))
    results = ctx.Queue()
    go, release = ctx.Event(), ctx.Event()
    procs = [ctx.Process(target=storm_process, daemon=True,
                         args=(target, f"storm-{i}", count // processes + (i < count % processes),
                               max(1, parallel // processes), results, go, release)) for i in range(processes)]
    for proc in procs:
        proc.start()
    rss0, cpu0 = rss_kib(broker.pid), cpu_seconds(broker.pid)
    try:
        go.set()
        try:
            reports = [results.get(timeout=300) for _ in procs]
        except queue.Empty:
            raise RuntimeError("a storm client process did not report within 300 s") from None
        cpu1 = cpu_seconds(broker.pid)
        connected = sum(r[0] for r in reports)
        failed = sum(r[1] for r in reports)
        elapsed = max(r[2] for r in reports)
        rss1 = rss_kib(broker.pid)
        return {
            "connected": connected,
            "failed": failed,
            "connects_per_s": connected / elapsed if elapsed else float("nan"),
            "broker_cpu_us_per_connect": (cpu1 - cpu0) * 1e6 / connected if connected else float("nan"),
            "broker_kib_per_connection": (rss1 - rss0) / connected if connected else float("nan"),
            "broker_rss_mib": rss1 / 1024,
        }
    finally:
        release.set()
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


def run_broker_test(name: str, broker: BrokerHandle, args: argparse.Namespace) -> dict[str, float] | str:
    """One test against one running broker; a string explains why it was skipped."""
    tls = name.endswith("-tls")
    target = broker.tls if tls else broker.plain
    if target is None:
        return "no TLS listener"
    if name.startswith("storm"):
        return run_storm(broker, target, args.storm, args.storm_parallel)
    if name.startswith("fanout"):
        return run_fan(broker, target, 1, args.fanout, 0, args.size, args.duration)
    return run_fan(broker, target, args.publishers, 1, 1 if "qos1" in name else 0, args.size, args.duration)


# ================================================================================================ codec


def codec_microbench(seconds: float = 0.1, repeat: int = 9) -> dict[str, float]:
    """Single-core rates of the codec's hot operations (operations per second, best of `repeat` runs)."""
    from gateway.mqtt.codec import StreamDecoder, encode, encode_publish
    from gateway.mqtt.packets import Connect, Properties, Publish, Subscribe, Subscription

    def rate(fn: Callable[[], object], per_call: int = 1) -> float:
        timer = timeit.Timer(fn)
        number, took = timer.autorange()
        runs = max(1, int(seconds / took))
        best = min(timer.repeat(repeat=repeat, number=number * runs)) / (number * runs)
        return per_call / best

    payload = b"x" * 57
    v4_qos0 = encode_publish("t/1", payload, 0, False, False, None, 4) * 1000
    v4_qos1 = encode_publish("t/1", payload, 1, False, False, 7, 4) * 1000
    v5_qos1 = encode_publish("t/1", payload, 1, False, False, 7, 5) * 1000
    v5_props = encode(Publish("t/1", payload, 1, packet_id=7, properties=Properties(
        message_expiry_interval=60, user_properties=[("k", "v")])), 5) * 1000
    connect = encode(Connect("device-0001", 5, properties=Properties(session_expiry_interval=60)), 5)
    subscribe = encode(Subscribe(1, [Subscription("t/#", 1)]), 4)
    publish = Publish("t/1", payload, 1, packet_id=7)
    return {
        "decode PUBLISH v3.1.1 QoS 0 (msgs/s)": rate(lambda: StreamDecoder().feed(v4_qos0), 1000),
        "decode PUBLISH v3.1.1 QoS 1 (msgs/s)": rate(lambda: StreamDecoder().feed(v4_qos1), 1000),
        "decode PUBLISH v5 QoS 1 (msgs/s)": rate(lambda: StreamDecoder(version=5).feed(v5_qos1), 1000),
        "decode PUBLISH v5 + 2 properties (msgs/s)": rate(lambda: StreamDecoder(version=5).feed(v5_props), 1000),
        "decode CONNECT v5 (packets/s)": rate(lambda: StreamDecoder().feed(connect)),
        "decode SUBSCRIBE (packets/s)": rate(lambda: StreamDecoder().feed(subscribe)),
        "encode_publish fast path (msgs/s)": rate(lambda: encode_publish(b"t/1", payload, 1, False, False, 7, 4)),
        "encode(Publish) v5 (msgs/s)": rate(lambda: encode(publish, 5)),
    }


# ================================================================================================ report


METRICS = {
    "fan": [("delivered_per_s", "delivered msgs/s", "{:,.0f}"), ("published_per_s", "published msgs/s", "{:,.0f}"),
            ("broker_cpu_us_per_msg", "broker CPU µs/delivered msg", "{:.1f}"),
            ("broker_cpu_share", "broker CPU (cores)", "{:.2f}"), ("broker_rss_mib", "broker RSS MiB", "{:.1f}")],
    "storm": [("connected", "connections open", "{:,.0f}"), ("failed", "connections failed", "{:,.0f}"),
              ("connects_per_s", "connects/s", "{:,.0f}"),
              ("broker_cpu_us_per_connect", "broker CPU µs/connect", "{:,.0f}"),
              ("broker_kib_per_connection", "broker KiB/idle connection", "{:.2f}"),
              ("broker_rss_mib", "broker RSS MiB", "{:.1f}")],
}


def print_table(results: dict[str, dict[str, Any]], brokers: list[str]) -> None:
    header = ["test", "metric", *brokers]
    if len(brokers) == 2:
        header.append(f"{brokers[1]}/{brokers[0]}")
    rows = [header]
    for test in BROKER_TESTS:
        if not any(test in results.get(b, {}) for b in brokers):
            continue
        for key, label, fmt in METRICS["storm" if test.startswith("storm") else "fan"]:
            row = [test, label]
            values = []
            for broker in brokers:
                value = results.get(broker, {}).get(test)
                if isinstance(value, dict):
                    values.append(value.get(key))
                    row.append(fmt.format(value[key]) if key in value else "-")
                else:
                    values.append(None)
                    row.append(str(value).split(":")[0] if value else "-")  # "failed" / "no TLS listener"
            if len(brokers) == 2:
                a, b = values
                row.append(f"{b / a:.2f}" if isinstance(a, float | int) and isinstance(b, float | int) and a else "-")
            rows.append(row)
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        print("  ".join(str(c).ljust(w) if j < 2 else str(c).rjust(w) for j, (c, w) in enumerate(zip(row, widths,
                                                                                                       strict=True))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per throughput test")
    parser.add_argument("--tests", default=",".join(TESTS), help=f"comma-separated subset of {', '.join(TESTS)}")
    parser.add_argument("--brokers", default="mosquitto,edgeloop", help="comma-separated: mosquitto, edgeloop")
    parser.add_argument("--storm", type=int, default=2000, help="connections per storm test")
    parser.add_argument("--storm-parallel", type=int, default=128, help="storm handshakes in progress at once")
    parser.add_argument("--publishers", type=int, default=8, help="fan-in publishers")
    parser.add_argument("--fanout", type=int, default=FANOUT_SUBSCRIBERS, help="fan-out subscribers")
    parser.add_argument("--size", type=int, default=64, help="PUBLISH packet size in bytes (whole packet)")
    parser.add_argument("--json", dest="json_path", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    tests = [t.strip() for t in args.tests.split(",") if t.strip()]
    unknown = sorted(set(tests) - set(TESTS))
    if unknown:
        parser.error(f"unknown tests {unknown}; choose from {', '.join(TESTS)}")
    raise_nofile_limit(args.storm + 1024)  # brokers started from here inherit the limit

    report: dict[str, Any] = {
        "command": " ".join(["python", "bench/broker.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_at_start": os.getloadavg()},
        "results": {}, "notes": [],
    }
    if "codec" in tests:
        progress("codec micro-benchmark")
        report["codec"] = codec_microbench()
        for label, value in report["codec"].items():
            print(f"{label:<44} {value:>12,.0f}")
        print()
    broker_tests = [t for t in tests if t in BROKER_TESTS]
    brokers = [b.strip() for b in args.brokers.split(",") if b.strip()] if broker_tests else []
    starters: dict[str, Callable[[Path, TlsFiles], contextlib.AbstractContextManager[BrokerHandle]]] = {
        "mosquitto": mosquitto, "edgeloop": lambda workdir, pki: edgeloop(workdir)}
    if "edgeloop" in brokers and (reason := edgeloop_unavailable()):
        print(reason)
        report["notes"].append(reason)
        brokers.remove("edgeloop")
    if "mosquitto" in brokers and not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        print("mosquitto not available")
        brokers.remove("mosquitto")
    with tempfile.TemporaryDirectory(prefix="mqtt-bench-") as tmp:
        pki = make_pki(Path(tmp)) if broker_tests else None
        for broker_name in brokers:
            for n, test in enumerate(broker_tests):
                workdir = Path(tmp) / f"{broker_name}-{n}"
                workdir.mkdir()
                with starters[broker_name](workdir, pki) as broker:  # type: ignore[arg-type]
                    for note in broker.notes:
                        if note not in report["notes"]:
                            report["notes"].append(note)
                            progress(note)
                    progress(f"{broker_name}: {test} ...")
                    try:
                        outcome = run_broker_test(test, broker, args)
                    except (RuntimeError, OSError) as exc:
                        outcome = f"failed: {exc}"
                    progress(f"{broker_name}: {test} -> {outcome}")
                    report["results"].setdefault(broker_name, {})[test] = outcome
                    if isinstance(outcome, str):
                        report["notes"].append(f"{broker_name} {test}: {outcome}")
    report["machine"]["load_average_at_end"] = os.getloadavg()
    if brokers:
        print_table(report["results"], brokers)
        load = report["machine"]
        print(f"load average (1 min) at start {load['load_average_at_start'][0]:.1f}, "
              f"at end {load['load_average_at_end'][0]:.1f} on {load['cpus']} CPUs")
    for note in report["notes"]:
        print(f"note: {note}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
