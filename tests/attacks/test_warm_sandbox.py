"""Attacks on warm sandboxes (issue 13): a sandbox started ahead of its lease must hold its job
exactly as a cold one does, serve one lease, and never run a job when broken.

The other sandbox attacks (``test_sandbox_escape``, ``test_job_limits``,
``tests/integration/test_sandbox.py``) run through warm sandboxes too (their ``sandbox_mode``
fixture, exec path). These attack what only a warm sandbox has: the zygote's in-process run of
the remote entry (what an ``@pasar.remote`` call's code sees: descriptors, environment,
rlimits, cgroup), its control pipes, the pool.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import cloudpickle
import psutil
import pytest

from pasar.client.payload import CALL_FILE, RESULT_FILE, dump_calls, load_outcome
from pasar.client.remote import RUN
from pasar.doctor import Status, check_bubblewrap
from pasar.provider.runtime import Limits, Outcome, RunHandle
from pasar.provider.runtime import warm as warm_module
from pasar.provider.runtime.base import job_rlimits
from pasar.provider.runtime.cgroups import detect
from pasar.provider.runtime.sandbox import (
    ROOT_MODE_UID_BASE,
    SANDBOX_UID,
    SandboxRuntime,
    job_environment,
)
from pasar.provider.runtime.warm import (
    REMOTE_RUN,
    WarmKey,
    WarmPool,
    WarmSandbox,
    WarmSandboxBrokenError,
    runs_inline,
)

GIB = 1 << 30
LIMITS = Limits(
    memory_bytes=GIB,
    cpu_seconds=60,
    max_processes=64,
    max_file_bytes=GIB,
    wall_seconds=30,
    cpus=1,
    disk_bytes=GIB,
)
ENV = {"PASAR_SHARD": "0", "GIVEN": "yes"}

_bwrap = check_bubblewrap()
pytestmark = pytest.mark.skipif(
    _bwrap.status is not Status.OK, reason=f"bubblewrap cannot sandbox: {_bwrap.detail}"
)
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the calls' code goes by value


# -- what the job's code does ------------------------------------------------------------------


def probe() -> dict[str, Any]:
    """What a call's code can see of its process."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    names = ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_CORE", "RLIMIT_NPROC")
    return {
        "fds": fds,
        "env": dict(os.environ),
        "rlimits": {n: list(resource.getrlimit(getattr(resource, n))) for n in names},
        "cwd": os.getcwd(),
        "uid": os.getuid(),
        "pid": os.getpid(),
        "argv0": sys.argv[0],
    }


def hog_memory() -> int:
    block = bytearray(2 * GIB)
    return len(block)


def sleep_long() -> None:
    time.sleep(60)


def spin_forever() -> None:
    while True:
        pass


LEFT_OPEN: list[Any] = []


def ends_late() -> str:
    """Leaves work for the end of its process: a thread still writing, an ``atexit``
    function, a file written and never closed (kept alive by a global)."""
    import atexit
    import threading

    def later() -> None:
        time.sleep(0.3)
        Path("thread.txt").write_text("thread")

    threading.Thread(target=later).start()
    atexit.register(lambda: Path("atexit.txt").write_text("atexit"))
    LEFT_OPEN.append(open("open.txt", "w"))  # noqa: SIM115 (left open on purpose)
    LEFT_OPEN[-1].write("unflushed")
    print("printed", end="")  # no newline: only the end's flush sends it
    return "returned"


def replaces_stdout() -> str:
    """Writes to the process's own stdout after replacing ``sys.stdout``: a finishing Python
    flushes both (the zygote's stdout is one of the objects it froze before the lease)."""
    sys.__stdout__.write("original")  # type: ignore[union-attr]  # no newline: never flushed
    sys.stdout = open("other.txt", "w")  # noqa: SIM115 (the end closes it)
    print("replaced", end="")
    return "returned"


# -- running a call cold or warm ----------------------------------------------------------------


def call_dir(tmp_path: Path, name: str, fn: Any) -> Path:
    workdir = tmp_path / name
    workdir.mkdir()
    (workdir / CALL_FILE).write_bytes(dump_calls(fn, [((), {})]))
    return workdir


def start(mode: str, tmp_path: Path, fn: Any, limits: Limits = LIMITS) -> tuple[RunHandle, Path]:
    """A call's job started cold (a new bwrap and Python) or warm (a zygote, in-process)."""
    runtime = SandboxRuntime()
    if mode == "cold":
        workdir = call_dir(tmp_path, "cold", fn)
        return runtime.start(workdir, RUN, ENV, limits), workdir
    sandbox = WarmSandbox(runtime, WarmKey.of(limits), tmp_path, ready_timeout_s=60)
    workdir = tmp_path / "warm"
    sandbox.claim(workdir)
    (workdir / CALL_FILE).write_bytes(dump_calls(fn, [((), {})]))
    return sandbox.start(RUN, ENV, limits, inline=True), workdir


