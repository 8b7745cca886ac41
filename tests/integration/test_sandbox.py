"""Real bubblewrap runs: what a job can do, and every escape the issue lists failing *inside*
the job — reported in its outcome and output — while this process (the provider) goes on.

Every sandbox test runs twice: cold, and through a warm sandbox (a sandbox started ahead of its
job, whose zygote is then told to run it: :mod:`pasar.provider.runtime.warm`). Skipped, with
doctor's reason, only where bwrap cannot create a sandbox on this machine.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec

import psutil
import pytest

from pasar.doctor import Status, check_bubblewrap
from pasar.provider.runtime import Limits, Outcome, RunHandle, get_runtime
from pasar.provider.runtime.process import PROCESS_WARNING
from pasar.provider.runtime.sandbox import VENV_MOUNT

P = ParamSpec("P")
MIB = 1024 * 1024
GIB = 1024 * MIB
LIMITS = Limits(
    memory_bytes=512 * MIB,
    cpu_seconds=30,
    max_processes=64,
    max_file_bytes=64 * MIB,
    wall_seconds=20,
)

_bwrap = check_bubblewrap()
_skip_without_bwrap = pytest.mark.skipif(
    _bwrap.status is not Status.OK, reason=f"bubblewrap cannot sandbox here: {_bwrap.detail}"
)


def needs_bwrap(test: Callable[P, None]) -> Callable[P, None]:
    """A sandbox test, run twice: cold, and through a warm sandbox (``sandbox_mode``)."""
    return _skip_without_bwrap(pytest.mark.usefixtures("sandbox_mode")(test))


def limits(**changes: object) -> Limits:
    return Limits(**{**LIMITS.__dict__, **changes})


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def run(
    command: str,
    workdir: Path,
    env: dict[str, str] | None = None,
    lim: Limits = LIMITS,
    runtime: str = "sandbox",
) -> tuple[Outcome, str]:
    handle = get_runtime(runtime).start(workdir, command, env or {}, lim)
    output = "".join(handle.lines())
    return handle.wait(timeout=60), output


# -- what a job can do -------------------------------------------------------------------------


@needs_bwrap
def test_hello_world_and_exit_code(workdir: Path) -> None:
    outcome, output = run("echo hello; echo oops >&2; exit 3", workdir)
    assert output == "hello\noops\n"
    assert outcome.exit_code == 3 and outcome.kill_reason is None
    assert outcome.ended_at >= outcome.started_at
    assert run("true", workdir)[0].ok


@needs_bwrap
def test_env_is_exactly_what_the_job_was_given(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PASAR_TEST_MARKER", "leaked")
    outcome, output = run("env", workdir, env={"GIVEN": "yes it is"})
    assert outcome.ok
    assert "GIVEN=yes it is\n" in output
    assert "PASAR_TEST_MARKER" not in output and "leaked" not in output
    assert "HOME=/work\n" in output


@needs_bwrap
def test_python_is_available_inside(workdir: Path) -> None:
    """The provider's own interpreter (and its venv), not whatever /usr/bin happens to hold."""
    _, output = run(
        "python3 -c 'import sys; print(1+1, sys.base_prefix, sys.prefix)'; no-such-command",
        workdir,
    )
    venv = VENV_MOUNT if sys.prefix != sys.base_prefix else Path(sys.base_prefix).resolve()
    assert output.startswith(f"2 {Path(sys.base_prefix).resolve()} {venv}\n"), output
    assert "no-such-command: not found" in output  # every PATH entry can be searched


@needs_bwrap
def test_workdir_is_writable_and_appears_on_the_host(workdir: Path) -> None:
    (workdir / "input.txt").write_text("in")
    outcome, output = run("cat input.txt; mkdir out && echo result > out/r.txt; pwd", workdir)
    assert outcome.ok, output
    assert output == "in/work\n"
    assert (workdir / "out" / "r.txt").read_text() == "result\n"


@needs_bwrap
def test_output_streams_while_the_job_runs(workdir: Path) -> None:
    handle = get_runtime("sandbox").start(workdir, "echo first; sleep 2; echo second", {}, LIMITS)
    t0 = time.monotonic()
    lines = handle.lines()
    assert next(lines) == "first\n"
    assert time.monotonic() - t0 < 1.5  # arrived before the job ended
    assert handle.poll() is None
    assert list(lines) == ["second\n"]
    assert handle.wait(timeout=10).ok


@needs_bwrap
def test_lines_with_timeout_yield_empty_ticks(workdir: Path) -> None:
    handle = get_runtime("sandbox").start(workdir, "sleep 1; echo done", {}, LIMITS)
    got = list(handle.lines(timeout_s=0.2))
    assert "" in got and got[-1] == "done\n"
    assert handle.wait(timeout=10).ok


@needs_bwrap
def test_a_job_outlives_the_thread_that_started_it(workdir: Path) -> None:
    """bwrap dies with the *thread* that forked it; the handle forks from its own thread."""
    box: list[RunHandle] = []
    starter = threading.Thread(
        target=lambda: box.append(
            get_runtime("sandbox").start(workdir, "sleep 1; echo ok", {}, LIMITS)
        )
    )
    starter.start()
    starter.join()
    handle = box[0]
    assert "".join(handle.lines()) == "ok\n"
    assert handle.wait(timeout=10).ok


