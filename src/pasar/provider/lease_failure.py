"""The one exception a lease's steps raise when the lease cannot produce a result.

Its own module so that the steps split out of :mod:`pasar.provider.executor` (the pip install,
:mod:`pasar.provider.pip_step`; the mounts, :mod:`pasar.provider.mounts`) can fail a lease
without importing the executor that runs them.
"""

from __future__ import annotations


class LeaseFailedError(Exception):
    """The lease cannot produce a result: end it with a failure receipt for ``reason`` (one of
    :data:`pasar.core.receipts.FAILURE_FAULTS`)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
