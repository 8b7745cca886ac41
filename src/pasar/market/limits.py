"""Refuse request bodies over the limit before they cost memory or disk: 413 in the error shape.

A pure ASGI middleware (no buffering, no BaseHTTPMiddleware task group) with two limits: JSON
requests are small (``max_body_bytes``), while ``PUT /v1/blobs/...`` streams files to disk and
gets ``max_blob_bytes``. Two checks, because a client may or may not announce the size:

- ``Content-Length`` over the limit → 413 at once, before routing or reading a byte;
- no ``Content-Length`` (chunked upload) → the bytes are counted as the app reads them, and the
  read that crosses the limit raises :class:`BodyTooLarge`. It is an ``HTTPException`` so that
  FastAPI's own body parsing re-raises it rather than turning it into a 400, and the app's
  handler renders it; should the exception escape the app anyway, this middleware answers 413
  itself, as long as no response has started.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pasar.core.errors import PasarError
from pasar.market.errors import error_response

BLOB_PREFIX = "/v1/blobs/"


def too_large(limit: int) -> PasarError:
    """The 413 every over-limit path reports, whichever layer noticed."""
    return PasarError(
        f"request body is larger than the limit of {limit} bytes",
        code="too_large",
        hint="send a smaller body; large files go to PUT /v1/blobs/{sha256} and are referred "
        "to by their hash",
        status=413,
    )


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once more than the limit has been read (a chunked body)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body over {limit} bytes")
        self.pasar_error = too_large(limit)


def _is_too_large(exc: BaseException) -> bool:
    if isinstance(exc, BodyTooLarge):
        return True
    if isinstance(exc, BaseExceptionGroup):  # the body may be read inside a task group
        return all(_is_too_large(e) for e in exc.exceptions)
    return False


def _content_length(scope: Scope) -> str | None:
    """The Content-Length header's value, read from the raw headers (ASGI servers send names
    in lower case): every request passes here, and a ``Headers`` object costs more."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return str(value.decode("latin-1"))
    return None


def declared_length_error(scope: Scope, limit: int) -> PasarError | None:
    """The refusal of a request whose Content-Length is invalid (400) or over ``limit`` (413),
    before a byte is read; None if it has none or an acceptable one. Also the order fast
    path's check (:mod:`pasar.market.order_fast_path`)."""
    declared = _content_length(scope)
    if declared is None:
        return None
    try:
        length = int(declared)
    except ValueError:
        length = -1
    if length < 0:
        return PasarError(
            f"invalid Content-Length header {declared[:40]!r}",
            code="bad_request",
            field="Content-Length",
        )
    return too_large(limit) if length > limit else None


class BodyLimitMiddleware:
    """Apply ``max_body_bytes`` to every request, ``max_blob_bytes`` to blob uploads."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_blob_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_blob_bytes = max_blob_bytes

    def limit_for(self, scope: Scope) -> int:
        is_blob = scope.get("method") == "PUT" and str(scope.get("path", "")).startswith(
            BLOB_PREFIX
        )
        return self.max_blob_bytes if is_blob else self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        refused = declared_length_error(scope, limit)
        if refused is not None:
            await error_response(refused)(scope, receive, send)
            return

        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except Exception as exc:
            if started or not _is_too_large(exc):
                raise
            await error_response(too_large(limit))(scope, receive, send)
