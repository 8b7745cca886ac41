"""The bill ``pasar status`` prints: each lease's row shows what moved for that lease, and the
job's total refund is what the client got back (issue 14.2: a re-queued shard's escrow was
counted as a refund on the lease that passed it on, and again on the lease that used it)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from pasar.api.bills import Bill
from pasar.api.leases import LeaseView
from pasar.api.orders import OrderView
from pasar.cli.order_views import bill_rows, lease_table
from pasar.cli.tables import build_table
from pasar.core.money import Money


def _bill(**amounts: str) -> Bill:
    zero = "0.00 USDC"
    fields = dict.fromkeys(
        ("billed", "provider_payout", "treasury", "reserve", "refund", "client_fee", "rerun"),
        zero,
    )
    return Bill(**{**fields, **amounts})


def _lease(n: int, status: str, bill: Bill) -> LeaseView:
    return LeaseView(
        lease_id=f"o-1-{n}",
        order_id="o-1",
        provider=f"pa1provider{n}",
        client="pa1alice",
        shard=0,
        status=status,
        price_per_hour="1.00 USDC",
        started_at=1,
        bill=bill,
    )


def _order(*leases: LeaseView) -> OrderView:
    spec: dict[str, Any] = {"name": "job"}
    return OrderView(
        order_id="o-1",
        client="pa1alice",
        status="done",
        mechanism="book",
        takes_bids=False,
        spec=spec,
        created_at=1,
        deadline=2,
        unfilled=0,
        escrow="0.00 USDC",
        leases=list(leases),
    )


def test_a_lost_lease_passes_its_escrow_on_and_is_not_counted_as_a_refund() -> None:
    lost = _lease(0, "lost", _bill(rerun="1.00 USDC"))
    settled = _lease(
        1,
        "settled",
        _bill(
            billed="0.10 USDC",
            provider_payout="0.098 USDC",
            treasury="0.002 USDC",
            refund="0.90 USDC",
        ),
    )
    rows = bill_rows(_order(lost, settled))
    refunds = sum(Money.parse(r["refund"] or "0 USDC").micros for r in rows)
    assert refunds == Money.parse("0.90 USDC").micros  # what alice got back, once
    assert [r["rerun"] for r in rows] == ["1.00 USDC", "0.00 USDC"]
    console = Console(width=200, record=True)
    console.print(build_table(*lease_table(_order(lost, settled))))
    shown = console.export_text()
    assert "re-run" in shown
    total = next(line for line in shown.splitlines() if "total" in line)
    assert "0.90" in total and "1.00" in total  # refunds summed once; the re-run beside


def test_no_re_run_column_when_nothing_was_passed_on() -> None:
    settled = _lease(0, "settled", _bill(billed="0.10 USDC", refund="0.90 USDC"))
    console = Console(width=200, record=True)
    console.print(build_table(*lease_table(_order(settled))))
    assert "re-run" not in console.export_text()
