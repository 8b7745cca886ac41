"""The ``process`` runtime: the job as a plain child process of the agent. Nothing is isolated.

It exists for machines where neither bubblewrap nor Docker can run (and for tests of the agent
itself), and only when the provider asks for it by name: the job runs as the provider's user,
sees the provider's files — keys included — and the provider's network. rlimits still apply
(through the same ``prlimit`` as the sandbox), except RLIMIT_NPROC, which outside a user
namespace would count every process the provider's user runs (:func:`prlimit_argv`).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from pasar.core.errors import PasarError
from pasar.provider.runtime.base import (
    Limits,
    RunHandle,
    check_env,
    gpu_env,
    prlimit_argv,
    with_python_path,
)

PROCESS_WARNING = (
    "WARNING: the process runtime does not isolate jobs. A job runs as your user, can read "
    "every file you can (your pasar keys included), use your network and leave processes "
    "behind. Use it only for jobs you trust; the sandbox runtime is the safe default."
)


class ProcessRuntime:
    """Runs ``/bin/sh -c command`` in the workdir, with rlimits and a wall-clock timeout."""

    name = "process"
    warning = PROCESS_WARNING

    def available(self) -> str | None:
        if shutil.which("prlimit") is None:
            return "prlimit not found; install util-linux (sudo apt-get install util-linux)"
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
                "the process runtime does not run container images",
                code="unsupported_image",
                field="image",
                hint="start the agent with --runtime docker to run image jobs",
            )
        if limits.mounts:
            raise PasarError(
                "the process runtime cannot bind file_mounts at absolute paths",
                code="unsupported_mount",
                field=f"file_mounts.{limits.mounts[0][1]}",
                hint="start the agent with --runtime sandbox (or docker) to run such jobs",
            )
        job_env = {
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.defpath]),
            "HOME": str(workdir),
            "LANG": "C.UTF-8",
            **check_env(env),
        }
        job_env.update(gpu_env(limits.gpus))  # nothing hides the others here: CUDA only
        if limits.pip_site is not None:  # read-only by its file modes only: no sandbox here
            job_env = with_python_path(job_env, str(limits.pip_site))
        argv = [*prlimit_argv(limits, processes=False), "/bin/sh", "-c", command]
        argv[0] = shutil.which("prlimit") or "prlimit"  # the job's PATH must not choose it
        return RunHandle(argv, limits=limits, env=job_env, cwd=workdir)
