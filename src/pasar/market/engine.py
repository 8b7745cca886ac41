"""The matching engine: decides *when* the market acts; the state decides *what* it means.

The engine is event-driven. A new order is matched on arrival: the service calls
:meth:`Engine.match_arrival` in the submitting thread right after applying the order, so the
order and its ``match`` share one commit (and one announcement) and the client's 2xx already
shows the lease. Every
other transaction that may give the engine work (a bid, a registration, capacity freed by a
release, receipt or lost lease; :data:`~pasar.market.service.QUIET_TXS` lists those that do not)
wakes it at once. A slow tick (:data:`TICK_S`) remains for deadlines only: expiry, lost leases,
auction windows that close on time, sealing. Each time it looks at the state and, for each
thing that is due, submits a transaction signed by the market:

- ``match`` for an order whose mechanism can clear now: an auction whose window is ready (every
  invited provider answered, or the deadline passed with bids in hand), or a posted-price /
  tender / stake order that a preview shows would be (at least partly) filled. Orders that
  cannot match are retried only when capacity changes, not every tick;
- ``order.expire`` for an open order past its deadline (escrow refunded);
- ``lease.lost`` for a running lease that missed ``grace`` heartbeat intervals;
- ``liveness.challenge`` for a provider suspected dead (its feed dropped, a heartbeat is late),
  and ``lease.lost`` for the leases of one that missed its challenge
  (:mod:`pasar.market.liveness_checks`);
- for checked verification (``replicate``): ``check.draw`` over each held receipt,
  ``check.assign`` while a held lease needs more checks and a verifier may take one, and
  ``check.expire`` for a check past its deadline (it goes to another verifier), and
  ``dispute.expire`` for a pol dispute whose round or referee missed its deadline
  (:mod:`pasar.core.dispute_handlers`), and ``dispute.rule`` once a dispute's referee traced
  its pinned step (:func:`pasar.core.dispute_trace.rulings_due`);
- ``result.auto_approve`` for a held result (``verification: approve``) whose approval window
  passed;
- ``capacity.challenge`` / ``capacity.verdict`` for the capacity proofs
  (:mod:`pasar.market.capacity_checks`);

a clearing leaves out providers the market has not heard from within the grace (see
:mod:`pasar.market.liveness`): the preview asks the liveness about each provider it examines
(never the whole fleet) and the ``match`` body names those found offline, so that replay, which
examines the same providers in the same order, agrees;

the service's lock is held for one order's preview at a time (an index walk, not a scan of the
fleet: see :mod:`pasar.core.candidates`), so API writes interleave with a long list of orders;

and seals a block of the chain every second. A refusal (another transaction got there first)
is logged and the next tick looks again: the engine holds no state of its own, so a restarted
market resumes exactly where its log left off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from pasar.api.txs import (
    CheckAssign,
    CheckDraw,
    CheckExpire,
    DisputeExpire,
    DisputeRule,
    LeaseLost,
    Match,
    OrderExpire,
    ResultAutoApprove,
    TxBody,
)
from pasar.core.approval_handlers import overdue_approvals
from pasar.core.check_handlers import verification_due
from pasar.core.dispute_trace import rulings_due
from pasar.core.disputes import disputes_due
from pasar.core.errors import PasarError
from pasar.core.market_records import OrderRecord
from pasar.market.blobs import DEFAULT_GRACE_S, BlobStore
from pasar.market.capacity_checks import CapacityChecks
from pasar.market.chain import ChainBuilder
from pasar.market.liveness_checks import liveness_due
from pasar.market.service import MarketService, Pending

log = logging.getLogger("pasar.market.engine")

TICK_S = 0.5  # deadlines only: everything else wakes the engine at once
SEAL_EVERY_S = 1.0
GC_EVERY_S = 60.0
CAPACITY_EVERY_S = 1.0  # capacity proofs: a scan of the fleet, so at most once a second


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
        capacity_checks: bool = True,
    ):
        self.service = service
        self.chain = chain
        self.tick_s = tick_s
        self.blobs = blobs
        self.blob_grace_s = blob_grace_s
        self._last_gc = 0.0
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._last_seal = 0.0
        # orders previewed since capacity last changed: no point clearing them again until then
        self._tried: set[str] = set()
        # capacity proofs (challenges, late/passed/failed verdicts): see capacity_checks.py
        self.capacity = CapacityChecks(service) if capacity_checks else None
        self._last_capacity = float("-inf")

    def due(self) -> list[TxBody]:
        """The transactions the market should send now (a read of the state)."""
        service = self.service
        now = service.clock()
        out: list[TxBody] = []
        with service.lock:
            state = service.state
            if service.capacity_changed:
                self._tried.clear()
                service.capacity_changed = False
            expired = state.expirable_orders(now)
            out.extend(OrderExpire(order_id=order_id) for order_id in expired)
            expiring = set(expired)
            waiting = [
                r.id
                for r in map(state.orders.__getitem__, state.live.open_orders)
                if r.status == "open"
                and r.id not in expiring
                and (r.window is not None or r.id not in self._tried)  # bids may have come
            ]
            lost = state.overdue_leases(now)
            liveness = liveness_due(state, service.liveness, now)
            judged = overdue_approvals(state, now)
            to_draw, to_assign, to_expire = verification_due(state, now)
            disputes = disputes_due(state, now)
            rulings = rulings_due(state)  # a referee traced a pinned step: its ruling
            draws = [(x, state.leases[x].receipt_digest or "") for x in to_draw]
        for order_id in waiting:  # the lock is taken again for each: writes get in between
            body = self._match_body(order_id, now)
            if body is not None:
                out.append(body)
        out.extend(LeaseLost(lease_id=lease_id) for lease_id in lost)
        # a missed liveness challenge ends a lease long before the grace does (a lease already
        # lost by the grace above is refused here as not running, harmlessly)
        out.extend(liveness)
        # verification: draws over held receipts, checks for verifiers, missed deadlines
        out.extend(CheckExpire(check_id=check_id) for check_id in to_expire)
        out.extend(DisputeExpire(dispute_id=dispute_id) for dispute_id in disputes)
        out.extend(DisputeRule.model_validate(body) for body in rulings)
        out.extend(
            CheckDraw(lease_id=lease_id, draw=service.draw(lease_id, digest))
            for lease_id, digest in draws
        )
        for lease_id, challenge_id in to_assign:
            assign = CheckAssign(lease_id=lease_id, seed=service.new_seed())
            if challenge_id is not None:
                assign.challenge_id = challenge_id
            out.append(assign)
        out.extend(ResultAutoApprove(lease_id=lease_id) for lease_id in judged)
        if self.capacity is not None and time.monotonic() - self._last_capacity >= CAPACITY_EVERY_S:
            self._last_capacity = time.monotonic()
            out.extend(self.capacity.due(self.blobs, now))
        return out

    def _match_body(self, order_id: str, now: int) -> Match | None:
        """The ``match`` to send for one open order, or None when it would do nothing now."""
        service = self.service
        with service.lock:
            record = service.state.orders.get(order_id)
            if record is None or record.status != "open":
                return None
            offline = Offline(service.liveness.online)
            if not self._should_match(record, now, offline):
                return None
            body = Match(order_id=record.id, seed=service.new_seed())
        if offline.found:
            body.offline = sorted(offline.found)
        return body

    def _should_match(self, record: OrderRecord, now: int, offline: Offline) -> bool:
        """Whether a ``match`` now would do something. Orders that could not be filled are
        previewed again only after capacity changes (a provider registers, a lease ends)."""
        window = record.window
        if window is not None and not window.ready(now):
            return False
        if window is not None and window.bids:
            for bidder in sorted(window.bids):  # the clearing looks at the bidders only
                _ = bidder in offline
            return True
        if record.id in self._tried:
            return False
        self._tried.add(record.id)
        state = self.service.state
        if not state.providers:
            # nobody to clear over: no award whatever the order (the clearing would scan an
            # empty fleet for the same answer, a tenth of an order's submission); the first
            # provider.register is a capacity change, after which the order is tried again
            return False
        if window is not None:  # an auction window closed without bids: reopen if anyone fits
            return bool(state.fitting_views(record, offline))
        return bool(state.clear(record, 0, offline).awards)

    def match_arrival(self, order_id: str) -> Pending | None:
        """Match a new order at once, in the thread that applied it: the match applied, not yet
        durable (the service calls this before the order's commit, which makes both durable,
        and announces the match with the order). Never raises: the order is accepted whatever
        happens here, and the engine's next pass retries."""
        service = self.service
        try:
            body = self._match_body(order_id, service.clock())
            return None if body is None else service.apply_market(body)
        except PasarError as exc:
            log.info("engine match refused: %s", exc.message)
        except Exception:  # pragma: no cover - a bug must not fail the client's order
            log.exception("matching order %s on arrival failed", order_id)
        with service.lock:
            self._tried.discard(order_id)
        service.wake_engine()
        return None

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
                return sha256 in service.state.blob_orders or bool(
                    service.private.orders_naming(sha256)
                )

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

        def wake() -> None:  # from any thread; after shutdown the loop is gone: nothing to do
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)

        unhook = self.service.on_change(wake)
        self.service.match_on_arrival(self.match_arrival)
        try:
            await self._loop(loop)
        finally:
            self.service.match_on_arrival(None)
            unhook()
        await asyncio.to_thread(self.seal)

    async def _loop(self, loop: asyncio.AbstractEventLoop) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # a wake during the pass below makes the next pass start at once
            await asyncio.to_thread(self.run_once)
            if loop.time() - self._last_seal >= SEAL_EVERY_S:
                await asyncio.to_thread(self.seal)
                self._last_seal = loop.time()
            if loop.time() - self._last_gc >= min(GC_EVERY_S, self.blob_grace_s):
                await asyncio.to_thread(self.collect_blobs)
                self._last_gc = loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick_s)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()


class Offline:
    """The market's liveness, asked one provider at a time while a preview clears an order;
    remembers who it found offline, for the ``match`` body (the replay's offline set).

    Why not the offline set of the whole fleet: computing it is a pass over every provider, and
    the ``match`` would carry thousands of ids; a clearing examines only a few providers."""

    def __init__(self, online: Callable[[str], bool]) -> None:
        self._online = online
        self.found: set[str] = set()

    def __contains__(self, provider: object) -> bool:
        if not isinstance(provider, str):
            return False
        if provider in self.found:
            return True
        if self._online(provider):
            return False
        self.found.add(provider)
        return True
