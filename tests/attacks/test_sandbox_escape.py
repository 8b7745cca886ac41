"""Attacks from inside the sandbox: the system calls that start an escape (a new user
namespace, ptrace, the kernel keyring, mounts) fail under the seccomp filter, ordinary jobs
still work, and the job's pid 1 does not show it the host's paths (issue 9).

Skipped, with the reason, only where bubblewrap cannot sandbox here, or (seccomp) where this
machine's architecture has no syscall table in :mod:`pasar.provider.runtime.seccomp`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from attacklib import Party, assert_audit_passes, ended, spawn_sandboxed, started_as

from money_checks import assert_conserved
from pasar.doctor import Status, check_bubblewrap
from pasar.provider.runtime import Limits, Outcome
from pasar.provider.runtime.sandbox import SandboxRuntime
from pasar.provider.runtime.seccomp import arch_for
from pasar.provider.runtime.warm import WarmSandboxBrokenError

MIB = 1 << 20
LIMITS = Limits(
    memory_bytes=512 * MIB,
    cpu_seconds=30,
    max_processes=64,
    max_file_bytes=64 * MIB,
    wall_seconds=30,
)
ARCH = arch_for()

_bwrap = check_bubblewrap()
pytestmark = pytest.mark.skipif(
    _bwrap.status is not Status.OK, reason=f"bubblewrap cannot sandbox: {_bwrap.detail}"
)
needs_filter = pytest.mark.skipif(ARCH is None, reason="no seccomp syscall table for this arch")

CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
SIGCHLD = 17
PTRACE_TRACEME = 0
KEYCTL_GET_KEYRING_ID = 0
KEY_SPEC_SESSION_KEYRING = -3

# Each attempt is one raw system call through ctypes (no tool in between that could fail for
# its own reasons); the probe prints {name: errno name or "ok"} as one JSON line.
PROBE = """
import ctypes, errno, json, os, sys
CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x00020000, 17
PTRACE_TRACEME, PTRACE_ATTACH = 0, 16
KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING = 0, -3
libc = ctypes.CDLL(None, use_errno=True)
nums = json.loads(sys.argv[1])
def call(nr, *args):
    ret = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    if ret == 0 and nr == nums["clone"]:
        os._exit(0)  # the child of an unexpected success
    return "ok" if ret >= 0 else errno.errorcode[ctypes.get_errno()]
