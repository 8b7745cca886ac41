"""The handlers of the transactions that create, bid on, match, expire and cancel an order.

Split from :mod:`pasar.core.state` as :mod:`pasar.core.lease_handlers` is: each handler checks a
transaction against the state and changes it through the state's journaled getters
(``_order``, ``_changing``, ``_put``), so :meth:`MarketState.apply` stays all-or-nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pasar.core import bid_deposits
from pasar.core.market_records import LIVE_LEASE, Applied, OrderRecord, Tx, fail
from pasar.core.money import Money
from pasar.core.order_checks import order_mechanism
from pasar.core.orders import Order
from pasar.core.private_part import private_fields_in
from pasar.core.spec import JobSpec
from pasar.core.timelock import MS
from pasar.core.tx_parsing import parse_amount
from pasar.crypto.hashing import is_sha256_hex

if TYPE_CHECKING:
    from pasar.core.state import MarketState

DEFAULT_ORDER_TTL_S = 600
MAX_ORDER_TTL_S = 7 * 24 * 3600


def on_order_create(state: MarketState, tx: Tx) -> Applied:
    """A client's signed order: its public requirements and a commitment to its private part
    (:mod:`pasar.core.private_part`). The chain never carries a command, an environment or an
    input name, so a spec that does is refused rather than logged."""
    public = tx.body.get("spec")
    leaked = private_fields_in(public) if isinstance(public, dict) else []
    if leaked:
        raise fail(
            f"spec.{leaked[0]} is private and would be public on the chain",
            code="private_on_chain",
            field=f"spec.{leaked[0]}",
            hint="send the command, setup, envs, inputs, outputs and compare in the private "
            "part, committed to by 'private' (the SDK and the CLI do)",
        )
    private = tx.body.get("private")
    if not is_sha256_hex(private):
        raise fail(
            "private must be the sha256 (64 lower-case hex digits) of the job's private part",
            code="invalid_tx",
            field="private",
            hint="upload the private part as a blob and name it here (the SDK and CLI do)",
        )
    tolerant = tx.body.get("tolerant", False)
    if not isinstance(tolerant, bool):
        raise fail("tolerant must be true or false", code="invalid_tx", field="tolerant")
    spec = JobSpec.from_public(public, source="body.spec")
    blobs = _sealed_blobs(tx.body.get("blobs", []), sealed=spec.privacy == "sealed")
    ttl = tx.body.get("ttl_s", DEFAULT_ORDER_TTL_S)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_ORDER_TTL_S:
        raise fail(f"ttl_s must be 1..{MAX_ORDER_TTL_S} seconds", code="invalid_ttl", field="ttl_s")
    mechanism = order_mechanism(state.preset, spec)
    verification = spec.verification or state.preset.verification.default
    policy = state.preset.verification_policy(verification)
    fees = state.preset.fees.for_currency(spec.max_price_per_hour.currency)
    order_id = "o-" + tx.digest[:16]
    if order_id in state.orders:
        raise fail("this order already exists", code="conflict", status=409)
    per_lease, escrow = state.order_escrow(spec)
    state.ledger.escrow_order(tx.signer, order_id, escrow)
    order = Order.from_spec(spec, id=order_id, client=tx.signer, created_at=tx.at)
    record = OrderRecord(
        id=order_id,
        client=tx.signer,
        spec=spec,
        order=order,
        mechanism=mechanism.name,
        fees=fees,
        escrow_per_lease=per_lease,
        created_at=tx.at,
        deadline=tx.at + ttl * MS,
        free_shards=list(range(policy.leases_needed(spec))),
        verification=verification,
        private=str(private),
        tolerant=tolerant,
    )
    state._put(state.orders, order_id, record)
    state._index_blob(str(private), order_id)
    for sha in blobs:  # a sealed job's input ciphertexts: its parties may read them
        state._index_blob(sha, order_id)
    if mechanism.opens_window:
        state._open_window(record, tx.at)
    # an auction invites the providers that fit. An order of a mechanism that takes no bids
    # (book, performance, tender, stake) is news for no provider: the market matches it, and
    # only the providers it picks hear of it (the match). Telling the whole fleet woke every
    # provider's feed for each order (on a devnet, two idle agents and their two requests per
    # call, beside the call itself). A mechanism taking bids without a window would tell every
    # provider, with one flag rather than a set of the whole fleet (40,000 ids per order).
    invited = record.window.invited if record.window else frozenset()
    return Applied(
        tx.type,
        {
            "order_id": order_id,
            "escrow": escrow.to_json(),
            "mechanism": mechanism.name,
            "takes_bids": mechanism.takes_bids,
        },
        providers=set(invited),
        all_providers=mechanism.takes_bids and record.window is None,
        orders={order_id},
    )


#: Inputs one sealed order may name (each is a blob; a job with more files archives them).
MAX_SEALED_BLOBS = 10_000


def _sealed_blobs(data: object, *, sealed: bool) -> list[str]:
    """A sealed order's ``blobs``: the sha256 of each encrypted input. The market cannot read
    a sealed private part, so the order names them itself (ciphertext hashes tell nothing);
    any other order's inputs are named in its private part, never on the chain."""
    if not isinstance(data, list) or not all(is_sha256_hex(x) for x in data):
        raise fail("blobs must be a list of sha256 (64 lower-case hex digits)",
                   code="invalid_tx", field="blobs")  # fmt: skip
    if data and not sealed:
        raise fail(
            "only a sealed job names its blobs on the chain",
            code="private_on_chain",
            field="blobs",
            hint="list inputs in the private part (the SDK and CLI do)",
        )
    if len(data) > MAX_SEALED_BLOBS:
        raise fail(f"a sealed order names at most {MAX_SEALED_BLOBS} blobs", code="invalid_tx",
                   field="blobs")  # fmt: skip
    return [str(x) for x in data]


