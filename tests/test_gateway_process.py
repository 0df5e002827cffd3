"""The gateway as a user runs it: `edgeloop gateway run` and `edgeloop demo`, as subprocesses."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

EDGELOOP = [sys.executable, "-m", "edgeloop.cli"]


def test_gateway_runs_and_shuts_down_cleanly_on_sigterm(home: Path) -> None:
    proc = subprocess.Popen(
        [*EDGELOOP, "gateway", "run", "--dev", "--mqtt-port", "0", "--https-port", "0", "--dev-port", "0",
         "--api-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            if line.strip() == "gateway ready":
                break
        assert lines[-1] == "gateway ready", lines
        listeners = {line.split()[0] for line in lines[:-1]}
        assert {"dev", "mqtts", "https", "aws"} <= listeners
        assert any(line.startswith("dev") and "127.0.0.1:" in line for line in lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (home / "pki" / "ca.pem").is_file() and (home / "registry.db").is_file()
    assert os.stat(home / "pki" / "ca.key").st_mode & 0o077 == 0


def test_demo_shows_messages_flowing_and_a_policy_refusal(tmp_path: Path) -> None:
    result = subprocess.run([*EDGELOOP, "demo", "--home", str(tmp_path / "demo")], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("dashboard <- things/sensor-") == 15
    assert "PUBACK reason: Not authorized (0x87)" in result.stdout
    assert "converged=True" in result.stdout
    assert re.search(r"telemetry_to_kinesis\s+matched\s+15\s+dispatched\s+15", result.stdout)  # via the admin API
    assert (tmp_path / "demo" / "devices" / "sensor-1" / "sensor-1.private.key").is_file()
