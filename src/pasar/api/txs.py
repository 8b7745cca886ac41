"""Transaction bodies (what a client, provider or the market signs) and the market's answer.

Each body is a model whose fields are exactly the ones the state machine accepts for its
``type`` (``pasar.core.tx_fields.TX_FIELDS``; a contract test keeps the two equal — core keeps its
own validation and never imports this package). :meth:`TxBody.body` is what gets signed: the
``type`` and the fields that were given, so an optional field left out stays out of the
signed bytes, and one given as None (a declined bid's ``price``) is sent as null.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from pasar.api.base import JSONObject, OpenModel, WireModel
from pasar.api.receipts import Failure, FileEntry, Usage
from pasar.core.errors import PasarError


class TxBody(WireModel):
    """A transaction body; subclasses pin ``type``."""

    type: str

    def body(self) -> JSONObject:
        return {"type": self.type, **self.model_dump(mode="json", exclude_unset=True)}


class Faucet(TxBody):
    type: Literal["faucet"] = "faucet"
    amount: str


class Asks(WireModel):
    """Standing asks: per GPU model per hour, and per CPU core per hour."""

    gpu: dict[str, str] = Field(default_factory=dict)
    cpu_core: str | None = None


class ProviderRegister(TxBody):
    type: Literal["provider.register"] = "provider.register"
    inventory: JSONObject  # the hardware (core's ``parse_inventory`` owns its shape)
    asks: Asks | None = None
    rate_per_score_hour: str | None = None
    score: int | None = None
    region: str | None = None
    attributes: dict[str, str] | None = None
    available: bool | None = None


class Stake(TxBody):
    type: Literal["stake"] = "stake"
    amount: str


class Unstake(TxBody):
    type: Literal["unstake"] = "unstake"
    amount: str


class UnbondedWithdraw(TxBody):
    type: Literal["unbonded.withdraw"] = "unbonded.withdraw"


class Withdraw(TxBody):
    type: Literal["withdraw"] = "withdraw"
    amount: str


class OrderCreate(TxBody):
    type: Literal["order.create"] = "order.create"
    spec: JSONObject  # the public part of a job spec (JobSpec.public_dict)
    private: str  # sha256 of the private part blob (pasar.core.private_part)
    tolerant: bool = False  # whether verifiers compare outputs within the spec's tolerances
    ttl_s: int | None = None
    blobs: list[str] = Field(default_factory=list)  # a sealed job's encrypted inputs


class OrderCancel(TxBody):
    type: Literal["order.cancel"] = "order.cancel"
    order_id: str


class Bid(TxBody):
    type: Literal["bid"] = "bid"
    order_id: str
    price: str | None  # None: the provider declines


class Match(TxBody):
    type: Literal["match"] = "match"
    order_id: str
    seed: int
    offline: list[str] | None = None


class OrderExpire(TxBody):
    type: Literal["order.expire"] = "order.expire"
    order_id: str


class Heartbeat(TxBody):
    type: Literal["heartbeat"] = "heartbeat"
    lease_id: str
    interval: int
    challenge: str
    usage: dict[str, int] | None = None


class LeaseLost(TxBody):
    """Market-signed: a running lease is lost, either after ``grace_intervals`` without a
    heartbeat, or (``challenge_id``) because its provider missed that liveness challenge."""

    type: Literal["lease.lost"] = "lease.lost"
    lease_id: str
    challenge_id: str | None = None


class LivenessChallenge(TxBody):
    """Market-signed: a provider is suspected dead (``reason``) and must answer by the
    preset's ``challenge_deadline_ms``."""

    type: Literal["liveness.challenge"] = "liveness.challenge"
    provider: str
    reason: str


class LivenessAnswer(TxBody):
    """Provider-signed: it is alive, answering its open liveness challenge."""

    type: Literal["liveness.answer"] = "liveness.answer"
    challenge_id: str


class ClusterExec(TxBody):
    """One more command on a running cluster's head: the sha256 of the blob holding it."""

    type: Literal["cluster.exec"] = "cluster.exec"
    order_id: str
    step: int
    command: str


class LeaseRelease(TxBody):
    type: Literal["lease.release"] = "lease.release"
    lease_id: str


class Receipt(TxBody):
    """The end of a lease: its outputs and their Merkle root, or a failure and no outputs (but
    ``missing_outputs``, which carries what the job did write, for a check to compare)."""

    type: Literal["receipt"] = "receipt"
    lease_id: str
    exit_code: int
    root: str
    outputs: list[FileEntry]
    started_at: int
    ended_at: int
    usage: Usage | None = None
    kill_reason: str | None = None
    note: str | None = None
    failure: Failure | None = None
    plain_root: str | None = None  # a sealed job: the Merkle root of the outputs' plaintexts


