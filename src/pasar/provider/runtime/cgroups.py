"""One cgroup per job, so memory, CPU and processes are limited for the job as a whole.

rlimits are per process: three processes under a 1 GB RLIMIT_AS use 3 GB together. A cgroup
holds the job's whole process tree, and the kernel limits and accounts the tree at once.

**What this machine can do** (:func:`detect`) is decided by *controllers*, not mounts: a host
may mount a v2 hierarchy that has no controllers enabled (e.g. ``/sys/fs/cgroup/unified`` of a
hybrid systemd layout) next to usable v1 ``memory``, ``cpu`` and ``pids`` hierarchies. v2 is
used when the agent's own v2 group already enables ``memory``, ``cpu`` and ``pids`` for its
children (``cgroup.subtree_control``) and a child can be created there; v1 otherwise, where
a group can be created in the agent's own group of each v1 controller; and none (rlimits
only) when neither works — not root, no delegation. Groups are created *inside the agent's
own groups*, so whatever limits the agent itself still hold for its jobs.

**Joining before the first instruction.** Writing the job's pid into the group after spawning
it would leave a window in which the job runs (and forks) outside. :meth:`JobCgroup.join_argv`
is a ``/bin/sh`` prefix that writes its own pid into every group and then ``exec``s the real
command, so bwrap and everything under it start inside.

**Ending.** :meth:`JobCgroup.finish` kills whatever is left in the group, reads the counters
(OOM kills, fork refusals, CPU time) and removes the group: no group outlives its job. A job
that just ended does not wait for the group to empty: :meth:`JobCgroup.settle` kills and
counts until only its sandbox's init is left — bwrap's pid 1, which is not the job's code
and, killed as its sandbox ends, tears down the sandbox's namespaces (milliseconds of
unmounting, more on a busy machine) — and :meth:`JobCgroup.remove` removes the group once
that is over, after the job's outcome is known.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

CGROUP_ROOT = Path("/sys/fs/cgroup")
WANTED = ("memory", "cpu", "pids")  # what a job is limited by
V1_ACCOUNTING = ("cpuacct",)  # v1 only: where a group's CPU time is read
GROUP_PREFIX = "pasar-job-"
CPU_PERIOD_US = 100_000
# CFS bandwidth control hands out run time in per-CPU slices: a quota of exactly one period
# throttles even a single-threaded job now and then (measured: ~4 % slower than no quota on
# this 2-core VM). 5 % of headroom gives a ``cpus: 1`` job a whole CPU, and still holds any
# job to well under 1.2 CPU-seconds a second per CPU it asked for.
CPU_QUOTA_HEADROOM = 1.05
# bwrap and its pid-1 reaper run inside the group as well as the job's own processes
PIDS_HEADROOM = 2
KILL_ROUNDS = 50  # how many times :meth:`JobCgroup.kill` sweeps the group before giving up
KILL_PAUSE_S = 0.02
KILL_FIRST_PAUSE_S = 0.0005

Version = Literal["v1", "v2"]

# a shell that joins the groups named before "--" and then becomes the command after it
_JOIN = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


@dataclass(frozen=True)
class CgroupSupport:
    """What :func:`detect` found: the version in use, the controllers it limits with, where
    job groups are created (v1: one directory per controller; v2: one, under key ``""``),
    and in words what that means or why there is none."""

    version: Version | None
    controllers: tuple[str, ...] = ()
    parents: dict[str, Path] = field(default_factory=dict)
    detail: str = ""

    @property
    def enforcement(self) -> str:
        """How a job's memory is bounded here, as providers advertise it in their offer's
        ``limits`` attribute: ``cgroup-v1``, ``cgroup-v2``, or ``rlimit`` (per process)."""
        if self.version is not None and "memory" in self.controllers:
            return f"cgroup-{self.version}"
        return "rlimit"


def own_groups(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as controller → path; the v2 line (``0::/path``) under ``""``."""
    groups: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, names, path = parts
        for name in names.split(",") if names else [""]:
            groups[name] = path
    return groups


def mounts(text: str) -> list[tuple[str, Path, set[str]]]:
    """``/proc/self/mounts`` reduced to (fstype, mount point, options) of cgroup mounts."""
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            found.append((parts[2], Path(parts[1]), set(parts[3].split(","))))
    return found


