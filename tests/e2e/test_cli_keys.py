"""`pasar keys` through the real CLI, as a user runs it (a subprocess, $PASAR_HOME in tmp)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pasar.crypto.identity import parse_account_id


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PASAR_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("PASAR_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "pasar", "keys", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr


def test_new_then_show(tmp_path: Path) -> None:
    created = run(tmp_path, "new")
    assert created.returncode == 0, created.stderr
    key_file = tmp_path / "keys" / "default.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    shown = run(tmp_path, "show", "--json")
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    parse_account_id(info["account_id"])
    assert info["account_id"] in created.stdout
    assert info["path"] == str(key_file)
    assert info["mode"] == "0600" and info["permissions_ok"] is True

    text = run(tmp_path, "show")
    assert text.returncode == 0
    assert info["account_id"] in text.stdout and "0600" in text.stdout
    no_traceback(text)


def test_new_json_and_named_keys(tmp_path: Path) -> None:
    a = run(tmp_path, "new", "--name", "market", "--json")
    b = run(tmp_path, "new", "--name", "provider-1", "--json")
    assert a.returncode == b.returncode == 0
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    assert ja["name"] == "market" and ja["account_id"] != jb["account_id"]
    listed = json.loads(run(tmp_path, "list", "--json").stdout)
    assert [k["name"] for k in listed["keys"]] == ["market", "provider-1"]


def test_home_option_overrides_env(tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert run(tmp_path, "new", "--home", str(other)).returncode == 0
    assert (other / "keys" / "default.key").exists()
    assert not (tmp_path / "keys").exists()


def test_new_keeps_an_existing_key_and_explains_unless_forced(tmp_path: Path) -> None:
    first = json.loads(run(tmp_path, "new", "--json").stdout)
    assert first["created"] is True
    again = run(tmp_path, "new")  # e.g. after a command created the default key by itself
    assert again.returncode == 0, again.stderr
    assert "already have a key 'default'" in again.stdout and first["account_id"] in again.stdout
    assert "--force" in again.stdout and "creates the default key" in again.stdout
    no_traceback(again)
    kept = json.loads(run(tmp_path, "new", "--json").stdout)
    assert (kept["created"], kept["account_id"]) == (False, first["account_id"])
    assert json.loads(run(tmp_path, "show", "--json").stdout)["account_id"] == first["account_id"]
    forced = json.loads(run(tmp_path, "new", "--force", "--json").stdout)
    assert forced["account_id"] != first["account_id"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_loose_permissions_exit_2_with_hint(tmp_path: Path) -> None:
    assert run(tmp_path, "new").returncode == 0
    key_file = tmp_path / "keys" / "default.key"
    key_file.chmod(0o644)

    result = run(tmp_path, "show")
    assert result.returncode == 2
    no_traceback(result)
    assert f"chmod 600 {key_file}" in result.stderr
    assert "0644" in result.stderr

    as_json = run(tmp_path, "show", "--json")
    assert as_json.returncode == 2
    no_traceback(as_json)
    error = json.loads(as_json.stdout)["error"]
    assert error["code"] == "key_file_permissions"
    assert f"chmod 600 {key_file}" in error["hint"]


def test_missing_key_exit_2(tmp_path: Path) -> None:
    result = run(tmp_path, "show", "--name", "ghost")
    assert result.returncode == 2
    no_traceback(result)
    assert "pasar keys new --name ghost" in result.stderr


def test_bad_name_exit_2(tmp_path: Path) -> None:
    result = run(tmp_path, "new", "--name", "../escape", "--json")
    assert result.returncode == 2
    assert json.loads(result.stdout)["error"]["code"] == "invalid_key_name"
    assert not (tmp_path / "escape.key").exists()
