"""Every slash a provider suffered, and why: what ``pasar provider status`` shows.

Why a log in the state and not a look at the ledger: the ledger keeps balances only (a slash
leaves nothing but a smaller stake and a bigger burn), and the market persists transactions,
not transfers. A slash happens inside a transaction's handler (a verdict, a lost lease's bid
deposit), so recording it there makes the log a pure function of the transaction log, like
the rest of the state: a restart or an audit replays it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pasar.core.money import Money

if TYPE_CHECKING:
    from pasar.core.ledger import Slash
    from pasar.core.state import MarketState


@dataclass(frozen=True)
class SlashEntry:
    """One slash: when (market ms), how much, who got what, and why."""

    at: int
    amount: Money
    reward: Money
    burned: Money
    reason: str
    source: str  # "stake" | "bid_deposit"

    def to_json(self) -> dict[str, str | int]:
        return {
            "at": self.at,
            "amount": self.amount.to_json(),
            "reward": self.reward.to_json(),
            "burned": self.burned.to_json(),
            "reason": self.reason,
            "source": self.source,
        }


def record_slash(state: MarketState, slash: Slash, *, at: int, reason: str) -> None:
    """Add ``slash`` to its provider's log (undone with the transaction if it fails: the list
    is replaced, never changed in place, and its key journaled)."""
    source = "bid_deposit" if slash.from_deposit else "stake"
    entry = SlashEntry(at, slash.slashed, slash.reward, slash.burned, reason, source)
    state._changing_key(state.slashes, slash.provider)
    state.slashes[slash.provider] = [*state.slashes.get(slash.provider, ()), entry]


def slashed_total(entries: list[SlashEntry], currency: str) -> Money:
    return sum((e.amount for e in entries if e.amount.currency == currency), Money.zero(currency))
