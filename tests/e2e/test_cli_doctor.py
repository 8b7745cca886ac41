"""The real `pasar doctor` and `pasar --version` commands, run as processes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from pasar import __version__


def run_pasar(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PASAR_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "pasar", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_version(tmp_path: Path) -> None:
    proc = run_pasar("--version", home=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"pasar {__version__}"


def test_doctor_json_lists_every_check(tmp_path: Path) -> None:
    proc = run_pasar("doctor", "--json", home=tmp_path)
    data = json.loads(proc.stdout)
    statuses = {c["name"]: c["status"] for c in data["checks"]}
    assert set(statuses.values()) <= {"ok", "warn", "fail"}
    assert {"python", "bubblewrap", "nvidia gpus", "docker", "disk", "pasar home"} <= set(statuses)
    assert proc.returncode == (0 if data["ok"] else 1)
    for check in data["checks"]:
        if check["status"] != "ok":
            assert check["hint"] or check["name"] == "nvidia gpus"


def test_doctor_table_shows_extras_hint(tmp_path: Path) -> None:
    proc = run_pasar("doctor", home=tmp_path)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "bubblewrap" in proc.stdout
    if importlib.util.find_spec("torch") is None:
        assert "pasar[ml]" in proc.stdout  # rich markup must not eat the extra's brackets


def test_doctor_fails_on_loose_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(parents=True)
    (keys / "default.key").write_text("{}")
    (keys / "default.key").chmod(0o644)
    proc = run_pasar("doctor", "--json", home=tmp_path)
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    home = next(c for c in data["checks"] if c["name"] == "pasar home")
    assert home["status"] == "fail"
    assert "chmod 600" in home["hint"]


def test_unknown_command_exits_2(tmp_path: Path) -> None:
    proc = run_pasar("no-such-command", home=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
