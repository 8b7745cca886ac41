"""Verifiers and their checks: registration, the market's draw, assignment, verdicts, expiry.

The handlers of :class:`~pasar.core.state.MarketState` for the transactions of a checked
verification policy (:class:`~pasar.core.verify.base.CheckedPolicy`, today ``replicate``):

* ``verifier.register`` (a verifier) — joins the market's checkers (stake with ``stake``);
* ``check.draw`` (the market) — its signature over the held receipt decides, with the policy's
  chance, whether the result is re-run; if not, the lease is paid at once;
* ``check.assign`` (the market) — gives a check to a verifier picked by the recorded seed among
  those allowed (:func:`eligible_verifiers`);
* ``check.verdict`` (the assigned verifier) — its result's root (or, for a policy whose checks
  compare a sample, ``pol``, its ``matches``); the policy's tally decides, and
  the decision is carried out here: the provider paid or refunded and re-queued, check fees
  paid from the lease's escrow to the majority, the wrong side slashed;
* ``check.expire`` (the market) — a verifier missed its deadline: the check goes to another.

Pure like every handler: time is ``tx.at``, randomness the seed or signature in the body.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pasar.core.accounts import LedgerAccount
from pasar.core.challenge_handlers import challenge_checkers_excluded, decide_challenge
from pasar.core.disputes import bisecting, live_dispute
from pasar.core.lease_handlers import carry_out, compared_root, signed_outputs
from pasar.core.market_records import (
    Applied,
    ChallengeRecord,
    CheckRecord,
    LeaseRecord,
    OrderRecord,
    Tx,
    VerifierRecord,
    fail,
    not_found,
)
from pasar.core.slash_log import record_slash
from pasar.core.timelock import MS
from pasar.core.verifiers import staked_verifier
from pasar.core.verify.base import CheckedPolicy, Outcome
from pasar.core.verify.pol import PolPolicy, check_tolerance_verdict
from pasar.core.verify.replicate import draw_message

if TYPE_CHECKING:
    from pasar.core.state import MarketState

MAX_SEED = 1 << 63
ACTIVE_CHECK = frozenset({"assigned", "done"})


# -- reads (the engine and the API use them too) ---------------------------------------------------


def checked_policy(state: MarketState, record: OrderRecord) -> CheckedPolicy | None:
    """The order's policy when verifiers check it, else None."""
    policy = state.preset.verification_policy(record.verification)
    return policy if isinstance(policy, CheckedPolicy) else None


def eligible_verifiers(
    state: MarketState,
    lease: LeaseRecord,
    exclude: frozenset[str] | set[str] = frozenset(),
    *,
    checkers_too: bool = False,
) -> list[str]:
    """Who may check ``lease``, in a fixed order (the seed picks among them): registered and
    available, staked at least the preset's ``verifier_stake``, not the order's client, not a
    provider of any of the order's leases (a verifier never checks a job it ran), not already
    checking this lease (unless ``checkers_too``: a dispute's referee may be one), and not of
    the provider's operator when both declare one."""
    record = state.orders[lease.order_id]
    ran = {state.leases[x].provider for x in record.leases}
    checking = set() if checkers_too else {state.checks[c].verifier for c in lease.checks}
    already = checking | set(exclude)
    provider = state.providers.get(lease.provider)
    operator = provider.attributes.get("operator") if provider is not None else None
    out: list[str] = []
    for verifier in sorted(state.verifiers):
        v = state.verifiers[verifier]
        if not v.available or verifier in ran or verifier in already or verifier == record.client:
            continue
        if operator is not None and v.operator == operator:
            continue
        if not staked_verifier(state, verifier):
            continue
        out.append(verifier)
    return out


def active_checks(state: MarketState, lease: LeaseRecord) -> list[CheckRecord]:
    return [state.checks[c] for c in lease.checks if state.checks[c].status in ACTIVE_CHECK]


Subject = tuple[str, str | None]
"""What a check is of: ``(lease id, None)`` for a held lease, ``(lease id, challenge id)``."""


