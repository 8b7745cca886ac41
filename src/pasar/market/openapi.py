"""The OpenAPI document says what the market really accepts and returns.

FastAPI's generated schema is right about routes and parameters but wrong in two places for
pasar, and this module corrects both when ``/openapi.json`` is first built:

- signed routes read their body as raw bytes (see :mod:`pasar.market.auth`), so FastAPI sees no
  body at all; every operation that depends on ``signed_envelope`` (or ``signed_body``) gets the
  :class:`~pasar.market.auth.EnvelopeIn` request body and its 401/403 answers;
- FastAPI documents a 422 with pydantic's error list; pasar answers 400 in its one error shape,
  so the 422 is removed and every operation documents ``4XX`` as the ``Error`` schema.

A route that takes one transaction type says so with ``openapi_extra=signs(type)``; its
envelope's ``body`` is then documented as that type's model from :mod:`pasar.api.txs`, so the
request bodies, like the answers (each route's ``response_model``), come from the wire models.

Schemathesis and client generators read this document, so it must not promise what the server
does not do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from pasar.api.attachments import INLINE_BYTES, MAX_ATTACHMENTS
from pasar.api.txs import TX_BODIES, Logs, TeePresent, TlsClientCert, TxBody
from pasar.market.auth import EnvelopeIn, signed_body, signed_envelope

_REF = "#/components/schemas/{model}"
_TX_KEY = "x-pasar-tx"
_ATTACH_KEY = "x-pasar-attachments"
_ATTACHMENTS_SCHEMA = {
    "type": "object",
    "title": "Attachments",
    "description": f"Small blobs the body names, sha256 → base64 of their bytes (at most "
    f"{MAX_ATTACHMENTS} blobs, {INLINE_BYTES} bytes in all): stored as the signer's uploads, as "
    "PUT /v1/blobs/{sha256} would, before the transaction is applied.",
    "maxProperties": MAX_ATTACHMENTS,
    "propertyNames": {"pattern": "^[0-9a-f]{64}$"},
    "additionalProperties": {"type": "string", "contentEncoding": "base64"},
}
_SIGNED_BODIES: dict[str, type[TxBody]] = {
    **TX_BODIES,
    "logs": Logs,
    "tee.present": TeePresent,
    "tls.client_cert": TlsClientCert,
}


def signs(tx_type: str, *, attachments: bool = False) -> dict[str, Any]:
    """``openapi_extra`` of a route whose envelope carries a ``tx_type`` body (and, beside it,
    ``attachments``: :mod:`pasar.api.attachments`, if the route takes them)."""
    if tx_type not in _SIGNED_BODIES:
        raise ValueError(f"no body model for transaction type {tx_type!r}")
    return {_TX_KEY: tx_type, _ATTACH_KEY: attachments}


class ErrorItem(BaseModel):
    """One problem among several."""

    code: str
    message: str
    field: str | None = None
    hint: str | None = None
    line: int | None = None


class ErrorBody(BaseModel):
    """What went wrong, where, and what to do about it."""

    code: str = Field(description="Stable machine-readable reason, e.g. `bad_signature`.")
    message: str
    field: str | None = Field(default=None, description="Dotted location of the culprit.")
    hint: str | None = None
    details: list[ErrorItem] | None = None


class Error(BaseModel):
    """The one error shape of the pasar API."""

    error: ErrorBody


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    """Whether ``call`` is among the (transitive) dependencies of a route."""
    return any(d.call is call or depends_on(d, call) for d in dependant.dependencies)


def _route_views(app: FastAPI) -> Iterable[Any]:
    # FastAPI >= 0.16x keeps included routers lazily in ``app.routes`` and exposes each route
    # with its effective (prefixed) path through ``iter_route_contexts``; before that, the
    # routes were copied into ``app.routes`` as APIRoute objects. Both have ``dependant``,
    # ``path_format`` and ``methods``, which is all that is read here.
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    return iter_contexts(app.routes) if callable(iter_contexts) else app.routes


def _signed_operations(app: FastAPI) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for view in _route_views(app):
        dependant = getattr(view, "dependant", None)
        path = getattr(view, "path_format", None)
        if (
            isinstance(dependant, Dependant)
            and path
            and (depends_on(dependant, signed_envelope) or depends_on(dependant, signed_body))
        ):
            out.update((path, m.lower()) for m in getattr(view, "methods", None) or ())
    return out


def _add_models(schemas: dict[str, Any], *models: type[BaseModel]) -> None:
    for model in models:
        doc = model.model_json_schema(ref_template=_REF)
        for name, sub in doc.pop("$defs", {}).items():
            schemas.setdefault(name, sub)  # a response model of that name is the same class
        schemas[model.__name__ if model is not EnvelopeIn else "Envelope"] = doc


def _envelope_of(schemas: dict[str, Any], tx_type: str, attachments: bool) -> dict[str, Any]:
    """The schema of an envelope whose body is a ``tx_type`` transaction (added once)."""
    model = _SIGNED_BODIES[tx_type]
    name = f"{model.__name__}Envelope"
    if name not in schemas:
        _add_models(schemas, model)
        envelope = json.loads(json.dumps(schemas["Envelope"]))
        envelope["title"] = name
        envelope["properties"]["body"] = {"$ref": _REF.format(model=model.__name__)}
        if attachments:
            envelope["properties"]["attachments"] = _ATTACHMENTS_SCHEMA
        schemas[name] = envelope
    return {"$ref": _REF.format(model=name)}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """Generate the schema for ``app`` with pasar's corrections (see the module doc)."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schemas: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
    _add_models(schemas, Error, EnvelopeIn)
    signed = _signed_operations(app)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)
            tx_type = operation.pop(_TX_KEY, None)
            attachments = bool(operation.pop(_ATTACH_KEY, False))
            if (path, method) in signed:
                body = (
                    {"$ref": "#/components/schemas/Envelope"}
                    if tx_type is None
                    else _envelope_of(schemas, tx_type, attachments)
                )
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": body}},
                }
                responses.setdefault("401", _error_response("Bad signature or stale ts"))
                responses.setdefault("403", _error_response("Signed by the wrong account"))
            responses.setdefault("4XX", _error_response("The request was refused"))
    for unused in ("HTTPValidationError", "ValidationError"):  # in this order: one uses the other
        others = {k: v for k, v in schemas.items() if k != unused}
        if f'/{unused}"' not in json.dumps([schema.get("paths", {}), others]):
            schemas.pop(unused, None)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and so ``/openapi.json``) return :func:`build_openapi`, cached."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
