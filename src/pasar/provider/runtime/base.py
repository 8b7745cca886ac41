"""The seam between a lease and the thing that runs its job: limits, the handle, the outcome.

A *runtime* takes a prepared workdir, a shell command line, an environment and :class:`Limits`,
and returns a :class:`RunHandle` that streams the job's output and ends with an
:class:`Outcome` (exit code, kill reason, CPU time, peak memory). Every runtime hands back the
same handle class over a local process (``bwrap``, ``docker run`` or ``/bin/sh``), so the agent
has one way to read logs, time out and cancel, whatever isolates the job.

**How limits are enforced.** Per job, where the machine allows it: a runtime may give the
handle a :class:`~pasar.provider.runtime.cgroups.JobCgroup`, which the job joins before its
first instruction and which bounds the memory, CPU share (``cpus``) and process count of the
whole process tree; the handle kills the job as soon as the group reports an OOM kill (so one
killed process ends the job, as it would under cgroup v2's ``memory.oom.group``). Per process,
always: rlimits applied by ``prlimit`` (util-linux) placed in front of the job's shell
(:func:`prlimit_argv`), applied *inside* the sandbox so that RLIMIT_NPROC counts the job's
processes only — on a machine without cgroups they are all there is. The wall-clock limit and
the disk quota (the total size of the workdir, :attr:`Limits.disk_bytes`, scanned every
:data:`DISK_SCAN_S`) are enforced here, by the handle, which kills the whole process group.

**How a kill reason is told** (:func:`classify_exit`). ``timeout`` and ``cancel`` are known
for sure: the handle did the killing; so is ``disk`` (the handle's scan saw the workdir over
its quota), ``memory`` whenever the job's cgroup counted an OOM kill, and ``processes`` when
the cgroup refused a fork and the job then failed. The others are read from the exit status
and the last lines of output, because without a cgroup (which needs root or systemd
delegation) the kernel does not say which limit a process hit:

- ``cpu_time``: killed by SIGXCPU (or SIGKILL after using at least the CPU limit);
- ``file_size``: killed by SIGXFSZ, or the output says "File too large" (EFBIG; Python ignores
  SIGXFSZ and raises instead);
- ``memory``: RLIMIT_AS (not set for GPU jobs, see :func:`prlimit_argv`) makes allocations
  fail, so the job dies with MemoryError, bad_alloc, "Cannot allocate memory" or "out of
  memory" in its last lines;
- ``processes``: fork failed ("Cannot fork", "fork: retry", "Resource temporarily unavailable")
  in its last lines.

A job that exits non-zero for its own reasons but prints one of those phrases is misreported;
a job that swallows the error and exits 0 is reported as a success. Both are the honest limits
of a heuristic, and neither lets a job escape its limits: the limits hold either way.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Protocol, cast, get_args

import psutil

from pasar.core.errors import PasarError
from pasar.provider.runtime.cgroups import GroupStats, JobCgroup
from pasar.provider.runtime.diskquota import tree_bytes

KillReason = Literal[
    "timeout", "memory", "cancel", "cpu_time", "file_size", "processes", "disk", "gang"
]
KILL_REASONS: tuple[str, ...] = get_args(KillReason)

MAX_BUFFERED_LINES = 10_000  # lines kept for readers that fall behind; older ones are dropped
MAX_LINE_BYTES = 16 * 1024  # a longer line is cut here, so one line cannot take all memory
CLASSIFY_TAIL_LINES = 40  # how many final lines :func:`classify_exit` reads
DRAIN_TIMEOUT_S = 2.0  # after the job ends, how long to wait for its last output
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CPU_HARD_GRACE_S = 1  # SIGXCPU at the soft limit, SIGKILL this much later
LOST_STATUS = 255  # the exit code reported if the job's status was reaped by someone else
USAGE_SAMPLE_S = 0.25  # how often the process tree's CPU time and memory are sampled
DISK_SCAN_S = 0.5  # how often the workdir's size is measured against the disk quota


@dataclass(frozen=True)
class GpuGrant:
    """One GPU a lease may use, in the terms a runtime needs.

    ``index`` is the NVML index the market allocated; ``uuid`` what NVML calls the same card
    (None only for GPUs registered as data, without one); ``minor`` the N of its device node
    ``/dev/nvidiaN``, which the driver numbers on its own (usually, not always, the index).
    """

    index: int
    uuid: str | None
    minor: int

    @property
    def node(self) -> str:
        return f"/dev/nvidia{self.minor}"


def cuda_visible_devices(gpus: Sequence[GpuGrant]) -> str:
    """``CUDA_VISIBLE_DEVICES`` for the lease's GPUs: their UUIDs, or NVML indices without.

    UUIDs, because an index means different cards to different readers: CUDA numbers devices
    fastest-first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, and a container or a sandbox that
    exposes only some device nodes renumbers from 0. A UUID names the same card everywhere.
    """
    if all(g.uuid is not None for g in gpus):
        return ",".join(str(g.uuid) for g in gpus)
    return ",".join(str(g.index) for g in gpus)


def gpu_env(gpus: Sequence[GpuGrant]) -> dict[str, str]:
    """What a GPU job's environment says about its GPUs (nothing for a job without any).

    Set over the job's own ``envs``: a job sees the devices of its lease, not ones it names.
    ``CUDA_DEVICE_ORDER`` makes CUDA number devices as NVML does, for the index form.
    """
    if not gpus:
        return {}
    return {"CUDA_VISIBLE_DEVICES": cuda_visible_devices(gpus), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


@dataclass(frozen=True)
class Limits:
    """What a job may use. ``network`` must already be "the job asked *and* the provider
    allowed it" (``--allow-network``): a runtime grants exactly what this says."""

    memory_bytes: int
    cpu_seconds: int
    max_processes: int
    max_file_bytes: int
    wall_seconds: float
    network: bool = False
    gpus: tuple[GpuGrant, ...] = ()  # the lease's GPUs, exactly; () = none
    cpus: float | None = None  # CPU share of the whole job (needs a cgroup); None = unbounded
    disk_bytes: int | None = None  # total size of the workdir; None = only max_file_bytes
    # a multi-node job's network on this machine: the named namespace its sandbox joins
    # (pasar.cluster.network); None = a namespace of its own (or the host's: network)
    netns: Path | None = None
    # RLIMIT_AS at the job's memory (False only where a cgroup bounds the job's memory: Ray
    # maps its object store and reserves address space far beyond what it uses)
    address_limit: bool = True
    # a pip install the job's spec asked for (:mod:`pasar.provider.pip_cache`): a host folder
    # the runtime makes read-only to the job and puts first on its PYTHONPATH; None = none
    pip_site: Path | None = None
    # absolute file_mounts (:mod:`pasar.core.mounts`): (host path in the workdir, destination)
    # pairs the runtime binds read-write; a runtime that cannot bind refuses them
    mounts: tuple[tuple[Path, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "cpu_seconds", "max_processes", "max_file_bytes"):
            if int(getattr(self, name)) < 1:
                raise PasarError(f"limit {name} must be at least 1", code="invalid_limits")
        if self.wall_seconds <= 0:
            raise PasarError("limit wall_seconds must be positive", code="invalid_limits")
        for name in ("cpus", "disk_bytes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise PasarError(f"limit {name} must be positive", code="invalid_limits")


@dataclass(frozen=True)
class Outcome:
    """How a job ended. ``exit_code`` follows the shell: a job killed by signal N reports
    128 + N. ``kill_reason`` is None when the job ended by itself within its limits."""

    exit_code: int
    kill_reason: KillReason | None
    started_at: int  # unix ms
    ended_at: int  # unix ms
    cpu_seconds: float
    max_rss_bytes: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.kill_reason is None


class Runtime(Protocol):
    """Runs jobs. One implementation per module in this package, registered in ``RUNTIMES``."""

    name: str

    def available(self) -> str | None:
        """None when this runtime can run jobs here; else why not and how to fix it."""
        ...

    def start(
        self,
        workdir: Path,
        command: str,
        env: Mapping[str, str],
        limits: Limits,
        *,
        image: str | None = None,
    ) -> RunHandle:
        """Start ``/bin/sh -c command`` in ``workdir``; ``image`` only for container runtimes."""
        ...


RUNTIMES: dict[str, str] = {
    "sandbox": "pasar.provider.runtime.sandbox:SandboxRuntime",
    "docker": "pasar.provider.runtime.docker:DockerRuntime",
    "process": "pasar.provider.runtime.process:ProcessRuntime",
}


def check_usable(runtime: Runtime, name: str) -> None:
    """Refuse to start an agent (provider or verifier) on a runtime this machine cannot
    provide, saying how to fix it."""
    reason = runtime.available()
    if reason is not None:
        raise PasarError(
            f"the {name} runtime is not usable here: {reason}",
            code="runtime_unavailable",
            field="--runtime",
            hint="install bubblewrap (sudo apt-get install bubblewrap), or choose another "
            "--runtime",
        )


def get_runtime(name: str) -> Runtime:
    """The runtime called ``name``. Modules are imported on demand, so choosing ``process``
    never imports docker support and vice versa."""
    target = RUNTIMES.get(name)
    if target is None:
        raise PasarError(
            f"unknown runtime {name!r}",
            code="unknown_runtime",
            field="runtime",
            hint=f"choose one of: {', '.join(RUNTIMES)}",
        )
    module_name, _, class_name = target.partition(":")
    factory: Callable[[], Runtime] = getattr(importlib.import_module(module_name), class_name)
    return factory()


def enforcement(runtime: Runtime) -> str:
    """How a job's memory, CPU and processes are bounded on ``runtime``, as the provider's
    offer advertises it (attribute ``limits``) so that a client can ask for real enforcement:
    ``cgroup-v1``/``cgroup-v2`` (per job), ``docker`` (per container), ``rlimit`` (per process
    only; the default of a runtime that does not say)."""
    value = getattr(runtime, "enforcement", None)
    return value if isinstance(value, str) else "rlimit"


def with_python_path(job_env: dict[str, str], first: str) -> dict[str, str]:
    """``job_env`` with ``first`` at the head of its ``PYTHONPATH`` (a pip install before the
    job's own entries and the provider's, so the version the job asked for is the one imported)."""
    rest = job_env.get("PYTHONPATH")
    return {**job_env, "PYTHONPATH": first if not rest else f"{first}{os.pathsep}{rest}"}


def check_env(env: Mapping[str, str]) -> dict[str, str]:
    """The job's environment as a plain dict, refusing names a shell or ``env`` would misread."""
    for key, value in env.items():
        if not ENV_NAME.fullmatch(key):
            raise PasarError(
                f"invalid environment variable name {key!r}", code="invalid_env", field="envs"
            )
        if "\0" in value:
            raise PasarError(
                f"environment variable {key} contains a NUL byte", code="invalid_env", field="envs"
            )
    return dict(env)


#: an rlimit as (``prlimit`` option, :mod:`resource` name, soft, hard)
Rlimit = tuple[str, str, int, int]


def job_rlimits(limits: Limits, *, processes: bool = True) -> list[Rlimit]:
    """The job's rlimits, soft = hard so the job cannot raise them: what :func:`prlimit_argv`
    passes to ``prlimit`` in front of a cold job, and what a warm sandbox's zygote
    (:mod:`pasar.provider.zygote`) sets on itself with ``setrlimit`` before the job's first
    instruction — one list, so both paths bound a job alike.

    CPU gets a hard limit :data:`CPU_HARD_GRACE_S` above the soft one, so the job first receives
    SIGXCPU (reported as ``cpu_time``) and SIGKILL only if it ignores it. ``processes=False``
    leaves RLIMIT_NPROC alone: outside a user namespace it counts every process of the user on
    the host, so a limit of 64 would stop a job of a user who already runs 64 processes.

    A GPU job gets no RLIMIT_AS: the CUDA driver reserves virtual address space far beyond the
    memory it uses (unified addressing maps the GPUs' memory too), so under any RLIMIT_AS near
    the job's memory ``cuInit`` fails with CUDA_ERROR_OUT_OF_MEMORY (seen on an H200, driver
    580: 4 GiB fails cuInit, 16 GiB passes it but torch's first CUDA tensor fails). Its memory
    is bounded by the job's cgroup where the machine has one (the docker runtime always does),
    and only there: ``pasar doctor`` and the provider's ``limits`` attribute say which. A
    ``cluster: ray`` job gets none either where its memory has a cgroup (``address_limit``):
    Ray's processes map the object store and reserve address space beside torch's.
    """
    found: list[Rlimit] = []
    if not limits.gpus and limits.address_limit:
        found.append(("as", "RLIMIT_AS", limits.memory_bytes, limits.memory_bytes))
    found += [
        ("cpu", "RLIMIT_CPU", limits.cpu_seconds, limits.cpu_seconds + CPU_HARD_GRACE_S),
        ("fsize", "RLIMIT_FSIZE", limits.max_file_bytes, limits.max_file_bytes),
        ("core", "RLIMIT_CORE", 0, 0),
    ]
    if processes:
        found.append(("nproc", "RLIMIT_NPROC", limits.max_processes, limits.max_processes))
    return found


def prlimit_argv(limits: Limits, *, processes: bool = True) -> list[str]:
    """``prlimit`` with the job's rlimits (:func:`job_rlimits`)."""
    argv = ["prlimit"]
    for option, _name, soft, hard in job_rlimits(limits, processes=processes):
        argv.append(f"--{option}={soft}" if soft == hard else f"--{option}={soft}:{hard}")
    return [*argv, "--"]


def chown_tree(root: Path, uid: int) -> None:
    """Give a job's unprivileged uid its workdir (when the agent runs as root), without
    following the links its inputs may hold."""
    os.lchown(root, uid, uid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, uid)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_MEMORY = re.compile(r"MemoryError|bad_alloc|Cannot allocate memory|out of memory", re.I)
_FORK = re.compile(r"Cannot fork|fork: retry|Resource temporarily unavailable|can't fork", re.I)
_FSIZE = re.compile(r"File too large")


def classify_exit(
    exit_code: int, tail: list[str], limits: Limits, cpu_seconds: float
) -> KillReason | None:
    """Which limit, if any, ended a job that the handle did not kill (see the module doc)."""
    if exit_code == 0:
        return None
    if exit_code == 128 + signal.SIGXCPU or (
        exit_code == 128 + signal.SIGKILL and cpu_seconds >= limits.cpu_seconds
    ):
        return "cpu_time"
    text = "\n".join(tail[-CLASSIFY_TAIL_LINES:])
    if exit_code == 128 + signal.SIGXFSZ or _FSIZE.search(text):
        return "file_size"
    if _MEMORY.search(text):
        return "memory"
    if _FORK.search(text):
        return "processes"
    return None


def group_reason(exit_code: int, stats: GroupStats | None) -> KillReason | None:
    """What the job's cgroup says ended it: an OOM kill is ``memory`` whatever the exit code
    (the job may have swallowed one killed child); a refused fork is ``processes`` only if the
    job then failed."""
    if stats is None:
        return None
    if stats.oom_kills:
        return "memory"
    if stats.pids_refused and exit_code != 0:
        return "processes"
    return None


def exit_code_of(status: int) -> int:
    """A ``wait`` status as a shell exit code (128 + N for a death by signal N)."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


class RunHandle:
    """A running job: its output as it comes, its end, and a way to stop it.

    Output (stdout and stderr merged) is read by a thread into a bounded buffer, so a job that
    prints faster than anyone reads never blocks and never fills the provider's memory; readers
    that fall more than :data:`MAX_BUFFERED_LINES` behind skip the lines they missed (counted in
    :attr:`dropped_lines`). A second thread waits for the process with ``wait4`` (which also
    gives its CPU time and peak RSS), and a third watches the job: it kills it at the
    wall-clock limit and samples its usage.

    CPU time and memory are sampled from the process tree every :data:`USAGE_SAMPLE_S` from
    the job's start (:meth:`usage`, for heartbeats): bwrap exits as soon as its job does,
    without reaping the sandbox's init, so ``wait4`` alone would report bwrap's own few
    milliseconds. The outcome takes the larger of the two; the last fraction of a second, and
    grandchildren that come and go between samples, can be missed.

    All three threads start with the process, never with the job: a warm sandbox's handle
    (``armed=False``) is armed by :meth:`arm` as its lease's job starts, which only starts its
    clock — a thread's start there cost milliseconds of the lease on a busy machine.

    Killing sends SIGKILL to the process group the handle started (``start_new_session``) and
    to every process of the job's cgroup (if it has one: processes that left the process group
    are still in there), then runs ``on_kill`` (e.g. ``docker kill``) for parts of the job that
    live elsewhere. The handle owns ``cgroup`` and ``pass_fds``: it closes the descriptors once
    the job has them and removes the group when the job ends.
    """

    def __init__(
        self,
        argv: list[str],
        *,
        limits: Limits,
        env: Mapping[str, str],
        cwd: Path | None = None,
        on_kill: Callable[[], None] | None = None,
        cgroup: JobCgroup | None = None,
        pass_fds: Sequence[int] = (),
        disk_dir: Path | None = None,
        armed: bool = True,
    ) -> None:
        self.limits = limits
        self._on_kill = on_kill
        self._cgroup = cgroup
        self._disk_dir = disk_dir if limits.disk_bytes is not None else None
        if cgroup is not None:
            argv = [*cgroup.join_argv(), *argv]
        self._lock = threading.Condition()
        self._lines: collections.deque[str] = collections.deque(maxlen=MAX_BUFFERED_LINES)
        self._first_index = 0  # index of self._lines[0] among all lines ever read
        self._eof = False
        self._kill_reason: KillReason | None = None
        self._ended: Outcome | None = None  # the job is over (:meth:`ended`)
        self._outcome: Outcome | None = None  # ...and its cgroup removed (:meth:`wait`)
        self._cpu_seen = 0.0
        self._rss_peak = 0
        self._exited = threading.Event()
        self._armed = threading.Event()  # the job's clock runs (set at its end too)
        self._deadline = float("inf")  # monotonic: when the wall-clock limit kills the job
        self.dropped_lines = 0
        self.started_at = now_ms()
        # The process is started by the thread that waits for it, not by the caller: bwrap's
        # --die-with-parent (PR_SET_PDEATHSIG) fires when the *thread* that forked it ends, so
        # a job started from a short-lived thread would otherwise die with that thread.
        spawned, ready = threading.Event(), threading.Event()
        failure: list[OSError] = []

        def spawn_and_wait() -> None:
            try:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    cwd=cwd,
                    env=dict(env),
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=tuple(pass_fds),
                )
            except OSError as exc:
                failure.append(exc)
                return
            finally:
                for fd in pass_fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                spawned.set()
            ready.wait()  # until the reader, timer and sampler below exist
            self._wait()

        self._waiter = threading.Thread(target=spawn_and_wait, name="job-wait", daemon=True)
        self._waiter.start()
        spawned.wait()
        if failure:
            if cgroup is not None:
                cgroup.finish()
            raise PasarError(
                f"could not start {argv[0]}: {failure[0]}", code="runtime_failed", status=500
            ) from failure[0]
        self.pid = self._proc.pid
        self._reader = threading.Thread(target=self._read, name=f"job-out-{self.pid}", daemon=True)
        self._watcher = threading.Thread(
            target=self._watch, name=f"job-watch-{self.pid}", daemon=True
        )
        self._reader.start()
        self._watcher.start()
        if armed:
            self.arm(limits, self._disk_dir)
        ready.set()

    def arm(self, limits: Limits, disk_dir: Path | None) -> None:
        """Start the job's clock now, under ``limits``: for a handle created with
        ``armed=False`` over a process started ahead of its job (a warm sandbox's zygote,
        :mod:`pasar.provider.runtime.warm`). The wall-clock limit, the usage sampler and the
        disk quota begin here, and the outcome is judged by these limits: the job is timed from
        its start, not from its sandbox's. Nothing is started: the watching thread, waiting
        since the process started, is woken."""
        with self._lock:
            self.limits = limits
            self._disk_dir = disk_dir if limits.disk_bytes is not None else None
            self.started_at = now_ms()
            self._deadline = time.monotonic() + limits.wall_seconds
        self._armed.set()

    @property
    def cgroup(self) -> JobCgroup | None:
        """The job's cgroup while it runs (None without one, and once the job has ended)."""
        return self._cgroup if self._cgroup is not None and self._cgroup.dirs else None

    # -- output ----------------------------------------------------------------------------------

    def _read(self) -> None:
        stream: IO[bytes] | None = self._proc.stdout
        assert stream is not None
        try:
            while True:
                raw = stream.readline(MAX_LINE_BYTES)
                if not raw:
                    break
                if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    while (rest := stream.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                        pass  # the rest of an over-long line is dropped
                    raw += b" [line cut]\n"
                self._append(raw.decode("utf-8", errors="replace"))
        except (OSError, ValueError):
            pass  # the pipe was closed under us: the job is gone
        finally:
            with contextlib.suppress(OSError):
                stream.close()
            with self._lock:
                self._eof = True
                self._lock.notify_all()

    def _append(self, line: str) -> None:
        with self._lock:
            if len(self._lines) == self._lines.maxlen:
                self._first_index += 1
                self.dropped_lines += 1
            self._lines.append(line)
            self._lock.notify_all()

    def lines(self, timeout_s: float | None = None) -> Iterator[str]:
        """Each output line (with its newline) as it arrives, until the job ends and its output
        is drained. With ``timeout_s``, yields ``""`` whenever that long passes without a line,
        so a caller can flush or check for cancellation without a thread of its own."""
        index = 0
        while True:
            with self._lock:
                index = max(index, self._first_index)  # behind: the missed lines are gone
                if index - self._first_index >= len(self._lines) and not self._eof:
                    self._lock.wait(timeout_s)
                    index = max(index, self._first_index)
                if index - self._first_index < len(self._lines):
                    line: str | None = self._lines[index - self._first_index]
                    index += 1
                elif self._eof:
                    return
                else:
                    line = None
            if line is not None:
                yield line
            elif timeout_s is not None:
                yield ""

    def tail(self, n: int = CLASSIFY_TAIL_LINES) -> list[str]:
        """The last ``n`` lines of output buffered so far."""
        with self._lock:
            return list(self._lines)[-n:]

    # -- usage -----------------------------------------------------------------------------------

    def _watch(self) -> None:
        """From :meth:`arm` until the job ends: kill it at its wall-clock limit, and sample its
        CPU time and memory every :data:`USAGE_SAMPLE_S` (the first one interval in: before,
        nothing of the job has run) and its disk every :data:`DISK_SCAN_S`. A process tree that
        cannot be read any more stops the sampling, never the clock."""
        try:
            root: psutil.Process | None = psutil.Process(self.pid)
        except psutil.Error:
            root = None
        self._armed.wait()
        next_sample = time.monotonic() + USAGE_SAMPLE_S
        next_scan = time.monotonic() + DISK_SCAN_S
        while not self._exited.is_set():
            now = time.monotonic()
            with self._lock:
                deadline = self._deadline
            if now >= deadline:
                self.kill("timeout")
                with self._lock:
                    self._deadline = float("inf")
                continue
            if now >= next_sample:
                next_sample = now + USAGE_SAMPLE_S
                if root is not None and not self._sample(root, scan=now >= next_scan):
                    root = None
                if now >= next_scan:
                    next_scan = time.monotonic() + DISK_SCAN_S
            self._exited.wait(max(0.0, min(next_sample, deadline) - time.monotonic()))

    def _sample(self, root: psutil.Process, *, scan: bool) -> bool:
        """One sample of the job's usage (and with ``scan``, of its disk); False once its
        process tree cannot be read."""
        cpu, rss = 0.0, 0
        try:
            tree = self._tree(root)
        except psutil.Error:
            return False
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                cpu += t.user + t.system + t.children_user + t.children_system
                rss += proc.memory_info().rss
        if self._cgroup is not None:
            cpu = max(cpu, self._cgroup.cpu_seconds() or 0.0)
            if self._cgroup.oom_kills():
                self.kill("memory")
        with self._lock:
            self._cpu_seen = max(self._cpu_seen, cpu)
            self._rss_peak = max(self._rss_peak, rss)
        if scan and self._disk_dir is not None:
            self._check_disk([p.pid for p in tree])
        return True

    def _tree(self, root: psutil.Process) -> list[psutil.Process]:
        """The job's processes: its cgroup's when it has one (one read of ``cgroup.procs``;
        the group holds the whole tree, orphans included), else the descendants of its root
        (a scan of every process on the machine, which holds the GIL for milliseconds — too
        long beside a job that lasts a few)."""
        group = self.cgroup
        if group is None:
            return [root, *root.children(recursive=True)]
        tree = [root]
        for pid in group.pids() - {root.pid}:
            with contextlib.suppress(psutil.Error):
                tree.append(psutil.Process(pid))
        return tree

    def _check_disk(self, tree: list[int]) -> None:
        """Kill the job once its workdir is over :attr:`Limits.disk_bytes`."""
        assert self._disk_dir is not None and self.limits.disk_bytes is not None
        pids = self._cgroup.pids() if self._cgroup is not None else set(tree)
        if tree_bytes(self._disk_dir, pids) > self.limits.disk_bytes:
            self.kill("disk")

    def usage(self) -> tuple[float, int]:
        """CPU seconds used so far and peak resident memory (bytes) of the job, as sampled."""
        with self._lock:
            return self._cpu_seen, self._rss_peak

    # -- end -------------------------------------------------------------------------------------

    def _wait(self) -> None:
        status: int | None = None
        usage = None
        with contextlib.suppress(ChildProcessError):  # reaped by someone else: status lost
            _, status, usage = os.wait4(self._proc.pid, 0)
        exit_code = exit_code_of(status) if status is not None else LOST_STATUS
        self._proc.returncode = exit_code  # so Popen never waits for it again
        self._exited.set()
        self._armed.set()  # a watcher never armed (a warm sandbox discarded) ends too
        ended_at = now_ms()
        self._reader.join(DRAIN_TIMEOUT_S)
        if self._reader.is_alive():  # a leftover of the job holds the pipe open: end it
            with contextlib.suppress(OSError):
                self._kill_group()
            self._reader.join(DRAIN_TIMEOUT_S)
        stats = self._cgroup.settle() if self._cgroup is not None else None
        cpu_seen, rss_seen = self.usage()
        cpu = max(cpu_seen, (usage.ru_utime + usage.ru_stime) if usage is not None else 0.0)
        if stats is not None and stats.cpu_seconds is not None:
            cpu = max(cpu, stats.cpu_seconds)
        rss = max(rss_seen, usage.ru_maxrss * 1024 if usage is not None else 0)  # ru_: KiB
        with self._lock:
            reason = self._kill_reason
        if reason is None:
            reason = group_reason(exit_code, stats)
        if reason is None:
            reason = classify_exit(exit_code, self.tail(), self.limits, cpu)
        outcome = Outcome(
            exit_code=exit_code,
            kill_reason=reason,
            started_at=self.started_at,
            ended_at=ended_at,
            cpu_seconds=cpu,
            max_rss_bytes=rss,
        )
        with self._lock:
            self._ended = outcome
            self._lock.notify_all()
        if self._cgroup is not None:  # once its sandbox's init is gone too (JobCgroup.settle)
            self._cgroup.remove()
        with self._lock:
            self._outcome = outcome
            self._lock.notify_all()

    def poll(self) -> Outcome | None:
        """The outcome if the job has ended (and its output is drained), else None."""
        with self._lock:
            return self._outcome

    def wait(self, timeout: float | None = None) -> Outcome:
        """Block until the job ends and its cgroup is removed; raise TimeoutError if
        ``timeout`` seconds pass first."""
        return self._await("_outcome", timeout)

    def ended(self, timeout: float | None = None) -> Outcome:
        """Block until the job is over — none of its processes can run any more, its output
        drained, its usage counted — not until its cgroup is removed, which waits for its
        sandbox's init to tear the sandbox down (:meth:`.cgroups.JobCgroup.settle`): what a
        lease waits for before it collects the job's outputs."""
        return self._await("_ended", timeout)

    def _await(self, name: str, timeout: float | None) -> Outcome:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while (found := cast(Outcome | None, getattr(self, name))) is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"job {self.pid} still running after {timeout} s")
                self._lock.wait(left)
            return found

    def kill(self, reason: KillReason = "cancel") -> None:
        """Stop the job now. The first reason given is the one reported."""
        with self._lock:
            if self._ended is not None:
                return
            if self._kill_reason is None:
                self._kill_reason = reason
        with contextlib.suppress(ProcessLookupError, PermissionError):
            self._kill_group()
        if self._on_kill is not None:
            with contextlib.suppress(Exception):
                self._on_kill()

    def _kill_group(self) -> None:
        if self._cgroup is not None:
            self._cgroup.kill()
        os.killpg(self.pid, signal.SIGKILL)
