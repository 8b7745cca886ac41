"""Whistleblowers: a staked verifier challenges a settled result within the preset's window.

Why: ``replicate`` re-runs only a share of the results; a cheat that got through the draw is
still caught if anybody may re-check a settled result for a while and is paid to do so. This
is Gensyn's whistleblower (and Truebit's verification game in its simplest form): post a bond
and a claim within ``challenge_window_s`` of the result's settlement; the market
then gives the lease to ``checkers`` (2N+1) verifiers — never the whistleblower, the provider,
the client, nor whoever checked it before — and their majority decides:

* **upheld** (the result is wrong): the checkers are paid their fee from the provider's stake
  (the cheat pays for the checks that caught it, as far as its stake goes), what it earned for
  the lease goes back to the client (as far as it has not been withdrawn), the provider is
  slashed (``slash_rate`` of what stake is left; ``slash_reward_rate`` of that rewards the
  whistleblower), and the bond is returned;
* **rejected** (the result stands): the bond pays the checkers' fees and the rest goes to the
  provider it wrongly accused; the claim is lost.

Checkers in the minority are slashed either way. The checks themselves are assigned, answered
and expired by :mod:`pasar.core.check_handlers`; this module opens challenges and decides them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pasar.core.accounts import LedgerAccount
from pasar.core.market_records import (
    Applied,
    ChallengeRecord,
    CheckRecord,
    LeaseRecord,
    Tx,
    fail,
)
from pasar.core.money import Money
from pasar.core.reputation import Event
from pasar.core.timelock import MS
from pasar.core.tx_parsing import parse_amount
from pasar.core.verifiers import staked_verifier

if TYPE_CHECKING:
    from pasar.core.state import MarketState

MAX_CLAIM_CHARS = 500


def check_fee(state: MarketState, lease: LeaseRecord) -> Money:
    """What a verifier earns for one check of ``lease``: the preset's ``check_fee_rate`` of
    what its work cost (the same fee a ``replicate`` check earns)."""
    return state.work_cost(lease).scale(state.preset.verification.check_fee_rate)


def challenge_window_ends(state: MarketState, lease: LeaseRecord) -> int | None:
    """When challenges of ``lease``'s result close (ms), or None when none may be opened."""
    window = state.preset.verification.challenge_window_s
    if window <= 0 or lease.status != "settled" or lease.settled_at is None:
        return None
    return lease.settled_at + window * MS


def on_challenge_open(state: MarketState, tx: Tx) -> Applied:
    rules = state.preset.verification
    if rules.challenge_window_s <= 0:
        raise fail(
            f"the {state.preset.name} network takes no challenges of settled results",
            code="challenges_off",
            status=409,
            hint="a preset with verification.challenge_window_s > 0 does (gensyn)",
        )
    need = rules.verifier_stake
    if not staked_verifier(state, tx.signer):
        raise fail(
            "only a registered verifier with the network's verifier stake may challenge",
            code="not_a_verifier",
            status=403,
            hint=f"pasar verifier start --stake {need}" if need else "pasar verifier start",
        )
    claim = tx.body.get("claim")
    if not isinstance(claim, str) or not 0 < len(claim.strip()) <= MAX_CLAIM_CHARS:
        raise fail(
            f"claim must say what is wrong, in 1 to {MAX_CLAIM_CHARS} characters",
            code="invalid_claim",
            field="claim",
        )
    if "bond" not in tx.body:
        raise fail(
            "a challenge posts a bond",
            code="missing_bond",
            field="bond",
            hint=f"bond: {rules.whistle_bond or Money.zero(state.preset.currency)} or more",
        )
    bond = parse_amount(tx.body.get("bond"), "bond", state.preset.currency)
    least = rules.whistle_bond or Money.zero(state.preset.currency)
    if bond.currency != least.currency or bond < least or not bond:
        raise fail(
            f"the bond must be at least {least} (and above zero)",
            code="bond_too_small",
            status=409,
            field="bond",
        )
    lease = state._lease(tx.body.get("lease_id"))
    if tx.signer in (lease.provider, lease.client):
        raise fail(
            "the lease's provider and client may not challenge it",
            code="wrong_signer",
            status=403,
        )
    ends = challenge_window_ends(state, lease)
    if ends is None:
        raise fail(
            f"lease {lease.id} is {lease.status}: only a settled result can be challenged",
            code="not_settled",
            status=409,
        )
    if tx.at > ends:
        raise fail(
            f"the challenge window of lease {lease.id} closed at {ends} (ms)",
            code="window_closed",
            status=409,
        )
    if any(c.lease_id == lease.id and c.status == "open" for c in state.challenges.values()):
        raise fail(f"lease {lease.id} is already challenged", code="already_challenged",
                   status=409)  # fmt: skip
    challenge_id = (
        f"{lease.id}.challenge-{sum(c.lease_id == lease.id for c in state.challenges.values())}"
    )
    state.ledger.post_bond(tx.signer, challenge_id, bond)
    challenge = ChallengeRecord(
        id=challenge_id,
        lease_id=lease.id,
        order_id=lease.order_id,
        whistleblower=tx.signer,
        claim=claim.strip(),
        bond=bond,
        opened_at=tx.at,
    )
    state._put(state.challenges, challenge_id, challenge)
    record = state._order(lease.order_id)
    record.note = f"shard {lease.shard}: its result is challenged: {challenge.claim}"
    return Applied(
        tx.type,
        {"challenge_id": challenge_id, "lease_id": lease.id, "bond": bond.to_json()},
        providers={lease.provider},
        orders={lease.order_id},
    )


