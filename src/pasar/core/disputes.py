"""A pol dispute's record and the pure reads around it (issue 16: "dispute, when prover and
verifier disagree"); the transactions that move it are :mod:`pasar.core.dispute_handlers`.

Why a dispute and not only a majority of checkers: a majority says *that* a run is wrong; a
dispute says *where*, and it settles with one honest verifier against a cheating prover (or one
honest prover against a lying verifier) instead of three more replays. Both sides committed
their step hashes before it began — the prover in its receipt (the Merkle root of every step
hash, :data:`STEP_ROOT` among its outputs), the verifier when it opens the dispute (the root of
the hashes it replayed over the disputed segment) — so neither can adapt an answer to the
other's: each answer carries a Merkle proof against its own committed root, which the market
checks. Bisection keeps ``lo`` (a step both agree on) and ``hi`` (a step they disagree on):
each round asks both for the hash at ``(lo + hi) // 2`` by a deadline; after about
log2(end - start) rounds ``hi = lo + 1`` and the dispute is **narrowed** to step ``hi``, the
first transition they disagree on, which a referee recomputes from the agreed state at ``lo``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pasar.core.market_records import fail
from pasar.crypto.merkle import MerkleError, MerkleProof, hash_leaf, verify_proof

if TYPE_CHECKING:
    from pasar.core.market_records import LeaseRecord
    from pasar.core.state import MarketState

#: The harness writes the Merkle root of its step hashes as 32 raw bytes under this name
#: (:mod:`pasar.train.harness`): the receipt commits that file's sha256, so the market can tell
#: a claimed step root from the prover's own (sha256 of the 32 bytes) without reading a blob.
STEP_ROOT = "step_root.bin"
PROVER, VERIFIER = "prover", "verifier"
#: the "operator" of a side whose step ended where the other's went on (a step that skipped
#: its work dispatched fewer operators, or none)
END = "(the step ended)"
#: open: a round waits for both answers; narrowed: the step is found, both sides' operator
#: traces are awaited (:mod:`pasar.core.dispute_trace`); pinned: the operator is found, the
#: referee's ruling is awaited; the rest are ends.
LIVE = frozenset({"open", "narrowed", "pinned"})


@dataclass
class DisputeRecord:
    """One dispute over the steps ``start..end`` of a held pol lease (see the module doc).

    ``asked`` is the step this round asks for, ``answers`` who answered it and with what;
    ``rounds`` is every answered round (``{step, prover, verifier, agree}``), which the views
    and the audit show. ``hi_hashes`` are both sides' hashes at ``hi`` (what a referee's
    recomputed hash is compared with). ``status`` ends as ``prover_lost``, ``verifier_lost``,
    ``unrefereed`` (the referee missed its deadline: the checkers decide as before) or ``moot``
    (the lease was decided another way first)."""

    id: str
    lease_id: str
    order_id: str
    check_id: str
    provider: str
    verifier: str
    prover_root: str
    prover_size: int
    verifier_root: str
    start: int
    end: int
    opened_at: int
    deadline: int
    lo: int
    hi: int
    hi_hashes: dict[str, str]
    asked: int | None = None
    answers: dict[str, str] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    status: str = "open"
    step: int | None = None  # the narrowed step: the first transition they disagree on
    loser: str | None = None
    reason: str | None = None
    referee_hash: str | None = None
    operator: dict[str, Any] | None = None  # the operator a referee named, when it did
    # the operator phase (pasar.core.dispute_trace): each side's trace of the narrowed step
    # ``{operators, root, count, hash}`` by role, the leftmost operator they part at
    # ``{index, prover: {name, hash}, verifier: {name, hash}}`` and the third verifier who
    # referees it
    traces: dict[str, dict[str, Any]] = field(default_factory=dict)
    op: dict[str, Any] | None = None
    referee: str | None = None


def live_dispute(state: MarketState, lease_id: str) -> DisputeRecord | None:
    """The dispute still running over ``lease_id``, if any (few exist: a scan is fine)."""
    for dispute in state.disputes.values():
        if dispute.lease_id == lease_id and dispute.status in LIVE:
            return dispute
    return None


def bisecting(state: MarketState, lease_id: str) -> bool:
    """Whether a dispute over ``lease_id`` is still running (its step rounds, its operator
    traces or its referee): no more checkers are assigned and their majority waits meanwhile.
    When it ends without a ruling (``unrefereed``), the checkers decide as before."""
    return live_dispute(state, lease_id) is not None


def disputes_due(state: MarketState, now_ms: int) -> list[str]:
    """Live disputes past their deadline: what the market's engine expires now."""
    return sorted(
        d.id for d in state.disputes.values() if d.status in LIVE and now_ms >= d.deadline
    )


