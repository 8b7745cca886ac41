"""The default runtime: the job in a bubblewrap sandbox.

What the job sees: ``/usr`` (and the ``/bin``, ``/lib``... links or directories that point into
it) read-only, a few files of ``/etc`` read-only, the provider's Python read-only, the pip
install its spec asked for read-only at :data:`PIP_MOUNT` (first on its ``PYTHONPATH``), a fresh
``/proc`` and ``/dev``, private tmpfs ``/tmp`` and ``/dev/shm``, its workdir at ``/work`` and
the lease's copy of each absolute ``file_mounts`` destination at that path
(:mod:`pasar.core.mounts`, :func:`mount_binds`) — the only places on disk it can write. It does
not see ``/home``, ``/root``, ``$PASAR_HOME`` or anything else of the host: nothing is bound
that is not listed in :func:`bwrap_argv`. All namespaces are new (the network too, unless
:attr:`Limits.network`), the hostname is ``pasar-job``, the job runs in a new session (no
TIOCSTI into the provider's terminal) and dies with the agent. A GPU lease also gets the
driver's control nodes and ``/dev/nvidiaN`` of its own GPUs only (:func:`gpu_devices`), with
``CUDA_VISIBLE_DEVICES`` naming them.

**The job's user.** RLIMIT_NPROC is what stops a fork bomb, and the kernel never applies it to
processes whose real user is root on the host — and a user namespace that bwrap creates for a
root caller maps the job to host root. So:

- a provider running as a normal user (the recommended way): bwrap creates a user namespace and
  the job runs as uid 1000 inside it, which is the provider's own uid outside;
- a provider running as root: bwrap sets up the sandbox as root (so it can bind the Python of a
  root-only directory such as ``/root/.pyenv``), keeps only CAP_SETUID/CAP_SETGID, and
  ``setpriv`` then switches to a fresh unprivileged uid (:data:`ROOT_MODE_UID_BASE` + random),
  drops every capability and sets no_new_privs before the job's first instruction. The workdir
  is chowned to that uid so the job can write it.

**The job's environment** is set by ``env -i`` as the last step before the job's shell, never
in bwrap's own environment: a job's ``LD_PRELOAD`` must not reach bwrap (which runs on the
host) or setpriv (which still holds CAP_SETUID). rlimits are set inside the sandbox by
``prlimit`` (see :mod:`pasar.provider.runtime.base`), after the user namespace exists, so
RLIMIT_NPROC counts the job's processes only.

**Limits per job, not per process.** Where :func:`.cgroups.detect` finds cgroups (v2 with
``memory``, ``cpu`` and ``pids`` enabled for the agent's children, else v1 hierarchies), each
job gets a :class:`.cgroups.JobCgroup`: memory, CPU share (``Limits.cpus``) and process count
bound the whole tree, which joins the group before bwrap starts. Elsewhere (not root, no
delegation) only the rlimits hold, which several processes can exceed together; ``pasar
doctor`` and the provider's ``limits`` attribute (:attr:`SandboxRuntime.enforcement`) say
which. The disk quota (``Limits.disk_bytes``, the whole workdir) is the handle's, on every
machine.

**What the job cannot do or see of its launch.** A seccomp filter (:mod:`.seccomp`), loaded by
bwrap just before the first exec, refuses new namespaces, ptrace, the kernel keyring, mounts,
``bpf`` and ``perf_event_open``. bwrap's options (host paths included) reach it through a
memfd (``--args``) and the job's command line through a read-only script at :data:`LAUNCH`,
so the job's pid 1 — a fork of bwrap — shows only ``bwrap --args N -- /bin/sh LAUNCH``.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pasar
from pasar.core.errors import PasarError
from pasar.provider.runtime.base import (
    GpuGrant,
    Limits,
    RunHandle,
    check_env,
    chown_tree,
    gpu_env,
    prlimit_argv,
    with_python_path,
)
from pasar.provider.runtime.cgroups import CgroupSupport, JobCgroup, detect, remove_stale
from pasar.provider.runtime.seccomp import arch_for, filter_program

WORKDIR = "/work"
HOSTNAME = "pasar-job"
SANDBOX_UID = 1000  # the job's uid inside its user namespace (provider not root)
ROOT_MODE_UID_BASE = 1_500_000_000  # root mode: the job's host uid is this + a random offset
ROOT_MODE_UID_SPAN = 500_000_000
VENV_MOUNT = "/opt/pasar/venv"
SOURCE_MOUNT = "/opt/pasar/src"  # the pasar package of a source checkout, read-only
LAUNCH = "/opt/pasar/launch"  # the script that starts the job (setpriv, prlimit, env, sh)
PIP_MOUNT = "/opt/pasar/pip"  # the job's pip install (Limits.pip_site), read-only
TOP_LEVEL_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
ETC_ALWAYS = (
    "/etc/alternatives",  # Debian's links for awk, editor...
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
)
ETC_NETWORK = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/gai.conf")
NVIDIA_SHARED_DEVICES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
TOOLS = ("bwrap", "prlimit", "env")


@dataclass(frozen=True)
class HostLayout:
    """The facts about this machine that the bwrap command line depends on, gathered once by
    :meth:`detect` so that :func:`bwrap_argv` stays a pure function."""

    top_level: tuple[tuple[str, str | None], ...]  # ("lib", "usr/lib") a link; ("lib", None) a dir
    python_base: str  # sys.base_prefix, resolved: the interpreter and its standard library
    python_venv: str | None  # sys.prefix when it is a virtual environment
    python_bin: str  # name of the interpreter in <prefix>/bin
    as_root: bool
    # the ``pasar`` package's folder when it lives outside both prefixes (an editable install
    # from a source checkout): bound read-only so that jobs such as @remote calls can import it
    pasar_package: str | None = None

    @classmethod
    def detect(cls) -> HostLayout:
        top: list[tuple[str, str | None]] = []
        for name in TOP_LEVEL_LINKS:
            path = Path("/") / name
            if path.is_symlink():
                top.append((name, os.readlink(path)))
            elif path.is_dir():
                top.append((name, None))
        base = str(Path(sys.base_prefix).resolve())
        venv = str(Path(sys.prefix).resolve()) if sys.prefix != sys.base_prefix else None
        package = Path(pasar.__file__).resolve().parent
        inside = any(package.is_relative_to(prefix) for prefix in (base, venv) if prefix)
        return cls(
            top_level=tuple(top),
            python_base=base,
            python_venv=venv,
            python_bin=Path(sys.executable).name,
            as_root=os.geteuid() == 0,
            pasar_package=None if inside else str(package),
        )


def bwrap_argv(
    workdir: Path,
    command: str,
    env: Mapping[str, str],
    limits: Limits,
    host: HostLayout,
    *,
    job_uid: int | None = None,
) -> list[str]:
    """The full command line: ``bwrap ... [setpriv ...] prlimit ... env -i ... /bin/sh -c``.

    ``job_uid`` is the host uid the job runs as in root mode (required there, unused otherwise).
    This is what the sandbox does, in one list; :meth:`SandboxRuntime.start` passes the same
    options and command through descriptors instead (:func:`bwrap_options`, :func:`job_argv`),
    so that the job does not read them as its pid 1's command line.
    """
    job = job_argv(command, env, limits, host, job_uid=job_uid)
    return ["bwrap", *bwrap_options(workdir, limits, host), "--", *job]


def bwrap_options(
    workdir: Path,
    limits: Limits,
    host: HostLayout,
    *,
    launch_fd: int | None = None,
    seccomp_fd: int | None = None,
) -> list[str]:
    """bwrap's options: namespaces, what is bound where, and — given their descriptors — the
    launch script at :data:`LAUNCH` and the seccomp filter."""
    argv = ["--die-with-parent", "--new-session"]
    if host.as_root:
        # No user namespace: it would map the job to host root, where RLIMIT_NPROC is void.
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
        if not limits.network and limits.netns is None:  # a gang's namespace: joined first
            argv.append("--unshare-net")
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID)]
        argv += ["--gid", str(SANDBOX_UID)]
        if limits.network:
            argv.append("--share-net")
    argv += ["--hostname", HOSTNAME]
    argv += ["--ro-bind", "/usr", "/usr"]
    for name, target in host.top_level:
        if target is None:
            argv += ["--ro-bind", f"/{name}", f"/{name}"]
        else:
            argv += ["--symlink", target, f"/{name}"]
    etc = ETC_ALWAYS + (ETC_NETWORK if limits.network else ())
    python = python_binds(host)
    if limits.pip_site is not None:  # shared by every lease with the same requirements
        python.append((str(limits.pip_site), PIP_MOUNT))
    launch = [LAUNCH] if launch_fd is not None else []
    argv += skeleton_dirs([*etc, *(dest for _, dest in python), *launch])
    for path in etc:
        argv += ["--ro-bind-try", path, path]
    for source, dest in python:
        argv += ["--ro-bind", source, dest]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    for device in gpu_devices(limits.gpus):
        argv += ["--dev-bind-try", device, device]
    argv += ["--perms", "1777", "--size", str(limits.memory_bytes), "--tmpfs", "/tmp"]
    # POSIX shared memory and semaphores (multiprocessing's locks): bwrap's /dev/shm is root's
    argv += ["--perms", "1777", "--size", str(limits.memory_bytes), "--tmpfs", "/dev/shm"]
    argv += ["--bind", str(workdir), WORKDIR, "--chdir", WORKDIR]
    argv += mount_binds(limits.mounts, [*etc, *(dest for _, dest in python), *launch])
    if launch_fd is not None:
        argv += ["--perms", "0444", "--ro-bind-data", str(launch_fd), LAUNCH]
    argv += ["--remount-ro", "/"]  # the skeleton bwrap built (/, /etc, /opt): not a scratch disk
    argv += ["--clearenv", "--setenv", "PATH", BASE_PATH]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    return argv


def mount_binds(mounts: tuple[tuple[Path, str], ...], taken: list[str]) -> list[str]:
    """``--bind`` for each absolute ``file_mounts`` destination (:mod:`pasar.core.mounts`):
    the lease's staged copy, read-write, after everything the sandbox itself needs (so none of
    it can be shadowed), with 0755 parents a job of another uid can traverse. The spec already
    refused the fixed paths; a destination over or inside one of this host's own binds (the
    provider's Python may live anywhere, e.g. ``/root/.pyenv``) is refused here."""
    argv: list[str] = []
    for source, dest in mounts:
        for other in taken:
            if dest == other or other.startswith(dest + "/") or dest.startswith(other + "/"):
                raise PasarError(
                    f"file_mounts: {dest!r} would shadow {other}, which this provider's "
                    "sandbox binds",
                    code="mount_conflict",
                    field=f"file_mounts.{dest}",
                    hint="mount it elsewhere, e.g. /data or /mnt/data",
                )
        argv += skeleton_dirs([dest])
        argv += ["--bind", str(source), dest]
    return argv


