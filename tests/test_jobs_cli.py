"""`edgeloop jobs ...` and `edgeloop provisioning ...` against a running gateway (through its `iot` API)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeloop.cli import root
from tests.test_jobs_support import FLEET_TEMPLATE, GatewayThread, running_gateway


@pytest.fixture
def gw(home: Path) -> Iterator[GatewayThread]:
    with running_gateway(home) as g:
        assert g.gateway.api is not None
        Path("edgeloop.toml").write_text(f"[api]\nport = {g.gateway.api.port}\n")  # cwd is the test's tmp dir
        yield g


def run(*args: str) -> str:
    result = CliRunner().invoke(root, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_jobs_commands(gw: GatewayThread, tmp_path: Path) -> None:
    iot = gw.client("iot")
    iot.create_thing(thingName="a")
    iot.create_thing(thingName="b")
    iot.create_thing_group(thingGroupName="g")
    iot.add_thing_to_thing_group(thingGroupName="g", thingName="b")
    document = tmp_path / "job.json"
    document.write_text(json.dumps({"operation": "reboot"}))
    arn = run("jobs", "create", "j1", "--targets", "thing/a,group/g", "--document", str(document),
              "--description", "reboot").strip()
    assert arn.endswith(":job/j1")
    assert run("jobs", "list").split() == ["j1", "IN_PROGRESS", "SNAPSHOT"]
    assert json.loads(run("jobs", "describe", "j1"))["jobProcessDetails"]["numberOfQueuedThings"] == 2
    assert json.loads(run("jobs", "document", "j1")) == {"operation": "reboot"}
    assert sorted(line.split("\t")[0] for line in run("jobs", "executions", "j1").splitlines()) == ["a", "b"]
    run("jobs", "cancel", "j1", "--comment", "not now")
    assert iot.describe_job(jobId="j1")["job"]["status"] == "CANCELED"
    run("jobs", "delete", "j1")
    assert run("jobs", "list") == ""


def test_jobs_errors_are_one_line(gw: GatewayThread, tmp_path: Path) -> None:
    document = tmp_path / "job.json"
    document.write_text("{}")
    result = CliRunner().invoke(root, ["jobs", "create", "j1", "--targets", "thing/ghost", "--document",
                                       str(document)])
    assert result.exit_code == 1 and "ResourceNotFoundException" in str(result.exception)
    result = CliRunner().invoke(root, ["jobs", "create", "j1", "--targets", "robot/x", "--document", str(document)])
    assert result.exit_code == 2 and "thing/<name>, group/<name>" in result.output


def test_provisioning_commands(gw: GatewayThread, tmp_path: Path) -> None:
    template = tmp_path / "fleet.json"
    template.write_text(FLEET_TEMPLATE)
    assert run("provisioning", "create", "fleet", str(template), "--description", "line 1").strip().endswith(
        ":provisioningtemplate/fleet")
    assert run("provisioning", "list").split("\t")[:2] == ["fleet", "enabled"]
    run("provisioning", "enable", "fleet", "--off")
    assert json.loads(run("provisioning", "describe", "fleet"))["enabled"] is False
    run("provisioning", "delete", "fleet")
    assert run("provisioning", "list") == ""
