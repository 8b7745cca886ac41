"""Verifiers: register, their standing, the checks given to them, and their verdicts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from pasar.api.checks import ChallengeView, CheckView, DisputeView, VerifierInfo
from pasar.api.receipts import file_entries
from pasar.api.txs import TxAnswer
from pasar.core.check_handlers import checked_policy
from pasar.core.disputes import dispute_view
from pasar.core.errors import PasarError
from pasar.core.lease_handlers import compared_root
from pasar.core.market_records import CheckRecord, LeaseRecord, OrderRecord
from pasar.core.state import MarketState
from pasar.core.verify.pol import PolPolicy
from pasar.crypto.envelope import VerifiedEnvelope
from pasar.crypto.identity import parse_account_id
from pasar.market.access import check_lease_party
from pasar.market.auth import Reader, signed_envelope
from pasar.market.openapi import signs
from pasar.market.routes.common import service_of, submit_typed
from pasar.market.service import MarketService

router = APIRouter(tags=["verifiers"])
Signed = Annotated[VerifiedEnvelope, Depends(signed_envelope)]


@router.post(
    "/v1/verifiers",
    summary="Register a verifier (stake with POST /v1/stakes)",
    response_model_exclude_unset=True,
    openapi_extra=signs("verifier.register"),
)
def register(request: Request, envelope: Signed) -> TxAnswer:
    return submit_typed(request, envelope, "verifier.register")


@router.get("/v1/verifiers/{verifier_id}", summary="A verifier's stake, checks and standing")
def verifier(request: Request, verifier_id: str) -> VerifierInfo:
    account = parse_account_id(verifier_id, field="verifier_id")
    service = service_of(request)
    with service.lock:
        state = service.state
        record = state.verifiers.get(account)
        if record is None:
            raise PasarError(
                f"no verifier {verifier_id!r}",
                code="not_found",
                status=404,
                field="verifier_id",
                hint="pasar verifier start registers one",
            )
        return VerifierInfo(
            verifier=record.id,
            operator=record.operator,
            available=record.available,
            stake=state.stake_of(record.id).to_json(),
            checks_done=record.checks_done,
            checks_missed=record.checks_missed,
            assigned=sorted(
                c.id
                for c in state.checks.values()
                if c.verifier == account and c.status == "assigned"
            ),
            disputes=[
                dispute_view(d)
                for d in state.disputes.values()
                if account in (d.verifier, d.referee)  # its own, and those it referees
            ],
        )


def _check(state: MarketState, check_id: str) -> CheckRecord:
    check = state.checks.get(check_id)
    if check is None:
        raise PasarError(f"no check {check_id!r}", code="not_found", status=404, field="check_id")
    return check


def check_view(service: MarketService, check: CheckRecord) -> CheckView:
    state = service.state
    lease = state.leases[check.lease_id]
    record = state.orders[check.order_id]
    receipt = lease.receipt or {}
    return CheckView(
        check_id=check.id,
        lease_id=check.lease_id,
        order_id=check.order_id,
        verifier=check.verifier,
        status=check.status,
        assigned_at=check.assigned_at,
        deadline_ms=check.deadline,
        shard=lease.shard,
        shards=record.spec.shards,
        agrees=check.agrees,
        mode=check.mode,
        distance=check.distance,
        noise=check.noise,
        threshold=check.threshold,
        root=check.root,
        provider_root=compared_root(receipt),  # the plaintexts' for a sealed job
        spec=service.private.spec_of(record),
        inputs=file_entries(service.private.inputs_of(record)),
        private=record.private,
        sealed_key=lease.sealed_keys.get(check.verifier),
        provider_outputs=file_entries(receipt.get("outputs", ())),
        challenge=pol_challenge(state, record, lease),
        **({"alternative": lease.alternative} if lease.alternative is not None else {}),
    )


def pol_challenge(
    state: MarketState, record: OrderRecord, lease: LeaseRecord
) -> dict[str, object] | None:
    """What a pol verifier samples with: the market's draw (the challenge seed) and Q, r, k."""
    policy = checked_policy(state, record)
    if not isinstance(policy, PolPolicy) or lease.draw is None:
        return None
    return {
        "seed": lease.draw,
        "top": policy.top,
        "random": policy.random,
        "segment": policy.segment,
        "mode": policy.mode,
        "threshold": str(float(policy.threshold)),
    }


