"""The market's JSON log lines: the direct route of :func:`emit` writes exactly what the
ordinary logging route writes, and steps aside wherever something else listens."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pasar.market.logging import (
    JsonFormatter,
    JsonLinesHandler,
    configure_logging,
    emit,
    log_event,
    log_request,
)

NAME = "pasar.market.test_log_lines"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """The root logger writing JSON lines to a string (as ``pasar market serve`` sets it up),
    restored afterwards."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    out = io.StringIO()
    for handler in before:  # pytest's own capture handlers would take the ordinary route
        root.removeHandler(handler)
    configure_logging(stream=out)
    try:
        yield out
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in before:
            root.addHandler(handler)
        root.setLevel(level)


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_the_direct_route_writes_what_the_formatter_writes(stream: io.StringIO) -> None:
    log_event("order.created", order="o1", amount=5, at=Path("/x"), ok=True)
    (direct,) = _lines(stream)
    record = logging.makeLogRecord({"name": "pasar.market.events", "levelno": logging.INFO})
    record.levelname = "INFO"
    record.created = direct["ts"]
    record.fields = {"event": "order.created", "order": "o1", "amount": 5, "at": "/x", "ok": True}
    assert direct == json.loads(JsonFormatter().format(record))
    assert list(direct) == ["ts", "level", "logger", "event", "order", "amount", "at", "ok"]
    assert direct["logger"] == "pasar.market.events" and direct["level"] == "info"


def test_a_request_line_has_its_signer(stream: io.StringIO) -> None:
    scope = {"method": "POST", "path": "/v1/orders", "state": {"signer": "ab" * 32}}
    log_request(scope, 200, 0.0)
    (line,) = _lines(stream)
    assert line["event"] == "request" and line["status"] == 200
    assert line["signer"] == "ab" * 32 and line["logger"] == "pasar.market.access"


def test_prose_records_still_go_through_the_handler(stream: io.StringIO) -> None:
    logging.getLogger(NAME).warning("disk %s", "full")
    (line,) = _lines(stream)
    assert line["msg"] == "disk full" and line["level"] == "warning"


def test_a_level_above_info_writes_nothing(stream: io.StringIO) -> None:
    logger = logging.getLogger(NAME)
    logger.setLevel(logging.WARNING)
    try:
        emit(logger, "request", {"event": "request"})
    finally:
        logger.setLevel(logging.NOTSET)
    assert stream.getvalue() == ""


def test_a_filter_on_the_way_is_obeyed(stream: io.StringIO) -> None:
    """A logger's filter sees the record (the ordinary route) and may drop it."""
    logger = logging.getLogger(NAME)
    seen: list[logging.LogRecord] = []

    def drop(record: logging.LogRecord) -> bool:
        seen.append(record)
        return False

    logger.addFilter(drop)
    try:
        emit(logger, "request", {"event": "request"})
    finally:
        logger.removeFilter(drop)
    assert len(seen) == 1 and stream.getvalue() == ""


def test_another_handler_gets_an_ordinary_record(stream: io.StringIO) -> None:
    """An operator's own handler (or pytest's caplog) sees a record with its fields, and the
    JSON handler still writes its line."""
    logger = logging.getLogger(NAME)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    try:
        emit(logger, "request", {"event": "request", "status": 201})
    finally:
        logger.removeHandler(handler)
    assert records[0].fields == {"event": "request", "status": 201}  # type: ignore[attr-defined]
    assert _lines(stream)[0]["status"] == 201


def test_caplog_sees_the_fields(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pasar.market.events"):
        log_event("lease.lost", lease="l1")
    assert caplog.records[-1].fields == {"event": "lease.lost", "lease": "l1"}  # type: ignore[attr-defined]


def test_a_failed_write_is_reported_not_raised(
    stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    """As ``StreamHandler.emit`` does: the order being logged is not failed by its log."""
    stream.close()
    log_event("order.created", order="o1")  # no exception
    assert "Logging error" in capsys.readouterr().err


def test_only_exact_json_lines_handlers_take_the_direct_route(stream: io.StringIO) -> None:
    class Louder(JsonLinesHandler):
        def emit(self, record: logging.LogRecord) -> None:
            super().emit(record)
            self.stream.write("!\n")

    root = logging.getLogger()
    extra = Louder(stream)
    root.addHandler(extra)
    try:
        log_event("order.created", order="o1")
    finally:
        root.removeHandler(extra)
    assert stream.getvalue().count("!\n") == 1  # the subclass's own emit ran