def run_call(
    mode: str, tmp_path: Path, fn: Any, limits: Limits = LIMITS
) -> tuple[Outcome, str, Any]:
    handle, workdir = start(mode, tmp_path, fn, limits)
    output = "".join(handle.lines())
    outcome = handle.wait(timeout=120)
    result = workdir / RESULT_FILE
    return outcome, output, load_outcome(result.read_bytes()) if result.exists() else None


# -- the job's view ---------------------------------------------------------------------------


def test_the_constant_the_pool_matches_is_the_clients() -> None:
    assert REMOTE_RUN == RUN
    assert runs_inline(RUN, None, {"MY_SETTING": "1"})
    # a setup, another command, or a variable a fresh Python reads at start: run by exec
    assert not runs_inline(RUN, "pip list", {})
    assert not runs_inline("python -m other", None, {})
    for name in ("PYTHONPATH", "PYTHONHASHSEED", "LD_PRELOAD", "HOME", "PATH", "LC_ALL"):
        assert not runs_inline(RUN, None, {name: "x"}), name


def test_an_inline_call_sees_exactly_what_a_cold_one_sees(tmp_path: Path) -> None:
    cold, cold_out, cold_result = run_call("cold", tmp_path, probe)
    warm, warm_out, warm_result = run_call("warm", tmp_path, probe)
    assert cold.ok and warm.ok, (cold_out, warm_out)
    seen_cold, seen_warm = cold_result.value, warm_result.value
    host = SandboxRuntime().host
    # the job's whole environment, nothing of the zygote's or the host's
    wanted_env = {**job_environment(ENV, LIMITS, host), "PWD": "/work"}  # PWD: the shell's
    assert seen_warm["env"] == seen_cold["env"] == wanted_env
    # the lease's rlimits, soft = hard, as prlimit sets them on a cold job
    wanted = {name: [soft, hard] for _, name, soft, hard in job_rlimits(LIMITS)}
    assert seen_warm["rlimits"] == seen_cold["rlimits"] == wanted
    assert seen_warm["cwd"] == seen_cold["cwd"] == "/work"
    for uid in (seen_warm["uid"], seen_cold["uid"]):  # unprivileged (root mode: a fresh uid)
        assert uid >= ROOT_MODE_UID_BASE if host.as_root else uid == SANDBOX_UID
    assert seen_warm["argv0"] == seen_cold["argv0"]
    # no channel to the host but its output: the zygote's control pipes are closed
    for fds in (seen_warm["fds"], seen_cold["fds"]):
        assert fds[0] == "/dev/null"
        assert [fd for fd, target in fds.items() if fd > 2 and "pipe" in target] == []


def test_an_inline_call_runs_in_the_leases_cgroup_with_its_limits(tmp_path: Path) -> None:
    if detect().version is None:
        pytest.skip("this machine cannot create cgroups")
    handle, _ = start("warm", tmp_path, sleep_long, LIMITS)
    group = handle.cgroup
    assert group is not None
    quota, period = group.cpu_quota() or (0, 0)
    assert period <= quota <= 1.1 * period  # cpus: 1, written before the go
    assert handle.pid in group.pids()  # bwrap, the zygote, the call: one group from the start
    handle.kill("cancel")
    outcome = handle.wait(timeout=30)
    assert outcome.kill_reason == "cancel"
    assert handle.cgroup is None  # removed with its only lease


@pytest.mark.parametrize(
    ("fn", "limits", "reason"),
    [
        (hog_memory, LIMITS, "memory"),
        (sleep_long, Limits(**{**LIMITS.__dict__, "wall_seconds": 1}), "timeout"),
        (spin_forever, Limits(**{**LIMITS.__dict__, "cpu_seconds": 1}), "cpu_time"),
    ],
    ids=["memory", "timeout", "cpu_time"],
)
def test_an_inline_call_over_a_limit_ends_as_a_cold_one(
    tmp_path: Path, fn: Any, limits: Limits, reason: str
) -> None:
    cold, cold_out, _ = run_call("cold", tmp_path, fn, limits)
    warm, warm_out, _ = run_call("warm", tmp_path, fn, limits)
    assert (warm.exit_code, warm.kill_reason) == (cold.exit_code, cold.kill_reason), (
        cold_out,
        warm_out,
    )
    if reason != "memory":  # a MemoryError is the call's exception: an outcome, no kill
        assert warm.kill_reason == reason