@router.get(
    "/v1/checks/{check_id}",
    summary="One check, with what its verifier needs to re-run the lease",
    response_model_exclude_unset=True,
)
def get_check(request: Request, check_id: str, reader: Reader) -> CheckView:
    """For the check's verifier, the lease's client and provider, the operator, and the
    referee of a dispute over it (it traces the disputed step as the job ran)."""
    service = service_of(request)
    with service.lock:
        state = service.state
        check = _check(state, check_id)
        referees = {d.referee for d in state.disputes.values() if d.check_id == check_id}
        if reader is None or (reader != check.verifier and reader not in referees):
            check_lease_party(state, state.leases[check.lease_id], reader)
        return check_view(service, check)


@router.post(
    "/v1/checks/{check_id}/verdict",
    summary="A verifier's result for its check",
    response_model_exclude_unset=True,
    openapi_extra=signs("check.verdict"),
)
def verdict(request: Request, check_id: str, envelope: Signed) -> TxAnswer:
    """The outputs are hashed by the verifier and not uploaded: the root is what is compared."""
    return submit_typed(request, envelope, "check.verdict", check_id=check_id)


@router.post(
    "/v1/challenges",
    summary="A whistleblower challenges a settled result (with a bond)",
    response_model_exclude_unset=True,
    openapi_extra=signs("challenge.open"),
)
def challenge(request: Request, envelope: Signed) -> TxAnswer:
    """Within the preset's ``challenge_window_s`` of the result's settlement; 2N+1 checkers
    then decide, and the bond is returned (upheld) or lost (rejected)."""
    return submit_typed(request, envelope, "challenge.open")


@router.get("/v1/challenges/{challenge_id}", summary="A challenge and its checks")
def get_challenge(request: Request, challenge_id: str) -> ChallengeView:
    service = service_of(request)
    with service.lock:
        record = service.state.challenges.get(challenge_id)
        if record is None:
            raise PasarError(
                f"no challenge {challenge_id!r}", code="not_found", status=404, field="challenge_id"
            )
        return ChallengeView(
            challenge_id=record.id,
            lease_id=record.lease_id,
            order_id=record.order_id,
            whistleblower=record.whistleblower,
            claim=record.claim,
            bond=record.bond.to_json(),
            opened_at=record.opened_at,
            status=record.status,
            checks=list(record.checks),
        )


@router.post(
    "/v1/disputes",
    summary="The verifier of a mismatched pol check disputes its lease (bisection over steps)",
    response_model_exclude_unset=True,
    openapi_extra=signs("dispute.open"),
)
def open_dispute(request: Request, envelope: Signed) -> TxAnswer:
    """Over the segment it replayed, with both committed roots and the proofs that the two
    sides agree at its start and disagree at its end (:mod:`pasar.core.dispute_handlers`)."""
    return submit_typed(request, envelope, "dispute.open")


@router.post(
    "/v1/disputes/{dispute_id}/answer",
    summary="The prover's or the verifier's hash at the step a dispute's round asks",
    response_model_exclude_unset=True,
    openapi_extra=signs("dispute.answer"),
)
def answer_dispute(request: Request, dispute_id: str, envelope: Signed) -> TxAnswer:
    """With a Merkle proof against that side's committed root; by the round's deadline."""
    return submit_typed(request, envelope, "dispute.answer", dispute_id=dispute_id)


@router.post(
    "/v1/disputes/{dispute_id}/trace",
    summary="A side's (or the referee's) operator trace of the step a dispute is narrowed to",
    response_model_exclude_unset=True,
    openapi_extra=signs("dispute.trace"),
)
def trace_dispute(request: Request, dispute_id: str, envelope: Signed) -> TxAnswer:
    """Every aten operator of the step, ``[name, sha256 of its outputs]``, and the state hash
    it reached; by the deadline (:mod:`pasar.core.dispute_trace`)."""
    return submit_typed(request, envelope, "dispute.trace", dispute_id=dispute_id)


@router.get("/v1/disputes/{dispute_id}", summary="A pol dispute: its rounds, step and operator")
def get_dispute(request: Request, dispute_id: str) -> DisputeView:
    """Public, like the lease it is about: the hashes in it are commitments, not data."""
    service = service_of(request)
    with service.lock:
        record = service.state.disputes.get(dispute_id)
        if record is None:
            raise PasarError(
                f"no dispute {dispute_id!r}", code="not_found", status=404, field="dispute_id"
            )
        return DisputeView.model_validate(dispute_view(record))


@router.get("/v1/leases/{lease_id}/disputes", summary="The pol disputes over one lease")
def lease_disputes(request: Request, lease_id: str) -> list[DisputeView]:
    service = service_of(request)
    with service.lock:
        return [
            DisputeView.model_validate(dispute_view(d))
            for d in service.state.disputes.values()
            if d.lease_id == lease_id
        ]
