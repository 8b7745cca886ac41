"""A progress line for long SDK calls (``.map``): calls done out of those launched, jobs
running, and the money spent so far — on a terminal only.

Drawn on stderr with rich when stderr is a terminal, so a notebook or a shell shows it; silent
otherwise (a script's output, a pipe, CI), and ``PASAR_PROGRESS=0`` turns it off anywhere.
Spend is what the finished jobs' bills charged the client (work plus the client's fees),
exact, from the market's bills: nothing is estimated.
"""

from __future__ import annotations

import os
import sys
import threading
from types import TracebackType
from typing import Any

from pasar.core.money import Money

OFF_ENV = "PASAR_PROGRESS"


def _charged(order: dict[str, Any]) -> Money | None:
    """What the order's bills charged its client (None before any lease was billed)."""
    total: Money | None = None
    for lease in order.get("leases") or []:
        bill = lease.get("bill")
        if not isinstance(bill, dict):
            continue
        cost = Money.parse(bill["billed"]) + Money.parse(bill["client_fee"])
        total = cost if total is None else total + cost
    return total


class MapProgress:
    """Counts for one ``.map``; draws them if :func:`shown` says so. Thread-safe: the map's
    worker threads report launches and ends."""

    def __init__(self, what: str, *, show: bool | None = None) -> None:
        self.what = what
        self.launched = 0
        self.done = 0
        self.jobs_running = 0
        self.spent: Money | None = None
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None
        if show if show is not None else shown():
            self._start()

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[state]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task(self.what, total=0, state="")
        self._bar.start()

    def _draw(self) -> None:
        if self._bar is None:
            return
        spent = "" if self.spent is None else f", spent {self.spent}"
        self._bar.update(
            self._task,
            total=self.launched,
            completed=self.done,
            state=f"calls · {self.jobs_running} job(s) running{spent}",
        )

    def job_launched(self, calls: int) -> None:
        with self._lock:
            self.launched += calls
            self.jobs_running += 1
            self._draw()

    def job_ended(self, calls_done: int, order: dict[str, Any]) -> None:
        charged = _charged(order)
        with self._lock:
            self.done += calls_done
            self.jobs_running -= 1
            if charged is not None:
                self.spent = charged if self.spent is None else self.spent + charged
            self._draw()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> MapProgress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def shown() -> bool:
    """Draw progress: stderr is a terminal and ``PASAR_PROGRESS`` is not ``0``."""
    return os.environ.get(OFF_ENV, "1") != "0" and sys.stderr.isatty()
