"""The double-entry ledger: balances, and the operations of the market that move them.

Why double entry: every movement debits one account and credits another by the same amount,
so money cannot appear or vanish by a bug in one place; an auditor who replays the transfer
records gets the same balances (see :meth:`Ledger.apply`).

The state is nothing but non-zero balances ``(account, currency) → micros``. It is pure data:
no I/O, no clock (operations that depend on time take ``now`` in integer seconds), so the
market engine and the simulator run the same code, and a store saves it with
:meth:`Ledger.balances` and loads it with :meth:`Ledger.from_balances`.

Invariants, true after every operation and checked by :meth:`from_balances`:

* No balance is negative, except the ``mint`` account's: minting debits it, so its balance is
  exactly minus the total ever minted. That one exception is what keeps the books balanced.
* Per currency, all balances sum to zero. Hence the money in circulation (everything but
  ``mint`` and ``burn``) equals minted − burned, and changes only by :meth:`Ledger.mint` and
  burning (:meth:`Ledger.burn`, :meth:`Ledger.slash`).
* Nothing is ever credited to ``mint`` or debited from ``burn``.

Every operation is all-or-nothing: it computes its transfers, checks them all against a
scratch copy of the balances it touches, and only then writes. Any failure raises
:class:`~pasar.core.accounts.LedgerError` and leaves the ledger exactly as it was. Each
successful operation returns its transfers (the market persists and chains them).

Escrow accounts exist only while funded and hold one currency, so a missing one means an
unknown order or lease (``unknown_account``) and one in another currency is a
``currency_mismatch``; any other account with too little is an ``overdraft``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from fractions import Fraction

from pasar.core.accounts import (
    BURN,
    ESCROW_KINDS,
    MINT,
    RESERVE,
    TREASURY,
    AccountKind,
    Balance,
    LedgerAccount,
    LedgerError,
    Transfer,
    check_seconds,
)
from pasar.core.errors import PasarError
from pasar.core.fees import Charges, FeeSchedule, billed_cost
from pasar.core.money import Money

__all__ = [
    "BURN",
    "MINT",
    "RESERVE",
    "TREASURY",
    "AccountKind",
    "Balance",
    "Ledger",
    "LedgerAccount",
    "LedgerError",
    "Settlement",
    "Slash",
    "Transfer",
]

_Key = tuple[LedgerAccount, str]


@dataclass(frozen=True)
class Settlement(Charges):
    """The outcome of :meth:`Ledger.settle`: the division of the escrow (see
    :class:`~pasar.core.fees.Charges`) and the transfers that carried it out."""

    lease_id: str = ""
    billed_ms: int = 0
    transfers: tuple[Transfer, ...] = ()


@dataclass(frozen=True)
class Slash:
    """The outcome of :meth:`Ledger.slash` (or :meth:`Ledger.forfeit_bid_deposit`):
    ``slashed == reward + burned`` and ``slashed == from_stake + from_unbonding + from_deposit``
    (``from_deposit`` None: zero)."""

    provider: str
    slashed: Money
    from_stake: Money
    from_unbonding: Money
    reward: Money
    burned: Money
    transfers: tuple[Transfer, ...]
    from_deposit: Money | None = None


class Ledger:
    """Balances and the operations on them. Copy with :meth:`copy`; compare with ``==``."""

    def __init__(self) -> None:
        # account → currency → micros (never zero); and provider → its unbonding accounts,
        # so that the hot paths (escrow, settle, stake queries) never scan the whole ledger
        self._bal: dict[LedgerAccount, dict[str, int]] = {}
        self._unbonding: dict[str, set[LedgerAccount]] = {}
        # while :meth:`atomic` runs: the balance each touched key had before it
        self._journal: dict[_Key, int] | None = None

    # state in and out ------------------------------------------------------------------------

    @classmethod
    def from_balances(cls, balances: Iterable[Balance]) -> Ledger:
        """Load state saved by :meth:`balances`, refusing any that breaks the invariants
        (a duplicate row, a negative balance, money credited to mint, unbalanced books)."""
        ledger = cls()
        sums: dict[str, int] = {}
        seen: set[_Key] = set()
        for row in balances:
            if not isinstance(row, Balance):
                raise LedgerError("ledger state is a list of Balance rows", code="unbalanced")
            key = (row.account, row.amount.currency)
            if key in seen:
                raise LedgerError(
                    f"two balances for {row.account} in {row.amount.currency}", code="unbalanced"
                )
            micros = row.amount.micros
            if micros < 0 and row.account.kind is not AccountKind.MINT:
                raise LedgerError(f"{row.account} has a negative balance", code="unbalanced")
            if micros > 0 and row.account.kind is AccountKind.MINT:
                raise LedgerError("the mint account cannot hold money", code="unbalanced")
            seen.add(key)
            sums[row.amount.currency] = sums.get(row.amount.currency, 0) + micros
            if micros:
                ledger._set(row.account, row.amount.currency, micros)
        for currency, total in sorted(sums.items()):
            if total:
                raise LedgerError(
                    f"the {currency} books are off by {Money(total, currency)}", code="unbalanced"
                )
        return ledger

    def balances(self) -> list[Balance]:
        """Every non-zero balance, in a deterministic order."""
        return [
            Balance(acc, Money(self._bal[acc][cur], cur))
            for acc in sorted(self._bal, key=LedgerAccount.sort_key)
            for cur in sorted(self._bal[acc])
        ]

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Make several operations one: if the block raises, every balance it changed is put
        back. Each operation is already all-or-nothing; this extends that to a sequence (a
        lost lease is a settlement *and* a re-escrow) without copying the whole ledger, so its
        cost is the number of balances touched, not the number held. Nested blocks join the
        outermost one."""
        if self._journal is not None:
            yield
            return
        self._journal = {}
        try:
            yield
        except BaseException:
            journal, self._journal = self._journal, None
            for (account, currency), micros in journal.items():
                self._set(account, currency, micros)
            raise
        finally:
            self._journal = None

    def copy(self) -> Ledger:
        other = Ledger()
        other._bal = {acc: dict(held) for acc, held in self._bal.items()}
        other._unbonding = {p: set(accs) for p, accs in self._unbonding.items()}
        return other

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ledger) and self._bal == other._bal

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Ledger({len(self._bal)} accounts)"

    # queries ---------------------------------------------------------------------------------

    def balance(self, account: LedgerAccount, currency: str) -> Money:
        return Money(self._get(account, currency), currency)

    def holdings(self, account: LedgerAccount) -> list[Money]:
        """Everything ``account`` holds, one Money per currency (sorted)."""
        return sorted(
            (Money(m, c) for c, m in self._bal.get(account, {}).items()),
            key=lambda m: m.currency,
        )

    def currencies(self) -> list[str]:
        return sorted({c for held in self._bal.values() for c in held})

    def minted(self, currency: str) -> Money:
        return -self.balance(MINT, currency)

    def burned(self, currency: str) -> Money:
        return self.balance(BURN, currency)

    def circulating(self, currency: str) -> Money:
        """Money held by every account but mint and burn: always minted − burned."""
        total = sum(
            m
            for a, held in self._bal.items()
            for c, m in held.items()
            if c == currency and a.kind not in (AccountKind.MINT, AccountKind.BURN)
        )
        return Money(total, currency)

    def unbonding(self, provider: str, currency: str) -> list[tuple[int, Money]]:
        """``(release_at, amount)`` of the provider's stake leaving bond, soonest first."""
        return [
            (a.release_at or 0, Money(self._get(a, currency), currency))
            for a in self._unbonding_accounts(provider, currency)
        ]

    def slashable(self, provider: str, currency: str) -> Money:
        """Stake plus unbonding stake: the most :meth:`slash` can take."""
        total = self.balance(LedgerAccount.stake(provider), currency)
        for _, amount in self.unbonding(provider, currency):
            total += amount
        return total

    # replay ----------------------------------------------------------------------------------

    def apply(self, transfers: Sequence[Transfer]) -> None:
        """Replay transfer records (e.g. from the chain), all or nothing.

        The checks are those of the operations' own transfers: positive amounts, distinct
        accounts, no credit to mint, no debit from burn, no balance below zero but mint's.
        Whether a transfer was *authorised* is the chain's business, not the ledger's.
        """
        self._commit(list(transfers))

    # operations ------------------------------------------------------------------------------

    def mint(self, owner: str, amount: Money, memo: str = "mint") -> list[Transfer]:
        """Create money in ``owner``'s spendable account (the devnet faucet)."""
        return self._commit([Transfer(MINT, LedgerAccount.client(owner), _positive(amount), memo)])

    def burn(self, account: LedgerAccount, amount: Money, memo: str = "burn") -> list[Transfer]:
        """Destroy money held by ``account``."""
        return self._commit([Transfer(account, BURN, _positive(amount), memo)])

    def escrow_order(self, client: str, order_id: str, amount: Money) -> list[Transfer]:
        """Lock a client's funds for an order (``max_price_per_hour × max_duration``, plus
        the client-side fees: see :meth:`~pasar.core.fees.FeeSchedule.escrow_for`).

        Topping up an existing order escrow is allowed, in its own currency only."""
        escrow = LedgerAccount.order_escrow(order_id)
        return self._commit(
            [Transfer(LedgerAccount.client(client), escrow, amount, f"escrow order {order_id}")]
        )

    def refund_order(
        self, order_id: str, client: str, amount: Money | None = None
    ) -> list[Transfer]:
        """Return an order's escrow (all of it, or ``amount``) to its client.

        The ledger does not know which client placed the order; the market passes it."""
        escrow = LedgerAccount.order_escrow(order_id)
        amount = self._escrow_amount(escrow, amount)
        return self._commit(
            [Transfer(escrow, LedgerAccount.client(client), amount, f"refund order {order_id}")]
        )

    def escrow_to_lease(
        self, order_id: str, lease_id: str, amount: Money | None = None
    ) -> list[Transfer]:
        """Move an order's escrow (all of it, or ``amount``, e.g. one node's share of a
        cluster order) to a new lease. A lease is funded once: a second funding is refused."""
        escrow = LedgerAccount.order_escrow(order_id)
        lease = LedgerAccount.lease_escrow(lease_id)
        amount = self._escrow_amount(escrow, amount)
        if self.holdings(lease):
            raise LedgerError(
                f"lease {lease_id} is already funded", code="invalid_transfer", field="lease_id"
            )
        return self._commit(
            [Transfer(escrow, lease, amount, f"order {order_id} to lease {lease_id}")]
        )

    def settle(
        self,
        lease_id: str,
        *,
        client: str,
        provider: str,
        billed_ms: int,
        price_per_hour: Money,
        fees: FeeSchedule,
    ) -> Settlement:
        """Close a lease: bill ``billed_ms × price_per_hour / 3,600,000`` (rounded down,
        capped at the escrow), pay the provider's earnings account net of its fees, send
        fees to treasury and reserve, refund the rest of the escrow to the client.

        The lease escrow is emptied, so the lease is gone: settling it again is
        ``unknown_account``. Zero-amount parts produce no transfer.
        """
        lease = LedgerAccount.lease_escrow(lease_id)
        if not isinstance(price_per_hour, Money) or price_per_hour.is_negative():
            raise LedgerError(
                "the price must be non-negative Money",
                code="invalid_amount",
                field="price_per_hour",
            )
        if not isinstance(fees, FeeSchedule):
            raise LedgerError("fees must be a FeeSchedule", code="invalid_rate", field="fees")
        currency = price_per_hour.currency
        if fees.currency != currency:
            raise LedgerError(
                f"the fee schedule is for {fees.currency}, the price in {currency}",
                code="currency_mismatch",
                field="fees",
            )
        escrow = self._escrow_amount(lease, None, currency)
        try:
            cost = billed_cost(price_per_hour, billed_ms)
            charges = fees.charges(escrow, cost)
        except PasarError as exc:
            raise LedgerError(exc.message, code=exc.code, field=exc.field) from exc
        parts = [
            (LedgerAccount.earnings(provider), charges.provider_payout, f"lease {lease_id} payout"),
            (TREASURY, charges.treasury, f"lease {lease_id} fees"),
            (RESERVE, charges.reserve, f"lease {lease_id} fees to reserve"),
            (LedgerAccount.client(client), charges.refund, f"lease {lease_id} refund"),
        ]
        transfers = [Transfer(lease, acc, amt, memo) for acc, amt, memo in parts if amt]
        self._commit(transfers)
        return Settlement(
            **{f.name: getattr(charges, f.name) for f in fields(Charges)},
            lease_id=lease_id,
            billed_ms=billed_ms,
            transfers=tuple(transfers),
        )

    def move_up_to(
        self, source: LedgerAccount, dest: LedgerAccount, amount: Money, memo: str
    ) -> Money:
        """Move ``amount`` from ``source`` to ``dest``, or what ``source`` holds if less (a
        check fee from what is left of an escrow, a claw-back from earnings a provider may
        have withdrawn); returns what moved. Nothing moves for a zero amount."""
        take = min(_positive_or_zero(amount), self.balance(source, amount.currency))
        if take:
            self._commit([Transfer(source, dest, take, memo)])
        return take

    def post_bond(self, payer: str, challenge_id: str, amount: Money) -> list[Transfer]:
        """Lock a whistleblower's bond on its challenge (from its spendable balance)."""
        return self._commit(
            [
                Transfer(
                    LedgerAccount.client(payer),
                    LedgerAccount.bond(challenge_id),
                    _positive(amount),
                    f"bond on challenge {challenge_id}",
                )
            ]
        )

    def release_bond(self, challenge_id: str, to: LedgerAccount, memo: str) -> list[Transfer]:
        """Move a challenge's whole bond to ``to``: back to the whistleblower, or to whom a
        false claim wronged."""
        bond = LedgerAccount.bond(challenge_id)
        held = self.holdings(bond)
        return self._commit([Transfer(bond, to, amount, memo) for amount in held if amount])

    def withdraw_earnings(self, owner: str, amount: Money) -> list[Transfer]:
        """Move earnings to the owner's spendable account (to stake them, or pay with them)."""
        return self._commit(
            [
                Transfer(
                    LedgerAccount.earnings(owner),
                    LedgerAccount.client(owner),
                    _positive(amount),
                    "withdraw earnings",
                )
            ]
        )

    def stake(self, provider: str, amount: Money) -> list[Transfer]:
        """Bond a provider's spendable funds as stake."""
        return self._commit(
            [
                Transfer(
                    LedgerAccount.client(provider),
                    LedgerAccount.stake(provider),
                    _positive(amount),
                    "stake",
                )
            ]
        )

    def unstake(self, provider: str, amount: Money, *, now: int, cooldown: int) -> list[Transfer]:
        """Start unbonding: the amount leaves stake now but stays slashable, and becomes
        withdrawable at ``now + cooldown`` (seconds)."""
        release_at = check_seconds(now, "now") + check_seconds(cooldown, "cooldown")
        return self._commit(
            [
                Transfer(
                    LedgerAccount.stake(provider),
                    LedgerAccount.unbonding(provider, release_at),
                    _positive(amount),
                    "unstake",
                )
            ]
        )

    def withdraw_unbonded(self, provider: str, *, now: int) -> list[Transfer]:
        """Return every unbonding amount whose cooldown has ended (``release_at <= now``),
        in every currency, to the provider's spendable account.

        Refused with ``cooldown`` when something is unbonding but none of it is free yet,
        and with ``unknown_account`` when nothing is unbonding at all."""
        check_seconds(now, "now")
        pending = sorted(
            ((a, c) for a in self._unbonding.get(provider, ()) for c in self._bal[a]),
            key=lambda k: (k[0].sort_key(), k[1]),
        )
        if not pending:
            raise LedgerError(
                f"{provider} has no stake unbonding", code="unknown_account", field="provider"
            )
        free = [(a, c) for a, c in pending if (a.release_at or 0) <= now]
        if not free:
            first = min(a.release_at or 0 for a, _ in pending)
            raise LedgerError(
                f"stake is still cooling down until {first} (now {now})",
                code="cooldown",
                field="now",
                hint=f"withdraw at or after {first}",
            )
        return self._commit(
            [
                Transfer(
                    a,
                    LedgerAccount.client(provider),
                    Money(self._get(a, c), c),
                    "withdraw unbonded",
                )
                for a, c in free
            ]
        )

    def lock_bid_deposit(self, bidder: str, order_id: str, amount: Money) -> list[Transfer]:
        """Hold a bidder's deposit for an order's auction (``overdraft`` when it cannot pay)."""
        return self._commit(
            [
                Transfer(
                    LedgerAccount.client(bidder),
                    LedgerAccount.bid_deposit(order_id, bidder),
                    _positive(amount),
                    f"bid deposit {order_id}",
                )
            ]
        )

    def return_bid_deposit(self, bidder: str, order_id: str) -> list[Transfer]:
        """Give a held bid deposit back to the bidder's spendable account, all of it (every
        currency); nothing to return is no transfer."""
        held = LedgerAccount.bid_deposit(order_id, bidder)
        return self._commit(
            [
                Transfer(held, LedgerAccount.client(bidder), m, f"return bid deposit {order_id}")
                for m in self.holdings(held)
            ]
        )

    def forfeit_bid_deposit(
        self, bidder: str, order_id: str, *, reward_to: str, reward_rate: Fraction
    ) -> Slash | None:
        """Slash a held bid deposit (its winner lost the lease): ``reward_rate`` of it
        (rounded down) to ``reward_to``'s earnings, the rest burned, with the memos of
        :meth:`slash`. None when no deposit is held."""
        held = LedgerAccount.bid_deposit(order_id, bidder)
        amounts = self.holdings(held)
        if not amounts:
            return None
        if reward_to == bidder:
            raise LedgerError(
                "a provider cannot be rewarded for its own slash",
                code="invalid_transfer",
                field="reward_to",
            )
        amount = amounts[0]  # a deposit is locked in the preset's one currency
        reward, burned = amount.split(Fraction(reward_rate))
        memo = f"(bid deposit {order_id})"
        transfers = [
            Transfer(held, acc, m, f"slash {bidder}: {what} {memo}")
            for acc, m, what in (
                (LedgerAccount.earnings(reward_to), reward, "reward"),
                (BURN, burned, "burn"),
            )
            if m
        ]
        self._commit(transfers)
        zero = Money.zero(amount.currency)
        return Slash(bidder, amount, zero, zero, reward, burned, tuple(transfers), amount)

    def slash(
        self, provider: str, amount: Money, *, reward_to: str, reward_rate: Fraction
    ) -> Slash:
        """Take ``amount`` of a provider's stake for proven fraud: ``reward_rate`` of it
        (rounded down) goes to the prover's earnings, the rest is burned.

        Stake is taken first, then unbonding stake, latest release first: the cooldown
        exists so that leaving stake does not escape a slash, and the most recently unbonded
        money was at stake most recently. Slashing more than :meth:`slashable` is an
        ``overdraft``; the market decides whether to slash less.
        """
        amount = _positive(amount)
        if (
            isinstance(reward_rate, bool)
            or not isinstance(reward_rate, int | Fraction)
            or not 0 <= reward_rate <= 1
        ):
            raise LedgerError(
                f"reward_rate must be a Fraction in [0, 1], got {reward_rate!r}",
                code="invalid_rate",
                field="reward_rate",
            )
        if reward_to == provider:
            raise LedgerError(
                "a provider cannot be rewarded for its own slash",
                code="invalid_transfer",
                field="reward_to",
            )
        prover = LedgerAccount.earnings(reward_to)
        currency = amount.currency
        available = self.slashable(provider, currency)
        if amount > available:
            raise LedgerError(
                f"cannot slash {amount}: {provider} has {available} at stake",
                code="overdraft",
                field="amount",
            )
        sources = [LedgerAccount.stake(provider)]
        sources += reversed(self._unbonding_accounts(provider, currency))
        reward, burned = amount.split(Fraction(reward_rate))
        transfers: list[Transfer] = []
        left, reward_left, from_stake = amount.micros, reward.micros, 0
        for source in sources:
            take = min(left, self._get(source, currency))
            if not take:
                continue
            to_prover = min(take, reward_left)
            if to_prover:
                transfers.append(
                    Transfer(
                        source, prover, Money(to_prover, currency), f"slash {provider}: reward"
                    )
                )
            if take > to_prover:
                transfers.append(
                    Transfer(
                        source, BURN, Money(take - to_prover, currency), f"slash {provider}: burn"
                    )
                )
            if source.kind is AccountKind.STAKE:
                from_stake = take
            left -= take
            reward_left -= to_prover
            if not left:
                break
        self._commit(transfers)
        return Slash(
            provider,
            amount,
            Money(from_stake, currency),
            Money(amount.micros - from_stake, currency),
            reward,
            burned,
            tuple(transfers),
        )

    # internals -------------------------------------------------------------------------------

    def _get(self, account: LedgerAccount, currency: str) -> int:
        return self._bal.get(account, {}).get(currency, 0)

    def _set(self, account: LedgerAccount, currency: str, micros: int) -> None:
        """Write one balance, dropping zeros so that equal states are equal dicts."""
        if self._journal is not None and (account, currency) not in self._journal:
            self._journal[(account, currency)] = self._get(account, currency)
        held = self._bal.setdefault(account, {})
        if micros:
            held[currency] = micros
        else:
            held.pop(currency, None)
        if account.kind is AccountKind.STAKE_UNBONDING:
            accounts = self._unbonding.setdefault(account.owner, set())
            if held:
                accounts.add(account)
            else:
                accounts.discard(account)
            if not accounts:
                del self._unbonding[account.owner]
        if not held:
            del self._bal[account]

    def _unbonding_accounts(self, provider: str, currency: str) -> list[LedgerAccount]:
        accounts = [a for a in self._unbonding.get(provider, ()) if currency in self._bal[a]]
        return sorted(accounts, key=LedgerAccount.sort_key)

    def _escrow_amount(
        self, escrow: LedgerAccount, amount: Money | None, currency: str | None = None
    ) -> Money:
        """The amount to take from an escrow: ``amount`` if given, else all of it."""
        held = self.holdings(escrow)
        if not held:
            raise LedgerError(
                f"no such {escrow.kind.value.replace('_', ' ')}: {escrow.owner}",
                code="unknown_account",
            )
        if amount is not None:
            currency = _positive(amount).currency
        if currency is not None and currency not in [m.currency for m in held]:
            raise LedgerError(
                f"{escrow} holds {held[0].currency}, not {currency}", code="currency_mismatch"
            )
        if amount is not None:
            return amount
        return self.balance(escrow, currency) if currency is not None else held[0]

    def _commit(self, transfers: list[Transfer]) -> list[Transfer]:
        """Check every transfer against a scratch copy of the touched balances, in order,
        then write them all. Nothing is written if any check fails."""
        scratch: dict[_Key, int] = {}
        for t in transfers:
            _check_transfer(t)
            currency = t.amount.currency
            dkey, ckey = (t.debit, currency), (t.credit, currency)
            before = scratch.get(dkey, self._get(*dkey))
            after = before - t.amount.micros
            if after < 0 and t.debit.kind is not AccountKind.MINT:
                raise self._shortfall(t, before)
            scratch[dkey] = after
            scratch[ckey] = scratch.get(ckey, self._get(*ckey)) + t.amount.micros
        for account in {a for a, _ in scratch if a.kind in ESCROW_KINDS}:
            self._check_one_currency(account, scratch)
        for (account, currency), micros in scratch.items():
            self._set(account, currency, micros)
        return transfers

    def _check_one_currency(self, escrow: LedgerAccount, scratch: dict[_Key, int]) -> None:
        """An escrow pays for one order or lease at one price, so it holds one currency."""
        held = dict(self._bal.get(escrow, {}))
        held.update({c: m for (a, c), m in scratch.items() if a == escrow})
        currencies = sorted(c for c, m in held.items() if m)
        if len(currencies) > 1:
            raise LedgerError(
                f"{escrow} would hold {' and '.join(currencies)}; an escrow holds one currency",
                code="currency_mismatch",
            )

    def _shortfall(self, t: Transfer, before: int) -> LedgerError:
        currency = t.amount.currency
        if t.debit.kind in ESCROW_KINDS or t.debit.kind is AccountKind.STAKE_UNBONDING:
            held = self.holdings(t.debit)
            if not held and not before:
                return LedgerError(f"no such account: {t.debit}", code="unknown_account")
            if held and all(m.currency != currency for m in held):
                return LedgerError(
                    f"{t.debit} holds {held[0].currency}, not {currency}", code="currency_mismatch"
                )
        return LedgerError(
            f"{t.debit} has {Money(before, currency)}, cannot pay {t.amount}",
            code="overdraft",
            field="amount",
        )


