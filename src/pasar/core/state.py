"""The market's state as a pure function of its transaction log.

Every state change of a market is a *transaction*: a signed envelope whose body has a ``type``
(docs/market.md). :meth:`MarketState.apply` checks one transaction against the current state
and either changes the state or raises a :class:`PasarError` and changes nothing. The market
node applies each transaction before logging it; ``pasar audit`` replays the logged ones
through this same code and must arrive at the same balances.

Decisions the market takes on its own (matching, expiry, a lost lease) are transactions signed
by the market key. A ``match`` carries only the order and a random seed: the awards are
*computed here* by the network's mechanism, so an audit re-derives them rather than trusting
them. Time comes from each transaction's market stamp ``at`` (the market's clock when it
accepted the transaction, recorded in the log and the blocks), never from the signer's ``ts``,
which only has to be within ``MAX_SKEW_MS`` of the stamp (freshness); randomness comes from the
seeds in the log.

The handlers of the transactions that prove or end a lease's time (heartbeat, release, lost,
receipt) live in :mod:`pasar.core.lease_handlers`, the order ones (create, bid, match, expire,
cancel) in :mod:`pasar.core.order_handlers`, a held result's judgement in
:mod:`pasar.core.approval_handlers`; the account and provider ones here.

Signatures are checked before a transaction reaches this module (by the API and by the audit);
what is checked here is everything that depends on the state: who may send what, nonces, money,
capacity, prices, timing.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Container, Hashable, Iterable, Mapping, MutableMapping
from dataclasses import replace
from typing import Any, TypeVar

from pasar.core import bid_deposits
from pasar.core.account_handlers import (
    offered_clusters,
    on_faucet,
    on_register,
    on_stake,
    on_unstake,
    on_withdraw,
    on_withdraw_unbonded,
)
from pasar.core.accounts import LedgerAccount
from pasar.core.alternatives import (
    Clearing,
    alternative_orders,
    choose,
    merge_candidates,
    merge_reasons,
    pinned_alternative,
)
from pasar.core.approval_handlers import on_approve, on_auto_approve, on_reject
from pasar.core.candidates import build_candidates, indexed_candidates
from pasar.core.capacity import CapacityChallenge, exclusion_reason
from pasar.core.capacity_handlers import on_answer, on_challenge, on_verdict
from pasar.core.challenge_handlers import on_challenge_open
from pasar.core.check_handlers import (
    on_check_assign,
    on_check_expire,
    on_check_verdict,
    on_draw,
    on_verifier_register,
)
from pasar.core.cluster_handlers import on_cluster_exec
from pasar.core.dispute_handlers import (
    on_dispute_answer,
    on_dispute_expire,
    on_dispute_open,
    on_dispute_rule,
    on_dispute_trace,
)
from pasar.core.disputes import DisputeRecord
from pasar.core.fees import Charges, billed_cost
from pasar.core.fleet_index import FleetIndex
from pasar.core.lease_handlers import on_heartbeat, on_lost, on_receipt, on_release
from pasar.core.ledger import Ledger
from pasar.core.live_index import LiveIndex
from pasar.core.liveness_handlers import on_liveness_answer, on_liveness_challenge
from pasar.core.market_records import (
    LIVE_LEASE,
    Applied,
    AuctionWindowState,
    ChallengeRecord,
    CheckRecord,
    LeaseRecord,
    OrderRecord,
    ProviderRecord,
    Tx,
    VerifierRecord,
    fail,
    not_found,
)
from pasar.core.money import Money
from pasar.core.nonces import NonceWindow, nonce_reused
from pasar.core.order_handlers import (
    on_bid,
    on_cancel,
    on_expire,
    on_match,
    on_order_create,
)
from pasar.core.orders import Order, ProviderView
from pasar.core.presets import Preset
from pasar.core.pricing.base import Candidate, MatchResult, Mechanism, screen
from pasar.core.record_journal import RecordJournal
from pasar.core.resources import fit
from pasar.core.sealed_handlers import on_key_seal, on_lease_accept
from pasar.core.slash_log import SlashEntry
from pasar.core.spec import JobSpec
from pasar.core.stake import stake_problem
from pasar.core.tee import Attestation, attestation_problem, check_attested_supply, on_tee_attest
from pasar.core.timelock import (
    billable_ms,
    is_lost,
)
from pasar.core.tx_fields import TX_FIELDS
from pasar.crypto.envelope import MAX_SKEW_MS

MARKET_TYPES = frozenset(
    {
        "match",
        "order.expire",
        "lease.lost",
        "liveness.challenge",
        "check.draw",
        "check.assign",
        "check.expire",
        "dispute.expire",
        "dispute.rule",
        "result.auto_approve",
        "capacity.challenge",
        "capacity.verdict",
        "tee.attest",
    }
)
#: Up to this many providers an order is cleared by scanning them all, which gives every provider a
#: reason in ``OrderRecord.reasons``; above it the fleet index finds the same awards while
#: looking only where candidates can be, and only the providers it examined get a reason.
FULL_SCAN_UP_TO = 256
#: Why a provider the market has not heard from within the grace gets no new lease.
OFFLINE_REASON = "is offline: the market has not heard from it within the heartbeat grace"

SignatureCheck = Callable[[bytes, bytes], bool]
"""``(message, signature) -> bool``: verifies the market's own signature (challenges)."""

