"""How the CLI shows an order to people: following it through the market's states (``launch
--wait``), why an open order waits, each lease's line, failures and the bill (exact money, whole
ids). The commands in :mod:`pasar.cli.jobs` call these; nothing here makes a decision."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypedDict

from rich.markup import escape

from pasar.cli.common import (
    perform,
    text,
    total,
)
from pasar.cli.output import console
from pasar.cli.tables import (
    Column,
    print_table,
)
from pasar.core.errors import PasarError
from pasar.core.money import Money

if TYPE_CHECKING:
    from pasar.api.leases import LeaseView
    from pasar.api.orders import OrderView, PublicOrderView
    from pasar.client.client import Client
    from pasar.client.progress import OrderProgress


# -- following an order ----------------------------------------------------------------------------

Progress = Callable[[str], None]


def progress_printer() -> Progress:
    start = time.monotonic()

    def emit(line: str) -> None:
        console.print(f"[dim]{time.monotonic() - start:6.1f}s[/] {escape(line)}", highlight=False)

    return emit


def _lease_line(lease: LeaseView) -> str:
    from pasar.api.status import end_reason

    status = lease.status
    # a spec with resources.alternatives: which one the market matched this lease under
    alt = "" if lease.alternative is None else f", alternative [{lease.alternative}]"
    where = f"lease {lease.lease_id} (shard {lease.shard}{alt})"
    if status == "running":
        return f"{where}: running at {lease.price_per_hour}/h"
    receipt = lease.receipt or {}  # as the provider signed it
    extra = []
    if "exit_code" in receipt:
        extra.append(f"exit {receipt['exit_code']}")
    ended = end_reason(lease.wire())
    if ended and status != "lost":  # a lost lease's line says it below
        extra.append(ended)
    failure = failure_text(lease)
    if failure:
        extra.append(failure)
    if status not in ("held", "rejected"):  # nothing is billed until the result is judged
        extra.append(f"{lease.billed_seconds} s billed")
    if status == "lost":
        extra.append(f"{ended or 'lost'}; the shard is re-queued")
    if status == "held":
        extra.append(f"waiting for your approval{held_until_text(lease.held_until)}")
    if status == "rejected":
        extra.append("rejected: not paid, the shard re-runs on another provider")
    return f"{where}: {status} (" + ", ".join(extra) + ")"


def held_until_text(held_until: int | None) -> str:
    """`` until 2026-12-04 23:10:00 UTC`` for an approval deadline (ms), or nothing."""
    if held_until is None:
        return ""
    return " until " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(held_until / 1000))


def follow_order(
    client: Client,
    order_id: str,
    emit: Progress | None,
    *,
    shown_status: str | None = None,
    bar: OrderProgress | None = None,
) -> OrderView:
    """Long-poll the order until it ends, reporting each change of the order's status and of
    every lease's (the market's states as they are: nothing is inferred). ``shown_status`` is
    the status the caller already reported (``open`` just after creating it); ``bar`` draws
    the shards' counts and the spend below the lines. Returns the last view."""
    from pasar.api.base import parse
    from pasar.api.orders import OrderView, OrderWait
    from pasar.api.status import TERMINAL_ORDER, awaiting_approval
    from pasar.client import calls

    order = parse(OrderView, client.job(order_id).status())
    after = 0
    shown_leases: dict[str, str] = {}
    said_why = ""
    while True:
        if bar is not None:
            bar.update(order.wire())
        if emit is not None:  # leases first: a lease settles, then its order is done
            for lease in order.leases:
                if shown_leases.get(lease.lease_id) != lease.status:
                    if lease.lease_id not in shown_leases:
                        emit(f"matched: lease {lease.lease_id} → provider {lease.provider}")
                    shown_leases[lease.lease_id] = lease.status
                    emit(_lease_line(lease))
            if order.status != shown_status:
                shown_status = order.status
                note = f" ({order.note})" if order.note else ""
                emit(f"order {order_id}: {shown_status}{note}")
        if order.status in TERMINAL_ORDER:
            return order
        if awaiting_approval(order.wire()):
            if emit is not None:
                emit(
                    f"waiting for your approval: `pasar approve {order_id}` (or `pasar reject "
                    f"{order_id} SHARD --reason TEXT`)"
                )
            return order
        poll = calls.POLL_S
        if emit is not None and order.status == "open":
            poll = min(poll, OPEN_EXPLAINED_EVERY_S)
        reply = parse(OrderWait, perform(client, calls.wait_order(order_id, after, poll)))
        quiet = reply.next == after  # the poll ran out: nothing happened to the order
        order, after = full_view(reply.order), reply.next
        if emit is not None and quiet and order.status == "open":
            why = _why_open(client, order_id)
            if why != said_why:  # once, and again only when the reasons change
                said_why = why
                emit(why)


