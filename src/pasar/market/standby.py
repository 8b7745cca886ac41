"""A hot standby: a market node that waits for the writer lock, then becomes the writer.

``pasar market serve --standby`` binds its port at once (so a supervisor or a load balancer
can see it) and answers as a standby: ``GET /v1/healthz`` is 200 with ``"role": "standby"``
(the market it will serve, its preset), every other request 503 ``standby`` with
``Retry-After``, so a client retries instead of trusting an empty market. Meanwhile it polls
the writer lock (:mod:`pasar.market.writer_lock`). When the writer stops or dies and the lock
is free, it takes it, builds the market exactly as a fresh start would (open the store under
the lock, verify the whole log like an audit, replay it) and from then on every request goes
to that market: the same port now answers ``"role": "writer"``.

:class:`StandbyNode` is the ASGI app uvicorn runs: it forwards each request to whichever app is
current, and runs the market's own lifespan (engine, store) once it has taken over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError
from starlette.responses import JSONResponse

from pasar.core.errors import PasarError
from pasar.crypto.identity import Identity
from pasar.market.config import MarketConfig
from pasar.market.errors import error_response
from pasar.market.logging import log_event
from pasar.market.routes.health import health_of
from pasar.market.writer_lock import WriterLock

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

POLL_S = 0.25  # how often a standby asks for the lock: a takeover starts within this
RETRY_AFTER_S = 1
WEBSOCKET_TRY_AGAIN = 1013


def standby_responder(config: MarketConfig, identity: Identity) -> ASGIApp:
    """The ASGI app of a node that is not the writer yet (see the module docstring)."""
    health = health_of(config, identity, "standby").wire()
    refusal = PasarError(
        "this market node is a standby: it takes over when the writer stops, and serves "
        "nothing before",
        code="standby",
        status=503,
        hint=f"retry in {RETRY_AFTER_S} s, or send requests to the writer (GET /v1/healthz "
        "says each node's role)",
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": WEBSOCKET_TRY_AGAIN})
            return
        if scope["type"] != "http":
            return
        if scope["path"] == "/v1/healthz" and scope["method"] in ("GET", "HEAD"):
            response = JSONResponse(health)
        else:
            response = error_response(refusal, headers={"Retry-After": str(RETRY_AFTER_S)})
        await response(scope, receive, send)

    return app


class StandbyNode:
    """The app uvicorn serves for ``--standby``: the standby responder, then the market.

    ``build`` makes the market's app (:func:`pasar.market.serve.build_app` with the lock); it
    runs in a thread, since it verifies and replays the whole log. ``on_failure`` stops the
    server when the takeover fails (a log that does not verify): ``failure`` says why.
    """

    def __init__(
        self,
        *,
        config: MarketConfig,
        identity: Identity,
        lock: WriterLock,
        build: Callable[[], FastAPI],
        on_failure: Callable[[], None],
        where: str,
        poll_s: float = POLL_S,
    ) -> None:
        self.app: ASGIApp = standby_responder(config, identity)
        self.lock = lock
        self.build = build
        self.on_failure = on_failure
        self.where = where
        self.poll_s = poll_s
        self.failure: BaseException | None = None
        self._stopping = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        self._stopping = asyncio.Event()  # bound to the server's loop
        task = asyncio.create_task(self._run())
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        self._stopping.set()
        await task
        await send({"type": "lifespan.shutdown.complete"})

    async def _run(self) -> None:
        try:
            log_event("market.standby", db=self.where, poll_s=self.poll_s)
            if not await self._wait_for_lock():
                return
            started = time.monotonic()
            log_event("market.takeover_started", db=self.where)
            market = await asyncio.to_thread(self.build)
            async with market.router.lifespan_context(market):
                self.app = market
                log_event(
                    "market.takeover",
                    db=self.where,
                    took_ms=int((time.monotonic() - started) * 1000),
                )
                await self._stopping.wait()
        except Exception as exc:  # a log that does not verify, a database gone mid-takeover
            self.failure = exc
            log_event("market.takeover_failed", db=self.where, error=str(exc))
            self.on_failure()

    async def _wait_for_lock(self) -> bool:
        """Poll the lock until it is ours (True) or the server stops (False). A database that
        cannot be reached is waited out, not fatal: the writer may be failing over too."""
        unreachable = False
        while not self._stopping.is_set():
            try:
                if await asyncio.to_thread(self.lock.try_acquire):
                    return True
                unreachable = False
            except DBAPIError as exc:
                if not unreachable:
                    log_event("market.standby_db_unreachable", db=self.where, error=str(exc))
                unreachable = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.poll_s)
        return False
