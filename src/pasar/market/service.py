"""The market node's one write path: verify → apply to the state → log durably → notify.

:class:`MarketService` owns the in-memory :class:`~pasar.core.state.MarketState` and the SQL
log. Every transaction, whoever sends it (a client, a provider, the market's own engine), goes
through :meth:`MarketService.submit` under one lock, so the log order is the apply order and a
replay of the log (on restart, or by ``pasar audit``) rebuilds exactly this state.

Apply comes before the durable append: a transaction the state refuses is never logged. A
caller gets its 2xx only once its transaction is committed (several callers' transactions share
one commit under load). If a commit fails (the database is gone), the service takes no more
writes until restarted: the restart replays the durable log, and nothing that was not durable
had been acknowledged.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pasar.api.leases import Challenge
from pasar.api.txs import TxBody
from pasar.core.errors import PasarError
from pasar.core.market_records import Applied, Tx
from pasar.core.nonces import NonceWindow
from pasar.core.presets import Preset
from pasar.core.state import MarketState
from pasar.core.timelock import challenge_message, interval_at
from pasar.core.verify.replicate import draw_message
from pasar.crypto.envelope import MAX_SKEW_MS, VerifiedEnvelope, sign, verify
from pasar.crypto.identity import Identity, verify_signature
from pasar.market.chain import verify_log
from pasar.market.liveness import Liveness
from pasar.market.logging import log_event
from pasar.market.notifier import Notifier
from pasar.market.private_parts import PrivateParts, Revealed
from pasar.market.ratelimit import DEFAULT_MAX_WAITERS, WaiterSlots
from pasar.market.store import SqlStore
from pasar.market.tx_records import TxRecord

Clock = Callable[[], int]
#: Transactions after which an unmatched order may have become matchable.
CAPACITY_CHANGES = frozenset(
    {
        "provider.register",
        "receipt",
        "lease.lost",
        "order.cancel",
        "order.expire",
        "stake",
        "result.reject",  # the rejected shard is re-queued: it may match now
        "tee.attest",  # a newly attested provider may take waiting verification: tee orders
    }
)
#: Transactions that give the engine nothing to do: it is woken after every other one (a new
#: order to match, a bid that may complete a window, capacity freed), not on a 100 ms scan.
#: A heartbeat only proves time, and a liveness answer only life; a ``match`` and a liveness
#: challenge are the engine's own decisions (a challenge's deadline is kept by the tick).
QUIET_TXS = frozenset({"heartbeat", "match", "liveness.challenge", "liveness.answer"})


#: A commit the event loop may make itself (:meth:`MarketService.make_durable_at_once`) while the
#: commits' moving average stays under this: a loop blocked that long per order still serves
#: thousands a second, and the disks this holds for (a local SSD, a page-cached VM disk) sync
#: in a tenth of that.
QUICK_COMMIT_S = 0.001
#: Each commit's weight in that average: one slow commit (a checkpoint, a busy disk) sends the
#: next few to the commit thread, and a few quick ones bring the loop back.
COMMIT_AVERAGING = 0.2


@dataclass(frozen=True)
class Pending:
    """A transaction :meth:`MarketService.apply` applied and queued: ``ticket`` says which
    commit makes it durable (:meth:`MarketService.make_durable`)."""

    type: str
    signer: str
    applied: Applied
    ticket: int  # that of the last transaction in ``then``, when there are any
    then: tuple[Pending, ...] = ()  # what applying it caused (a new order's match)


@dataclass(frozen=True)
class StartAudit:
    """What the market checked of its own log when it started (:meth:`MarketService.recover`):
    every block's signature and links and every envelope, then the whole state replayed. The
    dashboard shows it as the chain's audit status; ``pasar audit`` re-checks independently."""

    at_ms: int
    blocks: int
    txs: int


