"""What every business route shares: the service, and submitting a typed transaction."""

from __future__ import annotations

from fastapi import Request

from pasar.api.txs import TxAnswer
from pasar.core.errors import PasarError
from pasar.core.market_records import Applied
from pasar.crypto.envelope import VerifiedEnvelope
from pasar.market.private_parts import Revealed
from pasar.market.service import MarketService


def service_of(request: Request) -> MarketService:
    service: MarketService = request.app.state.service
    return service


def submit_typed(
    request: Request,
    envelope: VerifiedEnvelope,
    tx_type: str,
    *,
    private: Revealed | None = None,
    **path: str,
) -> TxAnswer:
    """Submit ``envelope`` if its body is a ``tx_type`` transaction about the path's object.

    One endpoint per resource keeps the API readable, but the body's ``type`` is what the
    signature covers, so a body signed for one endpoint cannot be replayed at another.
    """
    check_typed(envelope, tx_type, **path)
    return tx_answer(service_of(request).submit(envelope, private=private))


def check_typed(envelope: VerifiedEnvelope, tx_type: str, **path: str) -> None:
    """Refuse ``envelope`` unless its body is a ``tx_type`` transaction about the path's
    object (:func:`submit_typed`'s check, for a route that submits in steps)."""
    body = envelope.body
    if body.get("type") != tx_type:
        raise PasarError(
            f"this endpoint takes {tx_type!r} transactions, the body says {body.get('type')!r}",
            code="wrong_type",
            field="body.type",
            hint=f'sign a body with "type": "{tx_type}"',
        )
    for key, value in path.items():
        if body.get(key) != value:
            raise PasarError(
                f"body.{key} {body.get(key)!r} does not match the URL's {value!r}",
                code="path_mismatch",
                field=f"body.{key}",
            )


def tx_answer(applied: Applied) -> TxAnswer:
    """The API's answer for an accepted transaction."""
    return TxAnswer.model_validate({"ok": True, "type": applied.type, **applied.result})
