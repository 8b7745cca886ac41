"""A small, bounded ring of network samples kept in the market process, for "over time" charts.

The state knows what *is* (who is busy now), and its records carry when orders were made and
leases ran, which is enough for jobs per hour, fees and prices over time (see
:mod:`pasar.market.dashboard.views`). Utilization and asks over time are not in the state:
nothing records how many GPUs were free, or what they were offered at, a minute ago. So the
dashboard samples them, at most once per ``every_ms``, whenever a page or a live refresh is
served, into a ring of ``size`` samples
(720 × 5 s: an hour of an open page). It lives in memory only: a restarted market starts a new
series, and a market nobody looks at keeps none. That is what the dashboard says under the chart.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from pasar.api.stats import Stats

DEFAULT_SIZE = 720
DEFAULT_EVERY_MS = 5_000


@dataclass(frozen=True)
class Sample:
    at: int  # unix ms (the market's clock)
    gpu_utilization: float  # 0..1
    cpu_utilization: float  # 0..1
    leases_running: int
    # the median ask per GPU-hour of each model then (units of the currency, for drawing)
    asks: dict[str, float] = field(default_factory=dict)


class SampleRing:
    """The last ``size`` samples, taken at most once per ``every_ms``."""

    def __init__(self, size: int = DEFAULT_SIZE, every_ms: int = DEFAULT_EVERY_MS) -> None:
        self.every_ms = every_ms
        self._samples: deque[Sample] = deque(maxlen=size)

    def due(self, now_ms: int) -> bool:
        return not self._samples or now_ms - self._samples[-1].at >= self.every_ms

    def add(self, now_ms: int, stats: Stats) -> None:
        self._samples.append(
            Sample(
                at=now_ms,
                gpu_utilization=float(stats.gpu_utilization),
                cpu_utilization=float(stats.cpu_utilization),
                leases_running=stats.leases_running,
                asks={
                    m.model: float(m.median_ask_per_hour.split()[0])
                    for m in stats.models
                    if m.median_ask_per_hour is not None
                },
            )
        )

    def samples(self) -> list[Sample]:
        return list(self._samples)
