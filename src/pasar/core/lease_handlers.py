"""What happens to a running lease: heartbeats, a release, a loss, a receipt (or a failure).

The handlers of :class:`~pasar.core.state.MarketState` for the transactions that end or
prove the time of a lease, kept apart from the order and account handlers so that each module
holds one part of the state machine. Like every handler, each checks all it can before it
changes anything; the ledger's journal undoes money moved by one that fails half-way, and the
state's record journal the records it changed, provided it reaches them through the state's
getters (``_lease``, ``_order``, ``_provider``) and helpers (``_put``, ``_index_blob``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pasar.core import bid_deposits
from pasar.core.fees import Charges
from pasar.core.liveness_handlers import missed_probe
from pasar.core.market_records import Applied, LeaseRecord, OrderRecord, Tx, fail
from pasar.core.money import Money
from pasar.core.order_handlers import close_order
from pasar.core.receipts import CHECKED_FAILURES, Failure, parse_failure
from pasar.core.reputation import Event
from pasar.core.slash_log import record_slash
from pasar.core.timelock import challenge_message, heartbeat_accepted, is_lost
from pasar.core.tx_parsing import output_parts
from pasar.core.verify.base import Hold, Outcome, ReceiptFacts
from pasar.crypto.hashing import is_sha256_hex

if TYPE_CHECKING:
    from pasar.core.state import MarketState


def _running_lease(state: MarketState, tx: Tx, *, provider_may: str | None) -> LeaseRecord:
    """The running lease ``tx`` is about; when ``provider_may`` names the action, only the
    lease's provider may take it (403), and a lease already over is 409 ``not_running``."""
    lease = state._lease(tx.body.get("lease_id"))
    if provider_may is not None and tx.signer != lease.provider:
        raise fail(f"only the lease's provider may {provider_may}", code="wrong_signer", status=403)
    if lease.status != "running":
        raise fail(f"lease {lease.id} is {lease.status}", code="not_running", status=409)
    return lease


def on_heartbeat(state: MarketState, tx: Tx) -> Applied:
    lease = _running_lease(state, tx, provider_may="send its heartbeats")
    interval = tx.body.get("interval")
    challenge = tx.body.get("challenge")
    if isinstance(interval, bool) or not isinstance(interval, int):
        raise fail("interval must be an integer", code="invalid_heartbeat", field="interval")
    if not isinstance(challenge, str):
        raise fail(
            "challenge must be the market's signature (hex)",
            code="invalid_heartbeat",
            field="challenge",
        )
    try:
        signature = bytes.fromhex(challenge)
    except ValueError:
        raise fail("challenge is not hex", code="invalid_heartbeat", field="challenge") from None
    if not state._verify_market(challenge_message(lease.id, interval), signature):
        raise fail(
            "the challenge is not the market's for this lease and interval",
            code="bad_challenge",
            status=401,
            field="challenge",
        )
    interval_s = state.preset.timing.heartbeat_interval_s
    if not heartbeat_accepted(lease.started_at, tx.at, interval_s, interval):
        raise fail(
            f"heartbeat for interval {interval} arrived outside its interval",
            code="late_heartbeat",
            status=409,
            field="interval",
        )
    if interval in lease.beats:
        raise fail(
            f"interval {interval} was already answered", code="duplicate_heartbeat", status=409
        )
    lease.beats.add(interval)
    return Applied(
        tx.type,
        {
            "lease_id": lease.id,
            "interval": interval,
            "verified_seconds": len(lease.beats) * interval_s,
        },
    )


def _requeue(
    state: MarketState, record: OrderRecord, lease: LeaseRecord, remaining: Money, ts: int
) -> bool:
    """Put a lease's shard back on its order with what is left of its escrow (no job is lost
    while escrow remains); False when the order is over and ``remaining`` was refunded."""
    if record.status not in ("open", "running") or not remaining:
        state._refresh_order(record)
        return False
    state.ledger.escrow_order(record.client, record.id, remaining)
    lease.rerun_escrow = remaining
    record.free_shards.append(lease.shard)
    record.free_shards.sort()
    record.shard_escrow[lease.shard] = remaining
    if state.mechanism_of(record).opens_window:
        state._open_window(record, ts)
    state._refresh_order(record)
    return True


