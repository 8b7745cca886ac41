"""Per-job cgroup detection (controllers, not mounts) and the seccomp program's shape, without
touching the machine: fake ``/proc`` text and fake cgroup folders."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pasar import doctor
from pasar.doctor import Status
from pasar.provider.runtime import cgroups
from pasar.provider.runtime.base import enforcement
from pasar.provider.runtime.cgroups import CgroupSupport, mounts, own_groups
from pasar.provider.runtime.seccomp import (
    REFUSED,
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_KILL_PROCESS,
    arch_for,
    filter_program,
)

PROC_CGROUP = """9:name=systemd:/
4:memory:/agents/a1
2:cpu,cpuacct:/
8:pids:/
0::/
"""
PROC_MOUNTS = """tmpfs /sys/fs/cgroup tmpfs rw 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,relatime,cpu,cpuacct 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""


def test_own_groups_and_mounts_are_parsed_per_controller() -> None:
    groups = own_groups(PROC_CGROUP)
    assert groups["memory"] == "/agents/a1"
    assert groups["cpu"] == groups["cpuacct"] == "/"
    assert groups[""] == "/"
    found = mounts(PROC_MOUNTS)
    assert [kind for kind, _, _ in found] == ["cgroup", "cgroup", "cgroup2"]
    assert {"cpu", "cpuacct"} <= found[1][2]


def test_a_v2_mount_without_controllers_is_not_cgroup_support(tmp_path: Path) -> None:
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("\n")
    (unified / "cgroup.subtree_control").write_text("\n")
    support = cgroups._detect_v2({"": "/"}, [("cgroup2", unified, set())])
    assert support.version is None
    assert "lacks memory, cpu, pids" in support.detail


def test_v2_controllers_offered_but_not_enabled_are_not_enabled_by_detection(
    tmp_path: Path,
) -> None:
    root = tmp_path / "v2"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("\n")
    support = cgroups._detect_v2({"": "/"}, [("cgroup2", root, set())])
    assert support.version is None and "does not enable" in support.detail
    assert (root / "cgroup.subtree_control").read_text() == "\n"  # untouched


def test_enforcement_says_how_limits_hold() -> None:
    assert CgroupSupport("v1", ("memory", "cpu", "pids")).enforcement == "cgroup-v1"
    assert CgroupSupport("v2", ("memory", "cpu", "pids")).enforcement == "cgroup-v2"
    assert CgroupSupport("v1", ("pids",)).enforcement == "rlimit"  # memory is what counts
    assert CgroupSupport(None).enforcement == "rlimit"

    class Plain:
        name = "process"

    assert enforcement(Plain()) == "rlimit"  # type: ignore[arg-type]


def test_doctor_says_when_jobs_get_only_rlimits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups, "detect", lambda: CgroupSupport(None, detail="not root"))
    check = doctor.check_cgroups()
    assert check.status is Status.WARN
    assert "not root" in check.detail and "rlimits" in check.detail and check.hint
    monkeypatch.setattr(
        cgroups, "detect", lambda: CgroupSupport("v1", ("memory", "cpu", "pids"), detail="x")
    )
    check = doctor.check_cgroups()
    assert check.status is Status.OK and "v1" in check.detail


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_seccomp_program_is_well_formed(machine: str) -> None:
    arch = arch_for(machine)
    assert arch is not None
    program = filter_program(arch)
    assert len(program) % 8 == 0
    insns = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    assert len(insns) < 256  # jump offsets are one byte
    for pc, (code, jt, jf, _) in enumerate(insns):
        if code & 0x07 == 0x05:  # a jump: both targets inside the program
            assert pc + 1 + max(jt, jf) < len(insns)
    assert insns[-1] == (0x06, 0, 0, SECCOMP_RET_KILL_PROCESS)  # a foreign ABI is killed
    assert (0x06, 0, 0, SECCOMP_RET_ALLOW) in insns
    for name in REFUSED:
        assert any(code == 0x15 and k == arch.numbers[name] for code, _, _, k in insns), name
    assert arch_for("sparc64") is None


def _group_holding(tmp_path: Path, pids: set[int], monkeypatch: pytest.MonkeyPatch,
                   inits: set[int]) -> tuple[cgroups.JobCgroup, list[int]]:  # fmt: skip
    """A fake v1 group whose ``cgroup.procs`` always lists ``pids`` (none ever dies), the
    kills sent recorded, ``inits`` the pids 1 of their namespaces."""
    group = cgroups.JobCgroup.__new__(cgroups.JobCgroup)
    group.version = "v1"
    group.dirs = {"memory": tmp_path}
    (tmp_path / "cgroup.procs").write_text("".join(f"{pid}\n" for pid in pids))
    killed: list[int] = []
    monkeypatch.setattr(cgroups.os, "kill", lambda pid, sig: killed.append(pid))
    monkeypatch.setattr(cgroups.time, "sleep", lambda s: None)
    monkeypatch.setattr(cgroups, "namespace_init", lambda pid: pid in inits)
    return group, killed


def test_settling_an_ended_job_does_not_wait_for_its_sandboxs_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the sandbox's init is left (killed, tearing the sandbox down): the job is over."""
    group, killed = _group_holding(tmp_path, {41}, monkeypatch, inits={41})
    group.settle()
    assert killed == [41]  # killed once, not waited for


def test_settling_waits_for_every_process_of_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process of the job's own beside the init: swept until it is gone (here: never)."""
    group, killed = _group_holding(tmp_path, {41, 42}, monkeypatch, inits={41})
    group.settle()
    assert killed.count(42) == cgroups.KILL_ROUNDS
    killed.clear()
    group.kill()  # a plain kill (a cancel) sweeps until the group is empty, init included
    assert killed.count(41) == cgroups.KILL_ROUNDS


def test_a_namespace_init_is_told_from_other_processes() -> None:
    import os
    import shutil
    import subprocess
    import time

    assert not cgroups.namespace_init(os.getpid())
    assert not cgroups.namespace_init(1 << 30)  # no such process
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root to make a pid namespace")
    outer = subprocess.Popen([unshare, "--pid", "--fork", "--kill-child", "sleep", "30"])
    try:
        deadline = time.monotonic() + 10
        children: list[int] = []
        while not children and time.monotonic() < deadline:
            found = Path(f"/proc/{outer.pid}/task/{outer.pid}/children")
            children = [int(x) for x in found.read_text().split()]
            time.sleep(0.01)
        assert children and cgroups.namespace_init(children[0])
        assert not cgroups.namespace_init(outer.pid)
    finally:
        outer.kill()
        outer.wait()
