"""Bisection inside the pinned step: a pol dispute down to one aten operator (issue 16, step 2).

Once the step rounds (:mod:`pasar.core.dispute_handlers`) narrow a dispute to step ``t`` — the
first transition the prover and the verifier disagree on, from a state at ``t - 1`` both
committed — each side re-runs that one step under the harness's dispatch trace
(:func:`pasar.train.determinism.traced_step`) and sends ``dispute.trace``: the flat list of aten
operators it dispatched, each ``[name, sha256 of its outputs]``, and the state hash it reached
(which must be the hash it committed at ``t``: a trace is bound to the run it explains, so a
cheating prover's trace is what it actually did, or it cannot trace at all and loses at the
deadline).

Why whole lists rather than rounds over two Merkle roots: a training step is tens to a few
thousand operators (a 2-layer MLP's is ~40), so both lists fit one transaction each, and the
market finds the leftmost differing operator at once instead of in log2(n) round trips with a
deadline each. It is still sound: an operator's inputs are the step's agreed start state and
the outputs of the operators before it, which both lists agree on by construction of
"leftmost", so a referee that recomputes the step up to operator ``i`` from the agreed state
decides by that one operator. The root over the operator leaves (``sha256(name, hash)``) is
kept for the record and the audit.

The referee is a third verifier, chosen by the state (:func:`referee_for`): staked, not a
party, not the client, not a provider of the order. It traces the step the same way and sends
its own ``dispute.trace``; the market's engine then signs ``dispute.rule`` with the operator
the referee computed (:func:`rulings_due`), which settles. Pure: no I/O, time is ``tx.at``.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from pasar.core.check_handlers import eligible_verifiers
from pasar.core.disputes import END, PROVER, VERIFIER, DisputeRecord, parse_hash
from pasar.core.market_records import fail
from pasar.crypto.merkle import root_of_hashes

if TYPE_CHECKING:
    from pasar.core.state import MarketState

REFEREE = "referee"
#: a step's operators, at most (a 2-layer MLP's step is ~40; a large model's a few thousand)
MAX_OPERATORS = 20_000
MAX_OPERATOR_NAME = 200


def parse_operators(value: object) -> list[tuple[str, str]]:
    """``[[name, 64-hex], ...]`` or a 400 naming ``operators``. It may be empty: a step that
    computed nothing (a prover that copied its weights forward) dispatched no operator."""
    if not isinstance(value, list) or len(value) > MAX_OPERATORS:
        raise fail(f"operators must be a list of at most {MAX_OPERATORS} [name, hash] pairs",
                   code="invalid_dispute", field="operators")  # fmt: skip
    out: list[tuple[str, str]] = []
    for i, item in enumerate(value):
        if (
            not isinstance(item, list | tuple)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not 0 < len(item[0]) <= MAX_OPERATOR_NAME
        ):
            raise fail(f"operators[{i}] must be [name, sha256 of its outputs]",
                       code="invalid_dispute", field=f"operators[{i}]")  # fmt: skip
        out.append((item[0], parse_hash(item[1], f"operators[{i}]")))
    return out


def operator_leaf(name: str, digest: str) -> str:
    """One operator's leaf: its name and the hash of its outputs, bound together."""
    return hashlib.sha256(f"{name}\n{digest}".encode()).hexdigest()


def operator_root(operators: list[tuple[str, str]]) -> str:
    return root_of_hashes(operator_leaf(n, d) for n, d in operators)


def first_difference(a: list[tuple[str, str]], b: list[tuple[str, str]]) -> int | None:
    """The index of the leftmost operator the two lists disagree on (a different name or
    output, or one list ending there), or None when they are the same list."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def referee_for(state: MarketState, dispute: DisputeRecord) -> str | None:
    """The third verifier that referees ``dispute``: one of the lease's eligible verifiers
    (neither party), picked by the dispute's own commitments — fixed before anyone knew which
    operator it would come down to."""
    pool = _referees(state, dispute)
    if not pool:
        return None
    seed = hashlib.sha256(f"{dispute.id}:{dispute.prover_root}:{dispute.verifier_root}".encode())
    return pool[int.from_bytes(seed.digest()[:8], "big") % len(pool)]


def _referees(state: MarketState, dispute: DisputeRecord) -> list[str]:
    """Who may referee: as :func:`~pasar.core.check_handlers.eligible_verifiers` (registered,
    available, staked, not the client, not a provider of the order, not of the provider's
    operator) except that a verifier holding a check of this lease may (its replay is
    independent of both sides); never the disputing verifier."""
    lease = state.leases[dispute.lease_id]
    return eligible_verifiers(state, lease, {dispute.verifier}, checkers_too=True)


def operator_at(ops: list[tuple[str, str]], index: int) -> dict[str, str]:
    """What one side dispatched at ``index`` (:data:`END` where its list ended)."""
    if index < len(ops):
        return {"name": ops[index][0], "hash": ops[index][1]}
    return {"name": END, "hash": ""}


def pin_operator(dispute: DisputeRecord) -> None:
    """Both sides traced: the leftmost operator they part at (None: the same operators, the
    states differ outside any of them — only the step's state hash can be refereed)."""
    ops = {role: [(n, d) for n, d in dispute.traces[role]["operators"]]
           for role in (PROVER, VERIFIER)}  # fmt: skip
    index = first_difference(ops[PROVER], ops[VERIFIER])
    if index is None:
        dispute.op = None
        return
    dispute.op = {
        "index": index,
        PROVER: operator_at(ops[PROVER], index),
        VERIFIER: operator_at(ops[VERIFIER], index),
    }


def rulings_due(state: MarketState) -> list[dict[str, Any]]:
    """The ``dispute.rule`` bodies the market signs now: a pinned dispute whose referee traced
    the step and matches one side (at the pinned operator, else on the state hash). A referee
    that matches neither side is not the run's environment: nothing is sent (its deadline
    passes and the checkers decide)."""
    out: list[dict[str, Any]] = []
    for d in sorted(state.disputes.values(), key=lambda x: x.id):
        trace = d.traces.get(REFEREE)
        if d.status != "pinned" or trace is None or d.step is None:
            continue
        body: dict[str, Any] = {"dispute_id": d.id, "step": d.step, "hash": trace["hash"]}
        if d.op is not None:
            index = int(d.op["index"])
            mine = operator_at([(n, h) for n, h in trace["operators"]], index)
            if mine not in (d.op[PROVER], d.op[VERIFIER]):
                continue
            body["operator"] = {"index": index, **mine}
        elif trace["hash"] not in d.hi_hashes.values():
            continue
        out.append(body)
    return out
