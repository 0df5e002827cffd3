"""Group-commit fsync: concurrent writers share batches, every policy makes data reach the file."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from gateway.storage.durable import GroupSync, atomic_write


@pytest.mark.parametrize("policy", ["always", "interval", "never"])
async def test_every_policy_delivers_the_bytes(tmp_path: Path, policy: str) -> None:
    sync = GroupSync(policy, interval_ms=5)
    path = tmp_path / "log"
    with open(path, "ab") as f:
        for i in range(20):
            f.write(b"%d\n" % i)
            await sync.sync(f)
        await sync.close()
    assert path.read_bytes().count(b"\n") == 20


async def test_concurrent_writers_share_fsync_batches(tmp_path: Path) -> None:
    sync = GroupSync("always")
    files = [open(tmp_path / f"f{i}", "ab") for i in range(4)]  # noqa: SIM115
    try:
        async def writer(n: int) -> None:
            f = files[n % 4]
            f.write(b"x" * 10)
            await sync.sync(f)

        await asyncio.gather(*(writer(n) for n in range(400)))
        assert sync.batches < 400 and sync.fsyncs < 400
        assert sum(os.path.getsize(tmp_path / f"f{i}") for i in range(4)) == 4000
    finally:
        await sync.close()
        for f in files:
            f.close()


async def test_a_closed_file_is_refused_and_the_syncer_goes_on(tmp_path: Path) -> None:
    sync = GroupSync("always")
    good = open(tmp_path / "good", "ab")  # noqa: SIM115
    bad = open(tmp_path / "bad", "ab")  # noqa: SIM115
    bad.close()
    with pytest.raises(ValueError):
        await sync.sync(bad)
    good.write(b"ok")
    await sync.sync(good)
    await sync.close()
    good.close()
    assert (tmp_path / "good").read_bytes() == b"ok"


def test_atomic_write_replaces_whole_file_with_mode(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    atomic_write(target, b"first", mode=0o600)
    atomic_write(target, b"second", mode=0o600)
    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]