def verification_due(state: MarketState, now_ms: int) -> tuple[list[str], list[Subject], list[str]]:
    """``(leases to draw, subjects needing a check assigned, checks past their deadline)``:
    what the market's engine should send now."""
    to_draw: list[str] = []
    to_assign: list[Subject] = []
    for lease in map(state.leases.__getitem__, state.live.held_leases):
        if lease.status != "held" or lease.receipt_digest is None:
            continue
        if checked_policy(state, state.orders[lease.order_id]) is None:
            continue
        if lease.draw is None:
            to_draw.append(lease.id)
        elif (
            len(active_checks(state, lease)) < lease.checks_needed
            and not bisecting(state, lease.id)  # a dispute's rounds come first
            and eligible_verifiers(state, lease)
        ):
            to_assign.append((lease.id, None))
    for challenge in state.challenges.values():
        if challenge.status != "open":
            continue
        active = [c for c in challenge.checks if state.checks[c].status in ACTIVE_CHECK]
        lease = state.leases[challenge.lease_id]
        excluded = challenge_checkers_excluded(state, challenge)
        if len(active) < state.preset.verification.checkers and eligible_verifiers(
            state, lease, excluded
        ):
            to_assign.append((lease.id, challenge.id))
    assigned = map(state.checks.__getitem__, state.live.assigned_checks)
    expired = [c.id for c in assigned if c.status == "assigned" and now_ms >= c.deadline]
    return to_draw, to_assign, expired


# -- handlers ------------------------------------------------------------------------------------


def on_verifier_register(state: MarketState, tx: Tx) -> Applied:
    operator = tx.body.get("operator")
    if operator is not None and (not isinstance(operator, str) or not 0 < len(operator) <= 64):
        raise fail(
            "operator must be a name of 1 to 64 characters",
            code="invalid_verifier",
            field="operator",
        )
    existing = state.verifiers.get(tx.signer)
    if existing is not None:
        record = state._changing(existing)
        record.operator = operator
        record.available = True
    else:
        state._put(
            state.verifiers,
            tx.signer,
            VerifierRecord(id=tx.signer, registered_at=tx.at, operator=operator),
        )
    return Applied(tx.type, {"verifier": tx.signer, "updated": existing is not None})


def _held(state: MarketState, lease_id: object) -> tuple[LeaseRecord, OrderRecord, CheckedPolicy]:
    lease = state._lease(lease_id)
    if lease.status != "held":
        raise fail(f"lease {lease.id} is {lease.status}, not held", code="not_held", status=409)
    record = state._order(lease.order_id)
    policy = checked_policy(state, record)
    if policy is None:
        raise fail(
            f"order {record.id} is verified by {record.verification!r}: no verifier checks it",
            code="not_checked",
            status=409,
        )
    return lease, record, policy


def on_draw(state: MarketState, tx: Tx) -> Applied:
    """The market's draw over a held receipt: re-run it, or pay it now."""
    lease, record, policy = _held(state, tx.body.get("lease_id"))
    if lease.draw is not None:
        raise fail(f"lease {lease.id} was already drawn", code="already_drawn", status=409)
    draw = tx.body.get("draw")
    try:
        signature = bytes.fromhex(draw) if isinstance(draw, str) else b""
    except ValueError:
        signature = b""
    if lease.receipt_digest is None or not state._verify_market(
        draw_message(lease.id, lease.receipt_digest), signature
    ):
        raise fail(
            "the draw is not the market's signature of this lease's receipt",
            code="bad_draw",
            status=401,
            field="draw",
        )
    lease.draw = signature.hex()
    checked = policy.drawn(signature)
    if checked:
        lease.checks_needed = 1
        record.note = f"shard {lease.shard}: drawn for a re-run by a verifier"
    else:
        carry_out(state, Outcome(pay=(lease.id,)))
        record.note = f"shard {lease.shard}: not drawn for a re-run; paid on its receipt"
    return Applied(
        tx.type,
        {"lease_id": lease.id, "checked": checked},
        providers={lease.provider},
        orders={record.id},
    )


