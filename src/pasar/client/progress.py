"""Progress bars for long waits: ``.map``'s calls done out of those launched and jobs running
(:class:`MapProgress`); one order's shards done, running and queued (:class:`OrderProgress`, for
``.remote`` and ``pasar launch --wait``); each with the money spent so far — on a terminal only.

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
from typing import Any, Self

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


class ClosedOnExit:
    """``with bar:`` closes the bar on the way out, whatever happened inside."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class MapProgress(ClosedOnExit):
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
        self._bar, self._task = _bar(self.what)

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


class OrderProgress(ClosedOnExit):
    """One order's shards on a bar: done out of all, running, queued (never matched, or
    re-queued after a lost or released lease), and what its bills charged so far.

    ``delay_s``: the bar appears only once the wait has lasted that long (a timer, since an
    order may not change for minutes), so a call that returns in a blink draws nothing
    (``.remote``); ``pasar launch --wait`` draws at once."""

    def __init__(self, what: str, *, show: bool | None = None, delay_s: float = 0.0) -> None:
        self.what = what
        self.done = self.running = self.queued = 0
        self.spent: Money | None = None
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None
        self._closed = False
        self._timer: threading.Timer | None = None
        if show if show is not None else shown():
            self._timer = threading.Timer(delay_s, self._appear)
            self._timer.daemon = True
            self._timer.start()

    def update(self, order: dict[str, Any]) -> None:
        """Count the order's wire view (:class:`pasar.api.orders.OrderView`) and redraw."""
        done, running, queued = shard_counts(order)
        spent = _charged(order)
        with self._lock:
            self.done, self.running, self.queued, self.spent = done, running, queued, spent
            self._draw()

    def _appear(self) -> None:
        with self._lock:
            if not self._closed:
                self._bar, self._task = _bar(self.what)
                self._draw()

    def _draw(self) -> None:
        if self._bar is None:
            return
        spent = "" if self.spent is None else f", spent {self.spent}"
        self._bar.update(
            self._task,
            total=self.done + self.running + self.queued,
            completed=self.done,
            state=f"shards · {self.running} running · {self.queued} queued{spent}",
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            if self._bar is not None:
                self._bar.stop()
                self._bar = None


#: a shard whose latest lease is in one of these waits for another lease
REQUEUED = frozenset({"lost", "released", "rejected"})


def shard_counts(order: dict[str, Any]) -> tuple[int, int, int]:
    """``(done, running, queued)`` over the order's shards, from each one's latest lease: a
    running lease is running; a lost, released or rejected one (re-queued), or none yet, is
    queued; any other (settled, failed, held for approval, cancelled) is done."""
    spec = order.get("spec") or {}
    total = int(spec.get("shards") or 1)
    latest: dict[int, str] = {}
    for lease in order.get("leases") or []:  # in the order they were made
        latest[int(lease.get("shard", 0))] = str(lease.get("status"))
    running = sum(1 for status in latest.values() if status == "running")
    done = sum(1 for status in latest.values() if status != "running" and status not in REQUEUED)
    return done, running, max(total - done - running, 0)


def _bar(what: str) -> tuple[Any, Any]:
    """A transient rich bar on stderr, started: (the Progress, its one task)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task(what, total=0, state="")
    bar.start()
    return bar, task


def shown() -> bool:
    """Draw progress: stderr is a terminal and ``PASAR_PROGRESS`` is not ``0``."""
    return os.environ.get(OFF_ENV, "1") != "0" and sys.stderr.isatty()
