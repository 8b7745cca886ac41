"""The Python a warm sandbox runs while it waits for its one lease (``python -m
pasar.provider.zygote CONTROL_FD STATUS_FD``; the host side is
:mod:`pasar.provider.runtime.warm`).

Why: most of a trivial ``@pasar.remote`` call's time on the provider is starting a Python in a
fresh sandbox and importing cloudpickle and the remote entry (60-100 ms). A zygote pays that
ahead of time, inside a bubblewrap sandbox started exactly as a cold job's would be, then
blocks on its control pipe. When its lease comes the host has already written the lease's
limits into the sandbox's cgroup and filled its workdir; it sends one line, the *go*: the
job's environment, its rlimits, its command and whether it may run in this process. Before
any job code runs the zygote

1. lowers its own rlimits to the job's (soft = hard: the job cannot raise them), exactly the
   list ``prlimit`` applies to a cold job (:func:`pasar.provider.runtime.base.job_rlimits`);
2. replaces its whole environment with the job's (:func:`.runtime.sandbox.job_environment`);
3. answers ``ok`` on the status pipe and closes both pipes, so job code holds no channel to
   the host but its output, as a cold job.

Then it runs the job: ``remote_entry.run`` in this process when the host said the command is
exactly the remote entry's and nothing in the workdir would make a fresh Python behave
differently (a file shadowing a module already imported here, a user site directory);
otherwise it ``exec``s ``/bin/sh -c COMMAND`` as a cold sandbox's launch script does. Either
way the exit status, the output and the limits are a cold job's; the sandbox serves this one
lease and ends with it.

An in-process call ends as a finishing Python does — its non-daemon threads joined, its
``atexit`` functions run, the files it left open flushed, ``sys.stdout``/``sys.stderr``
flushed — and then ``os._exit`` with the call's status (:func:`_end`): the interpreter's own
teardown of some hundred modules, which nothing outside the process can see, took 10-20 ms,
more than the call itself, before the host learnt the job had ended.

Finding the files left open means a walk over the objects the garbage collector tracks. The
zygote's own ~13,000 (its imports) are moved out of that walk before its lease with
``gc.freeze()`` (:func:`_freeze`), and the few writable files among them (the standard
streams) listed then: the end walks only what the job made, which took 2-10 ms per call
otherwise. Frozen objects are never collected; nothing else about them changes.

Only the standard library and the remote entry are imported, so nothing of the agent (its
keys, its network stack) is ever loaded where a job runs.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import io
import json
import os
import resource
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

from pasar.client import remote_entry

WORKDIR = "/work"
READY = b"ready\n"
OK = b"ok\n"
NO_JOB = 0  # the exit status of a zygote discarded before any lease (its control pipe closed)
SETUP_FAILED = 125  # the go could not be applied: no job code ran
MAX_GO_BYTES = 1 << 22  # the job's environment and command line: bounded by the market already
# the file objects that may hold written bytes not yet in their file (exact types: an
# ``isinstance`` against ``io.IOBase``, an ABC, costs ~1 µs for each of ~15,000 objects)
WRITABLE = (io.BufferedWriter, io.BufferedRandom, io.TextIOWrapper)


def _freeze() -> list[Any]:
    """Move every object this Python holds now out of the garbage collector's walks
    (``gc.freeze``), returning the writable files among them, which :func:`_end` flushes
    besides those the job made (a job may write to ``sys.__stdout__`` after replacing
    ``sys.stdout``)."""
    kept = [found for found in gc.get_objects() if isinstance(found, WRITABLE)]
    gc.freeze()
    return kept


def _read_go(fd: int) -> dict[str, Any] | None:
    """The go message (one JSON line), or None when the pool closed the pipe instead."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > MAX_GO_BYTES:
            raise ValueError("the go message is too long")
    found = json.loads(data)
    if not isinstance(found, dict):
        raise ValueError("the go message is not an object")
    return found


def _apply(go: dict[str, Any]) -> None:
    """The job's rlimits and environment, on this process, before any of its code runs."""
    for name, soft, hard in go["rlimits"]:
        resource.setrlimit(getattr(resource, name), (int(soft), int(hard)))
    env = {str(k): str(v) for k, v in go["env"].items()}
    os.environ.clear()
    os.environ.update(env)
    os.chdir(WORKDIR)


def _shadowed(workdir: str) -> bool:
    """Whether a fresh Python in ``workdir`` could import something else than this one has:
    a top-level entry named like a module already imported here (``cloudpickle.py``, a
    ``pickle/`` package; the workdir is first on a ``-m`` Python's path), or a user site
    directory (``.local``) that a fresh Python's ``site`` would add."""
    loaded = {name.partition(".")[0] for name in sys.modules}
    for entry in os.listdir(workdir):
        if entry == ".local" or entry.partition(".")[0] in loaded - {""}:
            return True
    return False


def main(argv: list[str]) -> int:
    control, status = int(argv[1]), int(argv[2])
    kept = _freeze()
    os.write(status, READY)
    try:
        go = _read_go(control)
        if go is None:
            return NO_JOB
        _apply(go)
        inline = bool(go.get("inline")) and not _shadowed(WORKDIR)
        command = str(go["command"])
    except Exception as exc:  # nothing of the job ran: say why and end
        os.write(status, f"error {type(exc).__name__}: {exc}\n".encode())
        return SETUP_FAILED
    os.write(status, OK)
    os.close(status)
    os.close(control)
    if not inline:
        os.execve("/bin/sh", ["/bin/sh", "-c", command], dict(os.environ))
    os.environ["PWD"] = WORKDIR  # what the shell that starts a cold job's Python exports
    sys.argv = [str(remote_entry.__file__)]  # what a cold ``python -m`` would show
    importlib.invalidate_caches()  # the workdir was filled after this Python looked at it
    _end(remote_entry.run(Path(WORKDIR)), kept)


def _end(code: int, kept: list[Any]) -> NoReturn:
    """Exit with ``code`` as ``sys.exit`` would, as far as anything outside this process can
    tell (see the module doc): what a finishing CPython does first (``threading._shutdown``,
    then the ``atexit`` functions), every file the call left open and unflushed flushed (a
    finishing Python flushes them as it frees them) — those it made, which the collector
    tracks, and ``kept``, those of the zygote's that :func:`_freeze` listed — then
    ``os._exit`` instead of freeing the interpreter."""
    with contextlib.suppress(Exception):
        threading._shutdown()  # type: ignore[attr-defined]  # Py_FinalizeEx's first step
    atexit._run_exitfuncs()
    for found in [*kept, *gc.get_objects()]:
        if isinstance(found, WRITABLE) and found not in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                if not found.closed:
                    found.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
