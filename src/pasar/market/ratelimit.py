"""Reads cannot stall writes: a request budget per account, and bounded long polls.

- :class:`RateLimiter` is a token bucket per key (the verified signer of a request, or the
  client's address for an unsigned one): ``rate`` requests a second on average, bursts of up to
  ``burst``. Over budget, the request is refused with 429 and ``Retry-After`` before any work is
  done. The default (1,000/s, bursts of 2,000) is far above what the benchmarks drive (about 550
  signed orders/s from one account), so it never throttles honest load; it stops one account
  from monopolising the market's one process.
- :class:`WaiterSlots` bounds the long polls (order waits, log follows, provider feeds) one
  account may hold open at once: each holds a connection and a waiter for up to 30 s.

Both live in the market process's memory: they are admission control, not ledger state.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator, Callable

from pasar.core.errors import PasarError

DEFAULT_RATE_PER_S = 1000
DEFAULT_BURST = 2000
DEFAULT_MAX_WAITERS = 32


class RateLimited(PasarError):  # noqa: N818 (reads as a verdict)
    """429: this account spent its request budget; ``retry_after_s`` says when to come back."""

    default_status = 429

    def __init__(self, message: str, *, retry_after_s: int, hint: str | None = None) -> None:
        super().__init__(message, code="rate_limited", status=429, hint=hint)
        self.retry_after_s = retry_after_s


class RateLimiter:
    """Token buckets per key; thread-safe (routes run in a thread pool)."""

    def __init__(
        self,
        rate_per_s: float = DEFAULT_RATE_PER_S,
        burst: int = DEFAULT_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("the rate limit needs a positive rate and a burst of at least 1")
        self.rate = float(rate_per_s)
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Spend one token of ``key``'s bucket, or raise :class:`RateLimited`."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((1 - tokens) / self.rate)
                raise RateLimited(
                    f"too many requests from {key[:16]}… (at most {self.rate:g}/s)",
                    retry_after_s=max(1, wait),
                    hint="slow down and retry after the Retry-After header's seconds",
                )
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > 100_000:  # forget full buckets: they are the default
                full = [
                    k
                    for k, (t, a) in self._buckets.items()
                    if t + (now - a) * self.rate >= self.burst
                ]
                for k in full:
                    del self._buckets[k]


class WaiterSlots:
    """At most ``limit`` long polls open per account at any moment."""

    def __init__(self, limit: int = DEFAULT_MAX_WAITERS) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextlib.asynccontextmanager
    async def slot(self, account: str | None) -> AsyncIterator[None]:
        key = account or "anonymous"
        with self._lock:
            held = self._open.get(key, 0)
            if held >= self.limit:
                raise RateLimited(
                    f"{key[:16]}… already holds {held} open long polls (at most {self.limit})",
                    retry_after_s=1,
                    hint="wait on fewer things at once; one feed per provider is enough",
                )
            self._open[key] = held + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._open[key] - 1
                if left:
                    self._open[key] = left
                else:
                    del self._open[key]