def on_release(state: MarketState, tx: Tx) -> Applied:
    """A provider hands a running lease back (it is shutting down): it is paid for the seconds
    its heartbeats verified, keeps its reputation, and the shard is re-queued on what is left."""
    lease = _running_lease(state, tx, provider_may="release it")
    record = state._order(lease.order_id)
    charges = state._settle(lease, tx.at, "released")
    if _gang_fails(record):  # a node handed back is a node lost, for the gang
        stopped = _end_gang(state, record, tx.at)
        record.note = (
            f"node {lease.shard} released by its provider; the job ends (on_node_loss: fail)"
        )
        return Applied(
            tx.type,
            {"lease_id": lease.id, "billed": charges.billed.to_json(), "requeued": False,
             "stop": stopped},
            providers={lease.provider, *(state.leases[x].provider for x in stopped)},
            orders={record.id},
        )  # fmt: skip
    requeued = _requeue(state, record, lease, charges.refund, tx.at)
    return Applied(
        tx.type,
        {"lease_id": lease.id, "billed": charges.billed.to_json(), "requeued": requeued},
        providers={lease.provider},
        orders={record.id},
    )


def on_lost(state: MarketState, tx: Tx) -> Applied:
    """The market's decision that a running lease's provider is gone. Either its provider
    missed a liveness challenge (``challenge_id``: see :mod:`pasar.core.liveness_handlers`),
    and the lease is paid for the time its heartbeats verified up to the challenge; or it
    missed ``grace_intervals`` heartbeat intervals, and it is paid nothing."""
    lease = _running_lease(state, tx, provider_may=None)  # the market's decision
    record = state._order(lease.order_id)
    if tx.body.get("challenge_id") is not None:
        probe = missed_probe(state, lease, tx.body.get("challenge_id"), tx.at)
        # verified time only, and never past the moment the market became suspicious
        settlement = state._settle(lease, max(probe.at, lease.started_at), "lost")
        why = f"provider missed a liveness challenge ({probe.reason})"
    else:
        t = state.preset.timing
        if not is_lost(
            lease.beats,
            started_at_ms=lease.started_at,
            now_ms=tx.at,
            interval_s=t.heartbeat_interval_s,
            grace_intervals=t.grace_intervals,
        ):
            raise fail("the lease has not missed its grace intervals", code="too_early",
                       status=409)  # fmt: skip
        # The provider is paid nothing: the whole lease escrow goes back, and stays with the
        # order (re-queued) unless the order is over.
        settlement = _settle_unpaid(state, record, lease, "lost", tx.at)
        why = f"no heartbeat for {t.grace_intervals} intervals"
    provider = state._provider(lease.provider)
    provider.reputation = provider.reputation.apply(Event.LOST, state.preset.reputation)
    # A provider that vanished gets no new work until it shows up again (registers): without
    # this, the cheapest dead provider would win every re-queued job and lose it again.
    provider.available = False
    state._reindex(provider.id)
    lease.note = f"lost: {why}"
    if _gang_fails(record):
        stopped = _end_gang(state, record, tx.at)
        record.note = f"node {lease.shard} lost: {why}; the job ends (on_node_loss: fail)"
        return Applied(
            tx.type,
            {"lease_id": lease.id, "requeued": False, "reason": lease.note, "stop": stopped},
            providers={lease.provider, *(state.leases[x].provider for x in stopped)},
            orders={record.id},
        )
    requeued = _requeue(state, record, lease, settlement.refund, tx.at)
    after = "re-queued" if requeued else "not re-queued"
    record.note = f"shard {lease.shard} lost: {why} ({after})"
    return Applied(
        tx.type,
        {"lease_id": lease.id, "requeued": requeued, "reason": lease.note},
        providers={lease.provider},
        orders={record.id},
    )


def _gang_fails(record: OrderRecord) -> bool:
    """A multi-node job that ends when it loses a node (``on_node_loss: fail``, the default)."""
    return record.order.together and record.spec.on_node_loss != "replace"


def _end_gang(state: MarketState, record: OrderRecord, ts: int) -> list[str]:
    """A gang lost a node and ends: its other running leases are billed for their verified
    seconds (as a cancel), the unfilled escrow goes back, and the order is done. Returns the
    leases stopped, whose providers are told (``stop`` on the event)."""
    running = [x for x in record.leases if state.leases[x].status == "running"]
    close_order(state, record, ts)
    record.status = "done"  # not cancelled: nobody cancelled it; the note says what happened
    return running


def _settle_unpaid(
    state: MarketState, record: OrderRecord, lease: LeaseRecord, status: str, ts: int
) -> Charges:
    """End ``lease`` paying its provider nothing: its whole escrow goes back to the order."""
    settlement = state.ledger.settle(
        lease.id,
        client=lease.client,
        provider=lease.provider,
        billed_ms=0,
        price_per_hour=lease.price_per_hour,
        fees=record.fees,
    )
    lease.status = status
    lease.ended_at = ts
    lease.charges = settlement
    state._provider(lease.provider).running.pop(lease.id, None)
    state._reindex(lease.provider)
    bid_deposits.after_lease_end(state, lease, ts)
    return settlement