def _positive_or_zero(amount: object) -> Money:
    if not isinstance(amount, Money) or amount.is_negative():
        raise LedgerError(
            f"amount must be non-negative Money, got {amount!r}",
            code="invalid_amount",
            field="amount",
        )
    return amount


def _positive(amount: object) -> Money:
    if not isinstance(amount, Money):
        raise LedgerError(
            f"an amount must be Money, got {type(amount).__name__}",
            code="invalid_amount",
            field="amount",
        )
    if amount.micros <= 0:
        raise LedgerError(
            f"an amount must be positive, got {amount}", code="invalid_amount", field="amount"
        )
    return amount


def _check_transfer(t: object) -> None:
    if (
        not isinstance(t, Transfer)
        or not isinstance(t.debit, LedgerAccount)
        or not isinstance(t.credit, LedgerAccount)
        or not isinstance(t.memo, str)
    ):
        raise LedgerError("not a well-formed transfer", code="invalid_transfer")
    _positive(t.amount)
    if t.debit == t.credit:
        raise LedgerError(f"a transfer from {t.debit} to itself", code="invalid_transfer")
    if t.credit.kind is AccountKind.MINT:
        raise LedgerError("nothing is credited to the mint", code="invalid_transfer")
    if t.debit.kind is AccountKind.BURN:
        raise LedgerError("burned money cannot be spent", code="invalid_transfer")
