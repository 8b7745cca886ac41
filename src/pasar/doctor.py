"""Read-only checks of this machine for running a provider or a market node.

Each check answers one question ("can bubblewrap start a sandbox here?") with ok, warn or fail
and, unless ok, a hint that says what to do. Nothing here installs or changes anything: doctor
must be safe to run anywhere, including on a provider's personal machine.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

import psutil

from pasar.crypto.identity import pasar_home
from pasar.provider.hardware import detect_nvidia_gpus

MIN_PYTHON = (3, 11)
GIB = 1024**3
DISK_OK_GIB = 20
DISK_WARN_GIB = 2
SUBPROCESS_TIMEOUT_S = 10


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """The answer to one question about this machine."""

    name: str
    status: Status
    detail: str
    hint: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        out = asdict(self)
        out["status"] = self.status.value
        return out


def check_python() -> Check:
    version = platform.python_version()
    if sys.version_info[:2] >= MIN_PYTHON:
        return Check("python", Status.OK, f"Python {version}")
    return Check(
        "python",
        Status.FAIL,
        f"Python {version} is older than {MIN_PYTHON[0]}.{MIN_PYTHON[1]}",
        "install Python 3.11 or newer",
    )


BWRAP_PROBE = [
    "--unshare-all", "--die-with-parent",
    "--ro-bind", "/usr", "/usr",
    "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
    "--symlink", "usr/bin", "/bin",
    "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
    "true",
]  # fmt: skip


def check_bubblewrap() -> Check:
    """The sandbox runtime needs bwrap *and* a kernel that lets it create namespaces."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Check(
            "bubblewrap",
            Status.FAIL,
            "bwrap not found: the default sandbox runtime cannot run jobs",
            "install it: sudo apt-get install bubblewrap (or dnf/pacman install bubblewrap)",
        )
    try:
        proc = subprocess.run(
            [bwrap, *BWRAP_PROBE], capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("bubblewrap", Status.FAIL, f"bwrap could not run: {exc}", None)
    if proc.returncode != 0:
        return Check(
            "bubblewrap",
            Status.FAIL,
            f"bwrap is installed but cannot create a sandbox: {proc.stderr.strip()[:200]}",
            "allow unprivileged user namespaces: sudo sysctl -w kernel.unprivileged_userns_clone=1 "
            "(and on Ubuntu 24.04+: kernel.apparmor_restrict_unprivileged_userns=0)",
        )
    return Check("bubblewrap", Status.OK, f"{bwrap} starts a sandbox with all namespaces unshared")


def check_cgroups() -> Check:
    """Whether jobs get a cgroup each (memory, CPU and processes bounded for the whole job) or
    only per-process rlimits — what the provider advertises as its ``limits`` attribute."""
    from pasar.provider.runtime.cgroups import WANTED, detect

    support = detect()
    if support.version is None:
        return Check(
            "cgroups",
            Status.WARN,
            f"no per-job cgroups ({support.detail}): memory, CPU and processes are limited "
            "per process only (rlimits), so a job of several processes can use more",
            "run the agent as root, or in a systemd unit with Delegate=yes whose cgroup v2 "
            "group enables memory, cpu and pids for its children",
        )
    missing = [name for name in WANTED if name not in support.controllers]
    if missing:
        return Check(
            "cgroups",
            Status.WARN,
            f"per-job {support.version} groups without {', '.join(missing)}: {support.detail}",
            "mount and delegate the missing controllers",
        )
    return Check(
        "cgroups",
        Status.OK,
        f"per-job cgroup {support.version} groups limit {', '.join(support.controllers)} "
        f"({support.detail})",
    )


def check_nvidia() -> Check:
    report = detect_nvidia_gpus()
    if report.unavailable_reason is not None:
        return Check(
            "nvidia gpus",
            Status.WARN,
            f"no NVIDIA GPU usable ({report.unavailable_reason}); this machine can sell CPU only",
            "install the NVIDIA driver to sell GPU time",
        )
    if not report.gpus:
        return Check("nvidia gpus", Status.WARN, "NVML found no GPUs", None)
    names = ", ".join(f"{g.name} ({g.memory_mib // 1024} GiB)" for g in report.gpus)
    return Check(
        "nvidia gpus",
        Status.OK,
        f"{len(report.gpus)} GPU(s): {names}; driver {report.driver_version}, "
        f"CUDA {report.cuda_version}",
    )


def check_docker() -> Check:
    docker = shutil.which("docker")
    if docker is None:
        return Check(
            "docker",
            Status.WARN,
            "docker client not found: the docker runtime is unavailable",
            "install Docker Engine to run image-based and GPU jobs in containers",
        )
    try:
        proc = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("docker", Status.WARN, f"docker did not answer: {exc}", None)
    if proc.returncode != 0 or not proc.stdout.strip():
        return Check(
            "docker",
            Status.WARN,
            "docker client found but no engine answers",
            "start the engine (sudo systemctl start docker) or use the sandbox runtime",
        )
    return Check("docker", Status.OK, f"Docker Engine {proc.stdout.strip()}")


def _optional_package(name: str, dist: str, extra: str, purpose: str) -> Check:
    if importlib.util.find_spec(name) is None:
        return Check(
            name, Status.WARN, f"{name} is not installed ({purpose})",
            f"pip install 'pasar[{extra}]'",
        )  # fmt: skip
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    return Check(name, Status.OK, f"{name} {version} importable ({purpose})")


def check_torch() -> Check:
    return _optional_package(
        "torch", "torch", "ml", "needed for proof-of-learning and GPU benchmarks"
    )


def check_ray() -> Check:
    return _optional_package("ray", "ray", "cluster", "needed for multi-node cluster leases")


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(home: Path) -> Check:
    where = _existing_ancestor(home)
    free_gib = shutil.disk_usage(where).free / GIB
    detail = f"{free_gib:.1f} GiB free at {where}"
    if free_gib >= DISK_OK_GIB:
        return Check("disk", Status.OK, detail)
    if free_gib >= DISK_WARN_GIB:
        return Check("disk", Status.WARN, detail, f"jobs and blobs want {DISK_OK_GIB} GiB or more")
    return Check("disk", Status.FAIL, detail, "free some disk space or point PASAR_HOME elsewhere")


def check_home(home: Path) -> Check:
    """$PASAR_HOME holds keys: it must be ours and closed to other users."""
    if not home.exists():
        return Check("pasar home", Status.OK, f"{home} does not exist yet; it will be created 0700")
    if not home.is_dir():
        return Check(
            "pasar home", Status.FAIL, f"{home} is not a directory", "set PASAR_HOME to a directory"
        )
    st = home.stat()
    if st.st_uid != os.getuid():
        return Check(
            "pasar home", Status.FAIL, f"{home} belongs to another user (uid {st.st_uid})",
            f"chown {os.getuid()} {home}",
        )  # fmt: skip
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return Check(
            "pasar home", Status.FAIL, f"{home} is writable by other users",
            f"chmod 700 {home}",
        )  # fmt: skip
    loose = [
        p
        for p in home.rglob("*.key")
        if p.is_file() and p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    ]
    if loose:
        return Check(
            "pasar home", Status.FAIL,
            f"key file(s) readable by others: {', '.join(str(p) for p in loose)}",
            "chmod 600 " + " ".join(str(p) for p in loose),
        )  # fmt: skip
    return Check("pasar home", Status.OK, f"{home} is private (mode {stat.filemode(st.st_mode)})")


def check_machine() -> Check:
    cores = psutil.cpu_count(logical=True) or 0
    mem_gib = psutil.virtual_memory().total / GIB
    return Check("cpu and memory", Status.OK, f"{cores} logical CPUs, {mem_gib:.1f} GiB RAM")


def run_checks(home: Path | None = None) -> list[Check]:
    """Every check, in the order a person would read them."""
    where = home if home is not None else pasar_home()
    checks: list[Callable[[], Check]] = [
        check_python,
        check_machine,
        check_bubblewrap,
        check_cgroups,
        check_nvidia,
        check_docker,
        check_torch,
        check_ray,
        lambda: check_disk(where),
        lambda: check_home(where),
    ]
    return [c() for c in checks]