def _seed(tx: Tx) -> int:
    seed = tx.body.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < MAX_SEED:
        raise fail("seed must be an integer in [0, 2^63)", code="invalid_tx", field="seed")
    return seed


def on_check_assign(state: MarketState, tx: Tx) -> Applied:
    """Give one more check of a held lease (or of a challenged one) to a verifier the seed
    picks."""
    seed = _seed(tx)
    challenge_id = tx.body.get("challenge_id")
    if challenge_id is not None:
        challenge = _open_challenge(state, challenge_id)
        lease = state._lease(challenge.lease_id)
        record = state._order(lease.order_id)
        active = [c for c in challenge.checks if state.checks[c].status in ACTIVE_CHECK]
        if len(active) >= state.preset.verification.checkers:
            raise fail(f"{challenge.id} needs no check now", code="no_check_needed", status=409)
        excluded = challenge_checkers_excluded(state, challenge)
        number = len(challenge.checks)
    else:
        lease, record, _policy = _held(state, tx.body.get("lease_id"))
        if (
            lease.draw is None
            or len(active_checks(state, lease)) >= lease.checks_needed
            or bisecting(state, lease.id)
        ):
            raise fail(f"lease {lease.id} needs no check now", code="no_check_needed", status=409)
        excluded = set()
        number = len(lease.checks)
    candidates = eligible_verifiers(state, lease, excluded)
    if not candidates:
        raise fail(
            f"no verifier may check lease {lease.id} now",
            code="no_verifier",
            status=409,
            hint="start one: pasar verifier start --market URL --stake AMOUNT",
        )
    verifier = candidates[seed % len(candidates)]
    check_id = f"{challenge_id or lease.id}.check-{number}"
    window_s = record.spec.max_duration + state.preset.verification.check_deadline_s
    check = CheckRecord(
        id=check_id,
        lease_id=lease.id,
        order_id=record.id,
        verifier=verifier,
        assigned_at=tx.at,
        deadline=tx.at + window_s * MS,
        challenge_id=None if challenge_id is None else str(challenge_id),
    )
    state._put(state.checks, check_id, check)
    if challenge_id is not None:
        state._changing(state.challenges[str(challenge_id)]).checks.append(check_id)
    else:
        lease.checks.append(check_id)
    return Applied(
        tx.type,
        {
            "check_id": check_id,
            "lease_id": lease.id,
            "verifier": verifier,
            "deadline_ms": check.deadline,
        },
        providers={verifier},  # the verifier follows its feed like a provider
        orders={record.id},
    )


def _open_challenge(state: MarketState, challenge_id: object) -> ChallengeRecord:
    challenge = state.challenges.get(str(challenge_id))
    if challenge is None:
        raise not_found("challenge", challenge_id)
    if challenge.status != "open":
        raise fail(f"{challenge.id} is {challenge.status}", code="challenge_over", status=409)
    return challenge


def _check(state: MarketState, check_id: object) -> CheckRecord:
    check = state.checks.get(str(check_id))
    if check is None:
        raise not_found("check", check_id)
    return state._changing(check)


def on_check_expire(state: MarketState, tx: Tx) -> Applied:
    check = _check(state, tx.body.get("check_id"))
    if check.status != "assigned":
        raise fail(f"check {check.id} is {check.status}", code="check_over", status=409)
    if tx.at < check.deadline:
        raise fail(f"check {check.id} is not past its deadline", code="too_early", status=409)
    check.status = "expired"
    verifier = state._changing(state.verifiers[check.verifier])
    verifier.checks_missed += 1
    verifier.available = False  # until it registers again: no more checks to a silent verifier
    return Applied(
        tx.type,
        {"check_id": check.id, "lease_id": check.lease_id, "verifier": check.verifier},
        orders={check.order_id},
    )


