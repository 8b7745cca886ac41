"""Verifiers and their checks as the API shows them.

A :class:`CheckView` is what a verifier needs to re-run a lease (the job's full spec, its
inputs, the shard, and the provider's outputs to compare with) — given only to the verifier the
check is assigned to, the order's client, the lease's provider and the operator."""

from __future__ import annotations

from pydantic import Field

from pasar.api.base import JSONObject, WireModel
from pasar.api.receipts import FileEntry
from pasar.api.status import CheckStatus


class CheckView(WireModel):
    check_id: str
    lease_id: str
    order_id: str
    verifier: str
    status: CheckStatus
    assigned_at: int
    deadline_ms: int
    shard: int
    shards: int = 1
    agrees: bool | None = None
    root: str | None = None
    provider_root: str | None = None
    spec: JSONObject | None = None
    inputs: list[FileEntry] = Field(default_factory=list)
    provider_outputs: list[FileEntry] = Field(default_factory=list)
    private: str | None = None  # sha256 of the private part
    sealed_key: str | None = None  # a sealed job: its data key, sealed to this check's verifier
    # a pol check: the challenge seed (the market's draw, hex) and the sample's sizes
    # (``{"seed", "top", "random", "segment", "mode", "threshold"}``: :mod:`pasar.core.verify.pol`)
    challenge: JSONObject | None = None
    # a pol verdict's mode ("bitwise" or "tolerance") and its distance (tolerance mode)
    mode: str | None = None
    distance: str | None = None
    noise: str | None = None  # tolerance mode calibrated per job (pasar.core.verify.pol)
    threshold: str | None = None
    # the checked lease's resources.alternatives index (absent without them): a re-run is
    # sized as its provider ran it
    alternative: int | None = None


class VerifierInfo(WireModel):
    """A verifier's standing: stake, checks done and missed, checks waiting for it."""

    verifier: str
    operator: str | None = None
    available: bool
    stake: str
    checks_done: int = 0
    checks_missed: int = 0
    assigned: list[str] = Field(default_factory=list)
    disputes: list[JSONObject] = Field(default_factory=list)  # the pol disputes it opened


class ChallengeView(WireModel):
    """A whistleblower's challenge: public, like the result it disputes (no private data)."""

    challenge_id: str
    lease_id: str
    order_id: str
    whistleblower: str
    claim: str
    bond: str
    opened_at: int
    status: str  # open | upheld | rejected
    checks: list[str] = Field(default_factory=list)


class DisputeView(WireModel):
    """A pol dispute (:mod:`pasar.core.disputes`): public, like the lease it is about. Once
    narrowed, ``step`` is the first step the two sides' transitions differ at; once both traced
    it, ``pinned_operator`` is the leftmost aten operator they part at, and the referee's
    ruling names the ``operator`` (``{index, name}``) the loser got wrong."""

    dispute_id: str
    lease_id: str
    order_id: str
    check_id: str
    provider: str
    verifier: str
    segment: list[int]
    agreed_step: int
    disputed_step: int
    asked_step: int | None = None
    answered: list[str] = Field(default_factory=list)
    deadline_ms: int
    rounds: list[JSONObject] = Field(default_factory=list)
    # open | narrowed | pinned | prover_lost | verifier_lost | unrefereed | moot
    status: str
    step: int | None = None
    operator: JSONObject | None = None
    # the operator phase (pasar.core.dispute_trace): each side's operator root and count, the
    # leftmost operator they part at, the third verifier refereeing it, and "step 34, operator
    # aten.add_.Tensor (#27)" once known
    operators: dict[str, JSONObject] = Field(default_factory=dict)
    pinned_operator: JSONObject | None = None
    referee: str | None = None
    where: str | None = None
    loser: str | None = None
    reason: str | None = None
