"""Attacks on the job's resource limits: several processes together, each under its rlimits,
must not use more memory, CPU or disk than the *job* was given (issue 9).

Run against the real sandbox runtime — cold and warm (``sandbox_mode``: a sandbox started ahead
of its job, its zygote then told to run it) — and end to end through a real market and provider for
memory, CPU and disk: the receipt says why the job died, and no money moved wrongly.

Skipped, with the reason, only where this machine cannot create cgroups (not root, no
delegation) — and there ``pasar doctor`` says so, and the provider advertises ``rlimit``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from attacklib import PROVIDER_ARGS, Party, assert_audit_passes, ended, spawn_sandboxed, started_as

from money_checks import assert_conserved
from pasar.doctor import Status, check_bubblewrap
from pasar.provider.runtime import Limits, Outcome
from pasar.provider.runtime.cgroups import (
    CPU_PERIOD_US,
    GROUP_PREFIX,
    JobCgroup,
    detect,
    namespace_init,
    remove_stale,
)
from pasar.provider.runtime.sandbox import SandboxRuntime

GIB = 1 << 30
CPU_RATIO_MAX = 1.2  # CPU-seconds per wall second a ``cpus: 1`` job may use
BUSY_SECONDS = 4

_support = detect()
_bwrap = check_bubblewrap()
pytestmark = [
    pytest.mark.skipif(
        _bwrap.status is not Status.OK, reason=f"bubblewrap cannot sandbox: {_bwrap.detail}"
    ),
    pytest.mark.skipif(
        _support.version is None, reason=f"this machine cannot create cgroups: {_support.detail}"
    ),
]

# four processes of 768 MiB: each is well under a 1 GiB RLIMIT_AS, together 3 GiB
MEMORY_HOG = (
    "for i in 1 2 3 4; do python3 -c 'import time; b = b\"x\" * (768 << 20); time.sleep(20)' & "
    "done; wait; echo survived"
)
CPU_HOG = (
    "for i in 1 2 3 4; do python3 -c 'import time\n"
    f"end = time.monotonic() + {BUSY_SECONDS}\n"
    "while time.monotonic() < end: pass' & done; wait"
)
# three files of 1000 MiB: each under the 1 GiB RLIMIT_FSIZE, together 3 GB
DISK_HOG = "for i in 1 2 3; do head -c 1000M /dev/zero > f$i || exit 1; done; echo survived"


def leftover_groups() -> list[Path]:
    """Job groups that are not another live process tree's: a group's name starts with the pid
    that made it, and a test worker running beside this one (pytest-xdist) has live groups of
    its own. Groups made by this process, by its children, or by a process now dead count."""
    ours = {os.getpid()} | {child.pid for child in psutil.Process().children(recursive=True)}
    return [
        child
        for parent in _support.parents.values()
        for child in parent.iterdir()
        if child.name.startswith(GROUP_PREFIX) and not _foreign(child.name, ours)
    ]


def _foreign(name: str, ours: set[int]) -> bool:
    owner = name[len(GROUP_PREFIX) :].removeprefix("probe-").split("-")[0]
    return owner.isdigit() and int(owner) not in ours and psutil.pid_exists(int(owner))


@pytest.fixture(autouse=True)
def no_group_left_behind() -> Iterator[None]:
    before = set(leftover_groups())
    yield
    assert set(leftover_groups()) <= before, "a job's cgroup outlived the job"


def job_limits(**changes: Any) -> Limits:
    base = Limits(
        memory_bytes=GIB,
        cpu_seconds=120,
        max_processes=64,
        max_file_bytes=GIB,
        wall_seconds=60,
        cpus=1,
        disk_bytes=GIB,
    )
    return Limits(**{**base.__dict__, **changes})


def run_job(tmp_path: Path, command: str, limits: Limits) -> tuple[Outcome, str]:
    workdir = tmp_path / "work"
    workdir.mkdir()
    handle = SandboxRuntime().start(workdir, command, {}, limits)
    output = "".join(handle.lines())
    return handle.wait(timeout=120), output


# -- the runtime -------------------------------------------------------------------------------


@pytest.mark.usefixtures("sandbox_mode")
def test_memory_is_one_limit_for_all_the_jobs_processes(tmp_path: Path) -> None:
    outcome, output = run_job(tmp_path, MEMORY_HOG, job_limits())
    assert outcome.kill_reason == "memory", output
    assert "survived" not in output


@pytest.mark.usefixtures("sandbox_mode")
def test_cpus_bound_the_whole_job_not_each_process(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    handle = SandboxRuntime().start(workdir, CPU_HOG, {}, job_limits())
    # the bound is in place (on a busy machine the ratio alone could hold without it)
    assert handle.cgroup is not None
    quota, period = handle.cgroup.cpu_quota() or (0, 0)
    assert period == CPU_PERIOD_US and period <= quota <= 1.1 * period  # one CPU (+ headroom)
    output = "".join(handle.lines())
    outcome = handle.wait(timeout=120)
    assert outcome.ok, output
    wall = (outcome.ended_at - outcome.started_at) / 1000
    assert wall >= BUSY_SECONDS
    assert outcome.cpu_seconds / wall <= CPU_RATIO_MAX, (outcome.cpu_seconds, wall)


@pytest.mark.usefixtures("sandbox_mode")
def test_disk_is_the_whole_workdir_not_one_file(tmp_path: Path) -> None:
    outcome, output = run_job(tmp_path, DISK_HOG, job_limits())
    assert outcome.kill_reason == "disk", output
    assert "survived" not in output
    # the workdir stays readable for the executor (outputs, logs) after the kill
    assert sorted(p.name for p in (tmp_path / "work").iterdir())


@pytest.mark.usefixtures("sandbox_mode")
def test_disk_counts_deleted_files_the_job_still_holds_open(tmp_path: Path) -> None:
    hide = (
        "python3 -c 'import os, time\n"
        "files = []\n"
        "for i in range(3):\n"
        '    f = open(f"h{i}", "wb"); os.unlink(f"h{i}"); files.append(f)\n'
        '    f.write(b"y" * (900 << 20)); f.flush()\n'
        "time.sleep(30)'; echo survived"
    )
    outcome, output = run_job(tmp_path, hide, job_limits())
    assert outcome.kill_reason == "disk", output


@pytest.mark.usefixtures("sandbox_mode")
def test_cancel_ends_every_process_of_the_group_and_removes_it(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    command = "setsid sh -c 'sleep 300' & setsid sleep 300 & echo started; wait"
    handle = SandboxRuntime().start(workdir, command, {}, job_limits())
    lines = handle.lines()
    assert next(lines) == "started\n"
    group = handle.cgroup
    assert group is not None and len(group.pids()) >= 3
    # Process objects, not bare pids: psutil's is_running() tells a reused pid (another test's
    # process, under pytest-xdist) from the job's own by its start time
    procs = [psutil.Process(pid) for pid in group.pids()]
    handle.kill("cancel")
    assert handle.wait(timeout=30).kill_reason == "cancel"
    assert handle.cgroup is None and not group.dirs
    assert not [p.pid for p in procs if still_running(p)]


@pytest.mark.usefixtures("sandbox_mode")
def test_a_jobs_end_waits_for_what_it_left_running_not_for_its_group(tmp_path: Path) -> None:
    """What a lease waits for (``ended``): none of the job's processes can run any more — one
    it left behind is killed first. Its group is removed after (``wait``), once the sandbox's
    init, killed too, has torn the sandbox down."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    handle = SandboxRuntime().start(workdir, "setsid sleep 300 & echo started", {}, job_limits())
    assert next(handle.lines()) == "started\n"
    group = handle.cgroup
    assert group is not None
    procs = []
    for pid in group.pids():  # the job's shell may have ended already: its leftover has not
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(pid))
    outcome = handle.ended(timeout=60)
    assert outcome.exit_code == 0 and outcome.kill_reason is None
    left = [p.pid for p in procs if still_running(p) and not namespace_init(p.pid)]
    assert not left
    assert handle.wait(timeout=60) == outcome
    assert handle.cgroup is None and not group.dirs


