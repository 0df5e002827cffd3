"""The aws CLI (`aws s3 cp/ls`, `aws s3api …`) against the running API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.awsapi_helpers import ApiHandle
from tests.s3_helpers import api

pytestmark = pytest.mark.interop


@pytest.fixture
def handle(home: Path) -> Iterator[ApiHandle]:
    yield from api(home)


# Runs several aws CLI commands in one interpreter (the CLI's own entry code, started once: each separate
# `aws` process costs a second or more of imports). Each command's stdout follows a separator line.
_RUNNER = """
import sys
from awscli.clidriver import create_clidriver
for args in sys.argv[1].split("\\n"):
    print("==== " + args, flush=True)
    rc = create_clidriver().main(args.split("\\t"))
    sys.stdout.flush()
    if rc:
        sys.exit(rc)
"""


def aws(handle: ApiHandle, *commands: tuple[str, ...]) -> list[str]:
    """Run aws CLI commands against the API; returns each command's stdout."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    joined = "\n".join("\t".join(("--endpoint-url", handle.endpoint, *c)) for c in commands)
    done = subprocess.run([sys.executable, "-c", _RUNNER, joined], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return [part.split("\n", 1)[1] if "\n" in part else "" for part in done.stdout.split("==== ")[1:]]


def test_cli_cp_ls_and_s3api(handle: ApiHandle, tmp_path: Path) -> None:
    small = tmp_path / "small.json"
    small.write_text('{"ok": true}')
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * 1024 * 1024))
    back = tmp_path / "back.bin"
    out = aws(handle, ("s3", "mb", "s3://cli-bucket"),
              ("s3", "cp", str(small), "s3://cli-bucket/data/small.json"),
              ("s3", "cp", str(big), "s3://cli-bucket/data/big.bin"),
              ("s3", "ls", "s3://cli-bucket/data/"),
              ("s3", "cp", "s3://cli-bucket/data/big.bin", str(back)),
              ("s3api", "head-object", "--bucket", "cli-bucket", "--key", "data/big.bin"),
              ("s3", "rb", "--force", "s3://cli-bucket"))
    listing = out[3]
    assert "small.json" in listing and "big.bin" in listing and str(9 * 1024 * 1024) in listing
    assert back.read_bytes() == big.read_bytes()
    head: dict[str, Any] = json.loads(out[5])
    assert head["ContentLength"] == 9 * 1024 * 1024 and "-" in head["ETag"]
    assert "remove_bucket: cli-bucket" in out[6]
