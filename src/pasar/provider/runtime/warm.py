"""Warm sandboxes: bubblewrap sandboxes started ahead of their lease, one lease each (issue 13).

Why: starting a sandbox and a Python in it, then importing cloudpickle and the remote entry,
is most of a trivial ``@pasar.remote`` call's time on the provider (60-100 ms of ~200). A
:class:`WarmPool` keeps ``size`` sandboxes per :class:`WarmKey` started and waiting, each
running the zygote (:mod:`pasar.provider.zygote`) blocked on its control pipe.

**Isolation is a cold sandbox's.** A warm sandbox is started by the same code as a cold job
(:meth:`.sandbox.SandboxRuntime.spawn`: the same bwrap options, seccomp filter, namespaces,
launch script, root-mode uid switch and a cgroup of its own), serves exactly one lease and is
destroyed with it; one that is not taken is killed, never reused. What bwrap fixes at start —
the network namespace, the GPU device nodes and the size of ``/tmp`` and ``/dev/shm`` (the
job's memory) — is the pool's key: a lease whose key has no warm sandbox ready runs cold.
Everything else is applied before the lease's first instruction, in this order
(:meth:`WarmSandbox.start`): the lease's memory, CPU and process limits are written into the
sandbox's cgroup (the zygote and everything it will start are already in it); in root mode
the workdir, already filled with the lease's inputs, is given to the sandbox's uid; the
handle's wall clock, usage sampler and disk quota start; then the zygote gets its *go* — the
job's rlimits (the list ``prlimit`` applies to a cold job), its whole environment, its
command — applies them and only then answers ``ok`` and runs the job (in-process for the
remote entry, else by ``exec /bin/sh -c``). A zygote that does not answer ``ok`` is killed
and the lease runs cold in the same workdir: a broken zygote never runs a job.

**The workdir.** Each warm sandbox binds a fresh empty directory of the provider's workroot at
``/work``; the executor takes the sandbox *before* fetching inputs and renames that directory
to the lease's workdir (:meth:`WarmSandbox.claim`; a bind mount follows a renamed directory).

The pool refills in the background after each take (:data:`REFILL_THREADS` starts at once),
learns the keys leases come with (up to :data:`MAX_KEYS`, the least recently used dropped),
and backs off from a key whose sandboxes keep failing to start. A lease that finds none of its
key ready while one is starting waits for it (up to :data:`TAKE_WAIT_S`) rather than start a
cold sandbox, which would be ready later and take CPU from the one starting: the pool's refill
rate, not its size, is what a steady stream of calls to one provider runs into. So a key whose
lease found none ready keeps one sandbox more (up to :data:`GROW_MAX` beyond ``size``): calls
back to back then take the one started after the lease before last, where with ``size`` the
one started after the previous lease (~100 ms of CPU, more on a busy machine) was often still
starting. An idle provider keeps ``size``; a busy key costs memory, not CPU (each lease
consumes one sandbox whatever the pool's size).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import logging
import os
import secrets
import select
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pasar.core.errors import PasarError
from pasar.provider.runtime.base import GpuGrant, Limits, RunHandle, chown_tree, job_rlimits
from pasar.provider.runtime.sandbox import (
    SandboxRuntime,
    base_environment,
    drop_privileges,
    job_environment,
)

log = logging.getLogger("pasar.provider.warm")

GIB = 1 << 30
DEFAULT_SIZE = 2  # warm sandboxes per key: the agent's ``--warm-pool`` default
GROW_MAX = 2  # sandboxes a key may grow by, beyond ``size``, once its leases found none ready
MAX_KEYS = 4  # keys kept warm at once; the least recently used is dropped
READY_TIMEOUT_S = 30.0  # a zygote not ready by then is broken
GO_TIMEOUT_S = 10.0  # a zygote that does not confirm its go by then is broken
RETRY_S = 1.0  # after a failed start: doubling up to RETRY_MAX_S while a key keeps failing
RETRY_MAX_S = 60.0
CLOSE_WAIT_S = 10.0  # how long closing waits for a killed sandbox to end
PRUNE_S = 5.0  # how often idle sandboxes are checked for having died
# A lease that finds no sandbox of its key ready, while one is starting, waits this long for it
# rather than starting cold: the starting one began earlier, so it is ready sooner than a cold
# sandbox would be (and a cold start's CPU would slow it down further).
TAKE_WAIT_S = 1.0
# A sandbox taken is replaced when its lease ends (or this much later, for a long lease): its
# start (~100 ms of CPU for bwrap and a Python) would otherwise slow the lease that took it
REFILL_DEFER_S = 1.0
# sandboxes started at once: a start is partly waiting (bwrap's mounts, the exec chain), so two
# overlap; more would only take CPU from the leases
REFILL_THREADS = 2
POOL_PROCESSES = 256  # a zygote's process limit until its lease's is written
PREFIX = ".warm-"  # a warm sandbox's directory in the workroot, until a lease claims it
ZYGOTE = "pasar.provider.zygote"
REMOTE_RUN = "python -m pasar.client.remote_entry"  # pasar.client.remote.RUN (not imported:
# the client SDK's import stays out of the agent; a unit test checks they agree)
# variables a Python reads when it starts (or that choose which Python starts): a job that
# sets one runs by exec, so that a fresh Python sees them as a cold job's would
STARTUP_VARIABLES = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ")
STARTUP_PREFIXES = ("PYTHON", "LD_", "LC_", "MALLOC", "GLIBC")


class WarmSandboxBrokenError(Exception):
    """The zygote did not take its go: nothing of the job ran; run the lease cold."""


@dataclass(frozen=True)
class WarmKey:
    """What a sandbox's bwrap command line depends on, besides the host: leases match a warm
    sandbox only on all of it."""

    network: bool
    gpus: tuple[GpuGrant, ...]
    memory_bytes: int  # the size of the sandbox's /tmp and /dev/shm

    @classmethod
    def of(cls, limits: Limits) -> WarmKey:
        return cls(network=limits.network, gpus=limits.gpus, memory_bytes=limits.memory_bytes)

    def describe(self) -> str:
        """``network, GPUs 0,1, 1 GiB`` (for the log)."""
        gpus = ",".join(str(g.index) for g in self.gpus) if self.gpus else ""
        return ", ".join(
            [
                "network" if self.network else "no network",
                f"GPUs {gpus}" if gpus else "no GPU",
                f"{self.memory_bytes / GIB:g} GiB",
            ]
        )

    def limits(self) -> Limits:
        """The limits a warm sandbox starts under, before its lease's replace them: the key's
        own, and no clock (the zygote only waits)."""
        return Limits(
            memory_bytes=self.memory_bytes,
            cpu_seconds=1 << 30,
            max_processes=POOL_PROCESSES,
            max_file_bytes=self.memory_bytes,
            wall_seconds=float(1 << 30),
            network=self.network,
            gpus=self.gpus,
        )


#: a default ``@pasar.remote`` call's key (1 GB, no network, no GPU): warm from the start
DEFAULT_KEY = WarmKey(network=False, gpus=(), memory_bytes=GIB)


def runs_inline(run: str, setup: str | None, envs: Mapping[str, str]) -> bool:
    """Whether a job may run in the zygote's own Python: its command is exactly the remote
    entry's, with no setup, and it sets no variable a fresh Python would read at start."""
    if run.strip() != REMOTE_RUN or setup:
        return False
    return not any(k in STARTUP_VARIABLES or k.startswith(STARTUP_PREFIXES) for k in envs)


