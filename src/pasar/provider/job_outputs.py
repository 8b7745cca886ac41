"""Which files of a finished job's working directory are its outputs, checked before any is
uploaded.

Why its own module: the lease executor and the verifier's re-run (which compares what it wrote
with the provider's receipt) collect outputs the same way, and the rules are about files alone
— the working directory, the spec's declared outputs and the market's blob limit — not about
running a lease.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from pasar.core.errors import PasarError
from pasar.core.tx_parsing import MAX_OUTPUT_PARTS
from pasar.crypto.merkle import check_path
from pasar.provider.lease_failure import LeaseFailedError


def collect_outputs(
    workdir: Path, declared: Iterable[str], max_blob_bytes: int | None
) -> tuple[dict[str, tuple[Path, int]], list[str]]:
    """Every output file as ``{relative path: (path, size)}``, and the declared outputs
    that are missing. Files are only ``lstat``-ed, never opened: a FIFO, socket or device
    fails the lease (``output_rejected``), as does a name a receipt cannot carry; a file
    over the market's blob limit is uploaded in parts, and one too big even for that
    (:data:`~pasar.core.tx_parsing.MAX_OUTPUT_PARTS` parts) fails it
    (``output_too_large``). Symlinks are skipped (a job cannot smuggle out a file from
    outside its workdir)."""
    root = workdir.resolve()
    found: dict[str, tuple[Path, int]] = {}
    missing: list[str] = []
    for name in declared:
        target = workdir / name
        try:
            inside = target.resolve().is_relative_to(root)
            info = target.lstat()
        except (OSError, RuntimeError):  # missing, or a symlink loop
            inside = False
        if not inside or stat.S_ISLNK(info.st_mode):
            missing.append(name)
            continue
        if stat.S_ISDIR(info.st_mode):
            for folder, _dirs, names in os.walk(target):  # does not follow symlinks
                for file in sorted(names):
                    _add_output(found, workdir, Path(folder) / file, max_blob_bytes)
        else:
            _add_output(found, workdir, target, max_blob_bytes)
    return found, missing


def _add_output(
    found: dict[str, tuple[Path, int]], workdir: Path, path: Path, limit: int | None
) -> None:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return
    rel = path.relative_to(workdir).as_posix()
    if not stat.S_ISREG(info.st_mode):
        raise LeaseFailedError(
            "output_rejected", f"output {rel!r} is {_kind(info.st_mode)}, not a regular file"
        )
    try:
        check_path(rel)
    except PasarError as exc:
        raise LeaseFailedError("output_rejected", f"output {rel!r}: {exc.message}") from None
    if limit is not None and info.st_size > limit * MAX_OUTPUT_PARTS:
        raise LeaseFailedError(
            "output_too_large",
            f"output {rel!r} is {info.st_size} bytes, over what a receipt can carry: "
            f"{MAX_OUTPUT_PARTS} parts of the market's blob limit of {limit} bytes",
        )
    found[rel] = (path, info.st_size)


def _kind(mode: int) -> str:
    """What a non-regular file is, in words, for a failure's detail."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"
