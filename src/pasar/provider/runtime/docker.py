"""The ``docker`` runtime: the job in a container of the image it names (GPU jobs in
production, where the image brings its CUDA stack).

The container gets what the sandbox gets and no more: no network unless :attr:`Limits.network`,
a read-only root filesystem, a private ``/tmp``, the workdir at ``/work`` as the only writable
place, no capabilities, no_new_privs, an unprivileged user, and the job's limits as Docker
flags (memory with no extra swap, a PID limit, CPU-time and file-size ulimits). GPU leases get
``--gpus "device=UUID,..."`` with exactly the lease's devices and ``CUDA_VISIBLE_DEVICES`` set to
the same UUIDs.

The job's environment values never appear on a command line: ``-e NAME`` makes the docker
client copy each value from its own environment, which only the provider's user can read.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from pasar.core.errors import PasarError
from pasar.provider.runtime.base import (
    CPU_HARD_GRACE_S,
    GpuGrant,
    Limits,
    RunHandle,
    check_env,
    chown_tree,
    gpu_env,
)

WORKDIR = "/work"
NOBODY = 65534  # the container user when the agent runs as root
KILL_TIMEOUT_S = 15


def docker_argv(
    workdir: Path,
    command: str,
    env: Mapping[str, str],
    limits: Limits,
    *,
    image: str,
    name: str,
    user: str,
) -> list[str]:
    """``docker run`` for one job; environment values travel in the client's environment."""
    argv = [
        "docker", "run", "--rm", "--init", "--name", name,
        "--network", "bridge" if limits.network else "none",
        "--user", user,
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--read-only", "--tmpfs", f"/tmp:rw,nosuid,size={limits.memory_bytes},mode=1777",
        "--memory", str(limits.memory_bytes), "--memory-swap", str(limits.memory_bytes),
        "--pids-limit", str(limits.max_processes),
        "--ulimit", f"cpu={limits.cpu_seconds}:{limits.cpu_seconds + CPU_HARD_GRACE_S}",
        "--ulimit", f"fsize={limits.max_file_bytes}:{limits.max_file_bytes}",
        "--ulimit", "core=0",
        "-v", f"{workdir}:{WORKDIR}", "-w", WORKDIR,
        "-e", f"HOME={WORKDIR}",
    ]  # fmt: skip
    for source, dest in limits.mounts:  # absolute file_mounts: the lease's copy, read-write
        argv += ["-v", f"{source}:{dest}"]  # ':' and ',' are refused in destinations
    for key in check_env(env):
        argv += ["-e", key]
    for key in docker_gpu_env(limits.gpus):
        argv += ["-e", key]
    if limits.gpus:
        # the quotes are docker's: its --gpus value is CSV, and device=0,1 would split at ","
        argv += ["--gpus", f'"device={docker_devices(limits.gpus)}"']
    return [*argv, image, "/bin/sh", "-c", command]


def docker_devices(gpus: tuple[GpuGrant, ...]) -> str:
    """The lease's GPUs for ``--gpus device=...``: UUIDs when every GPU has one (they name the
    same cards whatever the engine's numbering), NVML indices otherwise (what the NVIDIA
    container toolkit numbers by)."""
    if all(g.uuid for g in gpus):
        return ",".join(str(g.uuid) for g in gpus)
    return ",".join(str(g.index) for g in gpus)


def docker_gpu_env(gpus: tuple[GpuGrant, ...]) -> dict[str, str]:
    """:func:`gpu_env` when the GPUs have UUIDs; nothing otherwise, since the container
    numbers its GPUs from 0 and an NVML index from outside would name the wrong one (or none).
    ``--gpus`` alone already hides every other GPU."""
    return gpu_env(gpus) if all(g.uuid for g in gpus) else {}


class DockerRuntime:
    """``docker run`` against the local engine; needs the job's ``image``."""

    name = "docker"
    enforcement = "docker"  # the engine gives each container its own cgroup

    def available(self) -> str | None:
        from pasar.doctor import Status, check_docker  # doctor's probe: one way to ask

        check = check_docker()
        if check.status is not Status.OK:
            return check.detail + (f"; {check.hint}" if check.hint else "")
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
        if not image:
            raise PasarError(
                "the docker runtime needs an image",
                code="missing_image",
                field="image",
                hint="add image: to the job spec, e.g. image: python:3.11-slim",
            )
        workdir = workdir.resolve()
        if os.geteuid() == 0:
            chown_tree(workdir, NOBODY)
            user = f"{NOBODY}:{NOBODY}"
        else:
            user = f"{os.getuid()}:{os.getgid()}"
        name = f"pasar-{secrets.token_hex(6)}"
        argv = docker_argv(workdir, command, env, limits, image=image, name=name, user=user)
        argv[0] = shutil.which("docker") or "docker"  # the job's PATH must not choose it
        # the client's own settings (DOCKER_HOST, ~/.docker for registry logins), then the job's
        client_env = {k: v for k, v in os.environ.items() if k.startswith("DOCKER_")}
        client_env.update({k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ})
        client_env.update(check_env(env))
        client_env.update(docker_gpu_env(limits.gpus))  # after the job's: the lease's GPUs win

        def kill_container() -> None:
            subprocess.run(["docker", "kill", name], capture_output=True, timeout=KILL_TIMEOUT_S)

        return RunHandle(argv, limits=limits, env=client_env, on_kill=kill_container)
