"""Ledger vocabulary: account identifiers, transfer records, balances, and the ledger's error.

These are kept apart from :mod:`pasar.core.ledger` because the store, the chain and the audit
tool all need to read and write them without pulling in the ledger's operations.

An account is ``(kind, owner)``: the kind says what the money is *for* (a client's spendable
balance, an order's escrow, a provider's stake...), the owner says *whose* it is (an account id,
i.e. a public key, or an order or lease id). The network's own accounts (treasury, reserve,
mint, burn) have no owner. Unbonding stake is additionally keyed by its release time, so that
the whole ledger state is nothing but balances and a transfer record says by itself when the
money it moved into unbonding becomes free: replaying transfers reproduces the state exactly.

Wire forms (used by the store and the chain): ``"client:<owner>"``, ``"treasury"``,
``"stake_unbonding:<owner>@<release_at>"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from pasar.core.errors import PasarError
from pasar.core.money import Money, MoneyError


class LedgerError(PasarError):
    """A ledger operation that cannot be done; raising it guarantees nothing was changed.

    Codes: ``overdraft``, ``unknown_account``, ``currency_mismatch``, ``invalid_amount``,
    ``invalid_account``, ``invalid_transfer``, ``invalid_time``, ``invalid_rate``,
    ``cooldown``, ``unbalanced``.
    """

    _STATUS: ClassVar[dict[str, int]] = {"overdraft": 402, "unknown_account": 404, "cooldown": 409}

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        field: str | None = None,
        hint: str | None = None,
        status: int | None = None,
    ) -> None:
        status = status if status is not None else self._STATUS.get(code)
        super().__init__(message, code=code, field=field, hint=hint, status=status)


class AccountKind(StrEnum):
    """What an account's money is for. The value is the wire prefix."""

    CLIENT = "client"  # an actor's spendable balance (clients, providers and verifiers alike)
    ORDER_ESCROW = "order_escrow"  # escrowed for an open order, owner = order id
    LEASE_ESCROW = "lease_escrow"  # escrowed for a running lease, owner = lease id
    EARNINGS = "earnings"  # paid for work (compute, proofs of fraud); withdrawable
    STAKE = "stake"  # bonded by a provider; slashable
    STAKE_UNBONDING = "stake_unbonding"  # leaving stake; slashable until release_at
    TREASURY = "treasury"  # the network's fee income
    RESERVE = "reserve"  # the network's insurance/reserve share of fees
    MINT = "mint"  # the only source of new money; its balance is minus the total minted
    BURN = "burn"  # the sink for destroyed money; its balance is the total burned
    BID_DEPOSIT = "bid_deposit"  # held for an auction, owner = "<order id>/<bidder>" (akash)
    BOND = "bond"  # a whistleblower's bond on its challenge, owner = challenge id


SYSTEM_KINDS = frozenset(
    {AccountKind.TREASURY, AccountKind.RESERVE, AccountKind.MINT, AccountKind.BURN}
)
"""Kinds with exactly one account each, owned by the network (owner ``""``)."""

ESCROW_KINDS = frozenset({AccountKind.ORDER_ESCROW, AccountKind.LEASE_ESCROW})
"""Kinds that exist only while funded, in one currency: a missing one is an unknown order/lease."""


