"""What a foreground devnet says when one of its processes stops (issue 14.6): one line for a
clean stop (exit 0), the end of the log as readable lines — not raw JSON — for a failure."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from pasar.cli import devnet as cli_devnet
from pasar.devnet import Member, readable_log_line

LOG = [
    {"ts": 1.0, "level": "info", "logger": "pasar.market.events", "event": "market.stopping"},
    {"ts": 2.0, "level": "info", "logger": "uvicorn.error", "msg": "Shutting down"},
    {
        "ts": 3.0,
        "level": "error",
        "logger": "uvicorn.error",
        "msg": "Exception in ASGI application",
        "exc": "Traceback (most recent call last):\n  boom\nRuntimeError: boom",
    },
    {"ts": 4.0, "level": "info", "logger": "pasar.market.access", "event": "request",
     "method": "GET", "path": "/v1/healthz", "status": 200},
]  # fmt: skip


def test_a_json_log_line_reads_as_level_event_and_fields() -> None:
    assert readable_log_line(json.dumps(LOG[0])) == "info market.stopping"
    assert readable_log_line(json.dumps(LOG[3])) == (
        "info request method=GET path=/v1/healthz status=200"
    )
    failed = readable_log_line(json.dumps(LOG[2]))
    assert failed.startswith("error Exception in ASGI application\nTraceback")
    assert readable_log_line("plain words") == "plain words"
    assert readable_log_line("[1, 2]") == "[1, 2]"


class _Net:
    def __init__(self, member: Member) -> None:
        self.member = member

    def exited(self) -> list[Member]:
        return [self.member]


def _watched(tmp_path: Path, code: int, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    log = tmp_path / "market.log"
    log.write_text("".join(json.dumps(e) + "\n" for e in LOG))
    proc = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
    proc.wait(30)
    member = Member("market", tmp_path, log, proc=proc)
    out = io.StringIO()
    monkeypatch.setattr(cli_devnet, "err_console", Console(file=out, width=200))
    net: Any = _Net(member)
    return cli_devnet._watch(net, threading.Event()), out.getvalue()


def test_a_market_that_stopped_cleanly_gets_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, said = _watched(tmp_path, 0, monkeypatch)
    assert code == 1  # the network cannot go on without its market
    assert said.strip() == f"market stopped (exit 0); its log: {tmp_path / 'market.log'}"


def test_a_market_that_failed_gets_readable_log_lines_not_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, said = _watched(tmp_path, 3, monkeypatch)
    assert code == 1
    assert "market exited on its own" in said
    assert "info market.stopping" in said and "RuntimeError: boom" in said
    assert '{"' not in said
