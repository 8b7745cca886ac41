"""The transactions of a pol dispute (:mod:`pasar.core.disputes` says why and how it narrows):

* ``dispute.open`` (the verifier whose check said *mismatch*) — over the segment
  ``start..end`` it replayed: the prover's step root (bound to the receipt by
  :data:`~pasar.core.disputes.STEP_ROOT`), its own root over its replayed hashes, and proofs
  that both sides agree at ``start`` and disagree at ``end``. While it runs, no more checkers
  are assigned to the lease and the checkers' majority waits for it;
* ``dispute.answer`` (the prover or the verifier) — its hash at the step this round asks, with
  a Merkle proof against its own committed root; once both answered, the market keeps the half
  where they first disagree and asks the next step (deadline: the preset's
  ``check_deadline_s`` per round);
* ``dispute.trace`` (the prover, the verifier, then the referee) — once narrowed to step
  ``t``, each side's operator trace of that step; with both, the market pins the leftmost
  operator they part at and names a third verifier to referee it
  (:mod:`pasar.core.dispute_trace`);
* ``dispute.expire`` (the market) — a deadline passed: the side that did not answer a round or
  send its trace loses (the verifier first: it opened the dispute). A pinned dispute whose
  referee did not rule ends ``unrefereed`` and the checkers' majority decides as before
  (nobody is slashed for a referee's silence);
* ``dispute.rule`` (the market, carrying a referee's result computed outside ``core``) — the
  referee's output at the pinned operator ``{index, name, hash}`` (or, where both traces
  dispatched the same operators, its state hash after the step); the side it equals wins and
  the operator the loser got wrong is named. A ruling that matches neither side is refused
  (the referee's machine is not the run's environment: never a slash on it).

Settlement: a prover that loses is a proven cheat — not paid, the client's escrow back on the
order (the shard runs again), slashed per the preset with the reward to the verifier, who is
also paid its check fee. A verifier that loses is slashed with the reward to the provider, its
check no longer counts and the lease gets a check from another verifier. Pure, like every
handler: time is ``tx.at``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pasar.core.accounts import LedgerAccount
from pasar.core.check_handlers import checked_policy, retally, slash
from pasar.core.dispute_trace import (
    MAX_OPERATOR_NAME,
    REFEREE,
    operator_root,
    parse_operators,
    pin_operator,
    referee_for,
)
from pasar.core.disputes import (
    LIVE,
    PROVER,
    VERIFIER,
    DisputeRecord,
    live_dispute,
    parse_hash,
    parse_proof,
    proven,
    root_matches_receipt,
)
from pasar.core.lease_handlers import carry_out
from pasar.core.market_records import Applied, LeaseRecord, Tx, fail, not_found
from pasar.core.timelock import MS
from pasar.core.verify.base import Outcome

if TYPE_CHECKING:
    from pasar.core.state import MarketState


def _window_ms(state: MarketState) -> int:
    return state.preset.verification.check_deadline_s * MS


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail(f"{name} must be a non-negative integer", code="invalid_dispute", field=name)
    return value


def on_dispute_open(state: MarketState, tx: Tx) -> Applied:
    check = state.checks.get(str(tx.body.get("check_id")))
    if check is None:
        raise not_found("check", tx.body.get("check_id"))
    if tx.signer != check.verifier:
        raise fail("only the verifier of this check may dispute its lease", code="wrong_signer",
                   status=403)  # fmt: skip
    if check.status != "done" or check.agrees is not False or check.challenge_id is not None:
        raise fail(f"check {check.id} did not find a mismatch in a held lease: nothing to "
                   "dispute", code="nothing_to_dispute", status=409)  # fmt: skip
    if check.mode == "tolerance":  # another environment: its step hashes are not the prover's
        raise fail(f"check {check.id} compared by distance (tolerance mode): step hashes "
                   "across environments cannot be bisected; its checkers decide",
                   code="tolerance_verdict", status=409)  # fmt: skip
    lease = state._lease(check.lease_id)
    record = state._order(lease.order_id)
    policy = checked_policy(state, record)
    if lease.status != "held" or policy is None or not policy.verdict_by_match:
        raise fail(f"lease {lease.id} is not a held pol lease", code="nothing_to_dispute",
                   status=409)  # fmt: skip
    if live_dispute(state, lease.id) is not None:
        raise fail(f"lease {lease.id} is already disputed", code="already_disputed", status=409)
    start, end = _int(tx.body.get("start"), "start"), _int(tx.body.get("end"), "end")
    if end <= start:
        raise fail("end must be after start", code="invalid_dispute", field="end")
    prover_root = parse_hash(tx.body.get("prover_root"), "prover_root")
    verifier_root = parse_hash(tx.body.get("verifier_root"), "verifier_root")
    if not root_matches_receipt(lease, prover_root):
        raise fail(
            "prover_root is not the step root the prover's receipt commits",
            code="bad_root",
            status=422,
            field="prover_root",
            hint="the 32 bytes of the run's step_root.bin, as hex",
        )
    start_hash = parse_hash(tx.body.get("start_hash"), "start_hash")
    end_hash = parse_hash(tx.body.get("end_hash"), "end_hash")
    prover_end = parse_hash(tx.body.get("prover_end_hash"), "prover_end_hash")
    proofs = tx.body.get("proofs")
    if not isinstance(proofs, dict):
        raise fail("proofs must be an object", code="invalid_proof", field="proofs")
    parsed = {k: parse_proof(proofs.get(k), f"proofs.{k}") for k in PROOF_KEYS}
    size = parsed["prover_start"].size
    mine = end - start + 1
    if end >= size:
        raise fail(f"end {end} is past the run's last step {size - 1}", code="invalid_dispute",
                   field="end")  # fmt: skip
    claims = [
        ("prover_start", prover_root, start_hash, start, size),
        ("verifier_start", verifier_root, start_hash, 0, mine),
        ("prover_end", prover_root, prover_end, end, size),
        ("verifier_end", verifier_root, end_hash, mine - 1, mine),
    ]
    if end_hash == prover_end:
        raise fail(f"both sides committed the same hash at step {end}: nothing to dispute",
                   code="nothing_to_dispute", status=409, field="end_hash")  # fmt: skip
    for key, root, value, index, count in claims:
        if not proven(root, value, parsed[key], index=index, size=count):
            raise fail(f"proofs.{key} does not prove that hash at its step under its root",
                       code="bad_proof", status=422, field=f"proofs.{key}")  # fmt: skip
    number = sum(d.lease_id == lease.id for d in state.disputes.values())
    dispute = DisputeRecord(
        id=f"{lease.id}.dispute-{number}",
        lease_id=lease.id,
        order_id=record.id,
        check_id=check.id,
        provider=lease.provider,
        verifier=check.verifier,
        prover_root=prover_root,
        prover_size=size,
        verifier_root=verifier_root,
        start=start,
        end=end,
        opened_at=tx.at,
        deadline=tx.at + _window_ms(state),
        lo=start,
        hi=end,
        hi_hashes={PROVER: prover_end, VERIFIER: end_hash},
    )
    _next_round(dispute, tx.at, state)
    state._put(state.disputes, dispute.id, dispute)
    record.note = (
        f"shard {lease.shard}: disputed by its verifier over steps {start}..{end}; "
        "bisecting to the first step they disagree on"
    )
    return Applied(tx.type, _summary(dispute), providers={lease.provider, check.verifier},
                   orders={record.id})  # fmt: skip


PROOF_KEYS = ("prover_start", "verifier_start", "prover_end", "verifier_end")


def _next_round(dispute: DisputeRecord, at: int, state: MarketState) -> None:
    """Ask the middle step, or — when the two bounds are adjacent — wait for the referee."""
    dispute.answers = {}
    if dispute.hi - dispute.lo <= 1:
        dispute.status = "narrowed"
        dispute.step = dispute.hi
        dispute.asked = None
    else:
        dispute.asked = (dispute.lo + dispute.hi) // 2
    dispute.deadline = at + _window_ms(state)


def _live(state: MarketState, dispute_id: object) -> DisputeRecord:
    dispute = state.disputes.get(str(dispute_id))
    if dispute is None:
        raise not_found("dispute", dispute_id)
    if dispute.status not in LIVE:
        raise fail(f"{dispute.id} is {dispute.status}", code="dispute_over", status=409)
    return state._changing(dispute)


def on_dispute_answer(state: MarketState, tx: Tx) -> Applied:
    dispute = _live(state, tx.body.get("dispute_id"))
    role = {dispute.provider: PROVER, dispute.verifier: VERIFIER}.get(tx.signer)
    if role is None:
        raise fail("only the disputed lease's provider and its verifier answer",
                   code="wrong_signer", status=403)  # fmt: skip
    if dispute.status != "open" or dispute.asked is None:
        raise fail(f"{dispute.id} is narrowed to step {dispute.step}: no more answers",
                   code="no_question", status=409)  # fmt: skip
    if tx.at > dispute.deadline:
        raise fail(f"{dispute.id}'s round was due by {dispute.deadline} (ms)", code="late_answer",
                   status=409)  # fmt: skip
    step = _int(tx.body.get("step"), "step")
    if step != dispute.asked:
        raise fail(f"this round asks for step {dispute.asked}, not {step}", code="wrong_step",
                   status=409, field="step")  # fmt: skip
    if role in dispute.answers:
        raise fail(f"the {role} already answered step {step}", code="already_answered",
                   status=409)  # fmt: skip
    value = parse_hash(tx.body.get("hash"), "hash")
    proof = parse_proof(tx.body.get("proof"), "proof")
    if role == PROVER:
        root, index, size = dispute.prover_root, step, dispute.prover_size
    else:
        root, index, size = (
            dispute.verifier_root,
            step - dispute.start,
            dispute.end - dispute.start + 1,
        )
    if not proven(root, value, proof, index=index, size=size):
        raise fail(f"the proof does not show that hash at step {step} under the {role}'s "
                   "committed root", code="bad_proof", status=422, field="proof")  # fmt: skip
    dispute.answers = {**dispute.answers, role: value}
    result: dict[str, Any] = {"role": role}
    if len(dispute.answers) == 2:
        agree = dispute.answers[PROVER] == dispute.answers[VERIFIER]
        dispute.rounds = [*dispute.rounds, {"step": step, **dispute.answers, "agree": agree}]
        if agree:
            dispute.lo = step
        else:
            dispute.hi, dispute.hi_hashes = step, dict(dispute.answers)
        _next_round(dispute, tx.at, state)
    return _applied(tx, dispute, result)


def on_dispute_expire(state: MarketState, tx: Tx) -> Applied:
    dispute = _live(state, tx.body.get("dispute_id"))
    if tx.at < dispute.deadline:
        raise fail(f"{dispute.id} is not past its deadline", code="too_early", status=409)
    lease = state._lease(dispute.lease_id)
    slashed: list[dict[str, str]] = []
    if lease.status != "held":
        dispute.status, dispute.reason = "moot", f"lease {lease.id} was decided first"
    elif dispute.status == "pinned":
        dispute.status = "unrefereed"
        dispute.reason = "the referee did not rule in time: the checkers decide"
        retally(state, lease)
    elif dispute.status == "narrowed":  # a side that cannot trace the step it committed loses
        if VERIFIER not in dispute.traces:
            slashed = _verifier_loses(state, dispute, lease, f"did not trace step {dispute.step}")
        else:
            slashed = _prover_loses(state, dispute, lease, f"did not trace step {dispute.step}")
    elif VERIFIER not in dispute.answers:
        slashed = _verifier_loses(state, dispute, lease, f"missed step {dispute.asked}'s deadline")
    else:
        slashed = _prover_loses(state, dispute, lease, f"missed step {dispute.asked}'s deadline")
    return _applied(tx, dispute, {"slashed": slashed})


def on_dispute_trace(state: MarketState, tx: Tx) -> Applied:
    """A side's (or the referee's) operator trace of the narrowed step
    (:mod:`pasar.core.dispute_trace`)."""
    dispute = _live(state, tx.body.get("dispute_id"))
    role = {dispute.provider: PROVER, dispute.verifier: VERIFIER}.get(tx.signer)
    if role is None and dispute.referee is not None and tx.signer == dispute.referee:
        role = REFEREE
    if role is None:
        raise fail("only the disputed lease's provider, its verifier and the dispute's referee "
                   "trace its step", code="wrong_signer", status=403)  # fmt: skip
    wanted = "pinned" if role == REFEREE else "narrowed"
    if dispute.status != wanted:
        raise fail(f"{dispute.id} is {dispute.status}: the {role} does not trace now",
                   code="no_question", status=409)  # fmt: skip
    if tx.at > dispute.deadline:
        raise fail(f"{dispute.id}'s traces were due by {dispute.deadline} (ms)",
                   code="late_answer", status=409)  # fmt: skip
    step = _pinned_step(dispute, tx)
    if role in dispute.traces:
        raise fail(f"the {role} already traced step {step}", code="already_answered",
                   status=409)  # fmt: skip
    operators = parse_operators(tx.body.get("operators"))
    value = parse_hash(tx.body.get("hash"), "hash")
    if role != REFEREE and value != dispute.hi_hashes[role]:
        raise fail(f"that trace ends in another state than the {role} committed at step {step}",
                   code="bad_trace", status=422, field="hash",
                   hint="trace the committed step from the agreed state before it")  # fmt: skip
    dispute.traces = {**dispute.traces, role: {
        "operators": [[n, d] for n, d in operators],
        "root": operator_root(operators),
        "count": len(operators),
        "hash": value,
    }}  # fmt: skip
    if role != REFEREE and PROVER in dispute.traces and VERIFIER in dispute.traces:
        pin_operator(dispute)
        dispute.status = "pinned"
        dispute.referee = referee_for(state, dispute)
        dispute.deadline = tx.at + _window_ms(state)
    return _applied(tx, dispute, {"role": role})


def _pinned_step(dispute: DisputeRecord, tx: Tx) -> int:
    """The transaction's ``step``, which must be the one the dispute was narrowed to."""
    step = _int(tx.body.get("step"), "step")
    if step != dispute.step:
        raise fail(f"{dispute.id} is narrowed to step {dispute.step}, not {step}",
                   code="wrong_step", status=409, field="step")  # fmt: skip
    return step


