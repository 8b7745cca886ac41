"""The ledger by example: settlement to the micro-unit, stake, slash, replay, errors."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from fractions import Fraction

import pytest

from pasar.core.accounts import BURN, MINT, RESERVE, TREASURY, AccountKind, Balance, LedgerAccount
from pasar.core.fees import FeeSchedule
from pasar.core.ledger import Ledger, LedgerError, Transfer
from pasar.core.money import Money


def usdc(text: str) -> Money:
    return Money.parse(f"{text} USDC")


ZERO = Money.zero("USDC")
IONET = FeeSchedule.from_mapping(
    {
        "take_rate": "2%",
        "client_reservation_rate": "0.25%",
        "provider_reservation_rate": "0.25%",
        "reserve_share": "20%",
    },
    currency="USDC",
)


def funded_lease(escrow: str = "10", lease: str = "l1") -> Ledger:
    ledger = Ledger()
    ledger.mint("alice", usdc("100"))
    ledger.escrow_order("alice", "o1", usdc(escrow))
    ledger.escrow_to_lease("o1", lease)
    return ledger


def assert_books_balance(ledger: Ledger) -> None:
    for currency in ledger.currencies():
        assert sum(b.amount.micros for b in ledger.balances() if b.amount.currency == currency) == 0
        assert ledger.circulating(currency) == ledger.minted(currency) - ledger.burned(currency)
    for b in ledger.balances():
        assert b.account.kind is AccountKind.MINT or not b.amount.is_negative()


def fails(ledger: Ledger, op: Callable[[], object], code: str) -> LedgerError:
    before = pickle.dumps(ledger)
    with pytest.raises(LedgerError) as info:
        op()
    assert info.value.code == code, info.value.message
    assert pickle.dumps(ledger) == before
    return info.value


# settlement ----------------------------------------------------------------------------------


def test_settlement_bills_seconds_times_price_and_splits_the_escrow_exactly() -> None:
    ledger = funded_lease("10")
    s = ledger.settle(
        "l1",
        client="alice",
        provider="bob",
        billed_ms=5_400_000,
        price_per_hour=usdc("2.5"),
        fees=IONET,
    )
    # 1.5 h × 2.5 USDC = 3.75 USDC billed
    assert s.billed == usdc("3.75")
    assert s.take_fee == usdc("0.075")  # 2% take on earnings
    assert s.provider_reservation_fee == usdc("0.009375")  # 0.25%, provider side
    assert s.client_reservation_fee == usdc("0.009375")  # 0.25%, client side
    assert s.provider_payout == usdc("3.665625")
    assert s.fee_total == usdc("0.09375")
    assert s.reserve == usdc("0.01875")  # 20% of the fees
    assert s.treasury == usdc("0.075")
    assert s.refund == usdc("6.240625")
    assert s.provider_payout + s.treasury + s.reserve + s.refund == usdc("10")

    assert ledger.balance(LedgerAccount.earnings("bob"), "USDC") == s.provider_payout
    assert ledger.balance(TREASURY, "USDC") == s.treasury
    assert ledger.balance(RESERVE, "USDC") == s.reserve
    assert ledger.balance(LedgerAccount.client("alice"), "USDC") == usdc("90") + s.refund
    assert ledger.holdings(LedgerAccount.lease_escrow("l1")) == []
    assert [t.amount for t in s.transfers] == [s.provider_payout, s.treasury, s.reserve, s.refund]
    assert_books_balance(ledger)


def test_billing_rounds_down_to_a_micro_unit() -> None:
    ledger = funded_lease("1")
    s = ledger.settle(
        "l1",
        client="alice",
        provider="bob",
        billed_ms=7_000,
        price_per_hour=usdc("1"),
        fees=FeeSchedule.zero("USDC"),
    )
    assert s.billed == Money(1944, "USDC")  # 7/3600 USDC = 1944.44… micros
    assert s.refund == usdc("1") - Money(1944, "USDC")
    assert_books_balance(ledger)


def test_billing_is_capped_at_the_escrow() -> None:
    ledger = funded_lease("1")
    s = ledger.settle(
        "l1",
        client="alice",
        provider="bob",
        billed_ms=10 * 3_600_000,
        price_per_hour=usdc("1"),
        fees=IONET,
    )
    assert s.billed == usdc("1") and s.refund == ZERO
    assert s.provider_payout + s.treasury + s.reserve == usdc("1")


def test_a_lease_that_billed_nothing_refunds_everything_and_pays_no_fee() -> None:
    ledger = funded_lease("5")
    s = ledger.settle(
        "l1", client="alice", provider="bob", billed_ms=0, price_per_hour=usdc("3"), fees=IONET
    )
    assert s.refund == usdc("5") and s.fee_total == ZERO and s.provider_payout == ZERO
    assert len(s.transfers) == 1
    assert ledger.balance(LedgerAccount.client("alice"), "USDC") == usdc("100")


def test_settling_twice_or_an_unknown_lease_is_refused() -> None:
    ledger = funded_lease()
    kwargs = {"client": "alice", "provider": "bob", "billed_ms": 60_000, "fees": IONET}
    ledger.settle("l1", price_per_hour=usdc("1"), **kwargs)
    fails(
        ledger, lambda: ledger.settle("l1", price_per_hour=usdc("1"), **kwargs), "unknown_account"
    )
    fails(
        ledger, lambda: ledger.settle("nope", price_per_hour=usdc("1"), **kwargs), "unknown_account"
    )


def test_settling_in_the_wrong_currency_is_refused() -> None:
    ledger = funded_lease()
    akt = Money.parse("1 AKT")
    kw = {"client": "alice", "provider": "bob", "billed_ms": 60_000}
    fails(
        ledger,
        lambda: ledger.settle("l1", price_per_hour=akt, fees=IONET, **kw),
        "currency_mismatch",
    )
    akt_fees = FeeSchedule.zero("AKT")
    fails(
        ledger,
        lambda: ledger.settle("l1", price_per_hour=akt, fees=akt_fees, **kw),
        "currency_mismatch",
    )
    fails(
        ledger,
        lambda: ledger.settle(
            "l1",
            price_per_hour=usdc("1"),
            fees=IONET,
            client="alice",
            provider="bob",
            billed_ms=-5000,
        ),
        "invalid_amount",
    )


# orders and escrow ---------------------------------------------------------------------------


def test_order_escrow_refund_and_partial_moves() -> None:
    ledger = Ledger()
    ledger.mint("alice", usdc("10"))
    ledger.escrow_order("alice", "o1", usdc("6"))
    ledger.escrow_order("alice", "o1", usdc("1"))  # top-up
    ledger.escrow_to_lease("o1", "l1", usdc("3"))  # one node of a cluster order
    ledger.escrow_to_lease("o1", "l2", usdc("3"))
    ledger.refund_order("o1", "alice")
    assert ledger.balance(LedgerAccount.client("alice"), "USDC") == usdc("4")
    assert ledger.balance(LedgerAccount.lease_escrow("l2"), "USDC") == usdc("3")
    assert ledger.holdings(LedgerAccount.order_escrow("o1")) == []
    assert_books_balance(ledger)


def test_escrow_errors() -> None:
    ledger = Ledger()
    ledger.mint("alice", usdc("10"))
    ledger.mint("alice", Money.parse("10 AKT"))
    ledger.escrow_order("alice", "o1", usdc("5"))
    fails(ledger, lambda: ledger.escrow_order("alice", "o2", usdc("11")), "overdraft")
    fails(ledger, lambda: ledger.escrow_order("bob", "o2", usdc("1")), "overdraft")
    fails(
        ledger,
        lambda: ledger.escrow_order("alice", "o1", Money.parse("1 AKT")),
        "currency_mismatch",
    )
    fails(ledger, lambda: ledger.escrow_to_lease("o9", "l1"), "unknown_account")
    fails(ledger, lambda: ledger.escrow_to_lease("o1", "l1", usdc("6")), "overdraft")
    fails(
        ledger,
        lambda: ledger.escrow_to_lease("o1", "l1", Money.parse("1 AKT")),
        "currency_mismatch",
    )
    fails(ledger, lambda: ledger.refund_order("o9", "alice"), "unknown_account")
    ledger.escrow_to_lease("o1", "l1", usdc("1"))
    fails(ledger, lambda: ledger.escrow_to_lease("o1", "l1", usdc("1")), "invalid_transfer")


@pytest.mark.parametrize("amount", [ZERO, usdc("-1"), 5, "1 USDC"])
def test_amounts_must_be_positive_money(amount: object) -> None:
    ledger = Ledger()
    ledger.mint("alice", usdc("10"))
    fails(ledger, lambda: ledger.mint("alice", amount), "invalid_amount")
    fails(ledger, lambda: ledger.escrow_order("alice", "o1", amount), "invalid_amount")
    fails(ledger, lambda: ledger.stake("alice", amount), "invalid_amount")


def test_mint_and_burn_are_the_only_changes_to_the_supply() -> None:
    ledger = Ledger()
    ledger.mint("alice", usdc("10"))
    ledger.mint("bob", usdc("5"))
    ledger.burn(LedgerAccount.client("alice"), usdc("2"))
    assert ledger.minted("USDC") == usdc("15")
    assert ledger.burned("USDC") == usdc("2")
    assert ledger.circulating("USDC") == usdc("13")
    assert ledger.balance(MINT, "USDC") == usdc("-15")
    fails(ledger, lambda: ledger.burn(LedgerAccount.client("alice"), usdc("9")), "overdraft")
    fails(ledger, lambda: ledger.burn(BURN, usdc("1")), "invalid_transfer")
    assert_books_balance(ledger)


# stake ---------------------------------------------------------------------------------------


def staked(amount: str = "10") -> Ledger:
    ledger = Ledger()
    ledger.mint("prov", usdc("100"))
    ledger.stake("prov", usdc(amount))
    return ledger


def test_unstake_waits_for_the_cooldown() -> None:
    ledger = staked("10")
    ledger.unstake("prov", usdc("4"), now=1000, cooldown=600)
    assert ledger.balance(LedgerAccount.stake("prov"), "USDC") == usdc("6")
    assert ledger.unbonding("prov", "USDC") == [(1600, usdc("4"))]
    e = fails(ledger, lambda: ledger.withdraw_unbonded("prov", now=1599), "cooldown")
    assert e.status == 409 and "1600" in e.message
    ledger.withdraw_unbonded("prov", now=1600)
    assert ledger.balance(LedgerAccount.client("prov"), "USDC") == usdc("94")
    fails(ledger, lambda: ledger.withdraw_unbonded("prov", now=9999), "unknown_account")
    assert_books_balance(ledger)


def test_withdraw_takes_only_what_has_cooled_down() -> None:
    ledger = staked("10")
    ledger.unstake("prov", usdc("1"), now=0, cooldown=10)
    ledger.unstake("prov", usdc("2"), now=5, cooldown=10)
    ledger.withdraw_unbonded("prov", now=12)
    assert ledger.unbonding("prov", "USDC") == [(15, usdc("2"))]
    assert ledger.balance(LedgerAccount.client("prov"), "USDC") == usdc("91")


def test_stake_errors() -> None:
    ledger = staked("10")
    fails(ledger, lambda: ledger.stake("prov", usdc("91")), "overdraft")
    fails(ledger, lambda: ledger.unstake("prov", usdc("11"), now=0, cooldown=1), "overdraft")
    fails(ledger, lambda: ledger.unstake("prov", usdc("1"), now=-1, cooldown=1), "invalid_time")
    fails(ledger, lambda: ledger.unstake("prov", usdc("1"), now=0, cooldown=1.5), "invalid_time")
    fails(ledger, lambda: ledger.withdraw_unbonded("prov", now=0), "unknown_account")


def test_slash_takes_stake_then_latest_unbonding_rewards_the_prover_and_burns_the_rest() -> None:
    ledger = staked("10")
    ledger.unstake("prov", usdc("3"), now=0, cooldown=100)  # releases at 100
    ledger.unstake("prov", usdc("2"), now=50, cooldown=100)  # releases at 150
    assert ledger.slashable("prov", "USDC") == usdc("10")
    s = ledger.slash("prov", usdc("6"), reward_to="verifier", reward_rate=Fraction(1, 3))
    assert s.from_stake == usdc("5") and s.from_unbonding == usdc("1")
    assert s.reward == usdc("2") and s.burned == usdc("4")
    assert ledger.unbonding("prov", "USDC") == [(100, usdc("3")), (150, usdc("1"))]
    assert ledger.balance(LedgerAccount.earnings("verifier"), "USDC") == usdc("2")
    assert ledger.burned("USDC") == usdc("4")
    assert sum((t.amount for t in s.transfers), ZERO) == usdc("6")
    assert_books_balance(ledger)


def test_slash_reward_rounds_down_and_the_burn_takes_the_remainder() -> None:
    ledger = staked("1")
    s = ledger.slash("prov", Money(10, "USDC"), reward_to="v", reward_rate=Fraction(1, 3))
    assert s.reward == Money(3, "USDC") and s.burned == Money(7, "USDC")


def test_slash_errors() -> None:
    ledger = staked("10")
    fails(
        ledger,
        lambda: ledger.slash("prov", usdc("11"), reward_to="v", reward_rate=Fraction(1, 2)),
        "overdraft",
    )
    fails(
        ledger,
        lambda: ledger.slash("prov", usdc("1"), reward_to="prov", reward_rate=Fraction(1, 2)),
        "invalid_transfer",
    )
    fails(
        ledger,
        lambda: ledger.slash("prov", usdc("1"), reward_to="v", reward_rate=0.5),
        "invalid_rate",
    )
    fails(
        ledger,
        lambda: ledger.slash("prov", usdc("1"), reward_to="v", reward_rate=Fraction(3, 2)),
        "invalid_rate",
    )
    fails(
        ledger,
        lambda: ledger.slash("nobody", usdc("1"), reward_to="v", reward_rate=Fraction(0)),
        "overdraft",
    )


def test_earnings_can_be_withdrawn_and_staked() -> None:
    ledger = funded_lease("10")
    ledger.settle(
        "l1",
        client="alice",
        provider="bob",
        billed_ms=3_600_000,
        price_per_hour=usdc("4"),
        fees=FeeSchedule.zero("USDC"),
    )
    ledger.withdraw_earnings("bob", usdc("4"))
    ledger.stake("bob", usdc("4"))
    assert ledger.slashable("bob", "USDC") == usdc("4")
    fails(ledger, lambda: ledger.withdraw_earnings("bob", usdc("1")), "overdraft")


# replay, persistence, wire forms -------------------------------------------------------------


def test_replaying_the_transfers_reproduces_the_state() -> None:
    ledger = Ledger()
    log: list[Transfer] = []
    log += ledger.mint("alice", usdc("50"))
    log += ledger.mint("prov", usdc("20"))
    log += ledger.escrow_order("alice", "o1", usdc("10"))
    log += ledger.escrow_to_lease("o1", "l1")
    log += ledger.settle(
        "l1",
        client="alice",
        provider="prov",
        billed_ms=900_000,
        price_per_hour=usdc("8"),
        fees=IONET,
    ).transfers
    log += ledger.stake("prov", usdc("5"))
    log += ledger.unstake("prov", usdc("2"), now=10, cooldown=5)
    log += ledger.slash("prov", usdc("4"), reward_to="v", reward_rate=Fraction(1, 4)).transfers
    log += ledger.withdraw_unbonded("prov", now=15)
    wire = [t.to_dict() for t in log]
    replayed = Ledger()
    replayed.apply([Transfer.from_dict(d) for d in wire])
    assert replayed == ledger
    assert replayed.balances() == ledger.balances()


def test_apply_is_all_or_nothing() -> None:
    ledger = Ledger()
    ledger.mint("alice", usdc("5"))
    alice, bob = LedgerAccount.client("alice"), LedgerAccount.client("bob")
    fails(
        ledger,
        lambda: ledger.apply([Transfer(alice, bob, usdc("3")), Transfer(alice, bob, usdc("3"))]),
        "overdraft",
    )
    fails(ledger, lambda: ledger.apply([Transfer(alice, MINT, usdc("1"))]), "invalid_transfer")
    fails(ledger, lambda: ledger.apply([Transfer(alice, alice, usdc("1"))]), "invalid_transfer")
    fails(ledger, lambda: ledger.apply([Transfer(alice, bob, ZERO)]), "invalid_amount")
    ledger.apply([Transfer(alice, bob, usdc("3")), Transfer(bob, alice, usdc("1"))])
    assert ledger.balance(bob, "USDC") == usdc("2")


def test_apply_checks_transfers_in_order() -> None:
    ledger = Ledger()
    ledger.mint("alice", usdc("1"))
    alice, bob, carol = (LedgerAccount.client(n) for n in ("alice", "bob", "carol"))
    # bob would be paid by the second transfer, but he is debited first
    fails(
        ledger,
        lambda: ledger.apply([Transfer(bob, carol, usdc("1")), Transfer(alice, bob, usdc("1"))]),
        "overdraft",
    )


def test_balances_round_trip_through_a_store() -> None:
    ledger = funded_lease()
    ledger.mint("x", Money.parse("3 AKT"))
    rows = [(str(b.account), b.amount.currency, b.amount.micros) for b in ledger.balances()]
    loaded = Ledger.from_balances(Balance(LedgerAccount.parse(a), Money(m, c)) for a, c, m in rows)
    assert loaded == ledger
    assert loaded.currencies() == ["AKT", "USDC"]


def test_loading_refuses_broken_books() -> None:
    alice = LedgerAccount.client("alice")
    with pytest.raises(LedgerError) as info:
        Ledger.from_balances([Balance(alice, usdc("1"))])
    assert info.value.code == "unbalanced"
    with pytest.raises(LedgerError):
        Ledger.from_balances([Balance(alice, usdc("-1")), Balance(MINT, usdc("1"))])
    with pytest.raises(LedgerError):
        Ledger.from_balances(
            [Balance(alice, usdc("1")), Balance(alice, usdc("1")), Balance(MINT, usdc("-2"))]
        )


@pytest.mark.parametrize(
    "account",
    [
        LedgerAccount.client("ab:cd"),
        LedgerAccount.order_escrow("o-1"),
        LedgerAccount.unbonding("p@x", 1234),
        TREASURY,
        RESERVE,
        MINT,
        BURN,
    ],
)
def test_account_ids_round_trip(account: LedgerAccount) -> None:
    assert LedgerAccount.parse(str(account)) == account


@pytest.mark.parametrize(
    "make",
    [
        lambda: LedgerAccount.client(""),
        lambda: LedgerAccount.client(" x"),
        lambda: LedgerAccount(AccountKind.TREASURY, "me"),
        lambda: LedgerAccount(AccountKind.STAKE, "p", 5),
        lambda: LedgerAccount.unbonding("p", -1),
        lambda: LedgerAccount.parse("wallet:x"),
        lambda: LedgerAccount.parse("stake_unbonding:p"),
        lambda: LedgerAccount.parse(5),
    ],
)
def test_bad_account_ids_are_refused(make: Callable[[], LedgerAccount]) -> None:
    with pytest.raises(LedgerError):
        make()


def test_bad_transfer_records_are_refused() -> None:
    with pytest.raises(LedgerError):
        Transfer.from_dict({"debit": "client:a", "credit": "client:b", "amount": 1.5})
    with pytest.raises(LedgerError):
        Transfer.from_dict({"debit": "client:a", "credit": "client:b", "amount": "1 USDC", "x": 1})


def test_errors_carry_http_statuses() -> None:
    ledger = Ledger()
    e = fails(ledger, lambda: ledger.stake("p", usdc("1")), "overdraft")
    assert e.status == 402
    assert e.to_dict()["error"]["code"] == "overdraft"
    e = fails(ledger, lambda: ledger.refund_order("o", "a"), "unknown_account")
    assert e.status == 404


def test_atomic_puts_back_every_balance_a_failed_sequence_changed() -> None:
    ledger = Ledger()
    ledger.mint("alice", Money(5_000_000, "USDC"))
    before = ledger.copy()
    with pytest.raises(LedgerError), ledger.atomic():
        ledger.escrow_order("alice", "o1", Money(3_000_000, "USDC"))
        ledger.escrow_to_lease("o1", "l1", Money(1_000_000, "USDC"))
        ledger.escrow_order("alice", "o2", Money(3_000_000, "USDC"))  # overdraft
    assert ledger == before
    with ledger.atomic():
        ledger.escrow_order("alice", "o1", Money(3_000_000, "USDC"))
    assert ledger.balance(LedgerAccount.order_escrow("o1"), "USDC") == Money(3_000_000, "USDC")
