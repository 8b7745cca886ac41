"""A lease's absolute ``file_mounts`` (SkyPilot's ``/data: ./local_data``), on the provider:
where each destination's files lie in the lease's workdir, and making them ready to bind.

Their files arrive as inputs under ``.pasar-mounts/<destination>`` (:mod:`pasar.core.mounts`),
fetched and checked like every input; the runtime then binds that folder (or file) at the
destination, read-write (:attr:`pasar.provider.runtime.base.Limits.mounts`). The copy is the
lease's own: the job may change it, nothing else sees it, and it goes with the workdir when the
lease ends. A verifier's re-run builds the same binds from the same spec and manifest.
"""

from __future__ import annotations

import stat
from pathlib import Path

from pasar.core.mounts import is_absolute, staged_name
from pasar.core.spec import JobSpec
from pasar.provider.lease_failure import LeaseFailedError


def mounts_of(spec: JobSpec, workdir: Path) -> tuple[tuple[Path, str], ...]:
    """``(staged path in the workdir, destination)`` of each absolute destination, in order."""
    return tuple(
        (workdir / staged_name(dest), dest)
        for dest in sorted(spec.file_mounts or {})
        if is_absolute(dest)
    )


def stage_mounts(mounts: tuple[tuple[Path, str], ...]) -> None:
    """Make every staged path bindable once the inputs are fetched: a destination whose source
    was an empty folder (no file uploaded) gets an empty folder. Anything there must be a
    regular file or a real folder, never a link (inputs are written as regular files, so a
    link means something other than the fetch put it there: refused, nothing bound)."""
    for source, dest in mounts:
        try:
            info = source.lstat()
        except FileNotFoundError:
            source.mkdir(parents=True)
            continue
        if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
            raise LeaseFailedError(
                "input_conflict", f"file_mounts.{dest}: its staged copy is not a file or folder"
            )
