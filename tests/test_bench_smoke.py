"""Every benchmark script still runs end to end: a short run of each, as a user would start it, whose output
must carry its figures. The measured runs themselves belong to bench/ (docs/benchmarks.md has the figures)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_bench(*args: str, timeout: float = 180) -> str:
    """Run a bench script from the project root; fail with its output if it exits non-zero."""
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def figure(output: str, name: str) -> float:
    """The number printed after `name` at the start of a line (thousands separators allowed)."""
    match = re.search(rf"^{re.escape(name)}\s+([-\d,.]+)", output, re.MULTILINE)
    assert match, f"no {name!r} line in:\n{output}"
    return float(match.group(1).replace(",", ""))


def test_policy_bench_runs() -> None:
    out = run_bench("bench/policy.py", "--seconds", "0.05", "--repeat", "1")
    assert "cached" in out and "uncached" in out


def test_rules_bench_runs() -> None:
    out = run_bench("bench/rules.py", "--quick")
    assert "select+where" in out


@pytest.mark.parametrize("mode", [(), ("--dispatcher-only",)])
def test_rules_end_to_end_bench_delivers_every_acknowledged_message(mode: tuple[str, ...]) -> None:
    out = run_bench("bench/rules_e2e.py", "--seconds", "1", "--warmup", "0.3", "--publishers", "2", "--window", "20",
                    *mode)
    assert figure(out, "acks_per_s") > 0
    assert figure(out, "records_per_s") > 0
    assert figure(out, "cpu_us_per_msg") > 0
    if not mode:
        assert figure(out, "p99_ms") > 0


def test_shadow_bench_runs() -> None:
    out = run_bench("-m", "bench.shadow", "--devices", "5", "--seconds", "1", "--only", "store")
    assert "store" in out


def test_broker_bench_writes_json(tmp_path: Path) -> None:
    report = tmp_path / "broker.json"
    run_bench("bench/broker.py", "--brokers", "edgeloop", "--tests", "fanin-qos1", "--duration", "1",
              "--publishers", "2", "--json", str(report))
    results = json.loads(report.read_text())
    assert results, "the JSON report is empty"
