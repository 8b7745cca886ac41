"""``/v1/capacity``: a provider answers the market's capacity challenge (and anyone may read
one). The challenge and the verdict are the market's own transactions (the engine sends
them); see :mod:`pasar.core.capacity`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from pasar.api.txs import TxAnswer
from pasar.core.errors import PasarError
from pasar.crypto.envelope import VerifiedEnvelope
from pasar.market.auth import signed_envelope
from pasar.market.openapi import signs
from pasar.market.routes.common import service_of, submit_typed

router = APIRouter(tags=["providers"])
Signed = Annotated[VerifiedEnvelope, Depends(signed_envelope)]


@router.post(
    "/v1/capacity/{challenge_id}/answer",
    summary="Answer a capacity challenge (the sha256 of the uploaded answer blob)",
    response_model_exclude_unset=True,
    openapi_extra=signs("capacity.answer"),
)
def answer(request: Request, challenge_id: str, envelope: Signed) -> TxAnswer:
    """Upload ``X_steps`` (``n²`` bytes) with ``PUT /v1/blobs/{sha256}`` first; refused after
    the deadline (409 ``challenge_late``), twice (409 ``already_answered``) or for another
    provider's challenge (403)."""
    return submit_typed(request, envelope, "capacity.answer", challenge_id=challenge_id)


@router.get("/v1/capacity/{challenge_id}", summary="One capacity challenge and its verdict")
def challenge(request: Request, challenge_id: str) -> dict[str, Any]:
    service = service_of(request)
    with service.lock:
        found = service.state.capacity_challenges.get(challenge_id)
    if found is None:
        raise PasarError(
            f"no challenge {challenge_id!r}", code="not_found", status=404, field="challenge_id"
        )
    out = found.to_json()
    out.update(answer=found.answer, answered_at=found.answered_at, verdict=found.verdict)
    if found.reason:
        out["reason"] = found.reason
    return out