_R = TypeVar("_R")


# -- the state -------------------------------------------------------------------------------------


class MarketState:
    """Ledger, providers, orders and leases of one market, changed only by :meth:`apply`."""

    def __init__(
        self,
        preset: Preset,
        *,
        market_id: str,
        verify_market_signature: SignatureCheck,
        devnet: bool = False,
    ) -> None:
        self.preset = preset
        self.market_id = market_id
        self.devnet = devnet
        self._verify_market = verify_market_signature
        self.ledger = Ledger()
        self.providers: dict[str, ProviderRecord] = {}
        # capacity proofs, by challenge id (:mod:`pasar.core.capacity_handlers`)
        self.capacity_challenges: dict[str, CapacityChallenge] = {}
        self.orders: dict[str, OrderRecord] = {}
        self.leases: dict[str, LeaseRecord] = {}
        self.verifiers: dict[str, VerifierRecord] = {}
        self.checks: dict[str, CheckRecord] = {}
        self.challenges: dict[str, ChallengeRecord] = {}
        # pol disputes, by id (pasar.core.dispute_handlers)
        self.disputes: dict[str, DisputeRecord] = {}
        self.nonces = NonceWindow(MAX_SKEW_MS)  # (signer, nonce) pairs that may still come back
        self.tx_count = 0
        self.last_ts = 0  # the newest market stamp applied (``Tx.at``)
        self.now = 0  # the stamp of the transaction being applied (what a handler's "now" is)
        # sha256 → orders that name the blob (inputs, receipt outputs): who may read it
        self.blob_orders: dict[str, set[str]] = {}
        # free capacity and asks of every provider, for matching without a scan of the fleet
        self.index = FleetIndex()
        # provider → every slash it suffered, and why (pasar.core.slash_log)
        self.slashes: dict[str, list[SlashEntry]] = {}
        self.full_scan_up_to = FULL_SCAN_UP_TO
        # provider → its TEE attestation, recorded by the market (pasar.core.tee)
        self.attestations: dict[str, Attestation] = {}
        # while :meth:`apply` runs a handler: the records and keys it changed (undo log)
        self._journal: RecordJournal | None = None
        # the open orders, running and held leases and assigned checks: what the engine's
        # questions walk instead of the whole history (pasar.core.live_index)
        self.live = LiveIndex()

    # -- applying ---------------------------------------------------------------------------------

    def apply(self, tx: Tx) -> Applied:
        """Apply one transaction, all or nothing."""
        handler = _HANDLERS.get(tx.type)
        if handler is None:
            raise fail(
                f"unknown transaction type {tx.type!r}",
                code="invalid_tx",
                field="body.type",
                hint="one of: " + ", ".join(sorted(_HANDLERS)),
            )
        unknown = sorted(str(k) for k in tx.body if k != "type" and k not in TX_FIELDS[tx.type])
        if unknown:
            raise fail(
                f"unknown field {unknown[0]!r} in a {tx.type!r} transaction",
                code="unknown_field",
                field=f"body.{unknown[0]}",
                hint="known fields: " + ", ".join(sorted(TX_FIELDS[tx.type])),
            )
        if abs(tx.at - tx.ts) > MAX_SKEW_MS:
            raise fail(
                f"the transaction was signed {abs(tx.at - tx.ts) / 1000:.1f} s away from the "
                f"market's clock (at most {MAX_SKEW_MS // 1000} s)",
                code="stale_timestamp",
                status=401,
                field="ts",
                hint="sign just before sending, and keep the clock synchronised (NTP)",
            )
        if (tx.signer, tx.nonce) in self.nonces:
            raise nonce_reused()
        if tx.type in MARKET_TYPES and tx.signer != self.market_id:
            raise fail(f"only the market may send {tx.type!r}", code="wrong_signer", status=403)
        # Handlers check everything they can before they change anything; when one fails
        # half-way anyway, the ledger's journal undoes the money it moved and the record
        # journal the records it changed, so memory never drifts from a replay of the log.
        journal = RecordJournal()
        self._journal = journal
        self.now = tx.at
        try:
            with self.ledger.atomic():
                applied = handler(self, tx)
        except BaseException:
            self._roll_back(journal)
            raise
        finally:
            self._journal = None
        self.live.follow(journal, self.orders, self.leases, self.checks)
        self.nonces.remember(tx.signer, tx.nonce, tx.at)
        self.tx_count += 1
        self.last_ts = max(self.last_ts, tx.at)
        return applied

    # -- queries used by the engine and the API ---------------------------------------------------

    def stake_of(self, provider_id: str) -> Money:
        return self.ledger.balance(LedgerAccount.stake(provider_id), self.preset.currency)

    def view(self, provider: ProviderRecord) -> ProviderView:
        return ProviderView(
            id=provider.id,
            inventory=provider.free(),
            reputation=provider.reputation.score,
            score=provider.score,
            stake=self.stake_of(provider.id),
            region=provider.region,
            attributes=dict(provider.attributes),
        )

    def remaining_order(self, record: OrderRecord) -> Order:
        """The order as a mechanism should see it now: only the leases still to be filled."""
        return replace(record.order, leases=max(1, record.unfilled))

    def eligible(
        self,
        record: OrderRecord,
        offline: Container[str] = frozenset(),
        among: Iterable[str] | None = None,
    ) -> tuple[list[ProviderView], dict[str, str]]:
        """Providers that may take part (stake ok, not the client, not ``offline``), and why
        others may not. ``offline`` is the market's observation of who went silent; it is not
        state, so a ``match`` carries it in its body and a replay clears over the same set.
        ``among`` limits the look to those providers (in the order given; every provider, in
        registration order, when None)."""
        views: list[ProviderView] = []
        reasons: dict[str, str] = {}
        excluded = self.exclusions(record)
        providers = self.providers.values() if among is None else (self.providers[p] for p in among)
        for provider in providers:
            view, problem = self.eligible_view(provider, record, offline, excluded)
            if view is None:
                reasons[provider.id] = problem
            else:
                views.append(view)
        return views, reasons

    def exclusions(self, record: OrderRecord) -> Mapping[str, str]:
        """The providers ``record``'s verification policy keeps out of it, and why (computed
        once per clearing: :meth:`eligible_view` takes it)."""
        policy = self.preset.verification_policy(record.verification)
        excluded = policy.exclusions(record, [self.leases[x] for x in record.leases])
        if record.order.together and not record.order.shares_providers:
            # placement: strict_spread holds for a node leased again (on_node_loss: replace)
            gang = {
                lease.provider: "runs another node of this job (placement: strict_spread)"
                for lease in (self.leases[x] for x in record.leases)
                if lease.status in LIVE_LEASE
            }
            excluded = {**gang, **excluded}
        if not getattr(policy, "requires_attestation", False):
            return excluded
        # verification: tee: only providers with a valid attestation the spec's pins accept
        unattested = {
            pid: problem
            for pid in self.providers
            if (
                problem := attestation_problem(
                    self.attestations.get(pid), record.spec.tee, self.now
                )
            )
        }
        return {**unattested, **excluded}

    def eligible_view(
        self,
        provider: ProviderRecord,
        record: OrderRecord,
        offline: Container[str],
        excluded: Mapping[str, str],
    ) -> tuple[ProviderView | None, str]:
        """``(view, "")`` when ``provider`` may take part in ``record``, else ``(None, why)``.
        ``excluded`` is :meth:`exclusions` of ``record``."""
        if provider.id == record.client:
            return None, "is the client of this order"
        if provider.id in excluded:
            return None, excluded[provider.id]
        if not provider.available:
            return None, "is not taking new work (draining, or gone since it lost a lease)"
        if provider.id in offline:
            return None, OFFLINE_REASON
        failing = exclusion_reason(provider.capacity)
        if failing is not None:
            return None, failing
        cluster = record.spec.cluster
        if cluster is not None and cluster not in offered_clusters(provider):
            return None, f"does not offer cluster: {cluster}"
        view = self.view(provider)
        problem = stake_problem(self.preset.stake_rule, view)
        if problem is not None:
            return None, problem
        return view, ""

    def candidates(
        self, record: OrderRecord, offline: Container[str] = frozenset()
    ) -> tuple[list[Candidate], dict[str, str]]:
        """The candidates the order's mechanism clears over, with a reason for everyone else
        (a scan of the whole fleet: what ``explain`` shows). For an order with alternatives,
        each provider once, marked with the alternative it would satisfy
        (:func:`~pasar.core.alternatives.merge_candidates`)."""
        order = self.remaining_order(record)
        views, ineligible = self.eligible(record, offline)  # whatever the alternative
        clearings: list[Clearing] = []
        for i, alt in alternative_orders(order, self.pinned_alternative(record)):
            candidates, reasons = self._scan(record, alt, views, ineligible)
            clearings.append(Clearing.of(i, candidates, MatchResult(reasons=reasons)))
        if len(clearings) == 1:
            return clearings[0].candidates, dict(clearings[0].result.reasons)
        return merge_candidates(order.pick, clearings), merge_reasons(clearings)

    def _scan(
        self,
        record: OrderRecord,
        order: Order,
        views: list[ProviderView],
        ineligible: Mapping[str, str],
    ) -> tuple[list[Candidate], dict[str, str]]:
        """The candidates for ``order`` (one alternative of ``record``'s) among the eligible
        ``views`` of the whole fleet, and why everyone else is out."""
        mechanism = self.mechanism_of(record)
        candidates, more = build_candidates(self, record, mechanism, order, views)
        return candidates, {**ineligible, **more}

    def clear(
        self,
        record: OrderRecord,
        seed: int,
        offline: Container[str] = frozenset(),
        *,
        indexed: bool | None = None,
    ) -> MatchResult:
        """Run the order's mechanism now (pure: the engine previews, ``match`` commits).

        Up to ``full_scan_up_to`` providers the mechanism clears over a scan of the fleet;
        above, over the candidates the fleet index finds (:mod:`pasar.core.candidates`), which
        give exactly the same awards: only fewer losers are given a reason. ``indexed`` forces
        one way (tests compare both)."""
        return self.clear_over(record, seed, offline, indexed=indexed)[1]

    def clear_over(
        self,
        record: OrderRecord,
        seed: int,
        offline: Container[str] = frozenset(),
        *,
        indexed: bool | None = None,
    ) -> tuple[list[Candidate], MatchResult]:
        """:meth:`clear`, with the candidates it cleared over (what a quote shows as offers).
        An order with alternatives is cleared once per alternative, with the same seed, and
        one clearing kept (:mod:`pasar.core.alternatives`)."""
        if indexed is None:
            indexed = self.indexed
        order = self.remaining_order(record)
        mechanism = self.mechanism_of(record)
        scan = None if indexed else self.eligible(record, offline)  # whatever the alternative
        clearings: list[Clearing] = []
        for i, alt in alternative_orders(order, self.pinned_alternative(record)):
            if scan is None:
                candidates, reasons = indexed_candidates(self, record, mechanism, alt, offline)
            else:
                candidates, reasons = self._scan(record, alt, *scan)
            result = mechanism.clear(alt, candidates, random.Random(seed))
            merged = {**reasons, **dict(result.reasons)}
            result = MatchResult(result.awards, merged, result.unfilled, result.note)
            clearings.append(Clearing.of(i, candidates, result))
        return choose(order.pick, clearings)

    def pinned_alternative(self, record: OrderRecord) -> int | None:
        """The alternative a gang's later leases must use: its first leases' (else None)."""
        return pinned_alternative(record.order, (self.leases[x].alternative for x in record.leases))

    def fitting_views(
        self, record: OrderRecord, offline: Container[str] = frozenset()
    ) -> list[ProviderView]:
        """The eligible providers whose free room fits one lease of ``record`` under any of its
        alternatives (who an auction window invites), each once, in the order first found."""
        order = self.remaining_order(record)
        found: dict[str, ProviderView] = {}
        for _, alt in alternative_orders(order, self.pinned_alternative(record)):
            views, _ = self.eligible(record, offline, among=self.index.may_fit(alt.request))
            for view, _ in screen(alt, views)[0]:
                found.setdefault(view.id, view)
        return list(found.values())

    @property
    def indexed(self) -> bool:
        """Whether clearings go through the fleet index (a fleet too large to scan per order)."""
        return len(self.providers) > self.full_scan_up_to

    def mechanism_of(self, record: OrderRecord) -> Mechanism:
        """The mechanism that prices ``record`` (callers ask it questions, never its name)."""
        return self.preset.mechanism(record.mechanism)

    def held_for(self, record: OrderRecord) -> Money:
        """What the order's client has in escrow for it now: the order's own escrow (shards
        not yet leased) plus every lease's (a running lease holds its share until it settles),
        so money is never shown as gone while a job runs."""
        currency = record.order.currency
        micros = self.ledger.balance(LedgerAccount.order_escrow(record.id), currency).micros
        for lease_id in record.leases:
            micros += self.ledger.balance(LedgerAccount.lease_escrow(lease_id), currency).micros
        return Money(micros, currency)

    def order_escrow(self, spec: JobSpec) -> tuple[Money, Money]:
        """``(per lease, total)``: what an order for ``spec`` escrows on this market.

        The one computation of an order's escrow, so that ``order.create`` locks exactly what a
        quote says: the spec's verification policy decides it (with the network's fees for the
        spec's currency) and how many leases it needs. Raises like ``order.create`` for a policy
        or currency this market does not take."""
        policy = self.preset.verification_policy(spec.verification)
        check_attested_supply(self, spec.verification or self.preset.verification.default, spec.tee)
        fees = self.preset.fees.for_currency(spec.max_price_per_hour.currency)
        per_lease = policy.escrow_per_lease(spec, fees)
        return per_lease, per_lease * policy.leases_needed(spec)

    def overdue_leases(self, now_ms: int) -> list[str]:
        t = self.preset.timing
        return [
            lease.id
            for lease in map(self.leases.__getitem__, self.live.running_leases)
            if lease.status == "running"
            and is_lost(
                lease.beats,
                started_at_ms=lease.started_at,
                now_ms=now_ms,
                interval_s=t.heartbeat_interval_s,
                grace_intervals=t.grace_intervals,
            )
        ]

    def expirable_orders(self, now_ms: int) -> list[str]:
        return [
            o.id
            for o in map(self.orders.__getitem__, self.live.open_orders)
            if o.status == "open" and now_ms >= o.deadline
        ]

    def balances_summary(self) -> dict[str, str]:
        """Every non-zero balance as ``{account: amount}``: what an audit compares."""
        return {
            f"{b.account}/{b.amount.currency}": b.amount.to_json() for b in self.ledger.balances()
        }

    # -- all-or-nothing records -------------------------------------------------------------------
    #
    # A handler changes a record only after it got it from ``_order``/``_lease``/``_provider``
    # (or passed it to ``_changing``), and changes the state's dicts only through ``_put`` and
    # ``_index_blob``: each saves what it is about to change in the transaction's record journal,
    # so that :meth:`apply` can put it back if the handler fails later on.

    def _changing(self, record: _R) -> _R:
        """``record``, saved in the running transaction's undo log before a handler changes it."""
        if self._journal is not None:
            self._journal.save(record)
        return record

    def _changing_key(self, mapping: MutableMapping[Any, Any], key: Hashable) -> None:
        if self._journal is not None:
            self._journal.save_key(mapping, key)

    def _put(self, mapping: MutableMapping[Any, Any], key: Hashable, value: object) -> None:
        """``mapping[key] = value``, undone if the transaction fails."""
        self._changing_key(mapping, key)
        mapping[key] = value

    def _index_blob(self, sha256: str, order_id: str) -> None:
        """Record that ``order_id`` names the blob (who may read it), undone on failure.

        An existing set is not saved whole (:meth:`RecordJournal.adding`): a blob that every
        order of a client names (its common input) is named by thousands of orders."""
        orders = self.blob_orders.get(sha256)
        if orders is None:
            self._put(self.blob_orders, sha256, {order_id})
            return
        if self._journal is not None:
            self._journal.adding(orders, order_id)
        orders.add(order_id)

    def _roll_back(self, journal: RecordJournal) -> None:
        providers = {r.id for r in journal.touched_records() if isinstance(r, ProviderRecord)}
        providers.update(str(k) for k in journal.touched_keys(self.providers))
        journal.rollback()
        self._restored_providers(frozenset(providers))

    def _restored_providers(self, provider_ids: frozenset[str]) -> None:
        """A refused transaction just put these providers' records back as they were (or
        removed one it had registered): the fleet index, derived from them, follows
        (:meth:`_reindex` drops a provider that is no longer registered)."""
        for pid in sorted(provider_ids):
            self._reindex(pid)

    # -- helpers for handlers ----------------------------------------------------------------------

    def _order(self, order_id: object) -> OrderRecord:
        """The order a transaction acts on (404 if none), saved in the undo log."""
        record = self.orders.get(str(order_id))
        if record is None:
            raise not_found("order", order_id)
        return self._changing(record)

    def _lease(self, lease_id: object) -> LeaseRecord:
        """The lease a transaction acts on (404 if none), saved in the undo log."""
        record = self.leases.get(str(lease_id))
        if record is None:
            raise not_found("lease", lease_id)
        return self._changing(record)

    def _provider(self, provider_id: str) -> ProviderRecord:
        """The provider a transaction acts on (403 if not registered), saved in the undo log."""
        record = self.providers.get(provider_id)
        if record is None:
            raise fail(
                "this account is not a registered provider",
                code="not_registered",
                status=403,
                hint="register first (pasar provider start does it)",
            )
        return self._changing(record)

    def _reindex(self, provider_id: str) -> None:
        """Bring the fleet index up to date for one provider whose registration, asks or free
        capacity changed (or that is gone from the state, e.g. after a rollback). The one place
        the index is kept: call it for every provider a change touched."""
        provider = self.providers.get(provider_id)
        if provider is None:
            self.index.update(provider_id, None)
        else:
            free = provider.free() if provider.running else provider.inventory
            self.index.update(provider_id, free, provider.asks)

    def _open_window(self, record: OrderRecord, now_ms: int) -> None:
        fitting = self.fitting_views(record)
        self._changing(record).window = AuctionWindowState(
            opened_at=now_ms,
            deadline=now_ms + self.preset.timing.auction_window_ms,
            invited=frozenset(p.id for p in fitting),
        )

    def _start_lease(
        self,
        record: OrderRecord,
        provider_id: str,
        price: Money,
        ts: int,
        alternative: int | None = None,
    ) -> str:
        """Start one lease of ``record`` on ``provider_id`` at ``price``, fitted to the order's
        ``alternative`` (None: its one request)."""
        provider = self._provider(provider_id)
        self._changing(record)
        allocation = fit(record.order.request_of(alternative), provider.free()).allocation
        if allocation is None:  # the mechanism only awards fitting providers
            raise fail(f"provider {provider_id} no longer fits", code="conflict", status=409)
        lease_id = f"{record.id}-{len(record.leases)}"
        shard = record.free_shards[0]
        self.ledger.escrow_to_lease(record.id, lease_id, record.escrow_for_shard(shard))
        record.free_shards.pop(0)
        record.shard_escrow.pop(shard, None)
        lease = LeaseRecord(
            id=lease_id,
            order_id=record.id,
            provider=provider_id,
            client=record.client,
            shard=shard,
            price_per_hour=price,
            allocation=allocation,
            started_at=ts,
            alternative=alternative,
        )
        self._put(self.leases, lease_id, lease)
        provider.running[lease_id] = allocation
        self._reindex(provider_id)
        record.leases.append(lease_id)
        return lease_id

    def billed_ms_of(self, lease: LeaseRecord, ended_at: int) -> int:
        """The milliseconds of ``lease`` its heartbeats verified, had it ended at ``ended_at``."""
        t = self.preset.timing
        return billable_ms(
            lease.beats,
            started_at_ms=lease.started_at,
            ended_at_ms=ended_at,
            interval_s=t.heartbeat_interval_s,
            max_duration_s=self.orders[lease.order_id].order.max_duration_s,
            uptime_block_s=t.uptime_block_s,
        )

    def work_cost(self, lease: LeaseRecord) -> Money:
        """What a lease's work cost (verified time × its price): settled, what was billed; held
        or running, what would be billed at its end (or now). A check of it earns a share."""
        if lease.charges is not None:
            return lease.charges.billed
        ended = lease.ended_at if lease.ended_at is not None else self.now
        return billed_cost(lease.price_per_hour, self.billed_ms_of(lease, ended))

    def _settle(self, lease: LeaseRecord, ts: int, status: str) -> Charges:
        record = self.orders[lease.order_id]
        billed_ms = self.billed_ms_of(lease, ts)
        settlement = self.ledger.settle(
            lease.id,
            client=lease.client,
            provider=lease.provider,
            billed_ms=billed_ms,
            price_per_hour=lease.price_per_hour,
            fees=record.fees,
        )
        self._changing(lease)
        lease.status = status
        lease.ended_at = ts
        lease.billed_ms = billed_ms
        lease.charges = settlement
        lease.settled_at = self.now
        self._provider(lease.provider).running.pop(lease.id, None)
        self._reindex(lease.provider)
        bid_deposits.after_lease_end(self, lease, ts)
        return settlement

    def _refresh_order(self, record: OrderRecord) -> None:
        if record.status in ("expired", "cancelled"):
            return
        self._changing(record)
        running = any(self.leases[x].status in LIVE_LEASE for x in record.leases)
        if record.unfilled:
            record.status = "open"
        elif running:
            record.status = "running"
        else:
            record.status = "done"


