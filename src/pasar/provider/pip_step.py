"""The ``pip:`` step of a lease: its requirements installed outside the sandbox before the job
starts, and held for the lease.

Split from :mod:`pasar.provider.executor`: installing is the provider's work (binary wheels
only, from the index the provider chose: :mod:`pasar.provider.pip_cache`), done once per
requirement set and bound read-only into the sandbox; the executor only asks for the site.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from pasar.core.errors import PasarError
from pasar.core.receipts import MAX_DETAIL_CHARS
from pasar.core.spec import JobSpec
from pasar.provider.lease_failure import LeaseFailedError
from pasar.provider.pip_cache import PipCache


def install_pip(
    spec: JobSpec,
    pip: PipCache | None,
    held: contextlib.ExitStack,
    say: Callable[[str], None],
) -> Path | None:
    """The spec's ``pip:`` requirements installed, held in ``held`` until the lease ends (so the
    cache cannot evict them under the job); None without any. ``say`` writes to the job's log.

    One that cannot be installed fails the lease, the job's fault (``pip_install_failed``):
    the receipt's detail names it, with the hint."""
    requirements = spec.pip
    if not requirements:
        return None
    if pip is None:
        raise LeaseFailedError("pip_install_failed", "this provider has no pip cache")
    say(f"pasar: installing {', '.join(requirements)} (binary wheels only)\n")
    try:
        return held.enter_context(pip.holding(requirements, timeout_s=spec.max_duration))
    except PasarError as exc:
        hint = f" (hint: {exc.hint})" if exc.hint else ""
        room = MAX_DETAIL_CHARS - len(hint)
        text = exc.message if len(exc.message) <= room else exc.message[: room - 1] + "…"
        raise LeaseFailedError("pip_install_failed", text + hint) from None
