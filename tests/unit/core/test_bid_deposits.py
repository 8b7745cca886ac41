"""Akash bid deposits (core/bid_deposits.py): a bid locks the deposit, losers and decliners get
it back when the window clears, the winner when its lease ends honestly, a lost lease slashes
it; a bidder that cannot pay is refused with nothing moved; expiry and cancel return all.
Conservation is checked after each step."""

from __future__ import annotations

from typing import Any

import pytest
from test_state import ALICE, P1, P2, P3, SPEC, T0, _empty_root, make_state, market
from test_state import send as _send

from pasar.core.accounts import BURN, LedgerAccount
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.private_part import order_fields
from pasar.core.state import MarketState

DEPOSIT = Money.parse("0.5 USDC")
FUNDS = Money.parse("2 USDC")


def conserved(s: MarketState) -> None:
    """Money is neither made nor lost: circulating = minted - burned, and the books balance
    (test_state's helper predates burning)."""
    ledger = s.ledger
    assert ledger.circulating("USDC") == ledger.minted("USDC") - ledger.burned("USDC")
    assert sum(b.amount.micros for b in ledger.balances()) == 0


def send(s: MarketState, signer: str, ts: int, **body: Any) -> dict[str, Any]:
    result = _send(s, signer, ts, **body)
    conserved(s)
    return result


def spendable(s: MarketState, who: str) -> Money:
    return s.ledger.balance(LedgerAccount.client(who), "USDC")


def deposit(s: MarketState, order_id: str, who: str) -> Money:
    return s.ledger.balance(LedgerAccount.bid_deposit(order_id, who), "USDC")


def auction(*, fund: tuple[str, ...] = (P1, P2, P3)) -> tuple[MarketState, str]:
    s = make_state("akash")
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    for p in (P1, P2, P3):
        send(
            s,
            p,
            T0,
            type="provider.register",
            inventory={"gpus": [], "cpus": 8, "memory_gb": 32, "disk_gb": 100},
            asks={"cpu_core": "0.10"},
            score=100,
        )
        if p in fund:
            s.ledger.mint(p, FUNDS)
    order_id = send(s, ALICE, T0, type="order.create", **order_fields(SPEC))["order_id"]
    return s, order_id


def bid_all(s: MarketState, order_id: str) -> str:
    """P1 bids high, P2 low (the winner), P3 declines; the window clears. The lease id."""
    assert send(s, P1, T0 + 10, type="bid", order_id=order_id, price="0.90")["deposit"] == (
        "0.50 USDC"
    )
    send(s, P2, T0 + 20, type="bid", order_id=order_id, price="0.40")
    send(s, P3, T0 + 30, type="bid", order_id=order_id, price=None)  # a decline holds one too
    for p in (P1, P2, P3):
        assert deposit(s, order_id, p) == DEPOSIT
        assert spendable(s, p) == FUNDS - DEPOSIT
    (lease,) = market(s, T0 + 40, type="match", order_id=order_id, seed=1)["leases"]
    conserved(s)
    assert s.leases[lease].provider == P2
    return str(lease)


def test_losers_and_decliners_get_theirs_back_when_the_window_clears() -> None:
    s, order_id = auction()
    bid_all(s, order_id)
    for p in (P1, P3):
        assert deposit(s, order_id, p).micros == 0 and spendable(s, p) == FUNDS
    assert deposit(s, order_id, P2) == DEPOSIT  # the winner's backs its lease


def test_the_winner_gets_it_back_when_its_lease_settles() -> None:
    s, order_id = auction()
    lease = bid_all(s, order_id)
    send(
        s,
        P2,
        T0 + 5_000,
        type="receipt",
        lease_id=lease,
        exit_code=0,
        outputs=[],
        root=_empty_root(),
    )
    assert s.leases[lease].status == "settled"
    assert deposit(s, order_id, P2).micros == 0 and spendable(s, P2) == FUNDS


def test_the_winner_gets_it_back_when_it_releases_the_lease() -> None:
    s, order_id = auction()
    lease = bid_all(s, order_id)
    send(s, P2, T0 + 5_000, type="lease.release", lease_id=lease)
    assert deposit(s, order_id, P2).micros == 0 and spendable(s, P2) == FUNDS