def _read_line(fd: int, timeout_s: float) -> bytes:
    """One line from a pipe, or what came before EOF or the timeout."""
    data = b""
    deadline = time.monotonic() + timeout_s
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


class WarmSandbox:
    """One started sandbox, its zygote waiting: taken by one lease, or discarded."""

    def __init__(
        self,
        runtime: SandboxRuntime,
        key: WarmKey,
        workroot: Path,
        *,
        ready_timeout_s: float,
        spawned: Callable[[WarmSandbox], None] | None = None,
    ) -> None:
        """Start the sandbox and wait for its zygote's ``ready``. ``spawned`` is called once
        the process exists, before that wait: the pool's :meth:`WarmPool.close` then can
        :meth:`abort` a start in progress (the wait ends at once, raising
        :class:`WarmSandboxBrokenError`); a ``spawned`` that raises aborts it too."""
        self.runtime = runtime
        self.key = key
        self.workdir = workroot / f"{PREFIX}{secrets.token_hex(8)}"
        self.workdir.mkdir()  # as the executor makes a cold workdir
        self.job_uid: int | None = None
        if runtime.host.as_root:
            self.job_uid = runtime.job_uid()
            os.chown(self.workdir, self.job_uid, self.job_uid)
        control_r, self._control = os.pipe()
        self._status, status_w = os.pipe()
        zygote = [
            *drop_privileges(runtime.host, self.job_uid),
            "env", "-i", "--",
            *(f"{k}={v}" for k, v in base_environment(runtime.host).items()),
            "python", "-m", ZYGOTE, str(control_r), str(status_w),
        ]  # fmt: skip
        try:
            self.handle: RunHandle = runtime.spawn(
                self.workdir, zygote, key.limits(), pass_fds=(control_r, status_w), armed=False
            )
        except BaseException:
            self._close()
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        try:
            if spawned is not None:
                spawned(self)
        except BaseException:
            self.discard()
            with contextlib.suppress(TimeoutError):  # ended, its cgroup removed
                self.handle.wait(timeout=1.0)
            raise
        answer = _read_line(self._status, ready_timeout_s)
        if answer != b"ready\n":
            self.discard()
            with contextlib.suppress(TimeoutError):
                self.handle.wait(timeout=1.0)
            said = " | ".join(line.strip() for line in self.handle.tail(5))
            raise WarmSandboxBrokenError(f"the zygote did not start: {said or answer[:200]!r}")

    @property
    def alive(self) -> bool:
        return self.handle.poll() is None and self._control >= 0

    def claim(self, workdir: Path) -> None:
        """Make ``workdir`` (which must not exist) the sandbox's ``/work``: its directory is
        renamed, and the sandbox's bind mount follows it."""
        os.rename(self.workdir, workdir)
        self.workdir = workdir

    def start(
        self,
        command: str,
        env: Mapping[str, str],
        limits: Limits,
        *,
        inline: bool,
        go_timeout_s: float = GO_TIMEOUT_S,
    ) -> RunHandle:
        """Run the lease's job here (see the module doc for the order of things). Raises
        :class:`WarmSandboxBrokenError`, with the sandbox killed and nothing of the job run,
        if the zygote is gone or does not confirm; the caller then runs the lease cold."""
        if WarmKey.of(limits) != self.key:
            raise ValueError("a lease's limits that do not match the warm sandbox's key")
        if limits.mounts:  # bound as bwrap starts: this one started without them
            self.discard()
            raise WarmSandboxBrokenError("absolute file_mounts need a sandbox of their own")
        if not self.alive:
            self.discard()
            raise WarmSandboxBrokenError("the zygote ended before its lease")
        try:
            group = self.handle.cgroup
            if group is not None:
                group.set_limits(
                    memory_bytes=limits.memory_bytes,
                    cpus=limits.cpus,
                    max_processes=limits.max_processes,
                )
            if self.job_uid is not None:
                chown_tree(self.workdir, self.job_uid)
            go = {
                "rlimits": [[name, soft, hard] for _, name, soft, hard in job_rlimits(limits)],
                "env": job_environment(env, limits, self.runtime.host),
                "command": command,
                "inline": inline,
            }
            self.handle.arm(limits, self.workdir)
            os.write(self._control, json.dumps(go).encode() + b"\n")
        except (OSError, PasarError) as exc:
            self.discard()
            raise WarmSandboxBrokenError(f"the go failed: {exc}") from exc
        answer = _read_line(self._status, go_timeout_s)
        if answer != b"ok\n":
            self.discard()
            raise WarmSandboxBrokenError(f"the zygote refused its go: {answer[:200]!r}")
        self._close()
        return self.handle

    def abort(self) -> None:
        """Kill the sandbox from another thread than the one starting it: that thread's wait
        for ``ready`` then sees the status pipe close and cleans up (:meth:`discard`). Only
        the process is touched here: closing the pipe under a thread reading it could hand
        its descriptor number to another file meanwhile."""
        self.handle.kill("cancel")

    def discard(self) -> None:
        """Kill the sandbox (a zygote never serves a second lease, nor one not meant for it)
        and remove its directory unless a lease claimed it (the lease's executor removes it)."""
        handle = getattr(self, "handle", None)
        if handle is not None:
            handle.kill("cancel")
        self._close()
        if self.workdir.name.startswith(PREFIX):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _close(self) -> None:
        for name in ("_control", "_status"):
            fd = getattr(self, name)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, name, -1)