def test_an_inline_call_ends_its_process_as_a_cold_one(tmp_path: Path) -> None:
    """The zygote skips the interpreter's teardown: what a finishing Python still does (its
    threads joined, atexit functions, open files and stdout flushed) must happen all the same."""
    ends = []
    for mode in ("cold", "warm"):
        outcome, output, result = run_call(mode, tmp_path, ends_late)
        workdir = tmp_path / mode
        files = {
            name: (workdir / name).read_text() for name in ("thread.txt", "atexit.txt", "open.txt")
        }
        ends.append((outcome.exit_code, output.endswith("printed"), result.value, files))
    assert ends[0] == ends[1]
    assert ends[1] == (
        0,
        True,
        "returned",
        {"thread.txt": "thread", "atexit.txt": "atexit", "open.txt": "unflushed"},
    )


def test_an_inline_call_flushes_the_stdout_it_replaced_as_a_cold_one(tmp_path: Path) -> None:
    ends = []
    for mode in ("cold", "warm"):
        outcome, output, result = run_call(mode, tmp_path, replaces_stdout)
        other = (tmp_path / mode / "other.txt").read_text()
        ends.append((outcome.exit_code, output.endswith("original"), result.value, other))
    assert ends[0] == ends[1] == (0, True, "returned", "replaced")


def test_a_workdir_shadowing_a_module_runs_as_a_fresh_python_would(tmp_path: Path) -> None:
    """A fresh ``python -m`` imports the workdir's ``cloudpickle.py`` (the workdir is first on
    its path); the zygote, which imported the real one, must not run the call in-process."""
    outputs = []
    for mode in ("cold", "warm"):
        runtime = SandboxRuntime()
        if mode == "cold":
            workdir = call_dir(tmp_path, mode, probe)
            handle = runtime.start(workdir, RUN, ENV, LIMITS)
        else:
            sandbox = WarmSandbox(runtime, WarmKey.of(LIMITS), tmp_path, ready_timeout_s=60)
            workdir = tmp_path / mode
            sandbox.claim(workdir)
            (workdir / CALL_FILE).write_bytes(dump_calls(probe, [((), {})]))
        (workdir / "cloudpickle.py").write_text("print('SHADOWED')\nraise SystemExit(7)\n")
        if mode == "warm":
            handle = sandbox.start(RUN, ENV, LIMITS, inline=True)
        outputs.append(("".join(handle.lines()), handle.wait(timeout=60).exit_code))
    assert outputs[0] == outputs[1] == ("SHADOWED\n", 7)


# -- one lease, never a broken one ---------------------------------------------------------------