def on_check_verdict(state: MarketState, tx: Tx) -> Applied:
    """A verifier's result for its check; when the tally decides, carry the decision out."""
    check = _check(state, tx.body.get("check_id"))
    if tx.signer != check.verifier:
        raise fail(
            "only the verifier this check was assigned to may answer it",
            code="wrong_signer",
            status=403,
        )
    if check.status != "assigned":
        raise fail(f"check {check.id} is {check.status}", code="check_over", status=409)
    if tx.at > check.deadline:
        raise fail(
            f"check {check.id} was due by {check.deadline} (ms)", code="late_verdict", status=409
        )
    _outputs, root = signed_outputs(tx.body, code="invalid_verdict")
    matches = tx.body.get("matches")
    if matches is not None and not isinstance(matches, bool):
        raise fail("matches must be true or false", code="invalid_verdict", field="matches")
    if check.challenge_id is not None:
        lease = state._lease(check.lease_id)
        record = state._order(lease.order_id)
        policy: CheckedPolicy | None = None
        _open_challenge(state, check.challenge_id)
    else:
        lease, record, policy = _held(state, check.lease_id)
    assert lease.receipt is not None  # held and settled leases keep their receipt
    provider_root = compared_root(lease.receipt)
    # pol: the verifier's ``matches`` is its comparison of the sampled segments it replayed
    ordered = checked_policy(state, record)
    by_match = ordered is not None and ordered.verdict_by_match
    tolerant = record.tolerant
    if by_match and matches is None:
        raise fail(
            "this job is checked by a sampled replay: the verdict says whether it matched",
            code="invalid_verdict",
            field="matches",
            hint="send matches: true or false",
        )
    if matches is not None and not (tolerant or by_match):
        raise fail(
            "matches is for outputs the spec compares within a tolerance; this job's outputs "
            "are compared exactly (by their root)",
            code="invalid_verdict",
            field="matches",
        )
    tolerance_fields = ("mode", "distance", "noise", "threshold")
    mode, distance, noise, threshold = (tx.body.get(name) for name in tolerance_fields)
    if isinstance(ordered, PolPolicy):
        judged = check_tolerance_verdict(
            ordered, matches, mode, distance, noise=noise, threshold=threshold
        )
        mode, distance, noise, threshold = (judged.mode, judged.distance, judged.noise,
                                            judged.threshold)  # fmt: skip
    elif any(tx.body.get(name) is not None for name in tolerance_fields):
        given = next(name for name in tolerance_fields if tx.body.get(name) is not None)
        raise fail(f"{given} is for a pol verdict", code="invalid_verdict",
                   field=given)  # fmt: skip
    check.status = "done"
    check.root = root
    check.mode, check.distance = mode, distance
    check.noise, check.threshold = noise, threshold
    if by_match:
        check.agrees = matches is True
    else:
        check.agrees = root == provider_root or (tolerant and matches is True)
    state._changing(state.verifiers[check.verifier]).checks_done += 1
    if policy is None:
        result = decide_challenge(state, state._changing(state.challenges[str(check.challenge_id)]))
    else:
        result = _decide(state, record, lease, policy)
    return Applied(
        tx.type,
        {"check_id": check.id, "lease_id": lease.id, "agrees": check.agrees, **result},
        providers={lease.provider},
        orders={record.id},
    )


def retally(state: MarketState, lease: LeaseRecord) -> dict[str, object]:
    """Decide a held lease again after a dispute over it ended without deciding it (its
    verifier lost, so that check no longer counts; or no referee ruled): the checks left
    decide, and with none left one more verifier checks it."""
    record = state._order(lease.order_id)
    policy = checked_policy(state, record)
    if lease.status != "held" or policy is None:
        return {"decided": False}
    if not any(state.checks[c].status == "done" for c in lease.checks):
        state._changing(lease).checks_needed = 1
        return {"decided": False, "checks_needed": 1}
    return _decide(state, record, lease, policy)


