"""The matching engine: decides *when* the market acts; the state decides *what* it means.

Every tick (100 ms by default) the engine looks at the state and, for each thing that is due,
submits a transaction signed by the market:

- ``match`` for an order whose mechanism can clear now: an auction whose window is ready (every
  invited provider answered, or the deadline passed with bids in hand), or a posted-price /
  tender / stake order that a preview shows would be (at least partly) filled. Orders that
  cannot match are retried only when capacity changes, not every tick;
- ``order.expire`` for an open order past its deadline (escrow refunded);
- ``lease.lost`` for a running lease that missed ``grace`` heartbeat intervals;

a clearing leaves out providers the market has not heard from within the grace (see
:mod:`pasar.market.liveness`) and names them in the ``match`` body, so that replay agrees;

and seals a block of the chain every second. A refusal (another transaction got there first)
is logged and the next tick looks again: the engine holds no state of its own, so a restarted
market resumes exactly where its log left off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pasar.api.txs import LeaseLost, Match, OrderExpire, TxBody
from pasar.core.errors import PasarError
from pasar.core.market_records import OrderRecord
from pasar.market.blobs import DEFAULT_GRACE_S, BlobStore
from pasar.market.chain import ChainBuilder
from pasar.market.service import MarketService

log = logging.getLogger("pasar.market.engine")

TICK_S = 0.1
SEAL_EVERY_S = 1.0
GC_EVERY_S = 60.0


class Engine:
    """Runs :meth:`tick` on the server's event loop until stopped."""

    def __init__(
        self,
        service: MarketService,
        chain: ChainBuilder,
        *,
        tick_s: float = TICK_S,
        blobs: BlobStore | None = None,
        blob_grace_s: float = DEFAULT_GRACE_S,
    ):
        self.service = service
        self.chain = chain
        self.tick_s = tick_s
        self.blobs = blobs
        self.blob_grace_s = blob_grace_s
        self._last_gc = 0.0
        self._stopping = asyncio.Event()
        self._last_seal = 0.0
        # orders previewed since capacity last changed: no point clearing them again until then
        self._tried: set[str] = set()

    def due(self) -> list[TxBody]:
        """The transactions the market should send now (a pure read of the state)."""
        service = self.service
        now = service.clock()
        out: list[TxBody] = []
        offline: frozenset[str] | None = None  # computed once a tick, only when needed
        with service.lock:
            state = service.state
            if service.capacity_changed:
                self._tried.clear()
                service.capacity_changed = False
            expiring = set(state.expirable_orders(now))
            out.extend(OrderExpire(order_id=order_id) for order_id in state.expirable_orders(now))
            for record in state.orders.values():
                if record.status != "open" or record.id in expiring:
                    continue
                if offline is None:
                    offline = service.offline_providers()
                if self._should_match(record, now, offline):
                    match = Match(order_id=record.id, seed=service.new_seed())
                    if offline:
                        match.offline = sorted(offline)
                    out.append(match)
            for lease_id in state.overdue_leases(now):
                out.append(LeaseLost(lease_id=lease_id))
        return out

    def _should_match(self, record: OrderRecord, now: int, offline: frozenset[str]) -> bool:
        """Whether a ``match`` now would do something. Orders that could not be filled are
        previewed again only after capacity changes (a provider registers, a lease ends)."""
        window = record.window
        if window is not None and not window.ready(now):
            return False
        if window is not None and window.bids:
            return True
        if record.id in self._tried:
            return False
        self._tried.add(record.id)
        if window is not None:  # an auction window closed without bids: reopen if anyone fits
            return bool(self._preview_fits(record, offline))
        return bool(self.service.state.clear(record, 0, offline).awards)

    def _preview_fits(self, record: OrderRecord, offline: frozenset[str]) -> int:
        from pasar.core.pricing.base import screen

        views, _ = self.service.state.eligible(record, offline)
        fitting, _ = screen(self.service.state.remaining_order(record), views)
        return len(fitting)

    def run_once(self) -> int:
        """Submit everything due; returns how many transactions were accepted."""
        accepted = 0
        for body in self.due():
            try:
                self.service.submit_market(body)
                accepted += 1
            except PasarError as exc:
                log.info("engine %s refused: %s", body.type, exc.message)
        return accepted

    def collect_blobs(self) -> list[str]:
        """Remove blobs that no order names (inputs, receipt outputs) once past the grace."""
        if self.blobs is None:
            return []
        service = self.service

        def referenced(sha256: str) -> bool:
            with service.lock:
                return sha256 in service.state.blob_orders

        removed = self.blobs.collect(referenced, older_than_s=self.blob_grace_s)
        if removed:
            log.info("removed %d unreferenced blob(s)", len(removed))
        return removed

    def seal(self) -> None:
        try:
            self.chain.seal()
        except PasarError as exc:  # pragma: no cover - a store failure is logged, retried
            log.error("sealing a block failed: %s", exc.message)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            await asyncio.to_thread(self.run_once)
            if loop.time() - self._last_seal >= SEAL_EVERY_S:
                await asyncio.to_thread(self.seal)
                self._last_seal = loop.time()
            if loop.time() - self._last_gc >= min(GC_EVERY_S, self.blob_grace_s):
                await asyncio.to_thread(self.collect_blobs)
                self._last_gc = loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.tick_s)
        await asyncio.to_thread(self.seal)

    def stop(self) -> None:
        self._stopping.set()