def on_dispute_rule(state: MarketState, tx: Tx) -> Applied:
    """A referee's recomputation of the pinned step and operator (see the module doc)."""
    dispute = _live(state, tx.body.get("dispute_id"))
    if dispute.status != "pinned":
        raise fail(f"{dispute.id} is {dispute.status}: its step and operator are not pinned yet",
                   code="not_narrowed", status=409)  # fmt: skip
    step = _pinned_step(dispute, tx)
    value = parse_hash(tx.body.get("hash"), "hash")
    operator = tx.body.get("operator")
    if operator is not None and not (
        isinstance(operator, dict)
        and isinstance(operator.get("index"), int)
        and isinstance(operator.get("name"), str)
        and 0 < len(operator["name"]) <= MAX_OPERATOR_NAME
        and isinstance(operator.get("hash"), str)
    ):
        raise fail("operator must be {index, name, hash} (the referee's output at the pinned "
                   "operator)", code="invalid_dispute", field="operator")  # fmt: skip
    lease = state._lease(dispute.lease_id)
    if lease.status != "held":
        raise fail(f"lease {lease.id} is {lease.status}: the dispute is moot",
                   code="dispute_over", status=409)  # fmt: skip
    if dispute.op is not None:  # decided by the one operator the two sides part at
        winner = _operator_winner(dispute, operator)
    elif operator is not None:
        raise fail(f"{dispute.id}'s two traces dispatched the same operators: there is no "
                   "operator to rule on", code="invalid_dispute", field="operator")  # fmt: skip
    elif value in dispute.hi_hashes.values():
        winner = PROVER if value == dispute.hi_hashes[PROVER] else VERIFIER
    else:
        raise fail(f"the referee's hash at step {step} is neither side's: it cannot judge "
                   "this run's environment", code="referee_disagrees", status=409,
                   field="hash")  # fmt: skip
    dispute.referee_hash = value
    loser = VERIFIER if winner == PROVER else PROVER
    if dispute.op is not None:  # the operator named is the one the loser got wrong
        dispute.operator = {"index": dispute.op["index"], "name": dispute.op[loser]["name"],
                            "referee": dispute.op[winner]["name"]}  # fmt: skip
    where = f"step {step}" + (
        f", operator {dispute.operator['name']} (#{dispute.operator['index']})"
        if dispute.operator
        else ""
    )
    if winner == VERIFIER:
        slashed = _prover_loses(state, dispute, lease, f"its transition at {where} is wrong")
    else:
        slashed = _verifier_loses(state, dispute, lease, f"its transition at {where} is wrong")
    return _applied(tx, dispute, {"slashed": slashed})


