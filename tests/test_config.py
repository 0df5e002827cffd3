"""The configuration loader: defaults, TOML overrides, flags, and precise errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgeloop.config import Config, load_config, to_toml
from edgeloop.errors import ConfigError


def test_defaults_match_the_documented_ports(home: Path) -> None:
    config = load_config()
    assert (config.mqtt.port, config.mqtt.https_port, config.api.port) == (8883, 8443, 4566)
    assert config.mqtt.dev is False
    assert config.api.host == "127.0.0.1"
    assert config.home == home


def test_toml_and_flag_overrides(tmp_path: Path, home: Path) -> None:
    path = tmp_path / "edgeloop.toml"
    path.write_text('[mqtt]\nport = 9999\nconnect_timeout_secs = 3\n[aws]\nregion = "eu-west-1"\n')
    config = load_config(path, {"mqtt.port": 1234, "data_dir": None})
    assert config.mqtt.port == 1234
    assert config.mqtt.connect_timeout_secs == 3.0
    assert config.aws.region == "eu-west-1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[mqtt]\nprot = 1\n", "unknown config key mqtt.prot"),
        ('[mqtt]\nport = "x"\n', "mqtt.port must be int"),
        ("[mqtt]\ndev = 1\n", "mqtt.dev must be bool"),
        ('[pki]\nkey_type = "dsa"\n', "pki.key_type must be 'ec' or 'rsa'"),
        ("[mqtt\n", "invalid TOML"),
        ("[mqtt]\nport = 70000\n", "port number"),
        ("[rules]\nregex_budget_ms = 0\n", "rules.regex_budget_ms must be a positive number"),
    ],
)
def test_bad_config_is_named_precisely(tmp_path: Path, home: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_show_round_trips(tmp_path: Path, home: Path) -> None:
    text = to_toml(Config(data_dir=str(home)))
    path = tmp_path / "shown.toml"
    path.write_text(text)
    assert load_config(path) == Config(data_dir=str(home))


def test_cli_prints_one_line_errors(tmp_path: Path, home: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt]\nport = 'x'\n")
    result = subprocess.run(
        [sys.executable, "-m", "edgeloop.cli", "--config", str(bad), "config", "show"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: mqtt.port must be int, not str ('x')"
    shown = subprocess.run(
        [sys.executable, "-m", "edgeloop.cli", "config", "show"], capture_output=True, text=True, check=True
    )
    assert "[mqtt]\nhost = " in shown.stdout