def still_running(process: psutil.Process) -> bool:
    """The same process (not a reused pid), alive and not a zombie."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.usefixtures("sandbox_mode")
def test_a_job_within_its_limits_is_untouched(tmp_path: Path) -> None:
    ok = (
        "python3 -c 'b = b\"x\" * (200 << 20)' && head -c 100M /dev/zero > f && "
        "python3 -c 'import multiprocessing as m; print(sum(m.Pool(2).map(abs, [-1, -2])))'"
    )
    outcome, output = run_job(tmp_path, ok, job_limits())
    assert outcome.ok, output
    assert output.strip().endswith("3")


# -- end to end: a real market and a real provider ---------------------------------------------


def limits_attribute(url: str, provider: str) -> str | None:
    """What the provider's offer says about enforcement, found through the query language."""
    params = {"q": f"provider={provider} limits=cgroup-v1", "include_offline": "true"}
    offers = httpx.get(f"{url}/v1/providers", params=params, timeout=10).json()["offers"]
    if not offers:
        return None
    value = offers[0].get("limits")
    return None if value is None else str(value)


MARKET_CASES = {
    "memory": (MEMORY_HOG, {"cpus": 1, "memory": 1}),
    "disk": (DISK_HOG, {"cpus": 1, "memory": 1, "disk": 1}),
}


