"""The quickstart on a fresh machine: ``make demo`` / ``make test`` check bubblewrap first.

``scripts/ensure-system-deps`` runs before ``.venv`` is made. Without bubblewrap it installs it
when it can (root, or passwordless sudo) and otherwise stops at once with one sentence saying
what to install, having created nothing. These tests never run the real apt-get: PATH is a
folder of links to the system's commands minus ``bwrap``, ``sudo`` and ``apt-get``, plus a
fake ``apt-get`` that records how it was called.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ensure-system-deps"
NOBODY = 65534
SYSTEM_BIN = ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin")
SENTENCE = "pasar needs bubblewrap"

FAKE_APT_GET = """#!/bin/sh
echo "${DEBIAN_FRONTEND:-} $*" >> "$(dirname "$0")/../apt-get.log"
if [ "$1" = install ]; then
    printf '#!/bin/sh\\nexit 0\\n' > "$(dirname "$0")/bwrap" && chmod 755 "$(dirname "$0")/bwrap"
fi
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder the unprivileged user may write in (pytest's own tmp_path is root's, 0700):
    so that a ``.venv`` *could* be created there if the Makefile tried."""
    path = Path(tempfile.mkdtemp(prefix="pasar-sysdeps-", dir="/tmp"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fake_bin(root: Path, *, without: set[str]) -> Path:
    """Links to every system command except ``without``, and the recording fake apt-get."""
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for folder in SYSTEM_BIN:
        if not Path(folder).is_dir():
            continue
        for exe in Path(folder).iterdir():
            link = bin_dir / exe.name
            if exe.name in without or exe.name == "apt-get" or link.exists():
                continue
            if exe.is_file() and os.access(exe, os.X_OK):
                link.symlink_to(exe)
    apt = bin_dir / "apt-get"
    apt.write_text(FAKE_APT_GET)
    apt.chmod(0o755)
    bin_dir.chmod(0o777)
    return bin_dir


def unprivileged() -> list[str]:
    """The prefix that runs a command as ``nobody`` (nothing when the tests are not root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to drop root for this test")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]


def env_with(path: str, home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TERM")}
    return {**keep, "PATH": path, "HOME": str(home)}


def copy_of_checkout(dest: Path) -> Path:
    """What `make` reads before the venv exists: the Makefile, pyproject.toml and scripts/."""
    work = dest / "checkout"
    work.mkdir()
    shutil.copy2(ROOT / "Makefile", work / "Makefile")
    shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")
    shutil.copytree(ROOT / "scripts", work / "scripts")
    for path in (work, *work.rglob("*")):
        path.chmod(0o777 if path.is_dir() or os.access(path, os.X_OK) else 0o666)
    return work


@pytest.mark.parametrize("goal", ["demo", "test"])
def test_without_bwrap_or_root_make_stops_before_creating_anything(
    shared_dir: Path, goal: str
) -> None:
    prefix = unprivileged()
    bin_dir = fake_bin(shared_dir, without={"bwrap", "sudo"})
    if not (bin_dir / "make").exists():
        pytest.skip("make is not installed")
    work = copy_of_checkout(shared_dir)
    before = sorted(p.relative_to(work) for p in work.rglob("*"))
    done = subprocess.run(
        [*prefix, str(bin_dir / "make"), "--no-print-directory", goal],
        cwd=work,
        env=env_with(str(bin_dir), shared_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0, done.stdout + done.stderr
    said = [line for line in done.stderr.splitlines() if SENTENCE in line]
    assert len(said) == 1, done.stderr
    sentence = said[0]
    assert sentence.count(". ") == 0 and sentence.endswith(".")  # one sentence
    assert "apt-get install bubblewrap" in sentence
    assert "root" in sentence
    assert not (work / ".venv").exists()
    assert sorted(p.relative_to(work) for p in work.rglob("*")) == before
    assert not (shared_dir / "apt-get.log").exists()


def test_with_bwrap_present_the_check_is_a_no_op(shared_dir: Path) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed on this machine")
    prefix = unprivileged()
    bin_dir = fake_bin(shared_dir, without={"sudo"})
    done = subprocess.run(
        [*prefix, str(SCRIPT)],
        env=env_with(str(bin_dir), shared_dir),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert not (shared_dir / "apt-get.log").exists()


def test_as_root_a_missing_bwrap_is_installed_the_way_ci_does(shared_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the install branch runs as root (or with passwordless sudo)")
    bin_dir = fake_bin(shared_dir, without={"bwrap", "sudo"})
    done = subprocess.run(
        [str(SCRIPT), "bubblewrap"],
        env=env_with(str(bin_dir), shared_dir),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    calls = (shared_dir / "apt-get.log").read_text().splitlines()
    assert calls == ["noninteractive update -qq", "noninteractive install -y -qq bubblewrap"]
    assert (bin_dir / "bwrap").exists()


def test_unknown_package_is_a_usage_error() -> None:
    done = subprocess.run(
        [str(SCRIPT), "left-pad"], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2 and "unknown package 'left-pad'" in done.stderr
