"""A hypothesis state machine drives the ledger through random operations, valid and not.

After every step: the books balance per currency, money in circulation equals minted − burned
(as counted by the test from the transfers it saw), no balance but the mint's is negative, the
state survives a save/load round trip, and

* a failed operation raised ``LedgerError`` (nothing else) and left the ledger byte-identical;
* a successful one is reproduced exactly by replaying its transfers on the state before it.

The run is sized to at least 10,000 operations in all (checked, not assumed).
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pasar.core.accounts import BURN, MINT, RESERVE, TREASURY, AccountKind, LedgerAccount
from pasar.core.fees import FeeSchedule
from pasar.core.ledger import Ledger, LedgerError, Settlement, Slash, Transfer
from pasar.core.money import Money

OWNERS = ["alice", "bob", "carol", "dave"]
ORDERS = ["o1", "o2", "o3"]
LEASES = ["l1", "l2", "l3", "l4"]
CURRENCIES = ["USDC", "AKT"]
FEES = [
    FeeSchedule.zero("USDC"),
    FeeSchedule.from_mapping(
        {
            "take_rate": "2%",
            "client_reservation_rate": "0.25%",
            "provider_reservation_rate": "0.25%",
            "reserve_share": "1/3",
        },
        currency="USDC",
    ),
    FeeSchedule.from_mapping(
        {"take_rate": "20%", "per_job_fee": "0.01", "min_fee": "0.5"}, currency="USDC"
    ),
    FeeSchedule.from_mapping({"take_rate": "4%", "reserve_share": "50%"}, currency="AKT"),
]

owners = st.sampled_from(OWNERS)
orders = st.sampled_from(ORDERS)
leases = st.sampled_from(LEASES)
currencies = st.sampled_from(CURRENCIES)
# mostly sensible amounts, sometimes zero, negative or huge (overdrafts)
micros = st.one_of(
    st.integers(1, 3_000_000),
    st.integers(1, 50),
    st.sampled_from([0, -1, -1_000_000]),
    st.integers(10**7, 10**9),
)
amounts = st.builds(Money, micros, currencies)
accounts = st.one_of(
    st.builds(LedgerAccount.client, owners),
    st.builds(LedgerAccount.earnings, owners),
    st.builds(LedgerAccount.stake, owners),
    st.builds(LedgerAccount.order_escrow, orders),
    st.builds(LedgerAccount.lease_escrow, leases),
    st.builds(LedgerAccount.unbonding, owners, st.integers(0, 300)),
    st.sampled_from([TREASURY, RESERVE, MINT, BURN]),
)

STEPS: Counter[str] = Counter()  # (op, outcome) totals across the whole run
CODES: Counter[str] = Counter()  # (op, error code) totals


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger()
        self.now = 0
        self.minted: Counter[str] = Counter()
        self.burned: Counter[str] = Counter()

    def run(self, name: str, op: Callable[[], Any]) -> None:
        """Run one operation and check the all-or-nothing contract either way."""
        before_bytes = pickle.dumps(self.ledger)
        before = self.ledger.copy()
        try:
            result = op()
        except LedgerError as exc:
            assert exc.code, "every ledger error has a code"
            assert pickle.dumps(self.ledger) == before_bytes, f"{name} failed but changed state"
            STEPS[f"{name}:fail"] += 1
            CODES[f"{name}:{exc.code}"] += 1
            return
        STEPS[f"{name}:ok"] += 1
        if isinstance(result, Settlement | Slash):
            transfers = list(result.transfers)
        else:
            transfers = list(result)
        assert all(isinstance(t, Transfer) for t in transfers)
        if isinstance(result, Settlement):
            assert result.provider_payout + result.treasury + result.reserve + result.refund == (
                result.escrow
            )
        if isinstance(result, Slash):
            assert result.reward + result.burned == result.slashed
            assert result.from_stake + result.from_unbonding == result.slashed
        before.apply(transfers)  # audit: the records alone reproduce the new state
        assert before == self.ledger
        for t in transfers:
            if t.debit == MINT:
                self.minted[t.amount.currency] += t.amount.micros
            if t.credit == BURN:
                self.burned[t.amount.currency] += t.amount.micros

    @initialize()
    def faucet(self) -> None:
        """Everyone starts with some money, so that deep operations are reached early."""
        for owner in OWNERS:
            for currency in CURRENCIES:
                amount = Money.units(100, currency)
                self.run("faucet", lambda o=owner, a=amount: self.ledger.mint(o, a))

    # time ------------------------------------------------------------------------------------

    @rule(seconds=st.integers(0, 60))
    def tick(self, seconds: int) -> None:
        self.now += seconds
        STEPS["tick:ok"] += 1

    # argument choice: mostly among accounts that hold something and within what they hold,
    # so that valid operations happen often; otherwise anything at all, so that every kind of
    # invalid operation happens too. (Hypothesis favours 0 and first elements, hence the
    # "likely" branch is the simplest draw.)

    def likely(self, data: st.DataObject) -> bool:
        return bool(data.draw(st.integers(0, 3)) < 3)

    def funded(
        self, data: st.DataObject, make: Callable[[str], LedgerAccount], pool: list[str]
    ) -> str:
        live = [x for x in pool if self.ledger.holdings(make(x))]
        if live and self.likely(data):
            return data.draw(st.sampled_from(live))
        return data.draw(st.sampled_from(pool))

    def amount_from(self, data: st.DataObject, account: LedgerAccount) -> Money:
        held = [m for m in self.ledger.holdings(account) if m.micros > 0]  # not the mint's
        if held and self.likely(data):
            pick = data.draw(st.sampled_from(held))
            return Money(data.draw(st.integers(1, pick.micros)), pick.currency)
        return data.draw(amounts)

    def currency_of(self, data: st.DataObject, account: LedgerAccount) -> str:
        held = self.ledger.holdings(account)
        if held and self.likely(data):
            return held[0].currency
        return data.draw(currencies)

    # operations ------------------------------------------------------------------------------

    @rule(owner=owners, amount=amounts)
    def mint(self, owner: str, amount: Money) -> None:
        self.run("mint", lambda: self.ledger.mint(owner, amount))

    @rule(account=accounts, data=st.data())
    def burn(self, account: LedgerAccount, data: st.DataObject) -> None:
        amount = self.amount_from(data, account)
        self.run("burn", lambda: self.ledger.burn(account, amount))

    @rule(order=orders, data=st.data())
    def escrow_order(self, order: str, data: st.DataObject) -> None:
        client = self.funded(data, LedgerAccount.client, OWNERS)
        amount = self.amount_from(data, LedgerAccount.client(client))
        self.run("escrow_order", lambda: self.ledger.escrow_order(client, order, amount))

    @rule(client=owners, whole=st.booleans(), data=st.data())
    def refund_order(self, client: str, whole: bool, data: st.DataObject) -> None:
        order = self.funded(data, LedgerAccount.order_escrow, ORDERS)
        amount = None if whole else self.amount_from(data, LedgerAccount.order_escrow(order))
        self.run("refund_order", lambda: self.ledger.refund_order(order, client, amount))

    @rule(lease=leases, whole=st.booleans(), data=st.data())
    def escrow_to_lease(self, lease: str, whole: bool, data: st.DataObject) -> None:
        order = self.funded(data, LedgerAccount.order_escrow, ORDERS)
        amount = None if whole else self.amount_from(data, LedgerAccount.order_escrow(order))
        self.run("escrow_to_lease", lambda: self.ledger.escrow_to_lease(order, lease, amount))

    def live(self, make: Callable[[str], LedgerAccount], pool: list[str]) -> bool:
        return any(self.ledger.holdings(make(x)) for x in pool)

    # the lifecycle (order → lease → settle) is a chain of three random picks; these
    # duplicates run only when their input exists, so that the chain completes often
    @precondition(lambda self: self.live(LedgerAccount.order_escrow, ORDERS))
    @rule(lease=leases, data=st.data())
    def lease_an_order(self, lease: str, data: st.DataObject) -> None:
        self.escrow_to_lease(lease, True, data)

    @precondition(lambda self: self.live(LedgerAccount.lease_escrow, LEASES))
    @rule(
        parties=st.tuples(owners, owners),
        seconds=st.integers(0, 4 * 3600),
        price=st.integers(0, 5_000_000),
        data=st.data(),
    )
    def settle_a_lease(
        self, parties: tuple[str, str], seconds: int, price: int, data: st.DataObject
    ) -> None:
        lease = data.draw(
            st.sampled_from(
                [x for x in LEASES if self.ledger.holdings(LedgerAccount.lease_escrow(x))]
            )
        )
        currency = self.ledger.holdings(LedgerAccount.lease_escrow(lease))[0].currency
        fees = data.draw(st.sampled_from([f for f in FEES if f.currency == currency]))
        client, provider = parties
        self.run(
            "settle",
            lambda: self.ledger.settle(
                lease,
                client=client,
                provider=provider,
                billed_ms=seconds * 1000,
                price_per_hour=Money(price, currency),
                fees=fees,
            ),
        )

    @rule(parties=st.tuples(owners, owners), data=st.data())
    def settle(self, parties: tuple[str, str], data: st.DataObject) -> None:
        seconds = data.draw(st.integers(0, 4 * 3600)) if self.likely(data) else -1
        price = data.draw(st.integers(0, 5_000_000)) if self.likely(data) else -1
        lease = self.funded(data, LedgerAccount.lease_escrow, LEASES)
        currency = self.currency_of(data, LedgerAccount.lease_escrow(lease))
        fitting = [f for f in FEES if f.currency == currency]
        fees = data.draw(st.sampled_from(fitting if self.likely(data) else FEES))
        client, provider = parties
        self.run(
            "settle",
            lambda: self.ledger.settle(
                lease,
                client=client,
                provider=provider,
                billed_ms=seconds * 1000,
                price_per_hour=Money(price, currency),
                fees=fees,
            ),
        )

    @rule(data=st.data())
    def withdraw_earnings(self, data: st.DataObject) -> None:
        owner = self.funded(data, LedgerAccount.earnings, OWNERS)
        amount = self.amount_from(data, LedgerAccount.earnings(owner))
        self.run("withdraw_earnings", lambda: self.ledger.withdraw_earnings(owner, amount))

    @rule(data=st.data())
    def stake(self, data: st.DataObject) -> None:
        provider = self.funded(data, LedgerAccount.client, OWNERS)
        amount = self.amount_from(data, LedgerAccount.client(provider))
        self.run("stake", lambda: self.ledger.stake(provider, amount))

    @rule(data=st.data())
    def unstake(self, data: st.DataObject) -> None:
        cooldown = data.draw(st.integers(0, 200)) if self.likely(data) else -1
        provider = self.funded(data, LedgerAccount.stake, OWNERS)
        amount = self.amount_from(data, LedgerAccount.stake(provider))
        self.run(
            "unstake",
            lambda: self.ledger.unstake(provider, amount, now=self.now, cooldown=cooldown),
        )

    @rule(offset=st.integers(-100, 100), data=st.data())
    def withdraw_unbonded(self, offset: int, data: st.DataObject) -> None:
        unbonding = [p for p in OWNERS if any(self.ledger.unbonding(p, c) for c in CURRENCIES)]
        provider = data.draw(st.sampled_from(unbonding if unbonding else OWNERS))
        now = self.now + offset
        if self.likely(data):
            now = max(now, 0)
        self.run("withdraw_unbonded", lambda: self.ledger.withdraw_unbonded(provider, now=now))

    @rule(
        reward_to=owners,
        data=st.data(),
    )
    def slash(self, reward_to: str, data: st.DataObject) -> None:
        reward_rate = data.draw(
            st.fractions(0, 1, max_denominator=100)
            if self.likely(data)
            else st.sampled_from([Fraction(3, 2), Fraction(-1)])
        )
        provider = self.funded(data, LedgerAccount.stake, OWNERS)
        currency = self.currency_of(data, LedgerAccount.stake(provider))
        slashable = self.ledger.slashable(provider, currency).micros
        if slashable and self.likely(data):
            amount = Money(data.draw(st.integers(1, slashable)), currency)
        else:
            amount = data.draw(amounts)
        self.run(
            "slash",
            lambda: self.ledger.slash(
                provider, amount, reward_to=reward_to, reward_rate=reward_rate
            ),
        )

    @rule(
        batch=st.lists(
            st.builds(Transfer, accounts, accounts, amounts, st.just("random")), max_size=3
        )
    )
    def apply(self, batch: list[Transfer]) -> None:
        self.run("apply", lambda: self.ledger.apply(batch) or [*batch])

    # invariants ------------------------------------------------------------------------------

    @invariant()
    def conservation(self) -> None:
        rows = self.ledger.balances()
        for currency in CURRENCIES:
            assert sum(b.amount.micros for b in rows if b.amount.currency == currency) == 0
            supply = self.minted[currency] - self.burned[currency]
            assert self.ledger.circulating(currency).micros == supply
            assert self.ledger.minted(currency).micros == self.minted[currency]
            assert self.ledger.burned(currency).micros == self.burned[currency]
        for b in rows:
            assert b.amount.micros != 0
            assert b.amount.micros > 0 or b.account.kind is AccountKind.MINT
            if b.account.kind in (AccountKind.ORDER_ESCROW, AccountKind.LEASE_ESCROW):
                assert len(self.ledger.holdings(b.account)) == 1  # escrow holds one currency

    @invariant()
    def survives_save_and_load(self) -> None:
        assert Ledger.from_balances(self.ledger.balances()) == self.ledger


MIN_STEPS = 10_000


@pytest.mark.slow
def test_ledger_state_machine_runs_10000_random_operations() -> None:
    STEPS.clear()
    CODES.clear()
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=250,
            stateful_step_count=100,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,  # each run explores afresh; a failure prints its reproducing steps
        ),
    )
    # random ledger operations only: not the initial faucet, not the clock
    total = sum(n for k, n in STEPS.items() if not k.startswith(("faucet:", "tick:")))
    assert total >= MIN_STEPS, f"only {total} operations ran: {dict(STEPS)}"
    # invalid operations were exercised and failed cleanly, and valid ones happened too
    for op in ("mint", "escrow_order", "escrow_to_lease", "settle", "stake", "unstake", "slash"):
        assert STEPS[f"{op}:ok"] > 0, f"{op} never succeeded: {dict(STEPS)}"
        assert STEPS[f"{op}:fail"] > 0, f"{op} never failed: {dict(STEPS)}"
    assert STEPS["withdraw_unbonded:ok"] > 0 and STEPS["withdraw_unbonded:fail"] > 0
    seen = {k.split(":")[1] for k in CODES}
    for code in ("overdraft", "unknown_account", "currency_mismatch", "invalid_amount", "cooldown"):
        assert code in seen, f"no operation failed with {code}: {dict(CODES)}"
