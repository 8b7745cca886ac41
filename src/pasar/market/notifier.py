"""Wakes whoever waits on a provider's feed or an order's state, within milliseconds.

State changes happen on worker threads (the API's sync routes, the engine); waiters are
coroutines on the server's event loop (long-poll routes). :class:`Notifier` keeps a bounded
in-memory list of recent events and one :class:`asyncio.Event` that is replaced on every
publish, set from any thread with ``call_soon_threadsafe``. A waiter re-reads the list after
every wake-up, so a missed wake-up can only delay it until its timeout, never lose an event
(the list, not the wake-up, is the source of truth; a provider that falls further behind than
the list holds re-reads its work from the API).

When the server stops (SIGTERM/SIGINT), :meth:`Notifier.stop` answers every waiter at once
with :class:`MarketStoppingError` (503 ``market_stopping`` with ``Retry-After``) instead of leaving
it to be cancelled by uvicorn's graceful-shutdown timeout (a 500 and a traceback); a wait that
starts after that gets the same answer right away.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pasar.core.errors import PasarError

MAX_EVENTS = 10_000
STOPPING_RETRY_AFTER_S = 2  # a restart (or an upgrade) of the market takes about this long


class MarketStoppingError(PasarError):
    """503: the market is shutting down; come back after ``retry_after_s`` (a restart)."""

    def __init__(self) -> None:
        super().__init__(
            "the market is stopping (a restart or an upgrade)",
            code="market_stopping",
            status=503,
            hint=f"try again in {STOPPING_RETRY_AFTER_S} s; pasar's clients retry by themselves",
        )
        self.retry_after_s = STOPPING_RETRY_AFTER_S


@dataclass(frozen=True)
class FeedEvent:
    """One thing that happened, and whom it concerns."""

    seq: int
    type: str
    data: dict[str, Any]
    providers: frozenset[str] = field(default_factory=frozenset)
    orders: frozenset[str] = field(default_factory=frozenset)
    all_providers: bool = False  # for every provider's feed (instead of naming the whole fleet)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, **self.data}


class Notifier:
    """Publish from any thread; wait (async) for events about a provider or an order."""

    def __init__(self) -> None:
        self._events: deque[FeedEvent] = deque(maxlen=MAX_EVENTS)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._stopping = False
        # a wake-up is scheduled on the loop and has not run yet: a publish meanwhile needs
        # none of its own (its event is in the list before that wake-up runs)
        self._wake_pending = False
        # coroutines inside wait() (counted on the loop's thread): with none, a publish needs
        # no wake-up at all — a wait that starts later reads the events before it sleeps
        self._waiting = 0

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """The server is shutting down: wake every waiter (on the loop's thread) so that each
        answers :class:`MarketStoppingError` now, and refuse waits from here on."""
        self._stopping = True
        self._wake()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the server's event loop (at startup)."""
        self._loop = loop
        self._changed = asyncio.Event()
        self._wake_pending = False  # one scheduled on a previous loop will never run

    @property
    def head(self) -> int:
        with self._lock:
            return self._events[-1].seq if self._events else 0

    def publish(
        self,
        type_: str,
        data: dict[str, Any],
        *,
        providers: Iterable[str] = (),
        orders: Iterable[str] = (),
        all_providers: bool = False,
    ) -> FeedEvent:
        with self._lock:
            event = FeedEvent(
                next(self._seq),
                type_,
                data,
                frozenset(providers),
                frozenset(orders),
                all_providers,
            )
            self._events.append(event)
        # Nobody waiting: no wake-up (under load with no long-poll open, e.g. orders from a
        # script, that is a self-pipe write and a loop wake-up saved per burst). Safe without
        # a lock: wait() counts itself before it reads the events (under the lock above), so
        # a waiter this read misses was counted after this event was in the list, and sees it.
        if self._waiting == 0:
            return event
        if not self._wake_pending and self._loop is not None and not self._loop.is_closed():
            # one wake-up for every publish until it runs: under load (an order, a match, a
            # heartbeat each publish) that is one write to the loop's self-pipe and one
            # wake-up of the loop instead of one per event
            self._wake_pending = True
            try:
                self._loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop closed meanwhile: nobody waits any more
                self._wake_pending = False
        return event

    def _wake(self) -> None:
        self._wake_pending = False  # first: a publish from here on schedules another
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    def events_after(
        self, after: int, *, provider: str | None = None, order: str | None = None
    ) -> list[FeedEvent]:
        with self._lock:
            return [
                e
                for e in self._events
                if e.seq > after
                and (provider is None or e.all_providers or provider in e.providers)
                and (order is None or order in e.orders)
            ]

    async def wait(
        self,
        after: int,
        *,
        timeout_s: float,
        provider: str | None = None,
        order: str | None = None,
        ignore: frozenset[str] = frozenset(),
    ) -> list[FeedEvent]:
        """Events after ``after`` for the provider/order, waiting up to ``timeout_s`` for one;
        events of the types in ``ignore`` neither wake the waiter nor come back.

        Raises :class:`MarketStoppingError` once the server is stopping (see :meth:`stop`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._waiting += 1  # before the first read of the events: see publish()
        try:
            while True:
                if self._stopping:
                    raise MarketStoppingError()
                found = self.events_after(after, provider=provider, order=order)
                if ignore:
                    found = [e for e in found if e.type not in ignore]
                remaining = deadline - loop.time()
                if found or remaining <= 0 or self._changed is None:
                    return found
                changed = self._changed
                try:
                    await asyncio.wait_for(changed.wait(), remaining)
                except TimeoutError:
                    if self._stopping:
                        raise MarketStoppingError() from None
                    found = self.events_after(after, provider=provider, order=order)
                    return [e for e in found if e.type not in ignore]
        finally:
            self._waiting -= 1