@dataclass(frozen=True)
class LedgerAccount:
    """One account: ``kind``, ``owner`` (empty for system accounts), and ``release_at``
    (integer seconds; only, and always, for unbonding stake)."""

    kind: AccountKind
    owner: str = ""
    release_at: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, AccountKind):
            try:
                object.__setattr__(self, "kind", AccountKind(self.kind))
            except ValueError as exc:
                raise LedgerError(
                    f"unknown account kind {self.kind!r}", code="invalid_account"
                ) from exc
        if not isinstance(self.owner, str):
            raise LedgerError(
                f"account owner must be a string, got {type(self.owner).__name__}",
                code="invalid_account",
            )
        if self.kind in SYSTEM_KINDS:
            if self.owner:
                raise LedgerError(f"the {self.kind} account has no owner", code="invalid_account")
        elif not self.owner or self.owner != self.owner.strip():
            raise LedgerError(
                f"a {self.kind} account needs an owner id without blanks", code="invalid_account"
            )
        if self.kind is AccountKind.STAKE_UNBONDING:
            check_seconds(self.release_at, "release_at")
        elif self.release_at is not None:
            raise LedgerError("only unbonding stake has a release time", code="invalid_account")

    # constructors ----------------------------------------------------------------------------

    @classmethod
    def client(cls, owner: str) -> LedgerAccount:
        return cls(AccountKind.CLIENT, owner)

    @classmethod
    def order_escrow(cls, order_id: str) -> LedgerAccount:
        return cls(AccountKind.ORDER_ESCROW, order_id)

    @classmethod
    def lease_escrow(cls, lease_id: str) -> LedgerAccount:
        return cls(AccountKind.LEASE_ESCROW, lease_id)

    @classmethod
    def earnings(cls, owner: str) -> LedgerAccount:
        return cls(AccountKind.EARNINGS, owner)

    @classmethod
    def stake(cls, provider: str) -> LedgerAccount:
        return cls(AccountKind.STAKE, provider)

    @classmethod
    def bid_deposit(cls, order_id: str, bidder: str) -> LedgerAccount:
        return cls(AccountKind.BID_DEPOSIT, f"{order_id}/{bidder}")

    @classmethod
    def bond(cls, challenge_id: str) -> LedgerAccount:
        return cls(AccountKind.BOND, challenge_id)

    @classmethod
    def unbonding(cls, provider: str, release_at: int) -> LedgerAccount:
        return cls(AccountKind.STAKE_UNBONDING, provider, release_at)

    # wire form -------------------------------------------------------------------------------

    def __str__(self) -> str:
        if self.kind in SYSTEM_KINDS:
            return self.kind.value
        if self.kind is AccountKind.STAKE_UNBONDING:
            return f"{self.kind.value}:{self.owner}@{self.release_at}"
        return f"{self.kind.value}:{self.owner}"

    def __repr__(self) -> str:
        return f"LedgerAccount({str(self)!r})"

    @classmethod
    def parse(cls, text: object) -> LedgerAccount:
        """Read the wire form written by ``str()``."""
        if not isinstance(text, str):
            raise LedgerError(
                f"an account id is a string, got {type(text).__name__}", code="invalid_account"
            )
        kind, sep, owner = text.partition(":")
        if kind not in _KIND_VALUES:
            raise LedgerError(f"unknown account kind in {text!r}", code="invalid_account")
        if not sep:
            return cls(AccountKind(kind))
        if kind == AccountKind.STAKE_UNBONDING:
            owner, at, when = owner.rpartition("@")
            if not at or not when.isdigit():
                raise LedgerError(f"{text!r} lacks its release time", code="invalid_account")
            return cls(AccountKind(kind), owner, int(when))
        return cls(AccountKind(kind), owner)

    def sort_key(self) -> tuple[str, str, int]:
        """A total order, so that listings and transfer batches are deterministic."""
        return (self.kind.value, self.owner, -1 if self.release_at is None else self.release_at)


_KIND_VALUES = frozenset(k.value for k in AccountKind)

TREASURY = LedgerAccount(AccountKind.TREASURY)
RESERVE = LedgerAccount(AccountKind.RESERVE)
MINT = LedgerAccount(AccountKind.MINT)
BURN = LedgerAccount(AccountKind.BURN)


def check_seconds(value: object, field: str) -> int:
    """A point in time or a duration, in whole seconds: a non-negative int, never a float."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LedgerError(
            f"{field} must be a non-negative integer number of seconds, got {value!r}",
            code="invalid_time",
            field=field,
        )
    return value


@dataclass(frozen=True)
class Transfer:
    """One double-entry movement: ``amount`` leaves ``debit`` and reaches ``credit``.

    Every ledger operation is a list of these; the market persists and chains them, and
    :meth:`pasar.core.ledger.Ledger.apply` replays them for audit.
    """

    debit: LedgerAccount
    credit: LedgerAccount
    amount: Money
    memo: str = ""

    def to_dict(self) -> dict[str, str]:
        """The wire form: plain strings, read back exactly by :meth:`from_dict`."""
        return {
            "debit": str(self.debit),
            "credit": str(self.credit),
            "amount": self.amount.to_json(),
            "memo": self.memo,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Transfer:
        if not isinstance(data, dict) or set(data) - {"debit", "credit", "amount", "memo"}:
            raise LedgerError(
                "a transfer is {debit, credit, amount, memo}", code="invalid_transfer"
            )
        try:
            amount = Money.parse(data.get("amount"), field="amount")
        except MoneyError as exc:
            raise LedgerError(exc.message, code="invalid_amount", field="amount") from exc
        memo = data.get("memo", "")
        if not isinstance(memo, str):
            raise LedgerError("a transfer memo is a string", code="invalid_transfer", field="memo")
        return cls(
            LedgerAccount.parse(data.get("debit")),
            LedgerAccount.parse(data.get("credit")),
            amount,
            memo,
        )


@dataclass(frozen=True)
class Balance:
    """One row of ledger state: what ``account`` holds in ``amount.currency``.

    This is the shape a store saves and loads (``str(account)``, currency, micros).
    """

    account: LedgerAccount
    amount: Money