class LeaseAccept(TxBody):
    """A sealed job's provider announces the X25519 key the data key is to be sealed to."""

    type: Literal["lease.accept"] = "lease.accept"
    lease_id: str
    key: str


class KeySeal(TxBody):
    """A sealed job's client seals its data key to one party of a lease (hex sealed box)."""

    type: Literal["key.seal"] = "key.seal"
    lease_id: str
    recipient: str
    sealed_key: str


class ResultApprove(TxBody):
    """The client approves one shard's held result, or (no ``shard``) every held one."""

    type: Literal["result.approve"] = "result.approve"
    order_id: str
    shard: int | None = None


class ResultReject(TxBody):
    """The client rejects one shard's held result: re-run free on another provider."""

    type: Literal["result.reject"] = "result.reject"
    order_id: str
    shard: int
    reason: str


class ResultAutoApprove(TxBody):
    """The market approves a held result whose approval window has passed."""

    type: Literal["result.auto_approve"] = "result.auto_approve"
    lease_id: str


class VerifierRegister(TxBody):
    type: Literal["verifier.register"] = "verifier.register"
    operator: str | None = None


class CheckDraw(TxBody):
    """The market's signature over a held receipt: whether a verifier re-runs it."""

    type: Literal["check.draw"] = "check.draw"
    lease_id: str
    draw: str


class CheckAssign(TxBody):
    type: Literal["check.assign"] = "check.assign"
    lease_id: str
    seed: int
    challenge_id: str | None = None  # a check of a whistleblower's challenge


class ChallengeOpen(TxBody):
    """A whistleblower's claim that a settled result is wrong, with its bond."""

    type: Literal["challenge.open"] = "challenge.open"
    lease_id: str
    claim: str
    bond: str


class CheckVerdict(TxBody):
    """A verifier's re-run of a lease: its outputs and their root (``matches`` only for outputs
    the spec compares within a tolerance: the verifier's own comparison)."""

    type: Literal["check.verdict"] = "check.verdict"
    check_id: str
    root: str
    outputs: list[FileEntry]
    matches: bool | None = None
    # a pol verdict: ``tolerance`` where the verifier replayed in another environment, with the
    # largest normalized distance it measured (decimal text): pasar.core.verify.pol
    mode: Literal["bitwise", "tolerance"] | None = None
    distance: str | None = None
    # tolerance mode calibrated for this job: the distance between the verifier's own replays
    # in two environments and the threshold it gives (decimal text; core checks the threshold)
    noise: str | None = None
    threshold: str | None = None


class CheckExpire(TxBody):
    type: Literal["check.expire"] = "check.expire"
    check_id: str


class DisputeOpen(TxBody):
    """The verifier whose pol check found a mismatch disputes ``start..end`` (issue 16): the
    prover's step root (its receipt commits it), the verifier's root over its replayed hashes
    (leaf i = step start+i), and proofs (``prover_start``, ``verifier_start``, ``prover_end``,
    ``verifier_end``: each ``{index, size, siblings}``) that they agree at ``start`` and
    disagree at ``end``."""

    type: Literal["dispute.open"] = "dispute.open"
    check_id: str
    start: int
    end: int
    prover_root: str
    verifier_root: str
    start_hash: str
    end_hash: str
    prover_end_hash: str
    proofs: dict[str, Any]


class DisputeAnswer(TxBody):
    """The prover's or the verifier's hash at the step a dispute's round asks, with its Merkle
    proof against that side's committed root."""

    type: Literal["dispute.answer"] = "dispute.answer"
    dispute_id: str
    step: int
    hash: str
    proof: dict[str, Any]


class DisputeTrace(TxBody):
    """The prover's, the verifier's or the referee's trace of the step a dispute is narrowed
    to: every aten operator it dispatched, ``[name, sha256 of its outputs]``, in order, and
    the state hash it reached (:mod:`pasar.core.dispute_trace`)."""

    type: Literal["dispute.trace"] = "dispute.trace"
    dispute_id: str
    step: int
    operators: list[list[str]]
    hash: str


class DisputeExpire(TxBody):
    """Market-signed: a dispute's round (or its referee) missed the deadline."""

    type: Literal["dispute.expire"] = "dispute.expire"
    dispute_id: str