class MarketService:
    """State, log, notifier and the market's key, behind one lock."""

    def __init__(
        self,
        *,
        store: SqlStore,
        identity: Identity,
        preset: Preset,
        clock: Clock,
        devnet: bool = False,
        notifier: Notifier | None = None,
        max_waiters: int = DEFAULT_MAX_WAITERS,
    ) -> None:
        self.store = store
        self.identity = identity
        self.preset = preset
        self.clock = clock
        self.devnet = devnet
        self.notifier = notifier or Notifier()
        self.lock = threading.RLock()
        self.capacity_changed = True  # the engine retries unmatched orders when this is set
        # what :meth:`recover` verified and replayed at start (shown as the chain's audit status)
        self.verified_at_start: StartAudit | None = None
        self._wake_hooks: list[Callable[[], None]] = []  # the engine's "look now"
        # the engine's "match this order"
        self._on_arrival: Callable[[str], Pending | None] | None = None
        timing = preset.timing
        # process memory, not ledger state: see pasar.market.liveness
        self.liveness = Liveness(
            timing.heartbeat_interval_s * timing.grace_intervals, on_back=self._provider_back
        )
        self._commit_lock = threading.Lock()
        self._pending: list[TxRecord] = []  # applied, not yet durable (group commit)
        self._applied = 0  # tickets: how many transactions were applied / made durable
        self._durable = 0
        self._broken: BaseException | None = None
        self.commit_s = 0.0  # the commits' moving average, in seconds
        # logs are not ledger state, but their appends are signed requests all the same
        self.log_lock = threading.Lock()
        self.log_nonces = NonceWindow(MAX_SKEW_MS)
        self.waiters = WaiterSlots(max_waiters)
        # the orders' private parts, read from their blobs (market memory, not chain state)
        self.private = PrivateParts()
        self.state = self._fresh_state()
        self._check_meta()
        self.recover()

    # -- start-up ----------------------------------------------------------------------------------

    def _fresh_state(self) -> MarketState:
        public_key = self.identity.public_key
        return MarketState(
            self.preset,
            market_id=self.identity.account_id,
            verify_market_signature=lambda m, s: verify_signature(public_key, m, s),
            devnet=self.devnet,
        )

    def _check_meta(self) -> None:
        """A market's log only replays under the key and preset that wrote it."""
        expected = (
            ("market", self.identity.account_id),
            ("preset", self.preset.name),
            ("devnet", "true" if self.devnet else "false"),
        )
        for key, value in expected:
            stored = self.store.get_meta(key)
            if stored is None:
                self.store.set_meta(key, value)
            elif stored != value:
                raise PasarError(
                    f"this database was written by a market with {key} {stored!r}, not {value!r}",
                    code="wrong_database",
                    hint=f"start the market with the same {key}, or use another --db/--home",
                )

    def recover(self) -> int:
        """Verify the log as an audit would, then rebuild the state from it; returns how many
        transactions were replayed.

        Verification first (every block's signature and links, every envelope's signature and
        digest, the market's stamps): a log altered on disk raises
        :class:`~pasar.market.chain.ChainError` naming the height, and the market does not
        start on it.
        """
        with self.lock:
            records = self.store.txs()
            blocks = self.store.blocks()
            verify_log(blocks, records, market_account=self.identity.account_id)
            state = self._fresh_state()
            count = 0
            for record in records:
                state.apply(Tx.from_envelope(record.envelope, record.digest, at=record.at))
                count += 1
            self.state = state
            self.capacity_changed = True
            self.verified_at_start = StartAudit(self.clock(), len(blocks), count)
            return count

    # -- the write path ----------------------------------------------------------------------------

    def submit(self, envelope: VerifiedEnvelope, *, private: Revealed | None = None) -> Applied:
        """Apply and durably log one verified transaction; raise PasarError (4xx) if refused.

        Group commit: the transaction is applied under the lock (so the log order is the apply
        order) and queued; whichever caller reaches the commit first writes every queued
        transaction in one database commit, and each caller returns only once its own is
        durable. Under concurrent load many transactions share one fsync.

        ``private``: an ``order.create``'s private part, read and checked by the route; kept
        with the order before anyone can see the order (its match included).

        The three steps are public for a caller on the event loop (``POST /v1/orders``), which
        applies in place and commits there only when that is quick: :meth:`apply`, then
        :meth:`make_durable` (or :meth:`make_durable_at_once`) with its ticket, then
        :meth:`announce`.
        """
        return self._durable_and_announced(self.apply(envelope, private=private))

    def _durable_and_announced(self, pending: Pending) -> Applied:
        """:meth:`make_durable`, then :meth:`announce`: a blocking caller's last two steps."""
        self.make_durable(pending.ticket)
        return self.announce(pending)

    def apply(self, envelope: VerifiedEnvelope, *, private: Revealed | None = None) -> Pending:
        """Apply one verified transaction to the state and queue it for the next commit (and
        match a new order on arrival); raise PasarError (4xx) if refused. Not yet durable:
        nothing of it may be answered or announced before :meth:`make_durable` returns."""
        with self.lock:
            self._check_healthy()
            # the market's stamp: its own clock, never before the last stamp (audits replay it)
            at = max(self.clock(), self.state.last_ts)
            tx = Tx.from_envelope(envelope.to_dict(), envelope.digest, at=at)
            applied = self.state.apply(tx)
            if private is not None and tx.type == "order.create":
                self.private.add(str(applied.result["order_id"]), private)
            self._pending.append(TxRecord.from_verified(envelope, at=at))
            self._applied += 1
            ticket = self._applied
            if tx.type in CAPACITY_CHANGES:
                self.capacity_changed = True
            if tx.signer in self.state.providers:  # a signed request is a sign of life
                self.liveness.heard(tx.signer)
        then: tuple[Pending, ...] = ()
        if tx.type == "order.create" and self._on_arrival is not None:
            # matched now, in this thread and before this commit: the order and its match are
            # made durable by one commit, and the sender's 2xx already shows the lease
            match = self._on_arrival(str(applied.result["order_id"]))
            if match is not None:
                then, ticket = (match,), match.ticket
        elif tx.type not in QUIET_TXS:
            self.wake_engine()
        return Pending(tx.type, tx.signer, applied, ticket, then)

    def announce(self, pending: Pending) -> Applied:
        """Log and publish a transaction :meth:`make_durable` made durable (after what it
        caused: an order's match first, as when the match was committed on its own); its
        result."""
        for caused in pending.then:
            self.announce(caused)
        applied = pending.applied
        fields = {k: v for k, v in applied.result.items() if isinstance(v, str | int)}
        log_event(pending.type, signer=pending.signer, **fields)
        self.notifier.publish(
            pending.type,
            applied.result,
            providers=applied.providers,
            orders=applied.orders,
            all_providers=applied.all_providers,
        )
        return applied

    def on_change(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call ``hook`` (cheap, thread-safe, non-blocking) whenever the engine may have work
        now; returns a function that removes it."""
        self._wake_hooks.append(hook)
        return lambda: self._wake_hooks.remove(hook)

    def match_on_arrival(self, hook: Callable[[str], Pending | None] | None) -> None:
        """Have ``hook(order_id)`` called for each new order after it is applied and before it
        is committed (the engine applies the order's ``match`` from there, with
        :meth:`apply_market`, and returns it: the order's commit makes both durable, and the
        order's announcement announces the match first); None stops it."""
        self._on_arrival = hook

    def wake_engine(self) -> None:
        for hook in list(self._wake_hooks):
            hook()

    def _provider_back(self, provider: str) -> None:
        """A provider came back online: orders that could not match may match now. (Under the
        lock: the engine reads and clears the flag under it.)"""
        with self.lock:
            self.capacity_changed = True
        self.wake_engine()

    def offline_providers(self) -> frozenset[str]:
        """Providers taking work by the ledger (``available``) but silent past the grace: the
        engine leaves them out of clearings, the offers leave them out of the list."""
        with self.lock:
            available = [p.id for p in self.state.providers.values() if p.available]
        return self.liveness.offline(available)

    def _check_healthy(self) -> None:
        if self._broken is not None:
            raise PasarError(
                f"the market's database failed ({self._broken}); it takes no writes until it is "
                "restarted",
                code="store_unavailable",
                status=503,
                hint="restart the market: it resumes from its durable log",
            )

    def make_durable(self, ticket: int) -> None:
        """Return once the transaction of ``ticket`` (:meth:`apply`) is committed, committing
        every queued one if no other caller's commit already carried it (a blocking call)."""
        with self._commit_lock:
            self._commit_through(ticket)

    def make_durable_at_once(self, ticket: int) -> bool:
        """:meth:`make_durable`, if that cannot wait for anything but a quick commit of its own:
        False (nothing done) while another commit is under way, or while the commits are slow
        (their moving average over :data:`QUICK_COMMIT_S`).

        For the event loop, which applies orders itself (``POST /v1/orders``): handing every
        commit to a thread cost an order a third of the API's rate on a disk that syncs in a
        tenth of a millisecond (the thread's wake-up, and the GIL passed to and fro at each of
        the commit's blocking calls). On a slow disk the loop hands it over after all: there,
        waiting commits share one (group commit) and the loop keeps serving meanwhile."""
        if self.commit_s > QUICK_COMMIT_S or not self._commit_lock.acquire(blocking=False):
            return False
        try:
            self._commit_through(ticket)
        finally:
            self._commit_lock.release()
        return True

    def _commit_through(self, ticket: int) -> None:
        """Under the commit lock: commit every queued transaction, unless ``ticket``'s is."""
        if self._durable >= ticket:
            return  # another caller's commit carried this one
        self._check_healthy()
        with self.lock:
            batch, self._pending = self._pending, []
            last = self._applied
        start = time.perf_counter()
        try:
            self.store.append_many(batch)
        except Exception as exc:
            # Memory is now ahead of the log: refuse every write until a restart replays
            # the log (whatever was not committed was never acknowledged).
            self._broken = exc
            raise
        self._durable = last
        took = time.perf_counter() - start
        self.commit_s += (took - self.commit_s) * COMMIT_AVERAGING

    def submit_market(self, tx: TxBody) -> Applied:
        """Sign ``tx`` with the market's key and submit it (the engine's decisions)."""
        return self._durable_and_announced(self.apply_market(tx))

    def apply_market(self, tx: TxBody) -> Pending:
        """:meth:`apply` for ``tx`` signed with the market's key."""
        now = self.clock()
        market = self.identity.account_id
        envelope = sign(tx.body(), self.identity, now_ms=now, market=market)
        verified = verify(envelope, now_ms=now, market=market, expected_signer=market)
        return self.apply(verified)

    def draw(self, lease_id: str, receipt_digest: str) -> str:
        """The market's replication draw for a held receipt: its signature (hex) of
        :func:`~pasar.core.verify.replicate.draw_message`, deterministic, so it cannot be
        ground, and unknowable to client and provider before the receipt exists."""
        return self.identity.sign(draw_message(lease_id, receipt_digest)).hex()

    def new_seed(self) -> int:
        """A fresh seed for a clearing; it is recorded in the ``match`` transaction."""
        return secrets.randbits(63)

    # -- challenges --------------------------------------------------------------------------------

    def challenge(self, lease_id: str) -> Challenge:
        """The market's challenge for the current heartbeat interval of a running lease."""
        with self.lock:
            lease = self.state.leases.get(lease_id)
            if lease is None:
                raise PasarError(f"no lease {lease_id!r}", code="not_found", status=404)
            if lease.status != "running":
                raise PasarError(
                    f"lease {lease_id} is {lease.status}", code="not_running", status=409
                )
            started = lease.started_at
        interval_s = self.preset.timing.heartbeat_interval_s
        k = interval_at(started, self.clock(), interval_s)
        signature = self.identity.sign(challenge_message(lease_id, k))
        return Challenge(
            lease_id=lease_id,
            interval=k,
            challenge=signature.hex(),
            interval_s=interval_s,
            next_at_ms=started + (k + 1) * interval_s * 1000,
        )