#: an order still open after this long (seconds) gets a line from ``--wait`` saying why
OPEN_EXPLAINED_EVERY_S = 5.0


def _why_open(client: Client, order_id: str) -> str:
    """One line on why an open order has not matched yet (the market's reasons, deduplicated),
    so a waiting client is never left staring at "open"."""
    reasons = sorted({p["reason"] for p in client.explain(order_id)["providers"] if p["reason"]})
    if not reasons:
        return f"order {order_id}: still open: no provider is registered"
    more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
    return f"order {order_id}: still open: " + "; ".join(reasons[:3]) + more


def failure_text(lease: LeaseView) -> str | None:
    """``failed: output_too_large (job's fault): …`` for a lease that ended in a failure
    receipt (the reason the client needs: no result will come from this lease), else None.
    The receipt is read as the provider signed it: nothing in it is trusted to be well formed."""
    failure = (lease.receipt or {}).get("failure")
    if not isinstance(failure, dict):
        return None
    text = f"failed: {failure.get('reason')} ({failure.get('fault')}'s fault)"
    if failure.get("fault") == "provider":
        text += ", re-queued"
    return f"{text}: {failure['detail']}" if failure.get("detail") else text


def full_view(view: OrderView | PublicOrderView) -> OrderView:
    """The order's client reads the full view; a public one means the market answered wrong."""
    from pasar.api.orders import OrderView

    if not isinstance(view, OrderView):
        raise PasarError(
            f"the market showed order {view.order_id} without its leases",
            code="bad_response",
            status=502,
        )
    return view


def _receipt_failure(lease: LeaseView) -> object:
    return (lease.receipt or {}).get("failure")


def _job_failed(order: OrderView) -> bool:
    """A lease failed through the job's own fault: that shard has no result and never will."""
    return any(
        isinstance(failure := _receipt_failure(x), dict) and failure.get("fault") == "job"
        for x in order.leases
    )


