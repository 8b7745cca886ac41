"""pasar doctor: each check says ok/warn/fail with a hint, and never changes the machine."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pasar import doctor
from pasar.doctor import Status, check_bubblewrap, check_home, check_python, run_checks


def test_python_ok() -> None:
    assert check_python().status is Status.OK


def test_home_missing_is_ok_and_not_created(tmp_path: Path) -> None:
    home = tmp_path / "nothere"
    check = check_home(home)
    assert check.status is Status.OK
    assert not home.exists()


def test_home_writable_by_others_fails(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    check = check_home(tmp_path)
    assert check.status is Status.FAIL
    assert check.hint == f"chmod 700 {tmp_path}"


def test_loose_key_file_fails_with_chmod_hint(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    key = keys / "default.key"
    key.write_text("{}")
    key.chmod(0o644)
    check = check_home(tmp_path)
    assert check.status is Status.FAIL
    assert check.hint == f"chmod 600 {key}"
    key.chmod(0o600)
    assert check_home(tmp_path).status is Status.OK


def test_home_that_is_a_file_fails(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    assert check_home(f).status is Status.FAIL


def test_missing_bwrap_fails_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.shutil, "which", lambda _name: None)
    check = check_bubblewrap()
    assert check.status is Status.FAIL
    assert "apt-get install bubblewrap" in (check.hint or "")


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed here")
def test_bwrap_starts_a_sandbox_here() -> None:
    # On this project's machines bubblewrap is installed by .ci/run and must really work.
    assert check_bubblewrap().status is Status.OK


def test_run_checks_covers_every_question(tmp_path: Path) -> None:
    names = [c.name for c in run_checks(tmp_path)]
    for expected in ("python", "bubblewrap", "nvidia gpus", "docker", "torch", "ray", "disk"):
        assert expected in names
    assert "pasar home" in names
    assert os.listdir(tmp_path) == []  # read-only: nothing was written
