"""Runtimes that execute a job (issue #5), one module each behind one interface.

- ``sandbox`` (default): bubblewrap — new namespaces, read-only system, the workdir as the only
  writable place, no network unless allowed, rlimits and a wall-clock timeout;
- ``docker``: a container of the job's image, for GPU jobs where a Docker engine runs;
- ``process``: a plain child process, only when the provider names it; nothing is isolated.

:func:`get_runtime` picks one by name; :meth:`Runtime.available` says whether it can run here
(and how to fix it if not); :meth:`Runtime.start` returns a :class:`RunHandle` whose
:meth:`~RunHandle.wait` gives the :class:`Outcome`. See :mod:`.base` for how limits are
enforced and kill reasons told. :mod:`.warm` keeps sandboxes started ahead of their lease (one
lease each, isolation unchanged) for the agent's ``--warm-pool``.
"""

from pasar.provider.runtime.base import (
    KILL_REASONS,
    RUNTIMES,
    KillReason,
    Limits,
    Outcome,
    RunHandle,
    Runtime,
    get_runtime,
)

__all__ = [
    "KILL_REASONS",
    "RUNTIMES",
    "KillReason",
    "Limits",
    "Outcome",
    "RunHandle",
    "Runtime",
    "get_runtime",
]
