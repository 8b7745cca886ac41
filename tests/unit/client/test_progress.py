"""The .map progress line (issue 14): exact spend from the bills, silent off a terminal."""

from __future__ import annotations

import io
from typing import Any

import pytest

from pasar.client import progress as progress_module
from pasar.client.progress import MapProgress, shown
from pasar.core.money import Money


def _order(*bills: tuple[str, str]) -> dict[str, Any]:
    return {
        "leases": [{"bill": {"billed": billed, "client_fee": fee}} for billed, fee in bills]
        + [{"bill": None}]  # a lease not billed yet counts nothing
    }


def test_counts_and_spend_are_exact() -> None:
    p = MapProgress("f.map", show=False)
    p.job_launched(100)
    p.job_launched(50)
    p.job_ended(100, _order(("0.000100 USDC", "0.000002 USDC"), ("0.000050 USDC", "0 USDC")))
    assert (p.launched, p.done, p.jobs_running) == (150, 100, 1)
    assert p.spent == Money.parse("0.000152 USDC")
    p.job_ended(50, _order(("0.000001 USDC", "0 USDC")))
    assert (p.done, p.jobs_running, p.spent) == (150, 0, Money.parse("0.000153 USDC"))


def test_silent_off_a_terminal_or_when_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_module.sys, "stderr", io.StringIO())
    assert not shown()
    monkeypatch.setattr(progress_module.sys.stderr, "isatty", lambda: True)
    assert shown()
    monkeypatch.setenv("PASAR_PROGRESS", "0")
    assert not shown()


def test_drawn_on_a_terminal_says_calls_jobs_and_spend(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with MapProgress("square.map", show=True) as p:
        p.job_launched(10)
        p.job_ended(10, _order(("0.000010 USDC", "0 USDC")))
        bar = p._bar
        assert bar is not None
        (task,) = bar.tasks
        assert (task.total, task.completed) == (10, 10)
        spent = Money.parse("0.000010 USDC")
        assert task.fields["state"] == f"calls · 0 job(s) running, spent {spent}"
    assert p._bar is None  # closed with the map