def running(pid: int) -> bool:
    """Alive and not a zombie (one waits for the host's init to reap it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_warm_sandbox_serves_one_lease_and_ends_with_it(tmp_path: Path) -> None:
    sandbox = WarmSandbox(SandboxRuntime(), WarmKey.of(LIMITS), tmp_path, ready_timeout_s=60)
    zygote = {p.pid for p in psutil.Process(sandbox.handle.pid).children(recursive=True)}
    sandbox.claim(tmp_path / "lease")
    handle = sandbox.start("echo once", ENV, LIMITS, inline=False)
    assert "".join(handle.lines()) == "once\n"
    assert handle.wait(timeout=30).ok
    assert not [pid for pid in zygote if running(pid)]
    with pytest.raises(WarmSandboxBrokenError):  # no second go
        sandbox.start("echo twice", ENV, LIMITS, inline=False)


def test_a_dead_zygote_is_never_handed_out(tmp_path: Path) -> None:
    pool = WarmPool(SandboxRuntime(), tmp_path, 1, keys=(WarmKey.of(LIMITS),))
    pool.start()
    try:
        assert pool.wait_ready(WarmKey.of(LIMITS), 1)
        (victim,) = pool._idle[WarmKey.of(LIMITS)]
        os.killpg(victim.handle.pid, 9)  # the sandbox dies while idle
        victim.handle.wait(timeout=30)
        taken = pool.take(LIMITS)
        assert taken is not victim
        if taken is not None:  # a refill, already ready
            assert taken.alive
            taken.discard()
        with pytest.raises(WarmSandboxBrokenError):
            victim.start("echo ran", ENV, LIMITS, inline=False)
    finally:
        pool.close()


def test_a_go_the_zygote_cannot_apply_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = WarmSandbox(SandboxRuntime(), WarmKey.of(LIMITS), tmp_path, ready_timeout_s=60)
    sandbox.claim(tmp_path / "lease")

    def bogus(limits: Limits, *, processes: bool = True) -> list[tuple[str, str, int, int]]:
        return [("nope", "RLIMIT_NOT_A_LIMIT", 1, 1)]

    monkeypatch.setattr(warm_module, "job_rlimits", bogus)
    with pytest.raises(WarmSandboxBrokenError, match="RLIMIT_NOT_A_LIMIT"):
        sandbox.start("touch ran", ENV, LIMITS, inline=False)
    assert not sandbox.handle.wait(timeout=30).ok
    assert not (tmp_path / "lease" / "ran").exists()


def test_a_lease_of_another_key_gets_no_warm_sandbox(tmp_path: Path) -> None:
    pool = WarmPool(SandboxRuntime(), tmp_path, 1, keys=(WarmKey.of(LIMITS),))
    pool.start()
    try:
        assert pool.wait_ready(WarmKey.of(LIMITS), 1)
        for other in (
            Limits(**{**LIMITS.__dict__, "network": True}),
            Limits(**{**LIMITS.__dict__, "memory_bytes": 2 * GIB}),
        ):
            assert pool.take(other, wait_s=0) is None  # none of its key is ready
            waited = pool.take(other)  # one of its own key, started for it
            assert waited is None or waited.key == WarmKey.of(other)
            if waited is not None:
                waited.discard()
        got = pool.take(LIMITS)
        assert got is not None and got.alive
        got.discard()
    finally:
        pool.close()
    assert not list(tmp_path.glob(".warm-*"))  # closed: every idle sandbox's folder is gone


def test_a_taken_sandbox_is_replaced_once_its_lease_is_over(tmp_path: Path) -> None:
    pool = WarmPool(SandboxRuntime(), tmp_path, 1, keys=(WarmKey.of(LIMITS),))
    pool.start()
    try:
        assert pool.wait_ready(WarmKey.of(LIMITS), 1)
        taken = pool.take(LIMITS)
        assert taken is not None
        pool.finished(LIMITS)  # the lease ended: its replacement starts
        assert pool.wait_ready(WarmKey.of(LIMITS), 1)
        fresh = pool.take(LIMITS)
        assert fresh is not None and fresh is not taken  # never the same sandbox twice
        for sandbox in (taken, fresh):
            sandbox.discard()
    finally:
        pool.close()


def test_closing_the_pool_aborts_a_sandbox_still_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopping agent must not wait for a zygote that is slow to start (a loaded machine):
    the start is killed, its processes gone and its folder removed once close returns."""
    read_line = warm_module._read_line

    def never_ready(fd: int, timeout_s: float) -> bytes:
        """The zygote's ``ready`` is not seen: wait for the pipe to close (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0 and read_line(fd, left):
            pass
        return b""

    monkeypatch.setattr(warm_module, "_read_line", never_ready)
    pool = WarmPool(SandboxRuntime(), tmp_path, 1, keys=(WarmKey.of(LIMITS),), ready_timeout_s=600)
    pool.start()
    deadline = time.monotonic() + 60
    while not pool._spawned and time.monotonic() < deadline:
        time.sleep(0.01)
    (starting,) = pool._spawned
    processes = [starting.handle.pid]
    while time.monotonic() < deadline and len(processes) < 3:  # bwrap, its init, the zygote
        processes = [starting.handle.pid]
        with contextlib.suppress(psutil.Error):
            kids = psutil.Process(starting.handle.pid).children(recursive=True)
            processes += [p.pid for p in kids]
        time.sleep(0.01)
    pool.close()
    assert not [pid for pid in processes if running(pid)]
    assert starting.handle.poll() is not None
    assert not list(tmp_path.glob(".warm-*"))
    assert pool.started == 0 and not pool._spawned


def test_a_key_whose_lease_found_none_ready_keeps_one_more(tmp_path: Path) -> None:
    key = WarmKey.of(LIMITS)
    pool = WarmPool(SandboxRuntime(), tmp_path, 1, keys=(key,))
    pool.start()
    taken = []
    try:
        assert pool.wait_ready(key, 1)
        taken.append(pool.take(LIMITS))  # the one ready
        taken.append(pool.take(LIMITS))  # none ready: waits for one starting
        assert pool.wanted(key) == 2
        for _ in range(2):
            pool.finished(LIMITS)
        assert pool.wait_ready(key, 2)  # refilled to two, never beyond size + GROW_MAX
        for _ in range(5):
            taken.append(pool.take(LIMITS, wait_s=0))
        assert pool.wanted(key) == 1 + warm_module.GROW_MAX
    finally:
        for sandbox in taken:
            if sandbox is not None:
                sandbox.discard()
        pool.close()