# -- escapes from the issue: each fails inside the job, the provider goes on ------------------


@needs_bwrap
def test_provider_home_and_keys_are_invisible(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "pasar-home"
    (home / "keys").mkdir(parents=True)
    key = home / "keys" / "x.key"
    key.write_text("TOPSECRETSEED")
    monkeypatch.setenv("PASAR_HOME", str(home))
    command = (
        f"cat {key}; cat $PASAR_HOME/keys/x.key; ls {home}; "
        f"cat {Path.home()}/.pasar/keys/*.key; ls -A {Path.home()}; "
        f"grep -rs TOPSECRET /root /home /etc /tmp /work /opt; test ! -e {key}"
    )
    # grep walks every file the sandbox shows (Python and the venv among them): on a loaded
    # machine that outlasts LIMITS' 20 s, and a job killed for time proves nothing here
    outcome, output = run(command, workdir, lim=limits(wall_seconds=180, cpu_seconds=180))
    assert outcome.kill_reason is None, (outcome.kill_reason, output)
    assert "TOPSECRETSEED" not in output
    assert "No such file or directory" in output
    assert outcome.exit_code == 0, output  # the last check: the key's path does not exist
    assert key.read_text() == "TOPSECRETSEED"


@needs_bwrap
def test_no_network_to_the_market_port(workdir: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.5)
        port = server.getsockname()[1]
        code = (
            "import socket; "
            f"socket.create_connection(('127.0.0.1', {port}), timeout=3); print('CONNECTED')"
        )
        outcome, output = run(f'python3 -c "{code}"', workdir)
        assert outcome.exit_code != 0
        assert "CONNECTED" not in output
        assert "ConnectionRefusedError" in output or "unreachable" in output
        with pytest.raises(TimeoutError):
            server.accept()  # nothing ever reached the listener


@needs_bwrap
def test_network_when_allowed_reaches_the_host(workdir: Path) -> None:
    """The control for the test above: the same connection succeeds when network is granted."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)"
        outcome, output = run(f'python3 -c "{code}"', workdir, lim=limits(network=True))
        assert outcome.ok, output


@needs_bwrap
def test_writes_outside_the_workdir_fail(workdir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    command = (
        "for f in /usr/pwned /etc/pwned /pwned " + str(outside) + "; do "
        'if echo x > "$f"; then echo "WROTE $f"; fi; done; '
        "echo private > /tmp/scratch && cat /tmp/scratch"
    )
    outcome, output = run(command, workdir)
    assert "WROTE" not in output
    assert "Read-only file system" in output or "Permission denied" in output
    assert "private\n" in output  # /tmp works, but is the sandbox's own
    for path in (Path("/usr/pwned"), Path("/etc/pwned"), Path("/pwned"), outside):
        assert not path.exists()
    assert not any(p.name == "scratch" for p in Path("/tmp").iterdir())
    assert outcome.exit_code == 0


@needs_bwrap
def test_allocating_past_the_memory_limit(workdir: Path) -> None:
    outcome, output = run(
        "python3 -c 'b = bytearray(2 * 1024**3); print(\"ALLOCATED\")'",
        workdir,
        lim=limits(memory_bytes=256 * MIB),
    )
    assert "ALLOCATED" not in output and "MemoryError" in output
    assert outcome.exit_code != 0
    assert outcome.kill_reason == "memory"


@needs_bwrap
def test_fork_bomb_is_stopped(workdir: Path) -> None:
    handle = get_runtime("sandbox").start(
        workdir,
        "python3 -c 'import os\nwhile True: os.fork()'",
        {},
        limits(max_processes=64, wall_seconds=15),
    )
    seen: dict[int, psutil.Process] = {}
    peak = 0
    t0 = time.monotonic()
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(handle.pid)
        while handle.poll() is None and time.monotonic() - t0 < 15:
            with contextlib.suppress(psutil.Error):
                tree = root.children(recursive=True)
                peak = max(peak, len(tree))
                seen.update((p.pid, p) for p in tree)
            time.sleep(0.002)
    output = "".join(handle.lines())
    outcome = handle.wait(timeout=20)
    assert time.monotonic() - t0 < 15
    assert "Resource temporarily unavailable" in output
    assert outcome.kill_reason == "processes"
    assert peak <= 64 + 2  # the job's 64, plus bwrap's init (and setpriv's short-lived exec)
    time.sleep(0.2)
    left = [p for p in seen.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == []  # nothing of the job survives it
    os.waitpid(os.fork() or os._exit(0), 0)  # the provider can still fork


@needs_bwrap
def test_running_past_the_timeout(workdir: Path) -> None:
    t0 = time.monotonic()
    outcome, _ = run("sleep 30", workdir, lim=limits(wall_seconds=2))
    assert outcome.kill_reason == "timeout"
    assert outcome.exit_code != 0
    assert time.monotonic() - t0 < 3.5


@needs_bwrap
def test_cancel_kills_the_whole_job(workdir: Path) -> None:
    handle: RunHandle = get_runtime("sandbox").start(
        workdir, "sleep 60 & sleep 60 & echo started; wait", {}, LIMITS
    )
    lines = handle.lines()
    assert next(lines) == "started\n"
    # "started" may come before the forked shells have become sleep: look again until they have
    deadline = time.monotonic() + 30
    while True:
        tree = psutil.Process(handle.pid).children(recursive=True)
        with contextlib.suppress(psutil.Error):
            if sum(p.name() == "sleep" for p in tree) == 2 or time.monotonic() > deadline:
                break
        time.sleep(0.01)
    assert sum(p.name() == "sleep" for p in tree) == 2
    handle.kill("cancel")
    handle.kill("timeout")  # the first reason stays
    outcome = handle.wait(timeout=5)
    assert outcome.kill_reason == "cancel"
    # the kill is sent; on a loaded machine the kernel may take a moment to reap the tree
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@needs_bwrap
def test_cpu_time_limit(workdir: Path) -> None:
    outcome, _ = run("python3 -c 'while True: pass'", workdir, lim=limits(cpu_seconds=1))
    assert outcome.kill_reason == "cpu_time"
    assert outcome.cpu_seconds >= 0.5  # sampled from the process tree


@needs_bwrap
def test_without_cgroups_the_per_process_rlimits_still_hold(workdir: Path) -> None:
    from pasar.provider.runtime.cgroups import CgroupSupport
    from pasar.provider.runtime.sandbox import SandboxRuntime

    runtime = SandboxRuntime(cgroups=CgroupSupport(None, detail="not here"))
    assert runtime.enforcement == "rlimit"
    handle = runtime.start(workdir, "python3 -c 'b = bytearray(1 << 30)'", {}, LIMITS)
    assert handle.cgroup is None
    output = "".join(handle.lines())
    assert handle.wait(timeout=60).kill_reason == "memory", output


@needs_bwrap
def test_file_size_limit(workdir: Path) -> None:
    outcome, _ = run("head -c 2000000 /dev/zero > big", workdir, lim=limits(max_file_bytes=MIB))
    assert outcome.kill_reason == "file_size"
    assert (workdir / "big").stat().st_size <= MIB


# -- the process runtime -------------------------------------------------------------------------


def test_process_runtime_runs_the_same_hello_world(workdir: Path) -> None:
    runtime = get_runtime("process")
    assert runtime.available() is None
    assert "does not isolate" in PROCESS_WARNING
    outcome, output = run(
        'echo hello $GIVEN; python3 -c "print(1+1)"; exit 3',
        workdir,
        env={"GIVEN": "world"},
        runtime="process",
    )
    assert output == "hello world\n2\n"
    assert outcome.exit_code == 3 and outcome.kill_reason is None


def test_process_runtime_timeout(workdir: Path) -> None:
    outcome, _ = run("sleep 30", workdir, lim=limits(wall_seconds=1), runtime="process")
    assert outcome.kill_reason == "timeout"


def test_arming_a_handle_starts_its_clock_and_no_thread(workdir: Path) -> None:
    """A handle over a process started ahead of its job (a warm sandbox's zygote) is armed as
    the job starts: its wall clock runs from then, under the job's limits, and nothing is
    started then (its threads came with the process, before any lease)."""
    env = {"PATH": os.environ["PATH"]}
    handle = RunHandle(["sleep", "30"], limits=limits(wall_seconds=3600), env=env, armed=False)
    before = set(threading.enumerate())
    handle.arm(limits(wall_seconds=0.5), workdir)
    assert set(threading.enumerate()) <= before
    assert handle.wait(timeout=30).kill_reason == "timeout"


def test_a_handle_never_armed_leaves_no_thread_behind(workdir: Path) -> None:
    """A warm sandbox discarded before any lease: its process ends, and so does its watcher."""
    handle = RunHandle(["true"], limits=LIMITS, env={"PATH": os.environ["PATH"]}, armed=False)
    assert handle.wait(timeout=30).exit_code == 0
    named = [t for t in threading.enumerate() if t.name.endswith(f"-{handle.pid}")]
    for thread in named:
        thread.join(timeout=30)
    assert not [t for t in named if t.is_alive()]


@pytest.fixture(scope="module")
def docker_engine() -> Iterator[None]:
    reason = get_runtime("docker").available()
    if reason is not None:
        pytest.skip(f"no Docker engine answers here: {reason}")
    yield


@pytest.mark.usefixtures("docker_engine")
def test_docker_hello_world(workdir: Path) -> None:
    handle = get_runtime("docker").start(
        workdir, "echo hello $GIVEN > out.txt; cat out.txt", {"GIVEN": "x"}, LIMITS,
        image="busybox",
    )  # fmt: skip
    outcome = handle.wait(timeout=120)
    assert outcome.ok
    assert (workdir / "out.txt").read_text() == "hello x\n"