def on_bid(state: MarketState, tx: Tx) -> Applied:
    record = state._order(tx.body.get("order_id"))
    window = record.window
    if not state.mechanism_of(record).takes_bids or window is None or record.status != "open":
        raise fail("this order is not taking bids", code="not_open", status=409)
    if tx.signer not in window.invited:
        raise fail(
            "this provider was not invited to bid (it did not fit when the window opened)",
            code="not_invited",
            status=403,
        )
    if tx.signer in window.bids:
        raise fail("already bid in this window", code="duplicate_bid", status=409)
    if tx.at >= window.deadline:
        raise fail("the auction window has closed", code="auction_closed", status=409)
    price_raw = tx.body.get("price")
    price = None if price_raw is None else parse_amount(price_raw, "price", record.order.currency)
    deposit = bid_deposits.lock(state, record, tx.signer)
    window.bids[tx.signer] = price
    result: dict[str, object] = {"order_id": record.id, "declined": price is None}
    if deposit is not None:
        result["deposit"] = deposit.to_json()
    return Applied(tx.type, result, orders={record.id})


def on_match(state: MarketState, tx: Tx) -> Applied:
    record = state._order(tx.body.get("order_id"))
    seed = tx.body.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise fail("match needs an integer seed", code="invalid_tx", field="seed")
    if record.status != "open":
        raise fail(f"order {record.id} is {record.status}", code="not_open", status=409)
    if record.window is not None and not record.window.ready(tx.at):
        raise fail("the auction window is still open", code="window_open", status=409)
    offline = tx.body.get("offline", [])
    if not isinstance(offline, list) or not all(isinstance(p, str) for p in offline):
        raise fail("offline must be a list of provider ids", code="invalid_tx", field="offline")
    bidders = list(record.window.bids) if record.window is not None else []
    result = state.clear(record, seed, frozenset(offline))
    record.reasons = dict(result.reasons)
    record.note = result.note
    started: list[str] = []
    for award in result.awards:
        for _ in range(award.leases):
            if record.unfilled == 0:
                break
            started.append(
                state._start_lease(
                    record, award.provider, award.price_per_hour, tx.at, award.alternative
                )
            )
    if record.unfilled and state.mechanism_of(record).opens_window:
        state._open_window(record, tx.at)
    state._refresh_order(record)
    bid_deposits.after_match(state, record, bidders)
    providers = {state.leases[x].provider for x in started}
    if record.window is not None:
        providers |= set(record.window.invited)
    # each lease's provider, so an agent runs its own without reading the others (it may not);
    # whether a window reopened for what is left, so an agent that won a lease reads the
    # order for a bid only then (not once per call, beside its lease's own first reads)
    assigned = {x: state.leases[x].provider for x in started}
    reopened = record.window is not None
    return Applied(
        tx.type,
        {"order_id": record.id, "leases": started, "assigned": assigned, "takes_bids": reopened},
        providers=providers,
        orders={record.id},
    )


def on_expire(state: MarketState, tx: Tx) -> Applied:
    record = state._order(tx.body.get("order_id"))
    if record.status != "open":
        raise fail(f"order {record.id} is {record.status}", code="not_open", status=409)
    if tx.at < record.deadline:
        raise fail("the order has not reached its deadline", code="too_early", status=409)
    refund = record.unfilled_escrow()
    if refund:
        state.ledger.refund_order(record.id, record.client, refund)
    bidders = list(record.window.bids) if record.window is not None else []
    record.free_shards.clear()
    record.window = None
    bid_deposits.after_order_closed(state, record, bidders)
    running = any(state.leases[x].status in LIVE_LEASE for x in record.leases)
    record.status = "running" if running else ("expired" if not record.leases else "done")
    if not record.leases:
        record.note = record.note or "expired unmatched"
    return Applied(tx.type, {"order_id": record.id, "refund": refund.to_json()}, orders={record.id})


def close_order(state: MarketState, record: OrderRecord, ts: int) -> tuple[Money, set[str]]:
    """End ``record`` now (a cancel, or a job a policy ends): running leases are billed for
    their verified seconds, the unfilled shards' escrow goes back to the client, and the order
    is ``cancelled``. Held leases stay held until judged. Returns what was billed and the
    providers whose leases ended."""
    providers: set[str] = set()
    billed = Money.zero(record.order.currency)
    for lease_id in record.leases:
        lease = state.leases[lease_id]
        if lease.status == "running":
            charges = state._settle(state._lease(lease_id), ts, "cancelled")
            billed += charges.billed
            providers.add(lease.provider)
    refund = record.unfilled_escrow()
    if refund:
        state.ledger.refund_order(record.id, record.client, refund)
    bidders = list(record.window.bids) if record.window is not None else []
    record.free_shards.clear()
    record.window = None
    bid_deposits.after_order_closed(state, record, bidders)
    record.status = "cancelled"
    return billed, providers


def on_cancel(state: MarketState, tx: Tx) -> Applied:
    record = state._order(tx.body.get("order_id"))
    if tx.signer != record.client:
        raise fail("only the order's client may cancel it", code="wrong_signer", status=403)
    if record.status in ("done", "expired", "cancelled"):
        raise fail(f"order {record.id} is already {record.status}", code="not_open", status=409)
    billed, providers = close_order(state, record, tx.at)
    return Applied(
        tx.type,
        {"order_id": record.id, "billed": billed.to_json()},
        providers=providers,
        orders={record.id},
    )
