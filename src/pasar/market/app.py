"""``create_app``: the market's HTTP shell, with no business logic of its own.

It wires what every route relies on — the error shape, the body limits, the request log, the
blob store, the market's identity and clock on ``app.state`` — and mounts the routers it is
given, so that the service's routes (accounts, orders, leases, ...) and tests' own routers get
exactly the same treatment. ``pasar.market.serve.build_app`` is where the production app is
assembled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from types import MappingProxyType
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from pasar import __version__
from pasar.crypto.envelope import wall_clock_ms
from pasar.crypto.identity import Identity
from pasar.market.blobs import BlobStore
from pasar.market.config import MarketConfig
from pasar.market.errors import install_error_handlers
from pasar.market.limits import BodyLimitMiddleware
from pasar.market.logging import RequestLogMiddleware
from pasar.market.openapi import install_openapi
from pasar.market.ratelimit import RateLimiter
from pasar.market.routes import blobs, health

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]
#: ``(method, path) → factory``: a route served ahead of the app's middleware stack; the
#: factory gets the app and returns the ASGI app that serves the route.
FastPaths = Mapping[tuple[str, str], Callable[[FastAPI], ASGIApp]]


class MarketApp(FastAPI):
    """FastAPI, plus a few exact routes (``fast_paths``) served ahead of its whole middleware
    stack: for the busiest write of the API (``POST /v1/orders``), the layers every request
    passes — Starlette's error and exception middlewares, FastAPI's telemetry and body-limit
    wrappers, the market's request log and body limits, the router — cost more than the
    route's own work on the event loop. A fast path does what those layers do for its route
    itself (the order fast path: the request log line, the body limits, the error JSON, the
    500), so that a client cannot tell it from the route."""

    fast_paths: Mapping[tuple[str, str], ASGIApp] = MappingProxyType({})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            fast = self.fast_paths.get((scope["method"], scope["path"]))
            if fast is not None:
                if self.root_path:  # as FastAPI and Starlette do before their middlewares
                    scope["root_path"] = self.root_path
                scope["app"] = self
                await fast(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


DESCRIPTION = (
    "The pasar compute market. State-changing requests are signed envelopes "
    "`{body, signer, nonce, ts, sig}` (DESIGN.md §4); every error is "
    '`{"error": {"code", "message", "field"?, "hint"?}}`.'
)


def create_app(
    config: MarketConfig,
    *,
    market_identity: Identity,
    routers: Sequence[APIRouter] = (),
    lifespan: Lifespan | None = None,
    clock: Callable[[], int] | None = None,
    fast_paths: FastPaths | None = None,
) -> FastAPI:
    """Build the FastAPI app for one market; see the module docstring.

    ``clock`` returns unix milliseconds (default: the wall clock); envelopes are checked
    against it, so tests can move time. ``lifespan`` is where the service opens its store and
    starts its engine. ``fast_paths``: routes served ahead of every middleware
    (:class:`MarketApp`; e.g. :class:`~pasar.market.order_fast_path.OrderFastPath`); each
    stays registered as a route too (the OpenAPI document lists it).
    """
    app = MarketApp(
        title="pasar market",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.market_identity = market_identity
    app.state.clock = clock or wall_clock_ms
    app.state.blobs = BlobStore(
        config.blobs_dir, max_bytes=config.max_blob_bytes, quota_bytes=config.blob_quota_bytes
    )
    app.state.rate_limiter = RateLimiter(config.rate_per_s, burst=2 * config.rate_per_s)

    install_error_handlers(app)
    app.fast_paths = {route: make(app) for route, make in (fast_paths or {}).items()}
    # Added last = outermost: the request log sees the limits' 413s too.
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=config.max_body_bytes,
        max_blob_bytes=config.max_blob_bytes,
    )
    app.add_middleware(RequestLogMiddleware)

    for router in (health.router, blobs.router, *routers):
        app.include_router(router)
    install_openapi(app)
    return app
