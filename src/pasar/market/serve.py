"""Run a market node: build the app once (:func:`build_app`), serve it with uvicorn.

:func:`build_app` is the single place the production app is assembled, so the CLI, the devnet
and tests that run a real server all get the same market. :func:`serve` adds what only a
process needs: the market key on disk, JSON logs on stderr, one line on stdout once the socket
accepts connections (``pasar market listening on http://HOST:PORT`` — with ``--port 0`` it is the
only way a caller learns the port), a clean exit 0 on SIGTERM or SIGINT, and the writer lock:
a market has exactly one writer (:mod:`pasar.market.writer_lock`), so a second node on the same
database refuses to start, or with ``standby=True`` waits to take over
(:mod:`pasar.market.standby`).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import uvicorn
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from pasar.core.errors import PasarError
from pasar.core.presets import builtin_preset
from pasar.crypto.envelope import wall_clock_ms
from pasar.crypto.identity import (
    Identity,
    IdentityError,
    key_path,
    load_identity,
    save_identity,
)
from pasar.crypto.tls import client_ca, fingerprint_of_pem, self_signed
from pasar.market.app import create_app
from pasar.market.chain import ChainBuilder
from pasar.market.config import MarketConfig
from pasar.market.dashboard import routes as dashboard
from pasar.market.engine import Engine
from pasar.market.logging import configure_logging, log_event
from pasar.market.notifier import Notifier
from pasar.market.order_fast_path import METHOD as ORDER_METHOD
from pasar.market.order_fast_path import PATH as ORDER_PATH
from pasar.market.order_fast_path import OrderFastPath
from pasar.market.routes import accounts, capacity, checks, leases, orders, providers, stats, tee
from pasar.market.routes import chain as chain_routes
from pasar.market.routes import tls as tls_routes
from pasar.market.service import MarketService
from pasar.market.standby import StandbyNode
from pasar.market.store import SqlStore, database_url, peek_meta
from pasar.market.tls_clients import peer_cert_protocol
from pasar.market.writer_lock import WriterLock, WriterLockLost, where

BUSINESS_ROUTERS = (
    orders.router,  # first: a request is matched against the routes in order, and order
    # submissions are the busiest write (no path here overlaps another router's)
    accounts.router,
    providers.router,
    leases.router,
    checks.router,
    stats.router,
    chain_routes.router,
    capacity.router,
    tls_routes.router,
    tee.router,
    dashboard.router,  # /ui (and / → /ui for browsers): HTML pages, outside the /v1 API
)
LISTENING_PREFIX = "pasar market listening on "
SHUTDOWN_GRACE_S = 5  # open feeds and long polls get this long to finish on SIGTERM
LOCK_WATCH_S = 1.0  # how often a node checks that it still holds the writer lock
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def load_or_create_market_key(config: MarketConfig) -> Identity:
    """The market's signing key, ``<home>/keys/<key_name>.key`` (0600); made on first start.

    Losing this file means a new market identity: leases and blocks signed before can still be
    checked against the old account id, but nothing new can be signed as it.
    """
    if key_path(config.key_name, config.home).exists():
        return load_identity(config.key_name, config.home)
    identity = Identity.generate()
    try:
        save_identity(identity, config.key_name, config.home)
    except IdentityError as err:
        if err.code != "key_exists":  # another process made it a moment ago: use theirs
            raise
        return load_identity(config.key_name, config.home)
    log_event("market.key_created", market=identity.account_id, key=config.key_name)
    return identity


def build_app(
    config: MarketConfig,
    *,
    clock: Callable[[], int] | None = None,
    writer_lock: WriterLock | None = None,
) -> FastAPI:
    """Assemble the market app for ``config``: the one recipe the CLI and tests share.

    The store is opened (and migrated) and the log replayed *here*, before the socket binds, so
    a bad ``--db`` or a log that does not replay fails the start with a clear error instead of
    a half-started server. The engine runs in the app's lifespan. ``writer_lock``: the lock
    :func:`serve` holds, checked by the store before every write (in-process tests pass none).
    """
    preset = builtin_preset(config.preset)  # an unknown preset fails here, with a hint
    config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    identity = load_or_create_market_key(config)
    now = clock or wall_clock_ms
    store = SqlStore(config.db_url, writer_lock=writer_lock)
    try:
        service = MarketService(
            store=store,
            identity=identity,
            preset=preset,
            clock=now,
            devnet=config.devnet,
            max_waiters=config.max_waiters,
        )
    except BaseException:
        store.close()
        raise
    chain = ChainBuilder(store, identity, now)
    engine = Engine(service, chain)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.notifier.bind(asyncio.get_running_loop())
        task = asyncio.create_task(engine.run())
        log_event(
            "market.started",
            market=identity.account_id,
            preset=preset.name,
            replayed=service.state.tx_count,
        )
        try:
            yield
        finally:
            engine.stop()
            await task
            store.close()

    app = create_app(
        config,
        market_identity=identity,
        routers=BUSINESS_ROUTERS,
        lifespan=lifespan,
        clock=now,
        fast_paths={(ORDER_METHOD, ORDER_PATH): OrderFastPath},
    )
    app.state.service = service
    app.state.engine = engine
    with service.lock:  # the orders' private parts, off the chain, from their blobs
        service.private.load(service.state.orders.values(), app.state.blobs)
    app.state.role = "writer"
    engine.blobs = app.state.blobs  # the engine removes blobs no order names, after the grace
    engine.blob_grace_s = config.blob_grace_s
    return app


def listening_url(host: str, port: int, *, tls: bool = False) -> str:
    """``http(s)://HOST:PORT``, with brackets around an IPv6 host."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def inherited_socket(fd: int) -> socket.socket:
    """The listening TCP socket behind ``--listen-fd`` (refused when ``fd`` is anything else:
    uvicorn would fail later, less clearly)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise PasarError(
            f"--listen-fd {fd}: not an open socket ({exc.strerror or exc})",
            code="invalid_flag",
            field="--listen-fd",
        ) from None
    listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not listening:
        sock.detach()  # the descriptor stays the caller's
        raise PasarError(
            f"--listen-fd {fd}: not a listening TCP socket",
            code="invalid_flag",
            field="--listen-fd",
        )
    return sock


class _Server(uvicorn.Server):
    """uvicorn, plus the "listening" line once startup (the app's lifespan included) is done,
    and a graceful stop: open long polls are answered 503 ``market_stopping`` at once."""

    def __init__(self, config: uvicorn.Config, announce: TextIO) -> None:
        super().__init__(config)
        self.announce = announce
        self.url: str | None = None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Answer every waiter (feeds, order waits, log follows) with ``market_stopping``
        before uvicorn waits for the open requests: otherwise it cancels them after
        :data:`SHUTDOWN_GRACE_S`, which the client sees as a 500 and the log as a traceback.
        Writes in flight are not touched: uvicorn lets them commit (or answer) first."""
        notifier = _notifier_of(self.config.loaded_app if self.config.loaded else None)
        if notifier is not None:
            log_event("market.stopping")
            notifier.stop()
        await super().shutdown(sockets=sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.started or self.should_exit:
            return
        port = self.config.port
        for server in getattr(self, "servers", []):
            for sock in server.sockets or ():
                port = int(sock.getsockname()[1])
                break
        self.url = listening_url(self.config.host, port, tls=self.config.is_ssl)
        if self.config.is_ssl and self.config.ssl_certfile is not None:
            pem = Path(self.config.ssl_certfile).read_text(encoding="ascii")
            self.announce.write(
                f"pasar market TLS certificate {fingerprint_of_pem(pem)} — clients pin it "
                "(trust on first use, or PASAR_TLS_FINGERPRINT)\n"
            )
        self.announce.write(f"{LISTENING_PREFIX}{self.url}\n")
        self.announce.flush()
        log_event("market.listening", url=self.url)


def _notifier_of(app: Any) -> Notifier | None:
    """The notifier of the app uvicorn serves (through its wrappers, a standby's inner app)."""
    for _ in range(8):
        state = getattr(app, "state", None)
        service = getattr(state, "service", None) if state is not None else None
        if service is not None:
            return getattr(service, "notifier", None)
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


@contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Turn SIGINT/SIGTERM into ``stop()`` for the whole run, not only while uvicorn listens.

    uvicorn installs its own handlers while serving and, after a graceful shutdown, re-raises
    the signal to the handler it found. That handler is this one, so the process exits 0
    instead of dying of the signal (or raising KeyboardInterrupt), and a signal that arrives
    before uvicorn is up still stops the server as soon as it starts.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    previous = {sig: signal.signal(sig, handler) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def take_writer_lock(config: MarketConfig) -> tuple[WriterLock, bool]:
    """The writer lock of ``config``'s database and whether this process got it (never blocks).

    A database that cannot be reached is a :class:`PasarError` naming it, not a traceback.
    """
    url = database_url(config.db_url)
    lock = WriterLock.for_url(url)
    try:
        return lock, lock.try_acquire()
    except DBAPIError as exc:
        lock.release()
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise PasarError(
            f"cannot reach the market database {where(url)}: {reason}",
            code="store_unavailable",
            hint="check that the database is running and reachable, then retry",
        ) from None


def another_writer(config: MarketConfig) -> PasarError:
    """The refusal of a second writer: names the database and both ways out."""
    db = where(database_url(config.db_url))
    return PasarError(
        f"another market node is already the writer of {db}; a market has exactly one writer",
        code="writer_exists",
        status=409,
        hint="stop the other node first, or start this one with --standby to wait and take "
        "over (replaying the log) when the writer stops",
    )


@contextmanager
def _watch_writer_lock(lock: WriterLock, stop: Callable[[], None]) -> Iterator[None]:
    """Stop the node once it no longer holds the writer lock (its PostgreSQL connection died).

    The store's check in every write is what keeps a lost writer from appending; this only
    makes such a node exit (2, ``writer_lock_lost``) within a second, so that a supervisor
    restarts it — instead of a node that stays up refusing every write. A standby's lock is
    watched from its takeover on.
    """
    done = threading.Event()

    def watch() -> None:
        while not done.wait(LOCK_WATCH_S):
            if lock.lost or (lock.held and not lock.still_held()):
                log_event("market.writer_lock_lost")
                stop()
                return

    watcher = threading.Thread(target=watch, name="pasar-writer-lock", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _check_same_market(config: MarketConfig, identity: Identity) -> None:
    """A standby must sign as the market it would take over: refuse now, not at takeover."""
    stored = peek_meta(config.db_url, "market")
    if stored is not None and stored != identity.account_id:
        raise PasarError(
            f"the writer of {where(database_url(config.db_url))} is market {stored}, but this "
            f"node's key ({config.key_name}) is {identity.account_id}",
            code="wrong_database",
            hint="a standby needs the writer's market key: use the same --home, or copy "
            "keys/market.key into this node's home",
        )


def tls_files(config: MarketConfig) -> tuple[str | None, str | None]:
    """uvicorn's certificate and key for an HTTPS market (``--tls auto`` makes its own);
    (None, None) for plain HTTP."""
    if config.tls == "auto":
        cert, key = self_signed(config.home, config.host)
        return str(cert), str(key)
    if config.tls_cert is not None and config.tls_key is not None:
        return str(config.tls_cert), str(config.tls_key)
    return None, None


def serve(config: MarketConfig, *, announce: TextIO | None = None, standby: bool = False) -> None:
    """Serve the market until SIGTERM/SIGINT; returns normally after a graceful shutdown.

    The node first takes the writer lock of its database. If another node holds it, it
    refuses to start (``writer_exists``) — or, with ``standby``, serves as a hot standby until
    the lock is free, then takes over (see :mod:`pasar.market.standby`).
    """
    configure_logging()
    stopping = False
    server: _Server | None = None
    sockets = None if config.listen_fd is None else [inherited_socket(config.listen_fd)]

    def stop() -> None:
        nonlocal stopping
        stopping = True
        if server is not None:
            server.should_exit = True

    with _stop_on_signals(stop):
        lock, is_writer = take_writer_lock(config)
        node: StandbyNode | None = None
        try:
            if is_writer:
                app: Any = build_app(config, writer_lock=lock)
            elif not standby:
                raise another_writer(config)
            else:
                builtin_preset(config.preset)  # a bad preset fails now, not at takeover
                config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
                identity = load_or_create_market_key(config)
                _check_same_market(config, identity)
                node = StandbyNode(
                    config=config,
                    identity=identity,
                    lock=lock,
                    build=lambda: build_app(config, writer_lock=lock),
                    on_failure=stop,
                    where=where(database_url(config.db_url)),
                )
                app = node
            cert, key = tls_files(config)
            uv_config = uvicorn.Config(
                app,
                host=config.host,
                port=config.port,
                log_config=None,  # our JSON handler on the root logger formats uvicorn's records
                access_log=False,  # RequestLogMiddleware writes one structured line per request
                lifespan="on",
                server_header=False,
                timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
                ssl_certfile=cert,
                ssl_keyfile=key,
                # mTLS: ask every client for a certificate from this market's client authority
                # (optional: the first one is asked for over TLS without one)
                ssl_cert_reqs=ssl.CERT_OPTIONAL if config.mtls else ssl.CERT_NONE,
                ssl_ca_certs=str(client_ca(config.home)) if config.mtls else None,
                http=peer_cert_protocol() if config.mtls else "auto",
            )
            server = _Server(uv_config, announce or sys.stdout)
            server.should_exit = stopping
            try:
                with _watch_writer_lock(lock, stop):
                    server.run(sockets=sockets)
            except SystemExit:
                if server.started:
                    raise
                raise PasarError(
                    f"the market could not start on {listening_url(config.host, config.port)}",
                    code="start_failed",
                    hint="the log above says why: if the port is taken, choose another with "
                    "--port (0 picks a free one)",
                ) from None
        finally:
            lost = lock.lost
            lock.release()  # after the store closed (the app's lifespan): no write after this
        if node is not None and node.failure is not None:
            raise node.failure
        if lost:
            raise WriterLockLost(
                f"this market node lost the writer lock of {where(database_url(config.db_url))} "
                "and stopped",
                code="writer_lock_lost",
                hint="another node may be the writer now; start this one again (with "
                "--standby to wait for its turn): it replays the log",
            )
    log_event("market.stopped")
