"""`edgeloop rules …`: files written and read directly, validation before writing, `rules test`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from edgeloop.cli import root
from edgeloop.errors import EdgeloopError
from gateway.dispatcher.store import RuleFiles
from tests.test_dispatch_support import ROLE

KINESIS = json.dumps({"kinesis": {"roleArn": ROLE, "streamName": "telemetry", "partitionKey": "${topic(2)}"}})


def rules(home: Path, *args: str) -> str:
    result = CliRunner().invoke(root, ["--home", str(home), "rules", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_create_list_get_enable_disable_delete(home: Path) -> None:
    out = rules(home, "create", "temps", "--sql", "SELECT temp FROM 'sensors/+/telemetry'", "--action", KINESIS,
                "--description", "temperatures")
    assert "rule temps created (enabled, FROM 'sensors/+/telemetry', 1 action(s))" in out
    payload = {"sql": "SELECT * FROM 'alerts/#'", "actions": [], "ruleDisabled": True}
    (home / "alerts.json").write_text(json.dumps(payload))
    rules(home, "create", "alerts", "--file", str(home / "alerts.json"))

    listing = rules(home, "list").splitlines()
    assert listing == ["alerts  disabled  alerts/#  -", "temps   enabled   sensors/+/telemetry  kinesis"]
    doc = json.loads(rules(home, "get", "temps"))
    assert doc["description"] == "temperatures" and doc["actions"] == [json.loads(KINESIS)]

    rules(home, "enable", "alerts")
    rules(home, "disable", "temps")
    stored = RuleFiles.for_home(home)
    assert not stored.read("alerts").rule.disabled and stored.read("temps").rule.disabled
    assert stored.read("temps").created_at == doc["createdAt"]
    rules(home, "delete", "alerts")
    assert stored.names() == ["temps"]


def test_invalid_files_are_listed_with_their_error(home: Path) -> None:
    (home / "rules").mkdir()
    (home / "rules" / "broken.json").write_text('{"sql": "SELECT * FROM", "actions": []}')
    line = rules(home, "list").strip()
    assert line.startswith("broken  INVALID") and "line 1" in line


def test_bad_input_is_one_line_and_exit_1_and_nothing_is_written(home: Path) -> None:
    cases = [
        (["create", "x", "--sql", "SELECT nosuch(a) FROM 'a'"], "nosuch"),
        (["create", "x", "--sql", "SELECT * FROM 'a/#/b'"], "#"),
        (["create", "x", "--sql", "SELECT * FROM 'a'", "--action", '{"kinesis": {"roleArn": "' + ROLE + '"}}'],
         "streamName is required"),
        (["create", "bad name", "--sql", "SELECT * FROM 'a'"], "invalid rule name"),
        (["create", "x"], "--file"),
        (["get", "nothing"], "no rule named 'nothing'"),
    ]
    for args, needle in cases:
        result = CliRunner().invoke(root, ["--home", str(home), "rules", *args])
        assert isinstance(result.exception, EdgeloopError), (args, result.output)
        assert needle in str(result.exception) and "\n" not in str(result.exception), args
    # what a user sees from the real entry point: one line on stderr, exit status 1
    proc = subprocess.run([sys.executable, "-m", "edgeloop.cli", "--home", str(home), "rules", "create", "x",
                           "--sql", "SELECT * FROM 'a' WHERE"], capture_output=True, text=True, timeout=60, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: line 1"), proc.stderr
    assert not (home / "rules").exists() or RuleFiles.for_home(home).names() == []


def test_rules_test_prints_output_and_rendered_actions(home: Path) -> None:
    rules(home, "create", "temps", "--sql", "SELECT temp, clientid() AS who FROM 'sensors/+/telemetry' WHERE temp > 3",
          "--action", KINESIS)
    out = rules(home, "test", "temps", "--topic", "sensors/s9/telemetry", "--payload", '{"temp": 7}',
                "--client-id", "dev1").splitlines()
    assert out[0] == "FROM 'sensors/+/telemetry': matches 'sensors/s9/telemetry'"
    assert out[1] == 'output: {"temp":7,"who":"dev1"}'
    action = json.loads(out[2].split(": ", 1)[1])
    assert out[2].startswith("action[0] kinesis") and action == {
        "streamName": "telemetry", "partitionKey": "s9", "data": '{"temp":7,"who":"dev1"}'}

    filtered = rules(home, "test", "temps", "--topic", "sensors/s9/telemetry", "--payload", '{"temp": 1}')
    assert "WHERE: false or undefined -> no actions run" in filtered
    (home / "raw.bin").write_bytes(b"\xff\x00")
    raw = rules(home, "test", "--sql", "SELECT * FROM 'b'", "--topic", "b", "--payload", f"@{home / 'raw.bin'}")
    assert "output: (raw bytes, base64) /wA=" in raw
    sqs = json.dumps({"sqs": {"roleArn": ROLE, "queueUrl": "http://q/000000000000/q"}})
    failing = rules(home, "test", "--sql", "SELECT * FROM 'b'", "--action", sqs, "--topic", "b",
                    "--payload", f"@{home / 'raw.bin'}")
    assert "action[0] sqs: ERROR the message is not UTF-8 text" in failing
