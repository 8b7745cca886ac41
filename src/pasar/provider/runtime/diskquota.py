"""How much disk a job's workdir takes, for the per-job disk quota (``resources.disk``).

RLIMIT_FSIZE bounds each file, not their sum: three files just under 1 GB each pass a 1 GB
RLIMIT_FSIZE. The handle therefore measures the whole workdir every
:data:`~pasar.provider.runtime.base.DISK_SCAN_S` and kills the job once it is over its quota. A
scan rather than a size-limited mount keeps the outputs on the provider's own disk where the
executor hashes and uploads them, and needs no root.

What is counted is what the disk holds: allocated blocks (a sparse file counts only what is
written), each inode once (a thousand hard links to one file are one file), links never
followed. A job cannot hide from the scan: a directory it made unreadable is made readable
again (the provider owns it, or is root), and files it deleted but still holds open — which
use disk yet no longer appear in any directory — are counted through ``/proc/PID/fd`` of the
processes given. Between two scans a job can write past its quota by what the disk takes in
that time; the kill follows at the next scan.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

BLOCK = 512  # st_blocks is in 512-byte units whatever the file system's block size


def _entries(path: str) -> list[os.DirEntry[str]]:
    """A directory's entries; one the job made unreadable is made readable first."""
    try:
        return list(os.scandir(path))
    except PermissionError:
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)  # the job hid it from the provider: undo that
            return list(os.scandir(path))
    except OSError:
        pass  # gone while we looked
    return []


def tree_bytes(root: Path, pids: Iterable[int] = ()) -> int:
    """Disk used under ``root``, plus deleted-but-open files of ``pids`` on the same disk
    (not those of the job's tmpfs ``/tmp``, which its memory limit pays for)."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def count(st: os.stat_result) -> int:
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return 0
        seen.add(key)
        return st.st_blocks * BLOCK

    try:
        device = os.stat(root).st_dev
    except OSError:
        return 0
    stack = [str(root)]
    while stack:
        for entry in _entries(stack.pop()):
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                total += count(st)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        with contextlib.suppress(OSError):
            for fd in os.listdir(fd_dir):
                with contextlib.suppress(OSError):
                    if os.readlink(f"{fd_dir}/{fd}").endswith(" (deleted)"):
                        st = os.stat(f"{fd_dir}/{fd}")  # follows to the open file itself
                        if stat.S_ISREG(st.st_mode) and st.st_dev == device:
                            total += count(st)
    return total