def challenge_checkers_excluded(state: MarketState, challenge: ChallengeRecord) -> set[str]:
    """Who may not check a challenge: the whistleblower, and whoever checked the lease before."""
    lease = state.leases[challenge.lease_id]
    return {challenge.whistleblower} | {state.checks[c].verifier for c in lease.checks}


def decide_challenge(state: MarketState, challenge: ChallengeRecord) -> dict[str, object]:
    """Once a majority of the challenge's checkers agree, carry the decision out."""
    from pasar.core.check_handlers import slash  # one slashing rule for both kinds of check

    rules = state.preset.verification
    done = [state.checks[c] for c in challenge.checks if state.checks[c].status == "done"]
    quorum = rules.checkers // 2 + 1
    agree = [c for c in done if c.agrees]
    disagree = [c for c in done if not c.agrees]
    if len(agree) < quorum and len(disagree) < quorum:
        return {"decided": False}
    for c in challenge.checks:
        if state.checks[c].status == "assigned":
            state._changing(state.checks[c]).status = "cancelled"
    lease = state._lease(challenge.lease_id)
    record = state._order(lease.order_id)
    fee = check_fee(state, lease)
    upheld = len(disagree) >= quorum
    majority, minority = (disagree, agree) if upheld else (agree, disagree)
    slashed: list[dict[str, str]] = []
    ledger = state.ledger
    if upheld:
        challenge.status = "upheld"
        earnings = LedgerAccount.earnings(lease.provider)
        _pay_checkers(state, LedgerAccount.stake(lease.provider), majority, fee)
        payout = lease.charges.provider_payout if lease.charges is not None else None
        if payout:
            ledger.move_up_to(earnings, LedgerAccount.client(lease.client), payout,
                              f"claw-back of lease {lease.id}")  # fmt: skip
        slashed += slash(state, [lease.provider], challenge.whistleblower, lease,
                         "a settled result proven wrong")  # fmt: skip
        slashed += slash(state, _verifiers(minority), challenge.whistleblower, lease,
                         "siding with a wrong result")  # fmt: skip
        ledger.release_bond(challenge.id, LedgerAccount.client(challenge.whistleblower),
                            f"bond on {challenge.id} returned")  # fmt: skip
        provider = state._provider(lease.provider)
        provider.reputation = provider.reputation.apply(Event.FAILED, state.preset.reputation)
        record.note = (
            f"shard {lease.shard}: a whistleblower's challenge was upheld by {len(majority)} "
            "checker(s); the provider was slashed and its pay for the shard clawed back"
        )
    else:
        challenge.status = "rejected"
        _pay_checkers(state, LedgerAccount.bond(challenge.id), majority, fee)
        slashed += slash(state, _verifiers(minority), lease.provider, lease, "a wrong verdict")
        ledger.release_bond(challenge.id, LedgerAccount.earnings(lease.provider),
                            f"bond on {challenge.id} lost to the accused provider")  # fmt: skip
        record.note = f"shard {lease.shard}: a challenge of its result was rejected"
    return {"decided": True, "challenge": challenge.status, "slashed": slashed}


def _verifiers(checks: list[CheckRecord]) -> list[str]:
    return [c.verifier for c in checks]


def _pay_checkers(
    state: MarketState, source: LedgerAccount, checks: list[CheckRecord], fee: Money
) -> None:
    for check in checks:
        state.ledger.move_up_to(source, LedgerAccount.earnings(check.verifier), fee,
                                f"check {check.id} fee")  # fmt: skip
