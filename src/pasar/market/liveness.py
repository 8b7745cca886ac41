"""Which providers the market has heard from lately: the difference between listed and alive.

A provider's record stays in the ledger after its process is gone (SIGKILL, a power cut, a
network partition), so the ledger alone would keep offering it, and the engine would keep
awarding it leases that are then lost after the heartbeat grace. The market therefore
remembers, in process memory only, when it last heard from each provider: a long-poll of its
feed (open, or ended with the provider still connected) or any transaction it signed. A
provider silent for longer than the preset's grace (``heartbeat_interval_s × grace_intervals``,
the same patience the time-lock gives a running lease) counts as offline.

Why memory, not the ledger: "last seen" is an observation of this process, not a fact that
``pasar audit`` could replay. After a restart every provider is unseen until it polls again,
which is the safe default: a provider that died while the market was down is never offered.
When the engine leaves offline providers out of a clearing it writes their ids into the
``match`` transaction, so the replay still reaches the same decision.

It also remembers how each provider's last feed poll ended, for the liveness challenges
(:mod:`pasar.core.liveness_handlers`): a live agent reopens its poll within milliseconds, so a
provider whose poll ended (its connection dropped, or it simply returned) and that has not
opened another within :data:`REOPEN_WINDOW_S` is a *suspect*. The engine challenges a suspect
that runs leases; only a missed challenge ends them, never the drop itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

#: How long a provider's feed may stay closed before it is suspected: a live agent reopens its
#: long poll at once, after handling the events the last one brought.
REOPEN_WINDOW_S = 1.0


@dataclass
class Poll:
    """One long poll of a provider's feed; the route sets ``dropped`` when the client hung up
    while it waited (a SIGKILLed provider's connection is closed by its kernel)."""

    dropped: bool = False


@dataclass(frozen=True)
class Suspicion:
    """A provider's feed has been closed for ``closed_s`` seconds; ``dropped``: it ended by
    the client hanging up (not by the poll returning)."""

    provider: str
    closed_s: float
    dropped: bool


class Liveness:
    """Last sign of life per provider, and the feed polls open now; thread-safe."""

    def __init__(
        self,
        grace_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_back: Callable[[str], None] | None = None,
    ) -> None:
        """``on_back(provider)`` is called when an offline (or unseen) provider is heard again:
        the market uses it to retry unmatched orders, as when capacity changes."""
        self.grace_s = grace_s
        self._clock = clock
        self._on_back = on_back
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._open: dict[str, int] = {}
        # provider -> (when its last poll ended with none open, whether it dropped)
        self._closed: dict[str, tuple[float, bool]] = {}

    def heard(self, provider: str) -> None:
        """The provider showed it is alive now (a feed poll, a signed transaction)."""
        with self._lock:
            was_online = self._online(provider)
            self._last[provider] = self._clock()
        if not was_online and self._on_back is not None:
            self._on_back(provider)

    @contextmanager
    def polling(self, provider: str) -> Iterator[Poll]:
        """Around one long-poll of the provider's feed: alive while it waits on the market.

        The end of the poll is not a sign of life by itself (the client may have died during
        it); the feed route calls :meth:`heard` again if the client is still connected. When
        the last open poll ends the feed counts as closed until the next one opens.
        """
        self.heard(provider)
        poll = Poll()
        with self._lock:
            self._open[provider] = self._open.get(provider, 0) + 1
            self._closed.pop(provider, None)
        try:
            yield poll
        finally:
            with self._lock:
                left = self._open.get(provider, 1) - 1
                if left:
                    self._open[provider] = left
                else:
                    self._open.pop(provider, None)
                    self._closed[provider] = (self._clock(), poll.dropped)

    def suspects(
        self, providers: Iterable[str], window_s: float = REOPEN_WINDOW_S
    ) -> list[Suspicion]:
        """Those of ``providers`` whose feed has been closed for longer than ``window_s``
        (providers that never polled are not suspected: there is no drop to observe)."""
        now = self._clock()
        out = []
        with self._lock:
            for p in providers:
                closed = self._closed.get(p)
                if closed is not None and not self._open.get(p) and now - closed[0] > window_s:
                    out.append(Suspicion(p, now - closed[0], closed[1]))
        return out

    def online(self, provider: str) -> bool:
        with self._lock:
            return self._online(provider)

    def offline(self, providers: Iterable[str]) -> frozenset[str]:
        """Those of ``providers`` that are offline now (silent past the grace, or unseen)."""
        with self._lock:
            return frozenset(p for p in providers if not self._online(p))

    def _online(self, provider: str) -> bool:
        if self._open.get(provider):
            return True
        last = self._last.get(provider)
        return last is not None and self._clock() - last <= self.grace_s
