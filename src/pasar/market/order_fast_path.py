"""``POST /v1/orders`` below FastAPI's routing: the busiest write of the API, served by a pure
ASGI middleware placed innermost of the market's own middlewares.

Why: under load most of the event loop's time per order went to layers that do nothing for
this one route — the exception and exit-stack middlewares, matching the path against every
route of every router, the request/response wrapping and the dependency solver — a few
hundred microseconds per request with the GIL held, which the worker threads then wait for.

What is kept, so that a client cannot tell the difference (the existing API tests run
unchanged against it):

- everything outside: the request log (:class:`~pasar.market.logging.RequestLogMiddleware`,
  the signer included), the body limits (:class:`~pasar.market.limits.BodyLimitMiddleware`:
  its 413s, announced or counted while the body is read here) and the last-resort 500 handler;
- everything the route does: :func:`pasar.market.routes.orders.create_order` is the same
  function the FastAPI route runs (parse, signature, clock, TLS client, rate limit, private
  part, apply, group commit), in the same worker threads, one thread hop
  (:mod:`pasar.market.thread_hop`);
- the same answers: the route's 200 JSON, and a :class:`~pasar.core.errors.PasarError`
  rendered by :func:`pasar.market.errors.pasar_error_response`, the app's own handler.

The route stays registered (the OpenAPI document, and any app built without this
middleware, use it); anything but exactly ``POST /v1/orders`` passes through untouched.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from pasar.core.errors import PasarError
from pasar.market.errors import pasar_error_response
from pasar.market.routes.orders import create_order, order_workers

PATH = "/v1/orders"


class OrderFastPath:
    """Serve ``POST /v1/orders`` directly; pass every other request to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:  # a body over the limit raises here, for BodyLimitMiddleware to answer
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # nobody to answer; nothing was read, nothing was submitted
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body", False))
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        request = Request(scope, receive)
        try:
            body = await order_workers().run(create_order, request, raw)
        except PasarError as exc:
            await pasar_error_response(exc)(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
