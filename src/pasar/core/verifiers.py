"""Who counts as a verifier the network trusts with checks, challenges and reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pasar.core.state import MarketState


def staked_verifier(state: MarketState, account: str) -> bool:
    """A registered verifier holding at least the preset's ``verifier_stake`` (so that a
    wrong verdict or a false claim has something to slash). Availability is not asked: a
    verifier that missed a check may still read and challenge, only not be given checks."""
    if account not in state.verifiers:
        return False
    need = state.preset.verification.verifier_stake
    return need is None or state.stake_of(account) >= need