_HANDLERS: dict[str, Callable[[MarketState, Tx], Applied]] = {
    "faucet": on_faucet,
    "provider.register": on_register,
    "stake": on_stake,
    "unstake": on_unstake,
    "unbonded.withdraw": on_withdraw_unbonded,
    "withdraw": on_withdraw,
    "order.create": on_order_create,
    "order.cancel": on_cancel,
    "bid": on_bid,
    "match": on_match,
    "order.expire": on_expire,
    "heartbeat": on_heartbeat,
    "lease.lost": on_lost,
    "liveness.challenge": on_liveness_challenge,
    "liveness.answer": on_liveness_answer,
    "lease.release": on_release,
    "receipt": on_receipt,
    "result.approve": on_approve,
    "result.reject": on_reject,
    "result.auto_approve": on_auto_approve,
    "verifier.register": on_verifier_register,
    "check.draw": on_draw,
    "check.assign": on_check_assign,
    "check.verdict": on_check_verdict,
    "check.expire": on_check_expire,
    "challenge.open": on_challenge_open,
    "dispute.open": on_dispute_open,
    "dispute.answer": on_dispute_answer,
    "dispute.expire": on_dispute_expire,
    "dispute.rule": on_dispute_rule,
    "dispute.trace": on_dispute_trace,
    "capacity.challenge": on_challenge,
    "capacity.answer": on_answer,
    "capacity.verdict": on_verdict,
    "lease.accept": on_lease_accept,
    "key.seal": on_key_seal,
    "tee.attest": on_tee_attest,
    "cluster.exec": on_cluster_exec,
}

TX_TYPES: tuple[str, ...] = tuple(_HANDLERS)