def signed_outputs(body: Mapping[str, Any], *, code: str) -> tuple[list[Mapping[str, Any]], str]:
    """The ``outputs`` of a receipt or a verdict, and their Merkle root, once checked: a list
    of ``{path, sha256, size, parts?}`` whose root is the signed ``root`` (422 ``bad_root``)."""
    outputs = body.get("outputs", [])
    if not isinstance(outputs, list) or not all(
        isinstance(o, Mapping)
        and isinstance(o.get("path"), str)
        and isinstance(o.get("sha256"), str)
        and output_parts(o) is not None
        for o in outputs
    ):
        raise fail("outputs must be a list of {path, sha256, size, parts?}", code=code,
                   field="outputs")  # fmt: skip
    return outputs, _signed_root(body, outputs, "root", "sha256", "the outputs")


def _signed_root(
    body: Mapping[str, Any], outputs: list[Mapping[str, Any]], field: str, hash_key: str, what: str
) -> str:
    """``body[field]``, once checked to be the Merkle root of ``outputs`` by ``hash_key``."""
    from pasar.crypto.merkle import root_of_files  # pure hashing; kept local to the users

    root = root_of_files((o["path"], o[hash_key]) for o in outputs)
    if body.get(field) != root:
        raise fail(f"{field} is not the Merkle root of {what}", code="bad_root", status=422,
                   field=field)  # fmt: skip
    return root


def check_plain_root(body: Mapping[str, Any], outputs: list[Mapping[str, Any]]) -> None:
    """A sealed job's receipt names each output's ciphertext (``sha256``: what the market
    stores, what ``root`` commits to) and its plaintext (``plain_sha256``), and commits to the
    plaintexts in ``plain_root``: what the client checks after decrypting, and what a
    verifier's re-run is compared with (two encryptions of one file never match)."""
    if not all(is_sha256_hex(o.get("plain_sha256")) for o in outputs):
        raise fail("each output of a sealed job names its plain_sha256", code="invalid_receipt",
                   field="outputs")  # fmt: skip
    _signed_root(body, outputs, "plain_root", "plain_sha256", "the outputs' plaintexts")


def compared_root(receipt: Mapping[str, Any]) -> object:
    """The root a verifier's re-run is compared with: the plaintexts' for a sealed job."""
    return receipt.get("plain_root", receipt.get("root"))


def on_receipt(state: MarketState, tx: Tx) -> Applied:
    """A lease's provider reports its result (or its failure). The order's verification
    policy decides what happens: settle now (``receipt``), or hold the lease's escrow while
    the result is checked (:func:`_hold`)."""
    lease = _running_lease(state, tx, provider_may="send its receipt")
    exit_code = tx.body.get("exit_code")
    if isinstance(exit_code, bool) or not isinstance(exit_code, int):
        raise fail("exit_code must be an integer", code="invalid_receipt", field="exit_code")
    outputs, root = signed_outputs(tx.body, code="invalid_receipt")
    failure = parse_failure(tx.body.get("failure"))
    checked = failure is not None and failure.reason in CHECKED_FAILURES
    if failure is not None and outputs and not checked:
        raise fail(
            "a failure receipt carries no outputs (a failed lease has no result)",
            code="invalid_receipt",
            field="outputs",
        )
    record = state._order(lease.order_id)
    if record.spec.privacy == "sealed" and (failure is None or checked):
        check_plain_root(tx.body, outputs)
    elif "plain_root" in tx.body:
        raise fail("plain_root is for a sealed job's receipt", code="invalid_receipt",
                   field="plain_root")  # fmt: skip
    policy = state.preset.verification_policy(record.verification)
    facts = ReceiptFacts(
        lease_id=lease.id,
        order_id=record.id,
        provider=lease.provider,
        shard=lease.shard,
        root=root,
        failed=failure is not None,
        checkable=checked,
        at=tx.at,
    )
    decision = policy.on_receipt(facts)
    for output in outputs:
        for sha in (output["sha256"], *(output_parts(output) or ())):
            state._index_blob(sha, lease.order_id)
    if isinstance(decision, Hold):
        lease.receipt_digest = tx.digest  # what the market's replication draw signs
        return _stop_gang(state, record, lease, _hold(state, record, lease, decision, tx))
    charges = state._settle(lease, tx.at, "settled" if failure is None else "failed")
    lease.receipt = dict(tx.body)
    provider = state._provider(lease.provider)
    requeued = False
    if failure is not None and failure.fault == "provider":
        provider.reputation = provider.reputation.apply(Event.FAILED, state.preset.reputation)
        requeued = _requeue(state, record, lease, charges.refund, tx.at)
    else:  # a job's own fault costs its provider nothing: it served the lease as asked
        provider.reputation = provider.reputation.apply(Event.COMPLETED, state.preset.reputation)
        state._refresh_order(record)
    if failure is not None:
        record.note = _failure_note(lease, failure, requeued=requeued)
    applied = Applied(
        tx.type,
        {
            "lease_id": lease.id,
            "billed_seconds": lease.billed_seconds,
            "billed_ms": lease.billed_ms,
            "billed": charges.billed.to_json(),
            "payout": charges.provider_payout.to_json(),
            "refund": charges.refund.to_json(),
            "requeued": requeued,
        },
        providers={lease.provider},
        orders={record.id},
    )
    return _stop_gang(state, record, lease, applied)