@pytest.mark.parametrize("mode", ["cold", "warm"])
@pytest.mark.parametrize("reason", list(MARKET_CASES))
def test_market_job_over_its_limits_is_killed_with_the_reason(
    market_server: Any,
    spawn_provider: Any,
    tmp_path: Path,
    reason: str,
    mode: str,
) -> None:
    run, resources = MARKET_CASES[reason]
    provider = spawn_sandboxed(spawn_provider, market_server.url, tmp_path / "p1", mode)
    assert limits_attribute(market_server.url, provider.account) == _support.enforcement
    alice = Party(market_server)
    alice.fund()
    order_id = alice.launch(run=run, resources=resources)
    order = alice.wait(order_id, ended, timeout=120)
    (lease,) = order["leases"]
    assert lease["receipt"]["kill_reason"] == reason, alice.logs(lease["lease_id"])
    assert "survived" not in alice.logs(lease["lease_id"])
    assert started_as(provider, lease["lease_id"]) == mode
    assert_conserved(market_server.url)
    assert_audit_passes(market_server.url)


def test_market_job_with_one_cpu_gets_one_cpu(
    market_server: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    spawn_provider(market_server.url, tmp_path / "p1", *PROVIDER_ARGS)
    alice = Party(market_server)
    alice.fund()
    order_id = alice.launch(run=CPU_HOG, resources={"cpus": 1, "memory": 1})
    order = alice.wait(order_id, ended, timeout=120)
    (lease,) = order["leases"]
    receipt = lease["receipt"]
    assert receipt["exit_code"] == 0, alice.logs(lease["lease_id"])
    wall = (receipt["ended_at"] - receipt["started_at"]) / 1000
    cpu = receipt["usage"]["cpu_ms"] / 1000
    assert cpu / wall <= CPU_RATIO_MAX, (cpu, wall)
    assert_conserved(market_server.url)
    assert_audit_passes(market_server.url)


def test_groups_left_by_a_dead_agent_are_removed(tmp_path: Path) -> None:
    dead = psutil.Popen(["true"])
    dead.wait()  # a pid that no longer runs: the "agent" that was killed mid-job
    stale = [parent / f"{GROUP_PREFIX}{dead.pid}-0badc0de" for parent in _support.parents.values()]
    for path in stale:
        path.mkdir(exist_ok=True)
    ours = JobCgroup(_support, memory_bytes=GIB, cpus=None, max_processes=8)
    try:
        assert remove_stale(_support) >= len(set(stale))
        assert not any(path.exists() for path in stale)
        assert all(path.exists() for path in ours.dirs.values())  # a live agent's: kept
    finally:
        ours.finish()
        for path in stale:
            with contextlib.suppress(OSError):
                path.rmdir()