def test_a_lost_lease_slashes_the_winners_deposit_half_to_the_client() -> None:
    s, order_id = auction()
    lease = bid_all(s, order_id)
    started = s.leases[lease].started_at
    now = next(t for t in range(started, started + 600_000, 1000) if s.overdue_leases(t))
    burned_before = s.ledger.balance(BURN, "USDC")
    market(s, now, type="lease.lost", lease_id=lease)
    conserved(s)
    assert deposit(s, order_id, P2).micros == 0 and spendable(s, P2) == FUNDS - DEPOSIT
    half = Money.parse("0.25 USDC")  # akash: slash_reward_rate 1/2
    assert s.ledger.balance(LedgerAccount.earnings(ALICE), "USDC") == half
    assert s.ledger.balance(BURN, "USDC") - burned_before == half
    (entry,) = s.slashes[P2]
    assert entry.amount == DEPOSIT and entry.source == "bid_deposit"
    assert lease in entry.reason and entry.at == now


def test_a_bidder_that_cannot_pay_is_refused_and_nothing_moves() -> None:
    s, order_id = auction(fund=(P1, P2))
    balances = s.balances_summary()
    with pytest.raises(PasarError) as err:
        send(s, P3, T0 + 10, type="bid", order_id=order_id, price="0.30")
    assert err.value.status == 409 and err.value.code == "bid_deposit_unpaid"
    assert err.value.hint and "faucet" in err.value.hint
    assert s.balances_summary() == balances
    window = s.orders[order_id].window
    assert window is not None and P3 not in window.bids


def test_a_second_bid_is_refused_without_a_second_deposit() -> None:
    s, order_id = auction()
    send(s, P1, T0 + 10, type="bid", order_id=order_id, price="0.90")
    with pytest.raises(PasarError):
        send(s, P1, T0 + 11, type="bid", order_id=order_id, price="0.80")
    assert deposit(s, order_id, P1) == DEPOSIT and spendable(s, P1) == FUNDS - DEPOSIT


def test_expiry_returns_every_deposit() -> None:
    s, order_id = auction()
    send(s, P1, T0 + 10, type="bid", order_id=order_id, price="1.50")  # over the max: no award
    send(s, P2, T0 + 20, type="bid", order_id=order_id, price=None)
    deadline = s.orders[order_id].deadline
    market(s, deadline, type="order.expire", order_id=order_id)
    for p in (P1, P2):
        assert deposit(s, order_id, p).micros == 0 and spendable(s, p) == FUNDS


def test_cancel_returns_every_deposit_the_winners_too() -> None:
    s, order_id = auction()
    bid_all(s, order_id)
    send(s, ALICE, T0 + 5_000, type="order.cancel", order_id=order_id)
    for p in (P1, P2, P3):
        assert deposit(s, order_id, p).micros == 0 and spendable(s, p) == FUNDS


def test_a_cancel_while_bids_are_open_returns_them() -> None:
    s, order_id = auction()
    send(s, P1, T0 + 10, type="bid", order_id=order_id, price="0.50")
    send(s, ALICE, T0 + 20, type="order.cancel", order_id=order_id)
    assert deposit(s, order_id, P1).micros == 0 and spendable(s, P1) == FUNDS


def test_markets_without_a_bid_deposit_hold_nothing() -> None:
    s = make_state("pasar")
    assert s.preset.bid_deposit is None
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    assert not any(b.account.kind.value == "bid_deposit" for b in s.ledger.balances())


def test_a_verdicts_stake_slash_is_logged_with_its_reason() -> None:
    from pasar.core.lease_handlers import carry_out
    from pasar.core.verify.base import Outcome, SlashOrder

    s = make_state("pasar")
    s.ledger.mint(P1, FUNDS)
    s.ledger.stake(P1, FUNDS)
    slash = SlashOrder(P1, Money.parse("1 USDC"), reward_to=P2)
    with s.ledger.atomic():
        carry_out(s, Outcome(slash=(slash,)))
    conserved(s)
    (entry,) = s.slashes[P1]
    assert entry.source == "stake" and entry.amount == Money.parse("1 USDC")
    assert entry.reward + entry.burned == entry.amount and P2 in entry.reason


def test_a_refused_transaction_leaves_the_slash_log_as_it_was() -> None:
    s, order_id = auction()
    lease = bid_all(s, order_id)
    started = s.leases[lease].started_at
    now = next(t for t in range(started, started + 600_000, 1000) if s.overdue_leases(t))
    real = s.ledger.escrow_order

    def refuse(*args: Any, **kwargs: Any) -> Any:  # the re-queue after the slash fails
        raise PasarError("sabotaged", code="sabotaged")

    s.ledger.escrow_order = refuse  # type: ignore[method-assign]
    balances = s.balances_summary()
    with pytest.raises(PasarError):
        market(s, now, type="lease.lost", lease_id=lease)
    s.ledger.escrow_order = real  # type: ignore[method-assign]
    assert P2 not in s.slashes and s.balances_summary() == balances
    assert deposit(s, order_id, P2) == DEPOSIT