def _stop_gang(
    state: MarketState, record: OrderRecord, lease: LeaseRecord, applied: Applied
) -> Applied:
    """A multi-node job ends when its head's ``run`` ends (SkyPilot's rule): the head's
    receipt names the gang's other running leases in ``stop``, and their providers hear of it
    on their feeds; each stops its node's job and sends its own receipt, so each node is paid
    for its own verified time (``kill_reason: gang``). Nothing else changes here."""
    if not record.order.together or lease.shard != 0:
        return applied
    others = [
        state.leases[x]
        for x in record.leases
        if x != lease.id and state.leases[x].status == "running"
    ]
    if not others:
        return applied
    return Applied(
        applied.type,
        {**applied.result, "stop": [x.id for x in others]},
        providers={*applied.providers, *(x.provider for x in others)},
        all_providers=applied.all_providers,
        orders=applied.orders,
    )


def _failure_note(lease: LeaseRecord, failure: Failure, *, requeued: bool) -> str:
    """The order's note after a failure receipt, so ``status`` and ``explain`` say why."""
    after = "re-queued" if requeued else "not re-queued"
    return f"shard {lease.shard} failed: {failure.summary()} ({after})"


def _hold(
    state: MarketState, record: OrderRecord, lease: LeaseRecord, hold: Hold, tx: Tx
) -> Applied:
    """The policy checks the result before anyone is paid: the lease ends (its time stops at
    the receipt, its capacity is freed) but its escrow stays in the lease until a verdict's
    :class:`~pasar.core.verify.base.Outcome` is carried out (:func:`carry_out`)."""
    lease.status = "held"
    lease.held_until = hold.until_ms
    lease.ended_at = tx.at
    lease.receipt = dict(tx.body)
    state._provider(lease.provider).running.pop(lease.id, None)
    state._reindex(lease.provider)
    record.note = f"shard {lease.shard} held for checking: {hold.reason}"
    state._refresh_order(record)
    return Applied(
        tx.type,
        {"lease_id": lease.id, "held": hold.reason, "until_ms": hold.until_ms},
        providers={lease.provider},
        orders={record.id},
    )


def _held_lease(state: MarketState, lease_id: str) -> LeaseRecord:
    lease = state._lease(lease_id)
    if lease.status != "held":
        raise fail(f"lease {lease.id} is {lease.status}, not held", code="not_held", status=409)
    return lease


def carry_out(state: MarketState, outcome: Outcome) -> dict[str, Charges]:
    """Execute a verdict's outcome through the ledger (inside a transaction's :meth:`apply`,
    so a refusal half-way undoes all of it): held leases in ``pay`` are settled for their
    verified time up to their receipt, those in ``refund`` are paid nothing and their shard is
    re-queued on the escrow, and each slash takes stake, rewarding whoever proved the fraud at
    the preset's ``slash_reward_rate``. Returns each lease's charges."""
    charges: dict[str, Charges] = {}
    weights = state.preset.reputation
    for lease_id in outcome.pay:
        lease = _held_lease(state, lease_id)
        assert lease.ended_at is not None  # held leases ended at their receipt
        # a checked failure (missing_outputs) upheld: paid, but the shard has no result
        ended = "failed" if (lease.receipt or {}).get("failure") else "settled"
        charges[lease.id] = state._settle(lease, lease.ended_at, ended)
        provider = state._provider(lease.provider)
        provider.reputation = provider.reputation.apply(Event.COMPLETED, weights)
        state._refresh_order(state._order(lease.order_id))
    for lease_id in outcome.refund:
        lease = _held_lease(state, lease_id)
        assert lease.ended_at is not None
        record = state._order(lease.order_id)
        settlement = _settle_unpaid(state, record, lease, "rejected", lease.ended_at)
        charges[lease.id] = settlement
        provider = state._provider(lease.provider)
        provider.reputation = provider.reputation.apply(Event.FAILED, weights)
        _requeue(state, record, lease, settlement.refund, lease.ended_at)
    rate = state.preset.verification.slash_reward_rate
    for slash in outcome.slash:
        done = state.ledger.slash(
            slash.provider, slash.amount, reward_to=slash.reward_to, reward_rate=rate
        )
        record_slash(state, done, at=state.now, reason=f"fraud proven by {slash.reward_to}")
    return charges