def _operator_winner(dispute: DisputeRecord, operator: dict[str, Any] | None) -> str:
    """The side whose output at the pinned operator the referee recomputed."""
    assert dispute.op is not None
    index = dispute.op["index"]
    if operator is None or operator.get("index") != index:
        raise fail(f"{dispute.id} is pinned to operator #{index}: the ruling must name it",
                   code="wrong_operator", status=409, field="operator.index")  # fmt: skip
    mine = {"name": operator.get("name"), "hash": operator.get("hash")}
    for role in (PROVER, VERIFIER):
        if dispute.op[role] == mine:
            return role
    raise fail(f"the referee's operator #{index} is neither side's: it cannot judge this run's "
               "environment", code="referee_disagrees", status=409,
               field="operator")  # fmt: skip


def _cancel_checks(state: MarketState, lease: LeaseRecord) -> None:
    for c in lease.checks:
        if state.checks[c].status == "assigned":
            state._changing(state.checks[c]).status = "cancelled"


def _prover_loses(
    state: MarketState, dispute: DisputeRecord, lease: LeaseRecord, why: str
) -> list[dict[str, str]]:
    """A proven cheat: the verifier's fee, the client refunded (re-run), the provider slashed."""
    dispute.status, dispute.loser, dispute.reason = "prover_lost", lease.provider, why
    _cancel_checks(state, lease)
    policy = checked_policy(state, state.orders[lease.order_id])
    assert policy is not None  # a dispute opens only over a checked lease
    state.ledger.move_up_to(
        LedgerAccount.lease_escrow(lease.id),
        LedgerAccount.earnings(dispute.verifier),
        policy.check_fee(state.work_cost(lease)),
        f"check {dispute.check_id} fee (won {dispute.id})",
    )
    carry_out(state, Outcome(refund=(lease.id,)))
    record = state._order(lease.order_id)
    record.note = (
        f"shard {lease.shard}: the provider lost {dispute.id}: {why}; it is not paid and the "
        "shard runs again elsewhere"
    )
    return slash(state, [lease.provider], dispute.verifier, lease, f"losing {dispute.id}")


