"""Bid deposits (Akash): a bid holds a deposit for its auction, returned or slashed after.

Why: on Akash a provider posts a refundable deposit with each bid, so that bidding is not
free (a provider cannot flood auctions it has no intention to serve) and a winner that walks
away from its lease loses something. A preset turns it on with ``bid_deposit = "0.5 USDC"``;
without one, every function here does nothing.

The rules, each in one function the handlers call:

* a bid — a price or a decline — locks the deposit from the bidder's spendable account into
  ``bid_deposit:<order>/<bidder>`` (:func:`lock`); a bidder that cannot pay is refused (409,
  nothing moved). A bidder that still holds a deposit on the order (it won a lease that is
  still running, and bids again in a re-opened window) is not charged twice.
* when the window clears (``match``), losers and decliners get theirs back; winners keep it
  while their lease lives (:func:`after_match`).
* when a winner's lease ends honestly (settled, released, failed, cancelled, or its result
  rejected by verification: the stake answers for fraud, the deposit for showing up) it is
  returned; when the lease is *lost* (the provider vanished) it is slashed — the preset's
  ``slash_reward_rate`` of it to the order's client (who lost the time), the rest burned
  (:func:`after_lease_end`).
* an expired or cancelled order returns every deposit not backing a running lease
  (:func:`after_order_closed`); those come back when their lease ends.

Invariant: a deposit is held on an order only by a bidder in its open window or a provider
with a live lease on it. That is what lets these functions find every deposit of an order
without an index of their own.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import TYPE_CHECKING

from pasar.core.accounts import LedgerAccount, LedgerError
from pasar.core.market_records import LIVE_LEASE, LeaseRecord, OrderRecord, fail
from pasar.core.money import Money
from pasar.core.slash_log import record_slash

if TYPE_CHECKING:
    from pasar.core.state import MarketState


def held(state: MarketState, order_id: str, bidder: str) -> list[Money]:
    """What ``bidder`` holds as a deposit on ``order_id`` (empty: nothing)."""
    return state.ledger.holdings(LedgerAccount.bid_deposit(order_id, bidder))


def held_by(state: MarketState, provider: str) -> list[tuple[str, Money]]:
    """``(order id, amount)`` of every deposit ``provider`` holds. Only orders still open or
    running can hold one (the invariant above), so this looks at those, not the whole ledger."""
    found: list[tuple[str, Money]] = []
    for record in state.orders.values():
        if record.status in ("open", "running"):
            found += [(record.id, m) for m in held(state, record.id, provider)]
    return found


def lock(state: MarketState, record: OrderRecord, bidder: str) -> Money | None:
    """Lock the preset's deposit for a bid; the amount locked (None: none needed or already
    held). Raises a 409 ``bid_deposit_unpaid`` when the bidder cannot pay."""
    deposit = state.preset.bid_deposit
    if deposit is None or not deposit.micros or held(state, record.id, bidder):
        return None
    try:
        state.ledger.lock_bid_deposit(bidder, record.id, deposit)
    except LedgerError as exc:
        if exc.code != "overdraft":
            raise
        has = state.ledger.balance(LedgerAccount.client(bidder), deposit.currency)
        raise fail(
            f"a bid on this market holds a deposit of {deposit} until the auction clears, "
            f"and this account has {has} to spend",
            code="bid_deposit_unpaid",
            status=409,
            field="price",
            hint="fund the provider's account: withdraw earnings, or (devnet) the faucet",
        ) from None
    return deposit


def _bidding(record: OrderRecord) -> Container[str]:
    """The bidders of the order's open window (a window left on a filled order is over)."""
    window = record.window
    return window.bids if window is not None and record.status == "open" else ()


def _busy(state: MarketState, record: OrderRecord, provider: str) -> bool:
    return any(
        state.leases[x].provider == provider and state.leases[x].status in LIVE_LEASE
        for x in record.leases
    )


def _release(
    state: MarketState,
    record: OrderRecord,
    providers: Iterable[str],
    bidding: Container[str] = (),
) -> None:
    """Return the deposits of ``providers`` that back neither a bid in the open window
    (``bidding``) nor a live lease on the order."""
    for provider in sorted(set(providers)):
        if provider in bidding or not held(state, record.id, provider):
            continue
        if not _busy(state, record, provider):
            state.ledger.return_bid_deposit(provider, record.id)


def after_match(state: MarketState, record: OrderRecord, bidders: Iterable[str]) -> None:
    """The window whose bids were ``bidders`` cleared: losers and decliners get theirs back
    (a re-opened window has no bids yet, so it keeps nobody's)."""
    _release(state, record, bidders, _bidding(record))


def after_lease_end(state: MarketState, lease: LeaseRecord, at: int) -> None:
    """``lease`` just ended (its status says how): slash its provider's deposit if it was
    lost, else return it unless it still backs a bid or another lease."""
    record = state.orders[lease.order_id]
    provider = lease.provider
    if lease.status != "lost":
        _release(state, record, [provider], _bidding(record))
        return
    slash = state.ledger.forfeit_bid_deposit(
        provider,
        record.id,
        reward_to=record.client,
        reward_rate=state.preset.verification.slash_reward_rate,
    )
    if slash is not None:
        record_slash(
            state, slash, at=at, reason=f"lost lease {lease.id}: bid deposit of {record.id}"
        )


def after_order_closed(state: MarketState, record: OrderRecord, bidders: Iterable[str]) -> None:
    """An order expired or was cancelled (its window, whose bids were ``bidders``, is gone):
    every deposit not backing a live lease goes back."""
    providers = {*bidders, *(state.leases[x].provider for x in record.leases)}
    _release(state, record, providers)
