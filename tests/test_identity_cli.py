"""`edgeloop pki|things|certs|policies|groups|types|cas`: what a user types and sees."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from edgeloop.cli import root
from edgeloop.config import PkiSection
from gateway.identity.errors import IdentityError
from gateway.identity.pki import CertificateAuthority, load_certificate

POLICY = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*"}]}'


def run(*args: str, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(root, list(args), input=stdin, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def fails(*args: str) -> IdentityError:
    result = CliRunner().invoke(root, list(args))
    assert result.exit_code == 1 and isinstance(result.exception, IdentityError), result.output
    return result.exception


def test_pki_init_is_idempotent_and_show_prints_the_ca(home: Path) -> None:
    first = run("pki", "init", "--name", "gw.local").output
    assert "server certificate" in first and "gw.local" in first
    assert run("pki", "init").output.splitlines()[0] == first.splitlines()[0]
    info = json.loads(run("pki", "show").output)
    assert info["server"]["status"] == "valid"
    assert run("pki", "show", "--pem").output == (home / "pki" / "ca.pem").read_text()


def test_things_create_writes_a_ready_identity(home: Path, tmp_path: Path) -> None:
    out = run("things", "create", "boiler-1", "--attr", "site=north").output
    cert_id = out.split()[3]
    key = tmp_path / "boiler-1.private.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca = load_certificate((tmp_path / "root-CA.pem").read_text())
    assert CertificateAuthority.open(home / "pki", PkiSection()).issued(
        load_certificate((tmp_path / "boiler-1.cert.pem").read_text())
    ) and ca.subject == load_certificate((home / "pki" / "ca.pem").read_text()).subject
    described = json.loads(run("things", "describe", "boiler-1").output)
    assert described["attributes"] == {"site": "north"}
    assert described["principals"][0]["principal"].endswith(cert_id)
    cert = json.loads(run("certs", "describe", cert_id[:8]).output)
    assert cert["status"] == "ACTIVE" and cert["things"] == ["boiler-1"] and cert["policies"] == ["edgeloop-thing"]
    assert run("things", "list").output.split()[0] == "boiler-1"
    assert "has certificates attached" in str(fails("things", "delete", "boiler-1"))
    run("things", "delete", "boiler-1", "--with-certs")
    assert run("certs", "list").output == ""


def test_certificate_status_commands_take_a_prefix(home: Path) -> None:
    cert_id = run("certs", "create", "--out", "certs").output.strip()
    assert "INACTIVE" in run("certs", "list").output
    assert run("certs", "activate", cert_id[:6]).output.strip() == f"certificate {cert_id} is ACTIVE"
    run("certs", "revoke", cert_id[:10])
    assert "revoked and cannot be made ACTIVE" in str(fails("certs", "activate", cert_id))
    assert "at least 6" in str(fails("certs", "revoke", "abc"))
    run("certs", "delete", cert_id)


def test_policies_versions_and_attachments(home: Path) -> None:
    run("policies", "create", "publish-all", "-", stdin=POLICY)
    assert run("policies", "list").output.split() == ["publish-all"]
    assert type(fails("policies", "create", "broken", "-")).__name__ == "MalformedPolicy"
    run("policies", "create-version", "publish-all", "-", "--default", stdin=POLICY)
    assert run("policies", "versions", "publish-all").output.startswith("* 2")
    run("policies", "set-default", "publish-all", "1")
    assert json.loads(run("policies", "get", "publish-all").output)["defaultVersionId"] == "1"
    run("groups", "create", "plant")
    run("groups", "create", "hall", "--parent", "plant")
    run("policies", "attach", "publish-all", "--group", "hall")
    assert run("policies", "targets", "publish-all").output.strip().endswith(":thinggroup/hall")
    assert json.loads(run("groups", "describe", "hall").output)["policies"] == ["publish-all"]
    assert "exactly one target" in str(fails("policies", "detach", "publish-all"))
    run("policies", "detach", "publish-all", "--group", "hall")
    run("policies", "delete-version", "publish-all", "2")
    run("policies", "delete", "publish-all")


def test_groups_and_types(home: Path) -> None:
    run("types", "create", "sensor", "--description", "a sensor", "--searchable", "model")
    run("things", "create", "s1", "--type", "sensor", "--no-cert", "--attr", "model=x")
    run("groups", "create", "lab")
    run("groups", "add-thing", "lab", "s1")
    assert run("groups", "things", "lab").output.split() == ["s1"]
    assert run("things", "list", "--type", "sensor").output.split()[:2] == ["s1", "sensor"]
    assert run("things", "list", "--attr", "model=x").output.split()[0] == "s1"
    run("types", "deprecate", "sensor")
    assert "sensor  deprecated" in run("types", "list").output
    assert "deprecated" in str(fails("things", "create", "s2", "--type", "sensor", "--no-cert"))
    run("groups", "remove-thing", "lab", "s1")
    run("groups", "delete", "lab")
    assert run("groups", "list").output == ""


def test_external_ca_registration(home: Path, tmp_path: Path) -> None:
    byo = CertificateAuthority.open(tmp_path / "byo", PkiSection())
    (tmp_path / "byo.pem").write_text(byo.certificate_pem)
    device = byo.issue_device("byo-1")
    (tmp_path / "byo-1.pem").write_text(device.certificate_pem)
    ca_id = run("cas", "register", "byo.pem", "--active", "--auto-register").output.strip()
    assert json.loads(run("cas", "describe", ca_id[:8]).output)["autoRegistrationStatus"] == "ENABLE"
    assert run("certs", "register", "byo-1.pem", "--active").output.strip() == device.certificate_id
    assert run("certs", "list", "--ca", ca_id[:8]).output.split()[0] == device.certificate_id
    assert "is ACTIVE" in str(fails("cas", "delete", ca_id))
    run("cas", "update", ca_id, "--status", "INACTIVE")
    run("cas", "delete", ca_id)
    assert run("cas", "list").output == ""


def test_create_fleet(home: Path, tmp_path: Path) -> None:
    out = run("things", "create-fleet", "bench", "3").output
    assert "3 things bench-0001 … bench-0003" in out
    assert sorted(p.name for p in (tmp_path / "fleet").iterdir()) == ["bench-0001", "bench-0002", "bench-0003"]
    assert len(run("certs", "list").output.splitlines()) == 3


@pytest.mark.parametrize(("args", "message"), [
    (["things", "describe", "nope"], "error: thing nope does not exist"),
    (["things", "create", "bad name"], "error: invalid thing name 'bad name': must be 1-128 characters"),
])
def test_errors_are_one_line(home: Path, args: list[str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "edgeloop.cli", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