print(json.dumps({
    "unshare_user": call(nums["unshare"], CLONE_NEWUSER),
    "unshare_mount": call(nums["unshare"], CLONE_NEWNS),
    "clone_newuser": call(nums["clone"], CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
    "clone3": call(nums["clone3"], 0, 0),
    "ptrace_traceme": call(nums["ptrace"], PTRACE_TRACEME, 0, 0, 0),
    "ptrace_attach_parent": call(nums["ptrace"], PTRACE_ATTACH, os.getppid(), 0, 0),
    "keyctl": call(nums["keyctl"], KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1),
    "add_key": call(nums["add_key"], 0, 0, 0, 0, 0),
    "mount": call(nums["mount"], 0, 0, 0, 0, 0),
    "bpf": call(nums["bpf"], 0, 0, 0),
    "setns": call(nums["setns"], 0, 0),
}))
"""


def run_job(tmp_path: Path, command: str) -> tuple[Outcome, str]:
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    (workdir / "probe.py").write_text(PROBE)
    handle = SandboxRuntime().start(workdir, command, {}, LIMITS)
    output = "".join(handle.lines())
    return handle.wait(timeout=60), output


def probe_command() -> str:
    assert ARCH is not None
    return f"python3 probe.py '{json.dumps(ARCH.numbers)}'"


@needs_filter
@pytest.mark.usefixtures("sandbox_mode")
def test_escape_syscalls_fail_inside_the_job(tmp_path: Path) -> None:
    outcome, output = run_job(tmp_path, probe_command())
    assert outcome.ok, output
    results = json.loads(output.strip().splitlines()[-1])
    assert results.pop("clone3") == "ENOSYS"  # so that libc falls back to clone, checked
    assert results == dict.fromkeys(results, "EPERM"), results


@needs_filter
@pytest.mark.usefixtures("sandbox_mode")
def test_unshare_tools_fail_inside_the_job(tmp_path: Path) -> None:
    for command in ("unshare -U true", "unshare -r true", "unshare -m true"):
        outcome, output = run_job(tmp_path, command)
        assert outcome.exit_code != 0, (command, output)
        assert "Operation not permitted" in output, (command, output)


@pytest.mark.usefixtures("sandbox_mode")
def test_ordinary_jobs_still_work(tmp_path: Path) -> None:
    command = (
        "python3 -c 'print(6 * 7)' | tr 4 X && "
        "python3 -c 'import multiprocessing as m; print(sum(m.Pool(2).map(abs, [-1, -2])))' && "
        'python3 -c \'import subprocess; print(subprocess.run(["echo", "sub"]).returncode)\' && '
        "sh -c 'sleep 0.1 & wait; echo bg' && echo data > out.txt && cat out.txt"
    )
    outcome, output = run_job(tmp_path, command)
    assert outcome.ok, output
    assert output.split() == ["X2", "3", "sub", "0", "bg", "data"]


def host_paths(workdir: Path) -> list[str]:
    """What pid 1's command line must not name: the workdir, PASAR_HOME, home folders."""
    paths = [str(workdir), str(workdir.resolve()), "/root", "/home"]
    if os.environ.get("PASAR_HOME"):
        paths.append(os.environ["PASAR_HOME"])
    return paths


@pytest.mark.usefixtures("sandbox_mode")
def test_pid_1_command_line_names_no_host_path(tmp_path: Path) -> None:
    outcome, output = run_job(tmp_path, "tr '\\0' ' ' < /proc/1/cmdline; echo")
    assert outcome.ok, output
    cmdline = output.strip()
    assert cmdline.startswith("bwrap"), cmdline
    for path in host_paths(tmp_path / "work"):
        assert path not in cmdline, (path, cmdline)
    assert str(tmp_path) not in cmdline


@needs_filter
@pytest.mark.parametrize("mode", ["cold", "warm"])
def test_market_job_cannot_escape_nor_see_the_providers_paths(
    market_server: Any,
    spawn_provider: Any,
    tmp_path: Path,
    mode: str,
) -> None:
    home = tmp_path / "p1"
    provider = spawn_sandboxed(spawn_provider, market_server.url, home, mode)
    alice = Party(market_server)
    alice.fund()
    run = (
        "tr '\\0' ' ' < /proc/1/cmdline; echo; "
        "unshare -U true && echo ESCAPED; "
        "python3 -c 'import ctypes, os; print(\"ptrace\", ctypes.CDLL(None).ptrace(0, 0, 0, 0))'"
    )
    order_id = alice.launch(run=run)
    order = alice.wait(order_id, ended, timeout=120)
    (lease,) = order["leases"]
    logs = alice.logs(lease["lease_id"])
    assert lease["receipt"]["exit_code"] == 0, logs
    assert "ESCAPED" not in logs and "ptrace -1" in logs, logs
    assert "bwrap" in logs and str(home) not in logs and str(tmp_path) not in logs, logs
    assert started_as(provider, lease["lease_id"]) == mode
    assert_conserved(market_server.url)
    assert_audit_passes(market_server.url)


def test_a_mounted_copy_is_the_leases_own_and_cannot_be_remounted(
    tmp_path: Path, sandbox_mode: str
) -> None:
    """An absolute file_mount (issue 18) is the lease's staged copy: what the job writes there
    lands in that copy only, a link it makes there is a link in the sandbox (never followed on
    the host), and it cannot mount over it or unmount it. A warm sandbox, started without the
    bind, refuses such a lease (the executor then runs it cold) rather than run it unbound."""
    workdir = tmp_path / "work"
    staged = workdir / ".pasar-mounts" / "data"
    staged.mkdir(parents=True)
    (staged / "x.txt").write_text("input\n")
    limits = Limits(**{**LIMITS.__dict__, "mounts": ((staged, "/data"),)})
    command = (
        "cat /data/x.txt && echo written > /data/new.txt && ln -s /etc /data/etc-link && "
        "(umount /data 2>&1 || echo no-umount) && "
        "(mount -t tmpfs none /data 2>&1 || echo no-mount) && ls /data"
    )
    if sandbox_mode == "warm":
        with pytest.raises(WarmSandboxBrokenError):
            SandboxRuntime().start(workdir, command, {}, limits)
        return
    handle = SandboxRuntime().start(workdir, command, {}, limits)
    output = "".join(handle.lines())
    outcome = handle.wait(timeout=60)
    assert outcome.ok, output
    assert "input" in output and "no-umount" in output and "no-mount" in output, output
    assert (staged / "new.txt").read_text() == "written\n"  # in the lease's copy
    assert (staged / "etc-link").is_symlink()  # a link, left where the workdir's removal ends it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # nothing written beside it