def _decide(
    state: MarketState, record: OrderRecord, lease: LeaseRecord, policy: CheckedPolicy
) -> dict[str, object]:
    if bisecting(state, lease.id):  # the dispute's rounds come first; the checks wait
        return {"decided": False, "disputed": True, "checks_needed": lease.checks_needed}
    done = [state.checks[c] for c in lease.checks if state.checks[c].status == "done"]
    tally = policy.tally([bool(c.agrees) for c in done], needed=lease.checks_needed)
    if not tally.decided:
        if tally.needed > lease.checks_needed:
            lease.checks_needed = tally.needed
            record.note = (
                f"shard {lease.shard}: a verifier's result differs from the provider's; "
                f"{tally.needed} checkers decide by majority"
            )
        return {"decided": False, "checks_needed": lease.checks_needed}
    for c in lease.checks:  # checks still out are not needed any more
        if state.checks[c].status == "assigned":
            state._changing(state.checks[c]).status = "cancelled"
    majority = [done[i] for i in tally.majority]
    minority = [done[i] for i in tally.minority]
    fee = policy.check_fee(state.work_cost(lease))
    for check in majority:
        state.ledger.move_up_to(
            LedgerAccount.lease_escrow(lease.id),
            LedgerAccount.earnings(check.verifier),
            fee,
            f"check {check.id} fee",
        )
    prover = majority[0].verifier
    slashed: list[dict[str, str]] = []
    if tally.provider_right:
        carry_out(state, Outcome(pay=(lease.id,)))
        slashed += slash(
            state, (c.verifier for c in minority), lease.provider, lease, "a wrong verdict"
        )
        record.note = f"shard {lease.shard}: verified by {len(majority)} checker(s); paid"
    else:
        carry_out(state, Outcome(refund=(lease.id,)))
        slashed += slash(state, [lease.provider], prover, lease, "a result proven wrong")
        slashed += slash(
            state, (c.verifier for c in minority), prover, lease, "siding with a wrong result"
        )
        record.note = (
            f"shard {lease.shard}: the provider's result was proven wrong by "
            f"{len(majority)} checker(s); it is not paid and the shard runs again elsewhere"
        )
    _referee_dispute(state, lease, bool(tally.provider_right))
    return {
        "decided": True,
        "provider_right": tally.provider_right,
        "checks_needed": lease.checks_needed,
        "slashed": slashed,
    }


def _referee_dispute(state: MarketState, lease: LeaseRecord, provider_right: bool) -> None:
    """A narrowed dispute over a lease the checkers just decided ends with their decision: the
    majority's replays referee the step it was narrowed to (the money moved above: the loser
    was slashed with the other side of the majority rewarded, as without a dispute)."""
    dispute = live_dispute(state, lease.id)
    if dispute is None:
        return
    dispute = state._changing(dispute)
    side = "verifier" if provider_right else "prover"
    dispute.status = f"{side}_lost"
    dispute.loser = dispute.verifier if provider_right else lease.provider
    dispute.reason = f"the checkers' majority refereed step {dispute.step}: the {side} is wrong"


def slash(
    state: MarketState, offenders: Iterable[str], reward_to: str, lease: LeaseRecord, why: str
) -> list[dict[str, str]]:
    """Take the preset's ``slash_rate`` of each offender's slashable stake (nothing when it has
    none: a network without stake punishes by reputation only); ``slash_reward_rate`` of it
    goes to ``reward_to``, the rest is burned."""
    rules = state.preset.verification
    currency = state.preset.currency
    out: list[dict[str, str]] = []
    for offender in offenders:
        amount = state.ledger.slashable(offender, currency).scale(rules.slash_rate)
        if not amount or offender == reward_to:
            continue
        done = state.ledger.slash(
            offender, amount, reward_to=reward_to, reward_rate=rules.slash_reward_rate
        )
        record_slash(state, done, at=state.now, reason=f"{why} (lease {lease.id})")
        out.append(
            {
                "account": offender,
                "amount": amount.to_json(),
                "reason": f"{why} (lease {lease.id})",
                "reward_to": reward_to,
            }
        )
    return out