def python_binds(host: HostLayout) -> list[tuple[str, str]]:
    """(host path, sandbox path) of the provider's Python: its base, venv and source."""
    python = [(host.python_base, host.python_base)]
    if host.python_venv is not None:
        python.append((host.python_venv, VENV_MOUNT))
    if host.pasar_package is not None:
        python.append((host.pasar_package, f"{SOURCE_MOUNT}/pasar"))
    return python


def job_argv(
    command: str,
    env: Mapping[str, str],
    limits: Limits,
    host: HostLayout,
    *,
    job_uid: int | None = None,
) -> list[str]:
    """What bwrap runs: ``[setpriv ...] prlimit ... env -i ... /bin/sh -c command``."""
    argv = [*drop_privileges(host, job_uid), *prlimit_argv(limits)]
    job_env = job_environment(env, limits, host)
    argv += ["env", "-i", "--", *(f"{k}={v}" for k, v in job_env.items())]
    return [*argv, "/bin/sh", "-c", command]


def drop_privileges(host: HostLayout, job_uid: int | None) -> list[str]:
    """Root mode: ``setpriv`` to the job's unprivileged uid, no capabilities, no_new_privs
    (see the module doc); nothing otherwise (the user namespace already did it)."""
    if not host.as_root:
        return []
    if job_uid is None:
        raise ValueError("root mode needs the job's uid")
    return [
        "setpriv", f"--reuid={job_uid}", f"--regid={job_uid}", "--clear-groups",
        "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
    ]  # fmt: skip