class WarmPool:
    """``size`` warm sandboxes per key, refilled by a thread of its own (:meth:`start`)."""

    def __init__(
        self,
        runtime: SandboxRuntime,
        workroot: Path,
        size: int = DEFAULT_SIZE,
        *,
        keys: Iterable[WarmKey] = (DEFAULT_KEY,),
        max_keys: int = MAX_KEYS,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        self.runtime = runtime
        self.workroot = workroot
        self.size = size
        self.max_keys = max_keys
        self.ready_timeout_s = ready_timeout_s
        self._lock = threading.Condition()
        self._idle: dict[WarmKey, collections.deque[WarmSandbox]] = {}
        self._retry_at: dict[WarmKey, tuple[float, float]] = {}  # key → (when, backoff)
        self._starting: dict[WarmKey, int] = {}  # sandboxes being started, per key
        self._grown: dict[WarmKey, int] = {}  # sandboxes a key keeps beyond ``size`` (GROW_MAX)
        self._spawned: set[WarmSandbox] = set()  # started, not ready yet: what close aborts
        # per key, a replacement owed for each sandbox taken by a lease still running, due at
        # the time listed: a refill then does not compete with that lease for the CPU
        self._deferred: dict[WarmKey, list[float]] = {}
        self._announced: set[WarmKey] = set()  # keys whose pool was full once (logged)
        self._closed = False
        self._threads: list[threading.Thread] = []
        self.started = 0  # sandboxes started, for tests and the log
        self.taken = 0
        for key in keys:
            self._idle[key] = collections.deque()

    # -- the lease's side ------------------------------------------------------------------------

    def take(self, limits: Limits, *, wait_s: float = TAKE_WAIT_S) -> WarmSandbox | None:
        """A ready sandbox for these limits, or None (the lease runs cold). When none is ready
        but one of the key is starting (or can start now), waits up to ``wait_s`` for it.
        Either way the key is remembered. The sandbox taken is replaced once its lease ends
        (:meth:`finished`) or :data:`REFILL_DEFER_S` later, whichever comes first; at once if
        another lease needs one meanwhile."""
        key = WarmKey.of(limits)
        found: WarmSandbox | None = None
        dead: list[WarmSandbox] = []
        deadline = time.monotonic() + wait_s
        released = False
        with self._lock:
            if self._closed or self.size <= 0:
                return None
            known = key in self._idle  # kept warm already (a new key's first lease runs cold)
            idle = self._idle.pop(key, collections.deque())
            self._idle[key] = idle  # most recently used last
            evicted = self._evict()
            if known and not any(s.alive for s in idle):  # none ready: too few for its leases
                self._grown[key] = min(self._grown.get(key, 0) + 1, GROW_MAX)
            while found is None and not self._closed:
                while idle and found is None:
                    candidate = idle.popleft()
                    if candidate.alive:
                        found = candidate
                    else:
                        dead.append(candidate)
                if found is not None:
                    break
                deferred = self._deferred.get(key)
                if deferred and not released:  # a lease waits: start a replacement owed now
                    deferred.pop(0)
                    released = True
                self._lock.notify_all()
                left = deadline - time.monotonic()
                if left <= 0 or not (self._starting.get(key) or self._can_start(key)):
                    break
                self._lock.wait(left)
                idle = self._idle.get(key, collections.deque())
            if found is not None:
                self.taken += 1
                self._deferred.setdefault(key, []).append(time.monotonic() + REFILL_DEFER_S)
            self._lock.notify_all()
        for sandbox in [*dead, *evicted]:
            sandbox.discard()
        return found

    def finished(self, limits: Limits) -> None:
        """A lease that took a sandbox of these limits ended: replace it now (the machine's
        CPU is the lease's no more)."""
        key = WarmKey.of(limits)
        with self._lock:
            deferred = self._deferred.get(key)
            if deferred:
                deferred.pop(0)
                self._lock.notify_all()

    def _can_start(self, key: WarmKey) -> bool:
        """Whether a refill thread will start a sandbox of ``key`` now (call with the lock)."""
        have = len(self._idle.get(key, ())) + self._starting.get(key, 0)
        have += len(self._deferred.get(key, ()))
        retry_at = self._retry_at.get(key, (0.0, 0.0))[0]
        return bool(self._threads) and have < self.wanted(key) and retry_at <= time.monotonic()

    def wanted(self, key: WarmKey) -> int:
        """How many sandboxes of ``key`` the pool keeps (``size``, grown once its leases
        found none ready)."""
        return self.size + self._grown.get(key, 0)

    def _evict(self) -> list[WarmSandbox]:
        """Drop the least recently used keys over :attr:`max_keys` (call with the lock)."""
        dropped: list[WarmSandbox] = []
        while len(self._idle) > self.max_keys:
            oldest = next(iter(self._idle))
            dropped += self._idle.pop(oldest)
            self._retry_at.pop(oldest, None)
            self._deferred.pop(oldest, None)
            self._grown.pop(oldest, None)
        return dropped

    # -- the refill ------------------------------------------------------------------------------

    def start(self) -> None:
        if self.size <= 0 or self._threads:
            return
        with self._lock:  # listed before any runs: a refill with none listed would not start
            self._threads = [
                threading.Thread(target=self._refill, name=f"warm-pool-{i}", daemon=True)
                for i in range(min(self.size, REFILL_THREADS))
            ]
        for thread in self._threads:
            thread.start()

    def _wanted(self) -> tuple[WarmKey | None, float]:
        """The next key short of sandboxes (most recently used first), or None and how long
        to wait before looking again (call with the lock). Idle ones that died meanwhile, and
        deferred replacements that are due, are dropped here."""
        now = time.monotonic()
        wait = PRUNE_S
        for key in reversed(self._idle):
            idle = self._idle[key]
            for sandbox in [s for s in idle if not s.alive]:
                idle.remove(sandbox)
                sandbox.discard()
            deferred = self._deferred.get(key, [])
            while deferred and deferred[0] <= now:
                deferred.pop(0)
            if deferred:
                wait = min(wait, deferred[0] - now)
            if self._can_start(key):
                return key, 0.0
        return None, wait

    def _refill(self) -> None:
        while True:
            with self._lock:
                key, wait = self._wanted()
                while key is None and not self._closed:
                    self._lock.wait(wait)  # woken by a take or a lease's end
                    key, wait = self._wanted()
                if self._closed or key is None:
                    return
                self._starting[key] = self._starting.get(key, 0) + 1
            mine: list[WarmSandbox] = []  # the one this start spawned, ready or not
            try:
                sandbox: WarmSandbox | None = WarmSandbox(
                    self.runtime,
                    key,
                    self.workroot,
                    ready_timeout_s=self.ready_timeout_s,
                    spawned=functools.partial(self._spawn_seen, mine=mine),
                )
            except (WarmSandboxBrokenError, PasarError, OSError) as exc:
                sandbox = None
                if not self._closed:  # else: aborted by close, not a failure of the key
                    self._failed(key, exc)
            with self._lock:
                self._spawned.difference_update(mine)
                self._starting[key] -= 1
                idle = self._idle.get(key)
                keep = sandbox is not None and not self._closed and idle is not None
                if sandbox is not None:
                    self.started += 1
                    self._retry_at.pop(key, None)
                if keep and idle is not None and sandbox is not None:
                    idle.append(sandbox)
                    if len(idle) == self.size and key not in self._announced:
                        self._announced.add(key)
                        log.info("warm sandboxes ready: %d × %s", self.size, key.describe())
                self._lock.notify_all()  # a take waiting for this key
            if sandbox is not None and not keep:
                sandbox.discard()  # closed, or the key was dropped meanwhile

    def _spawn_seen(self, sandbox: WarmSandbox, mine: list[WarmSandbox]) -> None:
        """A sandbox's process exists and its zygote is starting: :meth:`close` may abort it.
        Raises when the pool closed meanwhile (the start then ends there)."""
        mine.append(sandbox)
        with self._lock:
            if self._closed:
                raise WarmSandboxBrokenError("the pool closed while the sandbox started")
            self._spawned.add(sandbox)

    def _failed(self, key: WarmKey, exc: Exception) -> None:
        with self._lock:
            _, backoff = self._retry_at.get(key, (0.0, RETRY_S / 2))
            backoff = min(2 * backoff, RETRY_MAX_S)
            self._retry_at[key] = (time.monotonic() + backoff, backoff)
        log.warning("a warm sandbox failed to start (retrying in %.0f s): %s", backoff, exc)

    # -- the end -----------------------------------------------------------------------------

    def idle(self, key: WarmKey = DEFAULT_KEY) -> int:
        """How many sandboxes of ``key`` are ready now."""
        with self._lock:
            return sum(1 for s in self._idle.get(key, ()) if s.alive)

    def wait_ready(self, key: WarmKey = DEFAULT_KEY, count: int = 1, timeout_s: float = 60) -> bool:
        """Block until ``count`` sandboxes of ``key`` are ready (tests, benchmarks)."""
        deadline = time.monotonic() + timeout_s
        while self.idle(key) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> None:
        """Kill every idle sandbox, abort those starting, and stop refilling (a taken one
        ends with its lease). Why abort: a start waits up to :data:`READY_TIMEOUT_S` for its
        zygote, which a loaded machine can take long to get to; a stopping agent must not."""
        with self._lock:
            self._closed = True
            left = [s for idle in self._idle.values() for s in idle]
            self._idle = {}
            starting = list(self._spawned)
            self._lock.notify_all()
        for sandbox in starting:  # its refill thread sees the pipe close and cleans up
            sandbox.abort()
        for sandbox in left:
            sandbox.discard()
        # one deadline for all the refill threads, and one for all the sandboxes' ends: waited
        # one after another with a limit each, a pool of several keys could hold a stopping
        # agent for minutes (CI saw a provider killed after 120 s)
        threads_by = time.monotonic() + READY_TIMEOUT_S
        for thread in self._threads:
            thread.join(max(0.0, threads_by - time.monotonic()))
        ended_by = time.monotonic() + CLOSE_WAIT_S
        for sandbox in [*left, *starting]:  # ended, cgroups removed, before the agent exits
            with contextlib.suppress(TimeoutError):
                sandbox.handle.wait(timeout=max(0.0, ended_by - time.monotonic()))
