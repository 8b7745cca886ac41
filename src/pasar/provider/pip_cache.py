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

Used by the lease executor through :class:`PipCache` (one per agent): a lease whose spec has
``pip:`` gets its install before its job starts, bound read-only into the sandbox
(:attr:`pasar.provider.runtime.base.Limits.pip_site`); an install failure ends the lease with a
failure receipt (``pip_install_failed``, the job's fault). Installs a running lease uses are
never evicted.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
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
    """Strip write bits (the sandbox also binds it read-only; this guards the host side) and
    let everyone read (a root provider's job runs as a uid of its own)."""
    for p in [path, *path.rglob("*")]:
        if p.is_symlink():
            continue
        mode = p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        mode |= stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
        if p.is_dir() or mode & stat.S_IXUSR:
            mode |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
        p.chmod(mode)


def _remove(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o700)
    shutil.rmtree(path, ignore_errors=True)


def _evict(root: Path, keep: Collection[str], cap_bytes: int) -> None:
    """Drop the least recently used complete installs (none in ``keep``) until the cache fits."""
    done = [d for d in root.iterdir() if (d / COMPLETE).exists()]
    sizes = {d.name: _size(d) for d in done}
    total = sum(sizes.values())
    for d in sorted(done, key=lambda d: (d / COMPLETE).stat().st_mtime):
        if total <= cap_bytes:
            break
        if d.name in keep:
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
    in_use: Collection[str] = (),
    timeout_s: float | None = None,
) -> Path:
    """The read-only folder to put on the job's ``PYTHONPATH``, installing it if needed.
    ``in_use``: keys of installs running leases use (never evicted); ``timeout_s``: how long
    pip may take (a hung index fails the install, it does not hold the lease forever)."""
    reqs = check_requirements(list(requirements))
    root.mkdir(parents=True, exist_ok=True)
    key = cache_key(reqs, python_version(python))
    home = root / key
    with _locked(root / f"{key}.lock"):
        if not (home / COMPLETE).exists():
            _install(home, reqs, python, pip_args, timeout_s)
        os.utime(home / COMPLETE)  # recently used: evicted last
    _evict(root, {key, *in_use}, cap_bytes)
    return home / SITE


def _failed(reqs: tuple[str, ...], why: str) -> PipInstallError:
    return PipInstallError(
        f"pip could not install {', '.join(reqs)}: {why}",
        code="pip_install_failed",
        field="pip",
        hint="each requirement needs a binary wheel for the provider's Python and platform "
        "(installs use --only-binary :all:, no sdists); check the name and version",
    )


def _install(
    home: Path,
    reqs: tuple[str, ...],
    python: str,
    pip_args: Sequence[str],
    timeout_s: float | None = None,
) -> None:
    if home.exists():
        _remove(home)  # an earlier install died half-way
    site = home / SITE
    site.mkdir(parents=True)
    argv = [
        python, "-m", "pip", "install", "--only-binary", ":all:", "--target", str(site),
        "--no-input", "--disable-pip-version-check", "--no-cache-dir", *pip_args, *reqs,
    ]  # fmt: skip
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _remove(home)
        raise _failed(reqs, f"pip did not finish within {timeout_s} s") from None
    if out.returncode != 0:
        _remove(home)
        raise _failed(reqs, out.stderr.strip()[-_TAIL:])
    (home / COMPLETE).write_text("\n".join(reqs) + "\n")
    _read_only(site)


class PipCache:
    """One agent's pip cache: where installs live, the provider's pip options (where wheels
    come from), the size cap, and which installs running leases hold (never evicted)."""

    def __init__(
        self,
        root: Path,
        pip_args: Sequence[str] = (),
        cap_bytes: int = DEFAULT_CAP_BYTES,
        python: str = sys.executable,
    ) -> None:
        self.root = root
        self.pip_args = tuple(pip_args)
        self.cap_bytes = cap_bytes
        self.python = python
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    def key(self, requirements: Sequence[str]) -> str:
        return cache_key(check_requirements(list(requirements)), python_version(self.python))

    @contextmanager
    def holding(self, requirements: Sequence[str], timeout_s: float | None) -> Iterator[Path]:
        """The install's site folder (installed here if needed), held while the block runs.
        Leases with the same requirements wait on one install (a lock per key) and share it."""
        key = self.key(requirements)
        with self._lock:
            self._held[key] += 1
        try:
            with self._lock:
                in_use = set(self._held)
            yield ensure_install(
                self.root,
                requirements,
                python=self.python,
                pip_args=self.pip_args,
                cap_bytes=self.cap_bytes,
                in_use=in_use,
                timeout_s=timeout_s,
            )
        finally:
            with self._lock:
                self._held[key] -= 1
                if self._held[key] <= 0:
                    del self._held[key]