def base_environment(host: HostLayout) -> dict[str, str]:
    """What every job's environment holds before its own variables: PATH (the provider's
    Python first), HOME, LANG, TMPDIR and, for a source checkout, PYTHONPATH."""
    path_dirs = [f"{host.python_base}/bin", BASE_PATH]
    if host.python_venv is not None:
        path_dirs.insert(0, f"{VENV_MOUNT}/bin")
    job_env = {"PATH": ":".join(path_dirs), "HOME": WORKDIR, "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
    if host.pasar_package is not None:
        job_env["PYTHONPATH"] = SOURCE_MOUNT
    return job_env


def job_environment(env: Mapping[str, str], limits: Limits, host: HostLayout) -> dict[str, str]:
    """The job's whole environment (what ``env -i`` sets for a cold job, and a warm sandbox's
    zygote for its lease): :func:`base_environment`, the job's own variables, its GPUs."""
    job_env = base_environment(host)
    job_env.update(check_env(env))
    job_env.update(gpu_env(limits.gpus))  # after the job's own: it sees its lease's GPUs
    if limits.pip_site is not None:
        job_env = with_python_path(job_env, PIP_MOUNT)
    return job_env


def launch_script(job: list[str]) -> str:
    """The script at :data:`LAUNCH`: it only ``exec``s the job's command line, quoted."""
    return f"exec {shlex.join(job)}\n"


def memfd(name: str, data: bytes) -> int:
    """A descriptor to read ``data`` from (any size: no pipe buffer to fill), at offset 0."""
    fd = os.memfd_create(name)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd


def skeleton_dirs(destinations: list[str]) -> list[str]:
    """``--dir`` with mode 0755 for every parent of a bind destination (``/etc``, ``/root``,
    ``/root/.pyenv``...). bwrap would create them 0700 and owned by root, which a job running
    as an unprivileged uid (root mode) could not traverse to reach what is bound below."""
    parents: list[str] = []
    for dest in destinations:
        for parent in reversed(Path(dest).parents[:-1]):  # without "/" itself
            if str(parent) not in parents:
                parents.append(str(parent))
    argv: list[str] = []
    for path in parents:
        argv += ["--perms", "0755", "--dir", path]
    return argv


def gpu_devices(gpus: tuple[GpuGrant, ...]) -> list[str]:
    """The device nodes a GPU lease needs: the driver's shared ones (``/dev/nvidiactl``,
    ``/dev/nvidia-uvm``, ``/dev/nvidia-uvm-tools``) and ``/dev/nvidiaN`` of each of its GPUs
    (N being the node's minor number, which NVML reports), and no other GPU's node: a job
    cannot open a GPU whose node is not there. Bound with ``--dev-bind-try``, so a node this
    machine lacks (uvm before the module loads) is left out rather than failing the job."""
    if not gpus:
        return []
    return [*NVIDIA_SHARED_DEVICES, *(g.node for g in gpus)]


class SandboxRuntime:
    """bubblewrap: see the module docstring for what a job can and cannot see."""

    name = "sandbox"

    def __init__(
        self, host: HostLayout | None = None, cgroups: CgroupSupport | None = None
    ) -> None:
        self.host = host if host is not None else HostLayout.detect()
        self.cgroups = cgroups if cgroups is not None else detect()
        if self.cgroups.version is not None:
            remove_stale(self.cgroups)  # left by an agent that was killed mid-job

    @property
    def enforcement(self) -> str:
        """``cgroup-v1``, ``cgroup-v2`` or ``rlimit``: see :func:`.base.enforcement`."""
        return self.cgroups.enforcement

    def available(self) -> str | None:
        from pasar.doctor import Status, check_bubblewrap  # doctor's probe: one way to ask

        check = check_bubblewrap()
        if check.status is not Status.OK:
            return check.detail + (f"; {check.hint}" if check.hint else "")
        tools = [*TOOLS, "setpriv"] if self.host.as_root else list(TOOLS)
        missing = [tool for tool in tools if shutil.which(tool) is None]
        if missing:
            return (
                f"{', '.join(missing)} not found: the sandbox needs them; "
                "install util-linux and coreutils (sudo apt-get install util-linux coreutils)"
            )
        return None

    def start(
        self,
        workdir: Path,
        command: str,
        env: Mapping[str, str],
        limits: Limits,
        *,
        image: str | None = None,
    ) -> RunHandle:
        if image is not None:
            raise PasarError(
                "the sandbox runtime does not run container images",
                code="unsupported_image",
                field="image",
                hint="start the agent with --runtime docker to run image jobs",
            )
        workdir = workdir.resolve()
        if not workdir.is_dir():
            raise PasarError(f"workdir {workdir} is not a directory", code="invalid_workdir")
        job_uid = None
        if self.host.as_root:
            job_uid = self.job_uid()
            chown_tree(workdir, job_uid)
        job = job_argv(command, env, limits, self.host, job_uid=job_uid)
        return self.spawn(workdir, job, limits)

    def job_uid(self) -> int:
        """Root mode: a fresh unprivileged host uid for one job."""
        return ROOT_MODE_UID_BASE + secrets.randbelow(ROOT_MODE_UID_SPAN)

    def spawn(
        self,
        workdir: Path,
        job: list[str],
        limits: Limits,
        *,
        pass_fds: tuple[int, ...] = (),
        armed: bool = True,
    ) -> RunHandle:
        """bwrap over ``workdir`` with ``limits``, running ``job`` (an argv, through the launch
        script), in a new cgroup: the one way both a cold job and a warm sandbox start.
        ``pass_fds`` reach the job as they are (a warm sandbox's control pipes)."""
        arch = arch_for()
        fds: list[int] = []
        cgroup = None
        try:
            launch_fd = memfd("pasar-launch", launch_script(job).encode())
            fds.append(launch_fd)
            seccomp_fd = None
            if arch is not None:
                seccomp_fd = memfd("pasar-seccomp", filter_program(arch))
                fds.append(seccomp_fd)
            options = bwrap_options(
                workdir, limits, self.host, launch_fd=launch_fd, seccomp_fd=seccomp_fd
            )
            args_fd = memfd("pasar-args", b"".join(o.encode() + b"\0" for o in options))
            fds.append(args_fd)
            cgroup = self.job_cgroup(limits)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        # what the job sees as its pid 1's command line: nothing of the host
        argv = ["bwrap", "--args", str(args_fd), "--", "/bin/sh", LAUNCH]
        if limits.netns is not None:  # a gang's network: bwrap starts inside it, and stays
            if not self.host.as_root:
                raise PasarError(
                    "a gang's network needs a root provider", code="runtime_failed", status=500
                )
            argv = ["nsenter", f"--net={limits.netns}", "--", *argv]
        return RunHandle(
            argv,
            limits=limits,
            env={"PATH": BASE_PATH, "LANG": "C.UTF-8"},
            cgroup=cgroup,
            pass_fds=[*fds, *pass_fds],
            disk_dir=workdir,
            armed=armed,
        )

    def job_cgroup(self, limits: Limits) -> JobCgroup | None:
        """The job's cgroup, or None where this machine has none to give (rlimits only)."""
        if self.cgroups.version is None:
            return None
        try:
            return JobCgroup(
                self.cgroups,
                memory_bytes=limits.memory_bytes,
                cpus=limits.cpus,
                max_processes=limits.max_processes,
            )
        except OSError as exc:
            raise PasarError(
                f"could not create the job's cgroup: {exc}",
                code="runtime_failed",
                status=500,
                hint="run `pasar doctor` to see what this machine can enforce",
            ) from exc
