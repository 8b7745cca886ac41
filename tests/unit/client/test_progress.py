"""The .map progress line (issue 14): exact spend from the bills, silent off a terminal."""

from __future__ import annotations

import io
import time
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


def _leases(*shard_status: tuple[int, str]) -> list[dict[str, Any]]:
    return [{"shard": shard, "status": status, "bill": None} for shard, status in shard_status]


def test_shards_are_counted_from_each_ones_latest_lease() -> None:
    """A re-queued shard (lost, released, rejected) is queued again, not done; a shard never
    matched is queued; failed and held ones are done (nothing more will run for them)."""
    order = {
        "spec": {"shards": 6},
        "leases": _leases(
            (0, "lost"), (0, "settled"),  # re-run elsewhere, then settled: done
            (1, "running"),
            (2, "released"),  # re-queued, no new lease yet
            (3, "failed"),
            (4, "held"),
        ),  # shard 5: never matched
    }  # fmt: skip
    assert progress_module.shard_counts(order) == (3, 1, 2)
    assert progress_module.shard_counts({"spec": {}, "leases": []}) == (0, 0, 1)


def test_an_order_bar_waits_for_its_delay_and_is_gone_when_closed() -> None:
    """``.remote`` draws only for a call that is still waiting after the delay."""
    order = {"spec": {"shards": 2}, "leases": _leases((0, "running"))}
    order["leases"].append({"shard": 1, "status": "settled", "bill": {
        "billed": "0.000020 USDC", "client_fee": "0.000001 USDC"}})  # fmt: skip
    with progress_module.OrderProgress("job o-1", show=True, delay_s=30) as late:
        late.update(order)
        assert late._bar is None and (late.done, late.running, late.queued) == (1, 1, 0)
    with progress_module.OrderProgress("job o-1", show=True, delay_s=0.01) as bar:
        bar.update(order)
        deadline = time.monotonic() + 10
        while bar._bar is None and time.monotonic() < deadline:
            time.sleep(0.01)
        (task,) = bar._bar.tasks
        assert (task.total, task.completed) == (2, 1)
        spent = Money.parse("0.000021 USDC")
        assert task.fields["state"] == f"shards · 1 running · 0 queued, spent {spent}"
    assert bar._bar is None and bar._timer is not None and not bar._timer.is_alive()


def test_an_order_bar_off_a_terminal_never_starts_a_timer() -> None:
    with progress_module.OrderProgress("job o-1", show=False) as bar:
        bar.update({"spec": {}, "leases": []})
        assert bar._timer is None and bar._bar is None
