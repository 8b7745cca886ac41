"""``POST /v1/orders`` ahead of FastAPI's whole middleware stack: the busiest write of the API.

Why: under load most of the event loop's time per order went to layers that do nothing for
this one route — Starlette's error and exception middlewares, FastAPI's telemetry and
body-limit wrappers, the market's own request log and body limits (each a coroutine frame and
a wrapped ``send`` per message), matching the path against every route, the request/response
wrapping and the dependency solver — with the GIL held, which the worker threads then wait
for. :class:`~pasar.market.app.MarketApp` hands the request here before any of them.

What is kept, so that a client or an operator cannot tell the difference (the existing API
tests run unchanged against it):

- the request log: the same ``request`` line (:func:`pasar.market.logging.log_request`: method,
  path, status, ms, the verified signer; status 0 for a client that went away);
- the body limits: a Content-Length that is invalid (400) or over ``max_body_bytes`` (413) is
  refused before a byte is read (:func:`pasar.market.limits.declared_length_error`), a body
  without one is counted as it is read and refused at the read that crosses the limit, with
  the same 413 (:func:`pasar.market.limits.too_large`);
- everything the route does: :func:`pasar.market.routes.orders.create_order` is the same
  coroutine the FastAPI route awaits (parse, signature, clock, TLS client, rate limit,
  attachments, private part, apply, group commit); the answer is sent only when it returns,
  i.e. after the order's commit is durable;
- the same answers: the route's 200 JSON, a :class:`~pasar.core.errors.PasarError` rendered by
  :func:`pasar.market.errors.pasar_error_response` (the app's own handler), and for anything
  else the app's 500 (:func:`pasar.market.errors.internal_error_response`), after which the
  exception is re-raised for the server to log, as Starlette's error middleware does.

The route stays registered (the OpenAPI document, and any app built without this fast path,
use it).
"""

from __future__ import annotations

import time

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from pasar.core.errors import PasarError
from pasar.market.errors import error_response, internal_error_response, pasar_error_response
from pasar.market.limits import declared_length_error, too_large
from pasar.market.logging import log_request
from pasar.market.routes.orders import create_order

METHOD = "POST"
PATH = "/v1/orders"
_JSON_HEADERS = [(b"content-type", b"application/json")]


class OrderFastPath:
    """Serve ``POST /v1/orders`` of ``app`` (its limits from ``app.state.config``)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.max_body_bytes: int = app.state.config.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})
        start = time.perf_counter()
        status = 0
        try:
            status = await self._serve(scope, receive, send)
        except BaseException:
            status = 500
            raise
        finally:
            log_request(scope, status, start)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Answer the request; the status sent (0: the client went away, nothing was sent)."""
        limit = self.max_body_bytes
        refused = declared_length_error(scope, limit)
        if refused is not None:
            await error_response(refused)(scope, receive, send)
            return refused.status
        chunks: list[bytes] = []
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return 0  # nobody to answer; nothing was submitted
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await error_response(too_large(limit))(scope, receive, send)
                return 413
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        request = Request(scope, receive)
        try:
            body = await create_order(request, raw)
        except PasarError as exc:
            await pasar_error_response(exc)(scope, receive, send)
            return exc.status
        except Exception as exc:
            await internal_error_response(request, exc)(scope, receive, send)
            raise  # for the server's log, as Starlette's error middleware does
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode()), *_JSON_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return 200
