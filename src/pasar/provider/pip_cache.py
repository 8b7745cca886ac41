"""The provider's cache of pip installs for jobs that declare requirements (``pip=[...]``).

Why outside the sandbox and binary wheels only: the job's sandbox stays offline, so the agent
installs for it, and ``--only-binary :all:`` means no package code (no ``setup.py``) runs on the
provider at install time; a requirement with only an sdist is refused, naming it.

Why a cache: an install is keyed by the sorted requirements and the Python version
(:func:`pasar.core.pip_requirements.cache_key`); leases with the same key share one install,
which is made read-only once complete (and bound read-only into each sandbox). A lock file per
key keeps two installers from racing; the loser finds the winner's install. The cache is capped
(``cap_bytes``): after an install, the least recently used other installs are evicted until the
total fits.

Where wheels come from is the provider's choice only (``pip_args``: ``--index-url``,
``--find-links DIR --no-index``...), never the job's: requirement strings are checked first.

Not yet wired into the executor (see docs/sdk.md).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pasar.core.errors import PasarError
from pasar.core.pip_requirements import cache_key, check_requirements

COMPLETE = ".complete"
SITE = "site"
DEFAULT_CAP_BYTES = 10 * 2**30
_TAIL = 1500


class PipInstallError(PasarError):
    """An install failed (no wheel, not found): the job's fault, not the provider's."""

    default_status = 400


def python_version(python: str = sys.executable) -> str:
    """``major.minor`` of the interpreter jobs run with (the key's second part)."""
    if python == sys.executable:
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    out = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _read_only(path: Path) -> None:
    """Strip write bits (the sandbox also binds it read-only; this guards the host side)."""
    for p in [path, *path.rglob("*")]:
        if p.is_symlink():
            continue
        mode = p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        p.chmod(mode)


def _remove(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o700)
    shutil.rmtree(path, ignore_errors=True)


def _evict(root: Path, keep: str, cap_bytes: int) -> None:
    """Drop the least recently used complete installs (not ``keep``) until the cache fits."""
    done = [d for d in root.iterdir() if (d / COMPLETE).exists()]
    sizes = {d.name: _size(d) for d in done}
    total = sum(sizes.values())
    for d in sorted(done, key=lambda d: (d / COMPLETE).stat().st_mtime):
        if total <= cap_bytes:
            break
        if d.name == keep:
            continue
        with _locked(root / f"{d.name}.lock"):
            _remove(d)
        total -= sizes[d.name]


def ensure_install(
    root: Path,
    requirements: Sequence[str],
    *,
    python: str = sys.executable,
    pip_args: Sequence[str] = (),
    cap_bytes: int = DEFAULT_CAP_BYTES,
) -> Path:
    """The read-only folder to put on the job's ``PYTHONPATH``, installing it if needed."""
    reqs = check_requirements(list(requirements))
    root.mkdir(parents=True, exist_ok=True)
    key = cache_key(reqs, python_version(python))
    home = root / key
    with _locked(root / f"{key}.lock"):
        if not (home / COMPLETE).exists():
            _install(home, reqs, python, pip_args)
        os.utime(home / COMPLETE)  # recently used: evicted last
    _evict(root, key, cap_bytes)
    return home / SITE


def _install(home: Path, reqs: tuple[str, ...], python: str, pip_args: Sequence[str]) -> None:
    if home.exists():
        _remove(home)  # an earlier install died half-way
    site = home / SITE
    site.mkdir(parents=True)
    argv = [
        python, "-m", "pip", "install", "--only-binary", ":all:", "--target", str(site),
        "--no-input", "--disable-pip-version-check", "--no-cache-dir", *pip_args, *reqs,
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        _remove(home)
        raise PipInstallError(
            f"pip could not install {', '.join(reqs)}: {out.stderr.strip()[-_TAIL:]}",
            code="pip_install_failed",
            field="pip",
            hint="each requirement needs a binary wheel for the provider's Python and platform "
            "(installs use --only-binary :all:, no sdists); check the name and version",
        )
    (home / COMPLETE).write_text("\n".join(reqs) + "\n")
    _read_only(site)