def _verifier_loses(
    state: MarketState, dispute: DisputeRecord, lease: LeaseRecord, why: str
) -> list[dict[str, str]]:
    """A lying (or broken) verifier: slashed to the provider; its check no longer counts."""
    dispute.status, dispute.loser, dispute.reason = "verifier_lost", dispute.verifier, why
    state._changing(state.checks[dispute.check_id]).status = "overturned"
    record = state._order(lease.order_id)
    record.note = f"shard {lease.shard}: its verifier lost {dispute.id}: {why}; checked again"
    slashed = slash(state, [dispute.verifier], lease.provider, lease, f"losing {dispute.id}")
    retally(state, lease)
    return slashed


def _applied(tx: Tx, dispute: DisputeRecord, more: dict[str, Any]) -> Applied:
    """The answer, in both parties' feeds (the agents answer a round from there)."""
    return Applied(
        tx.type,
        {**_summary(dispute), **more},
        providers={
            dispute.provider,
            dispute.verifier,
            *([dispute.referee] if dispute.referee else []),
        },
        orders={dispute.order_id},
    )


def _summary(dispute: DisputeRecord) -> dict[str, Any]:
    return {
        "dispute_id": dispute.id,
        "lease_id": dispute.lease_id,
        "status": dispute.status,
        "lo": dispute.lo,
        "hi": dispute.hi,
        "asked_step": dispute.asked,
        "step": dispute.step,
        "deadline_ms": dispute.deadline,
        "loser": dispute.loser,
        "referee": dispute.referee,
        "pinned_operator": dispute.op,
    }
