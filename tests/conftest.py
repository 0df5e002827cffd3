"""Shared fixtures: every test gets its own data directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeloop.config import Config
from gateway.identity.registry import Registry


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data directory, also exported as $EDGELOOP_HOME."""
    d = tmp_path / "home"
    d.mkdir()
    monkeypatch.setenv("EDGELOOP_HOME", str(d))
    monkeypatch.chdir(tmp_path)
    return d


@pytest.fixture
def registry(home: Path) -> Iterator[Registry]:
    """A registry (and CA) in `home`, with a server certificate for loopback names only."""
    config = Config(data_dir=str(home))
    config.pki.include_host_addresses = False
    with Registry.open(config) as reg:
        yield reg