def _can_create_child(parent: Path, expected: Iterable[str]) -> str | None:
    """None when a child group can be created in ``parent`` with ``expected`` files in it."""
    probe = parent / f"{GROUP_PREFIX}probe-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        probe.mkdir()
    except OSError as exc:
        return f"cannot create a group in {parent}: {exc.strerror}"
    try:
        missing = [name for name in expected if not (probe / name).exists()]
        return f"{parent}: a new group lacks {', '.join(missing)}" if missing else None
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def _v2_parent(parent: Path) -> str | None:
    """None when job groups can be created in ``parent`` (v2), else why not."""
    try:
        offered = set((parent / "cgroup.controllers").read_text().split())
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
    except OSError as exc:
        return f"cgroup v2 at {parent} unreadable: {exc.strerror}"
    missing = [name for name in WANTED if name not in offered]
    if missing:
        return f"cgroup v2 at {parent} lacks {', '.join(missing)}"
    if not set(WANTED) <= enabled:
        # Enabling is the operator's choice (and fails while the group holds processes):
        # detection must not change the machine.
        return f"cgroup v2 at {parent} does not enable {', '.join(WANTED)} for its children"
    return _can_create_child(parent, ("memory.max", "cpu.max", "pids.max"))


def _detect_v2(groups: dict[str, str], found: list[tuple[str, Path, set[str]]]) -> CgroupSupport:
    """v2 job groups go in the agent's own group when it enables the controllers for its
    children — or, since v2 lets only a group *without* processes do that, in its parent when
    the agent runs in a leaf of a delegated group (systemd ``Delegate=yes``, the agent moved
    into a sub-group of its unit): job groups are then the agent's siblings, still inside the
    delegated group."""
    mount = next((point for kind, point, _ in found if kind == "cgroup2"), None)
    if mount is None or "" not in groups:
        return CgroupSupport(None, detail="no cgroup v2 hierarchy")
    own = mount / groups[""].lstrip("/")
    why = _v2_parent(own)
    if why is None:
        return CgroupSupport("v2", WANTED, {"": own}, f"at {own}")
    if own != mount and _v2_parent(own.parent) is None:
        return CgroupSupport("v2", WANTED, {"": own.parent}, f"at {own.parent}")
    return CgroupSupport(None, detail=why)


def _detect_v1(groups: dict[str, str], found: list[tuple[str, Path, set[str]]]) -> CgroupSupport:
    expected = {
        "memory": ("memory.limit_in_bytes", "memory.oom_control"),
        "cpu": ("cpu.cfs_quota_us", "cpu.cfs_period_us"),
        "pids": ("pids.max", "pids.events"),
        "cpuacct": ("cpuacct.usage",),
    }
    parents: dict[str, Path] = {}
    problems: list[str] = []
    for name in (*WANTED, *V1_ACCOUNTING):
        mount = next((p for kind, p, opts in found if kind == "cgroup" and name in opts), None)
        if mount is None or name not in groups:
            problems.append(f"no v1 {name} hierarchy")
            continue
        parent = mount / groups[name].lstrip("/")
        why = _can_create_child(parent, expected[name])
        if why is None:
            parents[name] = parent
        else:
            problems.append(why)
    controllers = tuple(name for name in WANTED if name in parents)
    if not controllers:
        return CgroupSupport(None, detail="; ".join(problems) or "no cgroup v1 hierarchy")
    detail = f"under {CGROUP_ROOT}"
    if problems:
        detail += f"; {'; '.join(problems)}"
    return CgroupSupport("v1", controllers, parents, detail)


@functools.cache
def detect() -> CgroupSupport:
    """What this machine can do, probed once per process (it does not change while we run).
    The only trace it leaves is none: a probe group is created and removed at once."""
    try:
        groups = own_groups(Path("/proc/self/cgroup").read_text())
        found = mounts(Path("/proc/self/mounts").read_text())
    except OSError as exc:
        return CgroupSupport(None, detail=f"cannot read /proc: {exc.strerror}")
    v2 = _detect_v2(groups, found)
    if v2.version is not None:
        return v2
    v1 = _detect_v1(groups, found)
    if v1.version is not None:
        return v1
    return CgroupSupport(None, detail=f"{v2.detail}; {v1.detail}")