class DisputeRule(TxBody):
    """Market-signed: a referee's state hash after the narrowed step and its output at the
    operator the two sides part at (``{index, name, hash}``), computed outside the state
    machine (by the dispute's referee, a third verifier)."""

    type: Literal["dispute.rule"] = "dispute.rule"
    dispute_id: str
    step: int
    hash: str
    operator: dict[str, Any] | None = None


class CapacityChallenge(TxBody):
    """Market-signed: prove the claimed score (the size and deadline follow from it)."""

    type: Literal["capacity.challenge"] = "capacity.challenge"
    provider: str
    seed: int


class CapacityAnswer(TxBody):
    """Provider-signed: the sha256 of the uploaded answer to one of its challenges."""

    type: Literal["capacity.answer"] = "capacity.answer"
    challenge_id: str
    sha256: str


class CapacityVerdict(TxBody):
    """Market-signed: what the market's check of an answer (or its absence) found."""

    type: Literal["capacity.verdict"] = "capacity.verdict"
    challenge_id: str
    result: Literal["passed", "failed", "late"]
    reason: str | None = None


class TeeAttest(TxBody):
    """Market-signed: the market verified a provider's TDX/SGX quote (at its own clock, bound to
    the provider's key and a nonce it issued) and records the verdict (:mod:`pasar.core.tee`)."""

    type: Literal["tee.attest"] = "tee.attest"
    provider: str
    tee: Literal["TDX", "SGX"]
    tcb_status: str
    advisories: list[str] = Field(default_factory=list)
    measurements: dict[str, str]
    quote_sha256: str
    expires_at: int
    nonce: str
    nonce_issued_at: int


class TlsClientCert(TxBody):
    """Account-signed, not a ledger transaction: a request for a client certificate naming the
    signer, over the client's own EC public key (PEM), on a market with mutual TLS."""

    type: Literal["tls.client_cert"] = "tls.client_cert"
    public_key: str


class TlsCertificate(OpenModel):
    """A client certificate (PEM) the market issued, and the account it names."""

    account: str
    certificate: str


class TeePresent(TxBody):
    """Provider-signed, not a ledger transaction: a TDX/SGX quote (base64) whose report data
    binds the provider's key and a nonce the market issued, with the collateral to verify it
    (dcap-qvl's JSON). The market verifies it and records a ``tee.attest``."""

    type: Literal["tee.present"] = "tee.present"
    provider: str
    quote: str
    collateral: str
    nonce: str
    nonce_issued_at: int


class TeeNonce(OpenModel):
    """A nonce the market issued (its signature of ``pasar.core.tee.nonce_message``)."""

    provider: str
    nonce: str
    nonce_issued_at: int
    valid_for_ms: int


class Logs(TxBody):
    """A chunk of a lease's log at ``offset`` (signed, but not a ledger transaction)."""

    type: Literal["logs"] = "logs"
    lease_id: str
    offset: int
    data: str


#: Every ledger transaction type and its body model.
TX_BODIES: dict[str, type[TxBody]] = {
    model.model_fields["type"].default: model
    for model in (
        Faucet,
        ProviderRegister,
        Stake,
        Unstake,
        UnbondedWithdraw,
        Withdraw,
        OrderCreate,
        OrderCancel,
        Bid,
        Match,
        OrderExpire,
        Heartbeat,
        LeaseLost,
        LivenessChallenge,
        LivenessAnswer,
        LeaseRelease,
        Receipt,
        ResultApprove,
        ResultReject,
        ResultAutoApprove,
        VerifierRegister,
        CheckDraw,
        CheckAssign,
        CheckVerdict,
        CheckExpire,
        ChallengeOpen,
        DisputeOpen,
        DisputeAnswer,
        DisputeTrace,
        DisputeExpire,
        DisputeRule,
        CapacityChallenge,
        CapacityAnswer,
        CapacityVerdict,
        LeaseAccept,
        KeySeal,
        TeeAttest,
        ClusterExec,
    )
}


class TxAnswer(OpenModel):
    """``{ok, type, ...}``: the transaction was applied; the rest is its result (an order's
    ``order_id`` and ``escrow``, a cancel's ``billed``, a receipt's bill, ...)."""

    ok: bool = True  # the market always sends both; a client needs neither
    type: str | None = None
    order_id: str | None = None
    # order.create: the feed's cursor once the order was published (a wait may start there)
    next: int | None = None

    def created(self) -> str:
        """The id of the order an ``order.create`` made (a 502 if the answer names none)."""
        if self.order_id is None:
            raise PasarError(
                "the market's answer to order.create names no order_id",
                code="bad_response",
                status=502,
            )
        return self.order_id