def _exit_code(lease: LeaseView) -> int | None:
    code = (lease.receipt or {}).get("exit_code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def exit_codes(order: OrderView) -> list[int | None]:
    """Each lease's receipt exit code (None for a lease that ended without a receipt)."""
    return [_exit_code(lease) for lease in order.leases]


def order_ok(order: OrderView) -> bool:
    """Done (or every result waiting for the client's approval), and every settled or held
    lease exited 0 (``launch --wait``'s exit code 0)."""
    from pasar.api.status import awaiting_approval

    # a multi-node job's other nodes, stopped because its head ended, ended as they should
    settled = [
        x
        for x in order.leases
        if x.status in ("settled", "held") and (x.receipt or {}).get("kill_reason") != "gang"
    ]
    return (
        (order.status == "done" or awaiting_approval(order.wire()))
        and bool(settled)
        and not _job_failed(order)
        and all(_exit_code(x) == 0 for x in settled)
    )


class BillRow(TypedDict):
    """One lease of a bill, as ``--json`` prints it (amounts as money text)."""

    lease_id: str
    shard: int
    provider: str
    status: str
    exit_code: int | None
    billed_seconds: int
    price_per_hour: str
    billed: str | None
    provider_payout: str | None
    fees: str | None
    client_fee: str | None
    refund: str | None
    rerun: str | None


def bill_rows(order: OrderView) -> list[BillRow]:
    """Per lease: billed, provider payout, fees (treasury + reserve), refund; exact."""
    rows: list[BillRow] = []
    for lease in order.leases:
        bill = lease.bill
        fees = None
        if bill is not None:
            currency = Money.parse(bill.billed).currency
            fees = total((bill.treasury, bill.reserve), currency).to_json()
        rows.append(
            BillRow(
                lease_id=lease.lease_id,
                shard=lease.shard,
                provider=lease.provider,
                status=lease.status,
                exit_code=_exit_code(lease),
                billed_seconds=lease.billed_seconds,
                price_per_hour=lease.price_per_hour,
                billed=None if bill is None else bill.billed,
                provider_payout=None if bill is None else bill.provider_payout,
                fees=fees,
                client_fee=None if bill is None else bill.client_fee,
                refund=None if bill is None else bill.refund,
                rerun=None if bill is None else bill.rerun,
            )
        )
    return rows


def _cells(row: BillRow, keys: list[str]) -> list[str | None]:
    """The money columns ``keys`` of one bill row (a TypedDict read by name)."""
    fields: Mapping[str, object] = row
    return [None if fields[k] is None else str(fields[k]) for k in keys]


def lease_table(order: OrderView) -> tuple[list[Column], list[list[str]]]:
    """The bill as columns and rows: one row per lease, and a total row when several billed.
    "re-run" (what a released, lost or rejected lease passed on to its shard's next lease) is
    a column only when some lease has one; it is never counted as a refund."""
    rows = bill_rows(order)
    money = ["billed", "provider_payout", "fees", "refund"]
    if any(r["rerun"] is not None and Money.parse(r["rerun"]).micros for r in rows):
        money.append("rerun")
    headers = {"provider_payout": "provider payout", "rerun": "re-run"}
    optional = {"provider_payout", "fees"}
    columns = [
        Column("lease", "id"),
        Column("shard", "number", optional=True),
        Column("provider", "id", optional=True),
        Column("status"),
        Column("exit", "number"),
        Column("seconds", "number", optional=True),
        Column("price/h", "money", optional=True),
        *(Column(headers.get(k, k), "money", optional=k in optional) for k in money),
    ]
    # a spec with resources.alternatives: which one each lease was matched under
    alternatives = {x.lease_id: x.alternative for x in order.leases if x.alternative is not None}
    if alternatives:
        columns.insert(3, Column("alternative"))
    cells = [
        [
            r["lease_id"],
            str(r["shard"]),
            r["provider"],
            *([_alternative(alternatives.get(r["lease_id"]))] if alternatives else []),
            r["status"],
            text(r["exit_code"]),
            text(r["billed_seconds"]),
            text(r["price_per_hour"]),
            *(text(cell) for cell in _cells(r, money)),
        ]
        for r in rows
    ]
    billed = [r for r in rows if r["billed"] is not None]
    if len(billed) > 1:
        currency = Money.parse(billed[0]["billed"]).currency
        cells.append(
            [
                "total",
                *([""] * (7 if alternatives else 6)),
                *(str(total((_cells(r, [k])[0] for r in billed), currency)) for k in money),
            ]
        )
    return columns, cells


def _alternative(index: int | None) -> str:
    return "" if index is None else f"[{index}]"


def print_lease_table(order: OrderView, title: str) -> None:
    columns, rows = lease_table(order)
    print_table(columns, rows, title=title)


def print_bill(order: OrderView) -> None:
    status = order.status
    note = f" ({order.note})" if order.note else ""
    if order.leases:
        print_lease_table(order, f"bill of {order.order_id}: {status}{note}")
    else:
        console.print(
            f"{order.order_id} {status}{note}: no lease ran, nothing billed; the escrow went "
            f"back to your balance. `pasar explain {order.order_id}` says why",
            markup=False,
            highlight=False,
        )
    print_failures(order)
    if status == "done" and not order_ok(order) and not _job_failed(order):
        console.print("[red]a lease exited with a non-zero code[/] (see `pasar logs`)")


def print_failures(order: OrderView) -> None:
    """One line per lease that ended in a failure receipt or was stopped (a timeout, a limit,
    lost), with its reason."""
    from pasar.api.status import end_reason

    for lease in order.leases:
        failure = failure_text(lease) or end_reason(lease.wire())
        if failure:
            console.print(
                f"lease {lease.lease_id} (shard {lease.shard}) {failure}",
                markup=False,
                highlight=False,
                style="red",
            )