def remove_stale(support: CgroupSupport) -> int:
    """Remove the empty groups of agents that died without cleaning up (SIGKILL, power loss):
    a group's name carries its agent's pid. A group still holding processes is left alone
    (``rmdir`` refuses it), and so is one whose pid is alive. Returns how many were removed."""
    removed = 0
    for parent in set(support.parents.values()):
        with contextlib.suppress(OSError):
            for child in parent.glob(f"{GROUP_PREFIX}*"):
                owner = child.name[len(GROUP_PREFIX) :].removeprefix("probe-").split("-")[0]
                if not owner.isdigit() or _alive(int(owner)):
                    continue
                with contextlib.suppress(OSError):
                    child.rmdir()
                    removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class GroupStats:
    """The group's counters when its job ended."""

    oom_kills: int
    pids_refused: int  # forks the ``pids`` limit refused
    cpu_seconds: float | None  # None where the group does not account CPU time


class JobCgroup:
    """One job's group (one directory per v1 controller, one in v2), limits already written."""

    def __init__(
        self,
        support: CgroupSupport,
        *,
        memory_bytes: int,
        cpus: float | None,
        max_processes: int,
    ) -> None:
        if support.version is None:
            raise OSError("cgroups are not available here")
        self.version: Version = support.version
        name = f"{GROUP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        self.dirs: dict[str, Path] = {}
        try:
            for controller, parent in support.parents.items():
                path = parent / name
                if path not in self.dirs.values():  # v1 cpu and cpuacct may share a mount
                    path.mkdir()
                self.dirs[controller] = path
            self._write_limits(memory_bytes, cpus, max_processes + PIDS_HEADROOM)
        except OSError:
            self.remove()
            raise

    def _file(self, controller: str, name: str) -> Path | None:
        directory = self.dirs.get("" if self.version == "v2" else controller)
        return None if directory is None else directory / name

    def _write(self, controller: str, name: str, value: str, *, required: bool = True) -> None:
        path = self._file(controller, name)
        if path is None:
            return
        try:
            path.write_text(value)
        except OSError:
            if required:
                raise

    def set_limits(self, *, memory_bytes: int, cpus: float | None, max_processes: int) -> None:
        """Write the limits again: a warm sandbox's group (:mod:`.warm`) was created for its
        zygote, before its lease was known, and gets the lease's limits before the lease's job
        runs. ``cpus=None`` lifts a CPU bound written before."""
        self._write_limits(memory_bytes, cpus, max_processes + PIDS_HEADROOM, unbound_cpu=True)

    def _write_limits(
        self, memory_bytes: int, cpus: float | None, pids: int, *, unbound_cpu: bool = False
    ) -> None:
        quota = None if cpus is None else max(1000, int(cpus * CPU_QUOTA_HEADROOM * CPU_PERIOD_US))
        if self.version == "v2":
            self._write("", "memory.max", str(memory_bytes))
            self._write("", "memory.swap.max", "0", required=False)  # no escape into swap
            self._write("", "memory.oom.group", "1", required=False)  # one OOM ends the job
            if quota is not None:
                self._write("", "cpu.max", f"{quota} {CPU_PERIOD_US}")
            elif unbound_cpu:
                self._write("", "cpu.max", f"max {CPU_PERIOD_US}")
            self._write("", "pids.max", str(pids))
            return
        # memory + swap must stay >= memory: lower the plain limit first, raise it last
        self._write("memory", "memory.limit_in_bytes", str(memory_bytes), required=False)
        # memory + swap: only where swap accounting is on; must come after the plain limit
        self._write("memory", "memory.memsw.limit_in_bytes", str(memory_bytes), required=False)
        self._write("memory", "memory.limit_in_bytes", str(memory_bytes))
        if quota is not None:
            self._write("cpu", "cpu.cfs_period_us", str(CPU_PERIOD_US))
            self._write("cpu", "cpu.cfs_quota_us", str(quota))
        elif unbound_cpu:
            self._write("cpu", "cpu.cfs_quota_us", "-1")
        self._write("pids", "pids.max", str(pids))

    # -- joining ---------------------------------------------------------------------------------

    def join_argv(self) -> list[str]:
        """A prefix for a command line that runs it inside this group from its first
        instruction: the shell writes its own pid into each group, then execs the command."""
        files = sorted({str(path / "cgroup.procs") for path in self.dirs.values()})
        return ["/bin/sh", "-c", _JOIN, "pasar-cgroup-join", *files, "--"]

    # -- counters --------------------------------------------------------------------------------

    def _counter(self, controller: str, name: str, key: str) -> int:
        path = self._file(controller, name)
        if path is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == key:
                    return int(parts[1])
        return 0

    def oom_kills(self) -> int:
        """Processes of the job the kernel killed for the group's memory limit."""
        if self.version == "v2":
            return self._counter("memory", "memory.events", "oom_kill")
        return self._counter("memory", "memory.oom_control", "oom_kill")

    def pids_refused(self) -> int:
        """Forks the group's process limit refused."""
        return self._counter("pids", "pids.events", "max")

    def cpu_seconds(self) -> float | None:
        """CPU time of every process the job ever ran, exited ones included."""
        if self.version == "v2":
            return self._counter("cpu", "cpu.stat", "usage_usec") / 1e6
        path = self.dirs.get("cpuacct")
        if path is None:
            return None
        with contextlib.suppress(OSError, ValueError):
            return int((path / "cpuacct.usage").read_text()) / 1e9
        return None

    def cpu_quota(self) -> tuple[int, int] | None:
        """(quota, period) in microseconds, or None when the job's CPU share is unbounded."""
        if self.version == "v2":
            path = self._file("cpu", "cpu.max")
            text = path.read_text().split() if path is not None else []
            return (int(text[0]), int(text[1])) if len(text) == 2 and text[0].isdigit() else None
        quota, period = (
            self._file("cpu", "cpu.cfs_quota_us"),
            self._file("cpu", "cpu.cfs_period_us"),
        )
        if quota is None or period is None or int(quota.read_text()) < 0:
            return None
        return int(quota.read_text()), int(period.read_text())

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.dirs.values():
            with contextlib.suppress(OSError, ValueError):
                found.update(int(x) for x in (path / "cgroup.procs").read_text().split())
        return found

    # -- ending ----------------------------------------------------------------------------------

    def kill(self, *, spare_inits: bool = False) -> None:
        """SIGKILL every process in the group, sweeping until it is empty (a process may fork
        between a read of ``cgroup.procs`` and the kill; ``pids.max`` bounds how often) — or,
        with ``spare_inits``, until it holds nothing but pid namespaces' inits, killed already
        (see :meth:`settle`).

        The pause between sweeps starts at :data:`KILL_FIRST_PAUSE_S` and doubles up to
        :data:`KILL_PAUSE_S`: what is usually left when a job has ended is its sandbox's init,
        gone a fraction of a millisecond later (more on a busy machine)."""
        pause = KILL_FIRST_PAUSE_S
        for _ in range(KILL_ROUNDS):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if spare_inits and all(namespace_init(pid) for pid in pids):
                return
            time.sleep(pause)
            pause = min(2 * pause, KILL_PAUSE_S)

    def remove(self) -> None:
        """Remove the group's directories (a group empties a moment after its last kill)."""
        for path in self.dirs.values():
            pause = KILL_FIRST_PAUSE_S
            for _ in range(KILL_ROUNDS):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(pause)
                    pause = min(2 * pause, KILL_PAUSE_S)
        self.dirs = {}

    def settle(self) -> GroupStats:
        """Kill what is left of an ended job and read the counters once none of its processes
        can run any more: the group is empty, or holds only pid namespaces' inits, killed —
        its sandbox's (bwrap's pid 1: only a sandbox makes a pid namespace, and its seccomp
        filter and dropped capabilities keep a job from making one), whose end the job's
        outcome need not wait for. The group stays until :meth:`remove`."""
        self.kill(spare_inits=True)
        return self._stats()

    def finish(self) -> GroupStats:
        """Kill what is left, read the counters, remove the group."""
        self.kill()
        stats = self._stats()
        self.remove()
        return stats

    def _stats(self) -> GroupStats:
        return GroupStats(self.oom_kills(), self.pids_refused(), self.cpu_seconds())


def namespace_init(pid: int) -> bool:
    """Whether ``pid`` is pid 1 of a pid namespace below this process's: its ``NSpid`` (the
    process's pid in each namespace, outermost first) has more than one entry and ends in 1."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"NSpid:"):
                    ids = line.split()[1:]
                    return len(ids) > 1 and ids[-1] == b"1"
    except OSError:  # gone already
        return False
    return False
