"""Absolute ``file_mounts`` destinations (SkyPilot's ``/data: ./local_data``): which are
allowed, and under which input name their files travel.

**How they work.** The files are uploaded as any input is (content-addressed blobs named in
the job's input manifest), under :data:`MOUNTS_DIR` ``/<destination>`` — ``/data`` with
``x.csv`` travels as ``.pasar-mounts/data/x.csv``. The provider fetches them into the lease's
workdir as it fetches every input, and its runtime binds ``<workdir>/.pasar-mounts/data`` at
``/data`` inside the sandbox, read-write: a per-lease copy the job may change, as SkyPilot
copies file mounts onto its VM, destroyed with the lease's workdir. A verifier's re-run reads
the same spec and manifest, so it gets the same binds.

**Which destinations are refused** (:func:`mount_destination`): anything the sandbox itself
builds or needs — ``/`` and the system folders (``/usr``, ``/bin``, ``/lib*``, ``/etc``),
the kernel's (``/proc``, ``/dev``, ``/sys``, ``/run``), pasar's own machinery under
``/opt/pasar`` (the provider's Python, the launch script, the pip install) and the job's
working directory ``/work`` (write ``x`` for ``/work/x``) — whether the destination is one of
them, lies inside one or would cover one (``/opt`` covers ``/opt/pasar``). A job could only
harm its own sandbox, but a bind over ``/proc`` or ``/opt/pasar`` would confuse the machinery
that starts and watches it. ``/tmp`` itself is the job's private tmpfs; a folder below it is
fine. ``.`` and ``..`` components, empty ones (``//``), and ``:`` or ``,`` (docker's ``-v``
syntax) are refused too.

Pure: no I/O; :mod:`pasar.core.spec_fields` validates with it, the client names uploads with
it, the provider stages and binds with it.
"""

from __future__ import annotations

from collections.abc import Iterable

#: the folder of the job's inputs that holds the files of absolute mounts, one folder per mount
MOUNTS_DIR = ".pasar-mounts"
#: the job's working directory inside the sandbox (pasar.provider.runtime.sandbox.WORKDIR)
JOB_WORKDIR = "/work"
#: destinations refused, with everything inside them and everything covering them
RESERVED = (
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
    "/proc", "/dev", "/sys", "/run", "/opt/pasar", JOB_WORKDIR,
)  # fmt: skip
#: destinations refused themselves only (their inside is the job's to use)
RESERVED_EXACTLY = ("/tmp",)
_BAD_CHARS = (":", ",", "\\", "\x00", "\n")


class MountRefusedError(ValueError):
    """Why a destination cannot be bound, and a hint (the validator turns it into the field's
    error)."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def is_absolute(destination: str) -> bool:
    """Whether a ``file_mounts`` destination is a place outside the job's working directory
    (bound by the runtime) rather than a path in it (``x``, ``~/x``)."""
    return destination.startswith("/")


def mount_destination(value: str) -> str:
    """An absolute destination, normalized (no trailing ``/``), or :class:`MountRefusedError`."""
    path = value.rstrip("/") if value != "/" else value
    parts = path.split("/")[1:]
    if path in ("", "/"):
        raise MountRefusedError(f"{value!r} would cover the whole sandbox", _hint(path))
    if any(part in ("", ".", "..") for part in parts):
        raise MountRefusedError(
            f"{value!r} is not a plain absolute path",
            "write it without '..', '.' or '//', e.g. /data",
        )
    if any(char in path for char in _BAD_CHARS):
        raise MountRefusedError(
            f"{value!r} holds a character a mount destination cannot (':', ',', '\\\\')",
            "rename the destination, e.g. /data",
        )
    for reserved in RESERVED:
        if path == reserved or path.startswith(reserved + "/") or reserved.startswith(path + "/"):
            raise MountRefusedError(
                f"{value!r} would shadow {reserved} (or lie in it), which the job's sandbox needs",
                _hint(path),
            )
    if path in RESERVED_EXACTLY:
        raise MountRefusedError(
            f"{value!r} is the job's private /tmp", "mount a folder below it, e.g. /tmp/data"
        )
    return path


def _hint(path: str) -> str:
    if path == JOB_WORKDIR or path.startswith(JOB_WORKDIR + "/"):
        inside = path[len(JOB_WORKDIR) + 1 :] or "data"
        return f"a path in the job's working directory is written relative to it, e.g. {inside}"
    return "mount it elsewhere, e.g. /data or /mnt/data"


def staged_name(destination: str) -> str:
    """The input folder (or file) name under which a destination's files travel."""
    return f"{MOUNTS_DIR}/{destination.lstrip('/')}"


def nested(destinations: Iterable[str]) -> tuple[str, str] | None:
    """Two absolute destinations one of which lies inside the other, or None: their files
    would be one folder bound twice, so the spec names each once."""
    ordered = sorted(destinations)
    for outer in ordered:
        for inner in ordered:
            if inner.startswith(outer + "/"):
                return outer, inner
    return None
