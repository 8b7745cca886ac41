"""`pasar presets` and `pasar presets show NAME`, run as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pasar.core.presets import BUILTIN_PRESETS


def run_pasar(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "pasar", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_list_json_has_every_preset() -> None:
    proc = run_pasar("presets", "--json")
    assert proc.returncode == 0, proc.stderr
    names = [p["name"] for p in json.loads(proc.stdout)]
    assert names == list(BUILTIN_PRESETS)


def test_list_table() -> None:
    proc = run_pasar("presets")
    assert proc.returncode == 0
    for name in BUILTIN_PRESETS:
        assert name in proc.stdout


def test_show_prints_sources() -> None:
    proc = run_pasar("presets", "show", "ionet")
    assert proc.returncode == 0
    assert "Sources" in proc.stdout
    assert "0.25%" in proc.stdout


def test_show_json_is_exact() -> None:
    proc = run_pasar("presets", "show", "ionet", "--json")
    data = json.loads(proc.stdout)
    assert data["fees"]["USDC"]["take_rate"] == "1/50"
    assert data["timing"]["uptime_block_s"] == 3600


def test_unknown_preset_exits_2_with_hint() -> None:
    proc = run_pasar("presets", "show", "akahs", "--json")
    assert proc.returncode == 2
    err = json.loads(proc.stdout)["error"]
    assert err["code"] == "unknown_preset"
    assert "akash" in err["hint"]
    assert "Traceback" not in proc.stderr
