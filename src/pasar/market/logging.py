"""Structured logs: one JSON object per line, through the standard :mod:`logging` module.

An operator greps, ships and alerts on these lines, so each is a flat JSON object with a stable
``event`` name rather than prose: ``request`` for every HTTP request (method, path, status,
milliseconds, the signer when the request carried a verified envelope) and whatever the market
service passes to :func:`log_event` for its state changes (``order.created``, ``lease.lost``,
...). Using the standard module keeps the choice of destination with whoever runs the process
(:func:`configure_logging` for ``pasar market serve``; pytest's ``caplog`` in tests).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ACCESS_LOGGER = "pasar.market.access"
EVENT_LOGGER = "pasar.market.events"

access_logger = logging.getLogger(ACCESS_LOGGER)
event_logger = logging.getLogger(EVENT_LOGGER)


def log_event(kind: str, **fields: Any) -> None:
    """Log one state change, e.g. ``log_event("order.created", order=oid, client=acct)``.

    Values should be JSON-friendly; anything else is written with ``str()`` rather than lost.
    """
    emit(event_logger, kind, {"event": kind, **fields})


def emit(logger: logging.Logger, msg: str, fields: dict[str, Any]) -> None:
    """``logger.info(msg, extra={"fields": fields})``, for a market's busiest lines (two per
    order) at a fraction of its cost.

    Where every handler the record would reach is a :class:`JsonLinesHandler` without filters
    (``pasar market serve``'s own logging), the line is written to their streams directly: the
    same JSON a :class:`JsonFormatter` writes, without a ``LogRecord`` and the handler chain
    around it (~130 µs of the market's CPU per order under load in
    ``benchmarks/bench_api.py``). Anywhere else (pytest's ``caplog``, an operator's own
    handlers, filters) it is an ordinary record, without ``info``'s search of the stack for the
    caller's file and line: levels, filters, handlers and propagation work as for ``info``."""
    if not logger.isEnabledFor(logging.INFO):
        return
    handlers = _json_lines_route(logger)
    if handlers is None:
        record = logger.makeRecord(logger.name, logging.INFO, "(unknown file)", 0, msg, (), None)
        record.fields = fields
        logger.handle(record)
        return
    line = json_line(time.time(), "info", logger.name, fields) + "\n"
    for handler in handlers:
        handler.write_line(line)


def _json_lines_route(logger: logging.Logger) -> list[JsonLinesHandler] | None:
    """The handlers an INFO record of ``logger`` reaches, if each is a filterless
    :class:`JsonLinesHandler` and no logger on the way filters; None otherwise (the ordinary
    route). Walked on every call: a test or an operator may change the handlers at any time."""
    handlers: list[JsonLinesHandler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters or current.disabled:
            return None
        for handler in current.handlers:
            if type(handler) is not JsonLinesHandler or handler.filters:
                return None
            if handler.level <= logging.INFO:
                handlers.append(handler)
        current = current.parent if current.propagate else None
    return handlers if handlers else None


def json_line(created: float, level: str, name: str, fields: dict[str, Any] | None) -> str:
    """One log line's JSON (no newline): ``{"ts", "level", "logger", ...fields}``."""
    out: dict[str, Any] = {"ts": round(created, 3), "level": level, "logger": name}
    if fields:
        out.update(fields)
    return orjson.dumps(out, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", ...fields}`` on one line; prose records get a ``msg``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if not isinstance(fields, dict):
            fields = {"msg": record.getMessage()}
        if record.exc_info:
            fields = {**fields, "exc": self.formatException(record.exc_info)}
        return json_line(record.created, record.levelname.lower(), record.name, fields)


class JsonLinesHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream of :class:`JsonFormatter` lines, which :func:`emit` may also write directly."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.setFormatter(JsonFormatter())

    def write_line(self, line: str) -> None:
        """Write one finished line (newline included) and flush, as ``emit`` would."""
        with self.lock:  # type: ignore[union-attr]
            try:
                self.stream.write(line)
                self.flush()
            except Exception:
                # what StreamHandler.emit does with a failed write: report it, go on
                self.handleError(logging.makeLogRecord({"msg": line.rstrip("\n")}))


_HANDLER_NAME = "pasar.market.json"


def configure_logging(level: int | str = logging.INFO, stream: TextIO | None = None) -> None:
    """Send every log record (uvicorn's too) to ``stream`` (stderr) as JSON lines.

    Idempotent: a second call replaces the handler it installed instead of adding one, so a
    restarted server in the same process does not print each line twice. stdout stays free for
    the one line callers parse (``pasar market listening on ...``).
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    handler = JsonLinesHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    root.addHandler(handler)
    root.setLevel(level)


class RequestLogMiddleware:
    """Log one ``request`` line per HTTP request, whatever its outcome (pure ASGI).

    The signer is read from ``scope["state"]["signer"]``, where the ``signed_envelope``
    dependency leaves it once an envelope has been verified: unverified claims are never logged
    as signers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        start = time.perf_counter()
        status = 0

        async def tracked_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except BaseException:
            status = status or 500
            raise
        finally:
            log_request(scope, status, start)


def log_request(scope: Scope, status: int, start: float) -> None:
    """The ``request`` line for one answered (or abandoned: status 0) request that began at
    ``perf_counter()`` ``start``; the signer from ``scope["state"]``, if one was verified.
    :class:`RequestLogMiddleware` and the order fast path (which serves its route ahead of the
    middlewares) write the same line through here."""
    fields: dict[str, Any] = {
        "event": "request",
        "method": scope.get("method", ""),
        "path": scope.get("path", ""),
        "status": status,
        "ms": round((time.perf_counter() - start) * 1000, 2),
    }
    state = scope.get("state")
    signer = state.get("signer") if isinstance(state, dict) else None
    if signer:
        fields["signer"] = signer
    emit(access_logger, "request", fields)
