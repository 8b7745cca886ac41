"""Every failure leaves the market in one JSON shape: ``{"error": {"code", "message", ...}}``.

FastAPI and Starlette each have their own error bodies (``{"detail": ...}``, pydantic's list of
``loc``/``msg``/``type``); a client of pasar should have to parse exactly one. The handlers
installed here translate all of them:

- :class:`PasarError` (raised anywhere below the routes) → its own status and ``to_dict()``;
- request validation (a path, query or body parameter of the wrong type) → 400
  ``invalid_request`` with the offending location as a dotted ``field``, each problem in
  ``details``; 400 rather than FastAPI's 422 because every other bad input in pasar is a 400,
  and a client should not need to know which layer noticed;
- Starlette's ``HTTPException`` (an unknown route, a wrong method, a body over the limit) →
  its status with a stable ``code`` (``not_found``, ``method_not_allowed``, ...);
- anything else is a bug: 500 ``internal`` with an id to quote, the traceback in the log and
  never in the body.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from pasar.core.errors import ErrorDetail, PasarError

logger = logging.getLogger("pasar.market.errors")

_MAX_SHOWN_PATH = 200  # an echoed path is user input: keep the error small whatever was sent
_MAX_DETAILS = 20

HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


def error_response(err: PasarError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The HTTP response for a :class:`PasarError` (also used by ASGI middleware)."""
    return JSONResponse(err.to_dict(), status_code=err.status, headers=headers)


def dotted(loc: Sequence[Any]) -> str:
    """``("body", "order", 0, "gpu")`` → ``"body.order[0].gpu"``: the field as a user writes it."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _shown_path(request: Request) -> str:
    path = request.url.path
    return path if len(path) <= _MAX_SHOWN_PATH else path[: _MAX_SHOWN_PATH - 3] + "..."


def pasar_error_response(exc: PasarError) -> JSONResponse:
    """The answer to a :class:`PasarError` raised by a route (a 429 says when to come back);
    also the fast path's (:mod:`pasar.market.order_fast_path`)."""
    retry = getattr(exc, "retry_after_s", None)
    return error_response(exc, {"retry-after": str(retry)} if retry is not None else None)


async def _pasar_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PasarError)
    return pasar_error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = []
    for problem in list(exc.errors())[:_MAX_DETAILS]:
        # The offending input is deliberately not echoed: it may be large, or a secret.
        details.append(
            ErrorDetail(
                code=str(problem.get("type", "invalid")),
                message=str(problem.get("msg", "invalid value")),
                field=dotted(problem.get("loc", ())) or None,
            )
        )
    if not details:
        details.append(ErrorDetail("invalid", "the request is not valid"))
    first = details[0]
    where = f"{first.field}: " if first.field else ""
    message = (
        f"invalid request: {where}{first.message}"
        if len(details) == 1
        else f"invalid request: {len(details)} problems, the first at {first.field}"
    )
    err = PasarError(
        message,
        code="invalid_request",
        field=first.field,
        details=details,
        hint="see /docs for what this endpoint accepts",
        status=400,
    )
    return error_response(err)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    headers = dict(exc.headers) if exc.headers else None
    if status in {204, 304} or status < 400:  # no body allowed, or not an error at all
        return Response(status_code=status, headers=headers)
    err = getattr(exc, "pasar_error", None)  # e.g. limits.BodyTooLarge carries its own
    if isinstance(err, PasarError):
        return error_response(err, headers)
    hint: str | None = None
    if status == 404:
        message = f"no such endpoint: {request.method} {_shown_path(request)}"
        hint = "the API is described at /docs and /openapi.json"
    elif status == 405:
        allowed = (headers or {}).get("allow") or (headers or {}).get("Allow")
        message = f"{request.method} is not allowed on {_shown_path(request)}"
        hint = f"allowed methods: {allowed}" if allowed else None
    else:
        message = exc.detail if isinstance(exc.detail, str) and exc.detail else f"HTTP {status}"
    code = HTTP_CODES.get(status, f"http_{status}")
    return error_response(PasarError(message, code=code, hint=hint, status=status), headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    return internal_error_response(request, exc)


def internal_error_response(request: Request, exc: Exception) -> JSONResponse:
    """The 500 for an unexpected exception (logged with its traceback under an incident id);
    also the order fast path's, which is served ahead of the app's own 500 handler."""
    incident = secrets.token_hex(6)
    logger.error(
        "unhandled exception",
        exc_info=exc,
        extra={
            "fields": {
                "incident": incident,
                "method": request.method,
                "path": request.url.path,
                "exc_type": type(exc).__name__,
            }
        },
    )
    err = PasarError(
        f"internal error (incident {incident})",
        code="internal",
        hint="this is a bug in the market, not in your request; the operator's log has the "
        f"details under incident {incident}",
        status=500,
    )
    return error_response(err)


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception the app can raise to one of the handlers above."""
    app.add_exception_handler(PasarError, _pasar_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
