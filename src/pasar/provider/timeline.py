"""One lease's timeline on the provider, for finding waits that are not work (issue 13).

The executor marks each step of a lease — the feed's ``match`` seen, the lease read, the
workdir ready (a warm sandbox claimed, or a new folder), inputs fetched, the job started, its
output drained and exit seen, the last log sent, outputs uploaded, the receipt accepted — and
logs them as one DEBUG line of ``pasar.provider.timeline`` when the lease ends::

    lease L timeline (ms): seen 0.0 | lease 2.9 | workdir 3.4 | inputs 6.1 | started 7.0 | ...

Run a provider with ``PASAR_TRACE=1`` to see it. Only monotonic times, only in the log.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("pasar.provider.timeline")


class Timeline:
    """Named instants of one lease, from ``start`` (a ``time.monotonic()``; default now)."""

    def __init__(self, lease_id: str, start: float | None = None) -> None:
        self.lease_id = lease_id
        self.start = time.monotonic() if start is None else start
        self.marks: list[tuple[str, float]] = [("seen", self.start)]

    def mark(self, name: str) -> None:
        self.marks.append((name, time.monotonic()))

    def line(self) -> str:
        steps = " | ".join(f"{name} {(at - self.start) * 1000:.1f}" for name, at in self.marks)
        return f"lease {self.lease_id} timeline (ms): {steps}"

    def log(self) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s", self.line())
