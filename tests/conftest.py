"""Shared fixtures: every test gets its own data directory."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data directory, also exported as $EDGELOOP_HOME."""
    d = tmp_path / "home"
    d.mkdir()
    monkeypatch.setenv("EDGELOOP_HOME", str(d))
    monkeypatch.chdir(tmp_path)
    return d