def committed_step_root(lease: LeaseRecord) -> str | None:
    """The sha256 the receipt commits for the prover's :data:`STEP_ROOT` file (its plaintext's
    for a sealed job), or None when the run has exactly no such file (not a harness run)."""
    outputs = (lease.receipt or {}).get("outputs") or []
    found = [
        o for o in outputs
        if isinstance(o, Mapping)
        and (o.get("path") == STEP_ROOT or str(o.get("path", "")).endswith("/" + STEP_ROOT))
    ]  # fmt: skip
    if len(found) != 1:
        return None
    value = found[0].get("plain_sha256") or found[0].get("sha256")
    return value if isinstance(value, str) else None


def root_matches_receipt(lease: LeaseRecord, root: str) -> bool:
    """Whether ``root`` (hex) is the step root the prover's receipt commits."""
    committed = committed_step_root(lease)
    try:
        raw = bytes.fromhex(root)
    except ValueError:
        return False
    return committed is not None and len(raw) == 32 and hashlib.sha256(raw).hexdigest() == committed


def parse_hash(value: object, name: str) -> str:
    """A 64-hex step hash, lower case, or a 400 naming ``name``."""
    if isinstance(value, str) and len(value) == 64:
        try:
            bytes.fromhex(value)
            return value.lower()
        except ValueError:
            pass
    raise fail(f"{name} must be a 64-hex sha256 step hash", code="invalid_dispute", field=name)


def parse_proof(value: object, name: str) -> MerkleProof:
    try:
        return MerkleProof.from_dict(value)
    except MerkleError as exc:
        raise fail(exc.message.replace("proof", name, 1), code="invalid_proof", field=name,
                   hint="{index, size, siblings: [hex, ...]} as MerkleTree.proof(i).to_dict() "
                   "gives") from None  # fmt: skip


def proven(root: str, value: str, proof: MerkleProof, *, index: int, size: int) -> bool:
    """``value`` is leaf ``index`` of a tree of ``size`` step hashes under ``root``."""
    return (
        proof.index == index and proof.size == size and verify_proof(root, hash_leaf(value), proof)
    )


def where(record: DisputeRecord) -> str | None:
    """ "step 34, operator aten.add_.Tensor (#27)": what the views print, once known."""
    if record.step is None:
        return None
    text = f"step {record.step}"
    op = record.operator
    if op is not None and op["name"] == END:
        text += f", operator #{op['index']}: none, where the honest step ran {op.get('referee')}"
    elif op is not None:
        text += f", operator {op['name']} (#{op['index']})"
    elif record.op is not None:
        names = {record.op[PROVER]["name"], record.op[VERIFIER]["name"]}
        text += f", operator #{record.op['index']} ({' / '.join(sorted(names))})"
    return text


def dispute_view(record: DisputeRecord) -> dict[str, Any]:
    """What the API and the CLI show of a dispute: where it stands and, once narrowed, the
    step (and, with a referee's ruling, the operator) it was pinned to."""
    return {
        "dispute_id": record.id,
        "lease_id": record.lease_id,
        "order_id": record.order_id,
        "check_id": record.check_id,
        "provider": record.provider,
        "verifier": record.verifier,
        "segment": [record.start, record.end],
        "agreed_step": record.lo,
        "disputed_step": record.hi,
        "asked_step": record.asked,
        "answered": sorted(record.answers),
        "deadline_ms": record.deadline,
        "rounds": list(record.rounds),
        "status": record.status,
        "step": record.step,
        "operator": record.operator,
        "operators": {
            role: {"root": t["root"], "count": t["count"]} for role, t in record.traces.items()
        },
        "pinned_operator": record.op,
        "referee": record.referee,
        "where": where(record),
        "loser": record.loser,
        "reason": record.reason,
    }
