"""`pasar config` and shell completion through the real CLI (issue 14: what users of SkyPilot
and kubectl expect): settings checked before they are written, other lines of config.toml kept,
and the `output` setting used as the default for -o."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml


def pasar(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PASAR_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    for name in ("PASAR_DEBUG", "PASAR_MARKET"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "pasar", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def test_set_get_show_unset_keep_the_rest_of_the_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    pins = '[tls_pins]\n"https://m.example:8420" = "sha256:ab"\n'
    (home / "config.toml").write_text(pins, encoding="utf-8")
    assert pasar(home, "config", "set", "market", "http://127.0.0.1:8420/").returncode == 0
    assert pasar(home, "config", "set", "max_price", "0.25 USDC").returncode == 0
    got = pasar(home, "config", "get", "market")
    assert (got.returncode, got.stdout) == (0, "http://127.0.0.1:8420\n")  # stored normalized
    data = tomllib.loads((home / "config.toml").read_text(encoding="utf-8"))
    assert data["tls_pins"] == {"https://m.example:8420": "sha256:ab"}  # the table is kept
    assert data["market"] == "http://127.0.0.1:8420" and data["max_price"] == "0.25 USDC"
    shown = json.loads(pasar(home, "config", "show", "--json").stdout)
    assert shown["settings"] == {"market": "http://127.0.0.1:8420", "max_price": "0.25 USDC"}
    assert pasar(home, "config", "unset", "max_price").returncode == 0
    assert pasar(home, "config", "get", "max_price").returncode == 1  # unset: exit 1, no error


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("market", "http://127.0.0.1:8420/v1", "market"),
        ("max_price", "lots", "max_price"),
        ("output", "xml", "output"),
        ("colour", "blue", "key"),
    ],
)
def test_a_bad_setting_is_refused_naming_it_and_nothing_is_written(
    tmp_path: Path, key: str, value: str, field: str
) -> None:
    refused = pasar(tmp_path, "config", "set", key, value)
    assert refused.returncode == 2 and f"field: {field}" in refused.stderr, refused.stderr
    assert not (tmp_path / "config.toml").exists()


def test_the_output_setting_is_the_default_format(spawn_market: Any, tmp_path: Path) -> None:
    market = spawn_market(tmp_path / "market")
    home = tmp_path / "client"
    assert pasar(home, "config", "set", "market", market.url).returncode == 0
    assert pasar(home, "config", "set", "output", "json").returncode == 0
    listed = pasar(home, "status")  # no -o: the setting's json
    assert listed.returncode == 0 and json.loads(listed.stdout) == {"orders": []}
    as_csv = pasar(home, "status", "-o", "csv")  # the flag wins over the setting
    assert as_csv.returncode == 0 and as_csv.stdout.startswith("order,name,status")
    as_yaml = pasar(home, "gpus", "-o", "yaml")
    assert as_yaml.returncode == 0 and yaml.safe_load(as_yaml.stdout) == {"models": []}


def test_shell_completion_scripts_are_offered(tmp_path: Path) -> None:
    script = pasar(tmp_path, "--show-completion", "bash")
    assert script.returncode == 0 and "_pasar_completion" in script.stdout


def test_gpus_all_is_the_catalogue_without_a_market(tmp_path: Path) -> None:
    """Issue 14 (`pasar show-gpus`): every model pasar knows, its VRAM, the presets' prices."""
    listed = pasar(tmp_path, "gpus", "--all", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    models = {m["model"]: m for m in json.loads(listed.stdout)["models"]}
    assert models["H100"]["vram_gb"] == [80, 94]
    assert models["H100"]["preset_prices"]["pasar"] == "2.00 USDC"
    assert "RTX4090" in models and models["GB200"]["preset_prices"] == {}
    table = pasar(tmp_path, "gpus", "--all")
    assert table.returncode == 0 and "H100" in table.stdout and "…" not in table.stdout


@pytest.mark.parametrize(
    "command",
    [["launch"], ["status"], ["offers"], ["gpus"], ["result"], ["audit"], ["config", "set"]],
)
def test_commands_show_an_example_in_their_help(tmp_path: Path, command: list[str]) -> None:
    shown = pasar(tmp_path, *command, "--help")
    assert shown.returncode == 0 and "Example: pasar " + command[0] in shown.stdout, shown.stdout
