"""``pasar launch | status | logs | result | approve | reject | cancel | explain``: run a job
and follow it.

``launch`` validates the spec (and its inputs) locally, shows the market's quote for it — the
escrow, the offers that fit, the one the network's mechanism would pick and why the others lose,
all computed by the market (``POST /v1/orders/quote``), none of it here — and asks before it
escrows anything (``--yes`` skips the question; without a terminal it refuses rather than hang).
``--wait`` follows the order through the market's states — open, each lease matched and
running, settled — and prints the bill of every lease; the exit code is then 0 only if every
lease exited 0.

Everything goes through the SDK (:class:`pasar.Client`, :class:`pasar.client.client.Job`);
errors are PasarErrors, rendered once by :mod:`pasar.cli.main` (exit 2, JSON with ``--json``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import typer
from rich.markup import escape
from rich.table import Table

from pasar.cli.common import (
    JsonOpt,
    MarketOpt,
    make_client,
    perform,
    reputation,
    text,
    total,
)
from pasar.cli.output import console, err_console, print_json
from pasar.cli.tables import (
    Column,
    OutputOpt,
    WideOpt,
    output_format,
    print_rows,
    print_table,
)
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.crypto.identity import key_path

if TYPE_CHECKING:
    from pasar.api.leases import LeaseView
    from pasar.api.orders import OrderView, PublicOrderView
    from pasar.api.quote import QuotedOfferView, QuoteResponse
    from pasar.client.client import Client
    from pasar.core.spec import JobSpec

SHOWN_OFFERS = 20  # rows of the considered-offers table (--json lists them all)

OrderArg = typer.Argument(..., help="The order id (o-…), as `pasar launch` printed it.")


# -- the market's quote ----------------------------------------------------------------------------


def _chosen_cell(offer: QuotedOfferView, decided_by: str | None) -> str:
    if offer.chosen:
        return "✓" if offer.leases == 1 else f"✓ ×{offer.leases}"
    if decided_by is not None:
        return "-"
    return offer.reason or ""


def _print_offers(quote: QuoteResponse) -> None:
    """The market's quote as a table: the offers that fit, the pick, every loser's reason."""
    if not quote.fits_anywhere:
        console.print(
            "[red]no provider on this network could ever run this spec[/] (busy or not, at any "
            "price): launch refuses it unless --queue says to wait for one to join"
        )
        return
    if not quote.offers:
        console.print(
            "[yellow]no offer on the market fits this spec now[/]; the order would wait for one "
            "until it expires (then `pasar explain ID` says why, and the escrow is refunded)"
        )
        return
    decided = quote.decided_by
    title = "considered offers" + (f" ({quote.mechanism}: {decided})" if decided else "")
    columns = [
        Column("provider", "id"),
        Column("price/h", "money"),
        Column("score", "number", optional=True),
        Column("reputation", "number", optional=True),
        Column("chosen"),
    ]
    rows = [
        [
            offer.provider,
            text(offer.price_per_hour),
            str(offer.score),
            reputation(offer.reputation),
            _chosen_cell(offer, decided),
        ]
        for offer in quote.offers[:SHOWN_OFFERS]
    ]
    print_table(columns, rows, title=title)
    if len(quote.offers) > SHOWN_OFFERS:
        console.print(f"… and {len(quote.offers) - SHOWN_OFFERS} more (--json lists them)")
    if not quote.complete:
        console.print(
            "(the market's cheapest offers that decide the match; `pasar offers` lists them all)"
        )
    if decided is None and quote.unfilled:
        why = f" ({quote.note})" if quote.note else ""
        console.print(
            f"[yellow]{quote.unfilled} of {quote.leases} lease(s) would not be matched now"
            f"{escape(why)}[/]; they wait for a provider until the order expires"
        )


# -- launch ----------------------------------------------------------------------------------------


def _never_fits(quote: QuoteResponse) -> PasarError:
    """The refusal of a job no provider of the network could ever run (nothing escrowed)."""
    reasons = sorted(set(quote.reasons.values()))
    said = "; ".join(reasons[:3]) + (f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else "")
    return PasarError(
        f"no provider on this network could ever run this job ({quote.request})"
        + (f": {said}" if said else ": no provider is registered"),
        code="never_fits",
        field="resources",
        hint="ask for less (`pasar gpus` and `pasar offers` show what there is), or launch "
        "with --queue to wait for such a provider to join",
    )


def _confirm(escrow: str) -> bool:
    """Ask on the terminal; refuse (exit 2) when there is none to ask on."""
    if not sys.stdin.isatty():
        raise PasarError(
            "launch asks before escrowing money, and stdin is not a terminal",
            code="confirmation_required",
            hint="pass --yes to launch without asking (or --dry-run to only look)",
        )
    return typer.confirm(f"launch and escrow {escrow}?", default=False, err=True)


def launch(
    args: list[str] = typer.Argument(
        None,
        help="A job spec (job.yaml), or a command to run after -- (pasar launch -- python "
        "train.py).",
        show_default=False,
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Launch without asking."),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Validate, show the considered offers and the escrow; launch nothing.",
    ),
    wait: bool = typer.Option(
        False, "--wait", help="Follow the job to its end, print the bill; exit 1 if a lease failed."
    ),
    max_price: str | None = typer.Option(
        None,
        "--max-price",
        help="Override max_price_per_hour, e.g. '0.5 USDC' (inline jobs: 0.50 USDC).",
        show_default=False,
    ),
    max_duration: str | None = typer.Option(
        None,
        "--max-duration",
        help="Override max_duration, e.g. 2h (inline jobs: 1h).",
        show_default=False,
    ),
    env: list[str] = typer.Option([], "--env", "-e", help="KEY=VALUE for the job (repeat)."),
    cpus: str | None = typer.Option(None, "--cpus", help="At least N CPUs.", show_default=False),
    memory: str | None = typer.Option(
        None, "--memory", help="At least N GB of memory.", show_default=False
    ),
    gpus: str | None = typer.Option(
        None, "--gpus", help="Accelerators, e.g. A100:1 or 'H100:8'.", show_default=False
    ),
    name: str | None = typer.Option(None, "--name", help="The job's name.", show_default=False),
    workdir: Path | None = typer.Option(
        None,
        "--workdir",
        help="Send every file under this folder as an input (the job runs in the same tree).",
        show_default=False,
    ),
    ttl: int | None = typer.Option(
        None,
        "--ttl",
        help="Seconds the order may wait for a provider (default: the market's, 10 min).",
        show_default=False,
    ),
    queue: bool = typer.Option(
        False,
        "--queue",
        help="Launch even when no provider on the network could ever run the job: the order "
        "waits (up to --ttl) for one to join.",
    ),
    market: str | None = MarketOpt,
    json: bool = JsonOpt,
) -> None:
    """Launch a job (a spec file, or a command after --): show the offers that fit it, escrow
    its max, send the order.

    Example: pasar launch job.yaml --yes --wait
             pasar launch --gpus A100:1 --env EPOCHS=3 --workdir . -- python train.py
    """
    from pasar.cli.launch_spec import Overrides, build_launch_spec
    from pasar.client.inputs import collect_inputs

    flags = Overrides(
        envs=env,
        cpus=cpus,
        memory=memory,
        gpus=gpus,
        max_price=max_price,
        max_duration=max_duration,
        name=name,
        workdir=workdir,
    )
    spec, base, _ = build_launch_spec(list(args or []), flags)
    if ttl is not None and ttl < 1:
        raise PasarError(
            f"--ttl must be at least 1 second, got {ttl}",
            code="invalid_ttl",
            field="--ttl",
            hint="e.g. --ttl 60",
        )
    inputs = collect_inputs(spec, base)  # a missing input fails now, before any request
    with make_client(market) as client:
        quote = client.quote(spec)  # refuses a spec the market would refuse, as the order would
        plan = {
            "spec": spec.to_dict(),
            "mechanism": quote.mechanism,
            "escrow": quote.escrow,
            "inputs": [i.manifest() for i in inputs],
            "offers": [o.model_dump() for o in quote.offers],
            "chosen": quote.chosen,
            "decided_by": quote.decided_by,
            "quote": quote.model_dump(),
        }
        if not json:
            _print_plan(spec, quote, len(inputs), client)
            _print_offers(quote)
        if not quote.fits_anywhere and not queue and not dry_run:
            raise _never_fits(quote)
        if dry_run:
            if json:
                print_json({"dry_run": True, **plan})
            else:
                console.print("dry run: nothing launched")
            return
        if not yes and not _confirm(quote.escrow):
            err_console.print("not launched")
            raise typer.Exit(1)
        job = client.launch(spec, base_dir=base, ttl_s=ttl)
        if not json:
            console.print(
                f"launched [bold]{job.id}[/] (escrow {quote.escrow}); follow it with "
                f"`pasar status {job.id}`, `pasar logs {job.id} -f`",
                highlight=False,
            )
        if not wait:
            if json:
                print_json({"dry_run": False, "order_id": job.id, **plan})
            elif spec.privacy == "sealed":
                err_console.print(
                    f"{job.id} is sealed: it starts only once its data key is sealed to its "
                    "provider. Keep `pasar seal-agent` running here (the key is in "
                    "$PASAR_HOME/sealed), or launch with --wait.",
                    markup=False,
                )
            return
        try:
            emit = None if json else _progress_printer()
            if emit is not None:  # every order starts open; a fast match must not hide that
                emit(f"order {job.id}: open")
            order = follow_order(client, job.id, emit, shown_status="open")
        except KeyboardInterrupt:
            err_console.print(
                f"stopped following {job.id}; it goes on (pasar status {job.id}, "
                f"pasar cancel {job.id})",
                markup=False,
            )
            raise
    ok = order_ok(order)
    if json:
        print_json(
            {
                "dry_run": False,
                "order_id": job.id,
                **plan,
                "order": order.wire(),
                "bill": bill_rows(order),
                "exit_codes": exit_codes(order),
                "ok": ok,
            }
        )
    else:
        print_bill(order)
    if not ok:
        raise typer.Exit(1)


def _print_plan(spec: JobSpec, quote: QuoteResponse, files: int, client: Client) -> None:
    leases = spec.lease_count
    console.print(
        f"job {spec.name or '(unnamed)'}: {leases} lease(s) of "
        f"{quote.request}, at most {spec.max_duration} s at "
        f"{spec.max_price_per_hour}/h each; {files} input file(s)",
        markup=False,
        highlight=False,
    )
    line = f"pricing: {quote.mechanism} on {client.url}; escrow {quote.escrow}"
    if key_path().exists():  # never create a key just to look
        line += f" (your balance {client.balance()['balance']})"
    console.print(line, markup=False, highlight=False)


# -- following an order ----------------------------------------------------------------------------

Progress = Callable[[str], None]


def _progress_printer() -> Progress:
    start = time.monotonic()

    def emit(line: str) -> None:
        console.print(f"[dim]{time.monotonic() - start:6.1f}s[/] {escape(line)}", highlight=False)

    return emit


def _lease_line(lease: LeaseView) -> str:
    from pasar.api.status import end_reason

    status = lease.status
    where = f"lease {lease.lease_id} (shard {lease.shard})"
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
        extra.append(f"waiting for your approval{_until(lease.held_until)}")
    if status == "rejected":
        extra.append("rejected: not paid, the shard re-runs on another provider")
    return f"{where}: {status} (" + ", ".join(extra) + ")"


def _until(held_until: int | None) -> str:
    """`` until 2026-12-04 23:10:00 UTC`` for an approval deadline (ms), or nothing."""
    if held_until is None:
        return ""
    return " until " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(held_until / 1000))


def follow_order(
    client: Client, order_id: str, emit: Progress | None, *, shown_status: str | None = None
) -> OrderView:
    """Long-poll the order until it ends, reporting each change of the order's status and of
    every lease's (the market's states as they are: nothing is inferred). ``shown_status`` is
    the status the caller already reported (``open`` just after creating it). Returns the last
    view."""
    from pasar.api.base import parse
    from pasar.api.orders import OrderView, OrderWait
    from pasar.api.status import TERMINAL_ORDER, awaiting_approval
    from pasar.client import calls

    order = parse(OrderView, client.job(order_id).status())
    after = 0
    shown_leases: dict[str, str] = {}
    said_why = ""
    while True:
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

    settled = [x for x in order.leases if x.status in ("settled", "held")]
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


def _lease_table(order: OrderView) -> tuple[list[Column], list[list[str]]]:
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
    cells = [
        [
            r["lease_id"],
            str(r["shard"]),
            r["provider"],
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
                *([""] * 6),
                *(str(total((_cells(r, [k])[0] for r in billed), currency)) for k in money),
            ]
        )
    return columns, cells


def _print_lease_table(order: OrderView, title: str) -> None:
    columns, rows = _lease_table(order)
    print_table(columns, rows, title=title)


def print_bill(order: OrderView) -> None:
    status = order.status
    note = f" ({order.note})" if order.note else ""
    if order.leases:
        _print_lease_table(order, f"bill of {order.order_id}: {status}{note}")
    else:
        console.print(
            f"{order.order_id} {status}{note}: no lease ran, nothing billed; the escrow went "
            f"back to your balance. `pasar explain {order.order_id}` says why",
            markup=False,
            highlight=False,
        )
    _print_failures(order)
    if status == "done" and not order_ok(order) and not _job_failed(order):
        console.print("[red]a lease exited with a non-zero code[/] (see `pasar logs`)")


def _print_failures(order: OrderView) -> None:
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


# -- status, logs, result, cancel, explain ---------------------------------------------------------


def status(
    order_id: str | None = typer.Argument(
        None, help="An order id; without one, list this account's orders.", show_default=False
    ),
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="Orders to list."),
    market: str | None = MarketOpt,
    json: bool = JsonOpt,
    output: str | None = OutputOpt,
    wide: bool = WideOpt,
) -> None:
    """One order with its leases and bills, or this account's recent orders.

    Example: pasar status
             pasar status o-1a2b3c4d5e6f7a8b -o yaml
    """
    from pasar.api.base import parse
    from pasar.api.orders import OrderView

    fmt = output_format(output, json)
    with make_client(market) as client:
        if order_id is None:
            orders = client.jobs(limit=limit)
            _print_orders(fmt, orders, wide=wide)
            return
        raw = client.job(order_id).status()
    if fmt in ("json", "yaml"):
        print_rows(fmt, [], [], raw)
        return
    order = parse(OrderView, raw)
    console.print(
        f"order [bold]{order.order_id}[/] {order.spec.get('name') or ''}: {order.status}"
        + (f" ({escape(order.note)})" if order.note else "")
        + f", pricing {order.mechanism}, escrow left {order.escrow}, "
        f"{order.unfilled} lease(s) unfilled",
        highlight=False,
    )
    if order.auction:
        a = order.auction
        console.print(f"auction: {a.answered} of {len(a.invited)} invited providers bid")
    if order.leases:
        _print_lease_table(order, "leases")
        _print_failures(order)
        _print_held(order)


def _print_held(order: OrderView) -> None:
    """One line per result waiting for the client's approval, with its deadline."""
    for lease in order.leases:
        if lease.status == "held":
            console.print(
                f"shard {lease.shard} waits for your approval{_until(lease.held_until)} "
                f"(then it is approved for you): `pasar approve {order.order_id} {lease.shard}` "
                f"or `pasar reject {order.order_id} {lease.shard} --reason TEXT`",
                markup=False,
                highlight=False,
            )


def _print_orders(fmt: str, orders: list[dict[str, Any]], *, wide: bool) -> None:
    from pasar.api.base import parse_rows
    from pasar.api.orders import OrderView

    columns = [
        Column("order", "id"),
        Column("name", optional=True),
        Column("status"),
        Column("pricing", optional=True),
        Column("leases", "number", optional=True),
        Column("escrow", "money"),
        Column("note", optional=True),
    ]
    rows = [
        [
            o.order_id,
            text(o.spec.get("name")),
            o.status,
            o.mechanism,
            str(len(o.leases)),
            o.escrow,
            text(o.note),
        ]
        for o in parse_rows(OrderView, orders)
    ]
    print_rows(
        fmt, columns, rows, {"orders": orders}, title="your orders (newest first)", wide=wide
    )
    if fmt == "table" and not orders:
        console.print("no orders yet: `pasar launch JOB.yaml`")


def logs(
    order_id: str = OrderArg,
    follow: bool = typer.Option(False, "--follow", "-f", help="Stream until the lease ends."),
    shard: int = typer.Option(0, "--shard", min=0, help="Which shard's log (default 0)."),
    market: str | None = MarketOpt,
    json: bool = JsonOpt,
) -> None:
    """What the job printed (stdout and stderr together); -f follows it live.

    Example: pasar logs o-1a2b3c4d5e6f7a8b -f
    """
    from pasar.api.base import parse
    from pasar.api.orders import OrderView

    with make_client(market) as client:
        job = client.job(order_id)
        if json:
            print_json(
                {
                    "order_id": order_id,
                    "shard": shard,
                    "log": "".join(job.logs(follow, shard=shard)),
                }
            )
            return
        wrote = False
        for chunk in job.logs(follow, shard=shard):
            sys.stdout.write(chunk)
            sys.stdout.flush()
            wrote = True
        if not wrote:
            order = parse(OrderView, job.status())
            err_console.print(
                f"no output from shard {shard} of {order_id} (the order is {order.status})",
                markup=False,
                highlight=False,
            )


def result(
    order_id: str = OrderArg,
    out: Path | None = typer.Option(
        None,
        "--dest",
        "-d",
        help="Folder for the outputs (default: ./ORDER_ID).",
        show_default=False,
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", min=0, help="Give up waiting for the end after this many seconds."
    ),
    market: str | None = MarketOpt,
    json: bool = JsonOpt,
) -> None:
    """Wait for the job's end, download its outputs and check each against the provider's
    signed receipt (a file that does not match is refused, exit 2).

    Example: pasar result o-1a2b3c4d5e6f7a8b -d out/
    """
    from pasar.api.base import parse
    from pasar.api.orders import OrderView

    dest = out if out is not None else Path(order_id)
    with make_client(market) as client:
        job = client.job(order_id)
        res = job.result(dest, timeout=timeout)
        order = parse(OrderView, job.status())
    receipts = {x.lease_id: (x.receipt or {}) for x in order.leases}
    files = []
    for shard in res.shards:
        for item in receipts.get(shard.lease_id, {}).get("outputs", []):
            files.append(
                {
                    "shard": shard.shard,
                    "path": item["path"],
                    "file": str(shard.dir / item["path"]),
                    "sha256": item["sha256"],
                    "size": item["size"],
                }
            )
    data = {
        "order_id": order_id,
        "dest": str(dest),
        "ok": res.ok,
        "exit_codes": res.exit_codes,
        "roots": [s.root for s in res.shards],
        "files": files,
    }
    if json:
        print_json(data)
        return
    table = Table(title=f"outputs of {order_id}, verified against the signed receipt")
    for column in ("shard", "file", "sha256", "bytes"):
        table.add_column(column)
    for f in files:
        table.add_row(str(f["shard"]), f["file"], f["sha256"], str(f["size"]))
    console.print(table)
    codes = ", ".join(str(c) for c in res.exit_codes)
    console.print(
        f"{len(files)} file(s) in {dest}; exit code(s): {codes}",
        markup=False,
        highlight=False,
    )


def cancel(order_id: str = OrderArg, market: str | None = MarketOpt, json: bool = JsonOpt) -> None:
    """Stop a job: running leases are billed for their verified seconds, the rest refunded.

    Example: pasar cancel o-1a2b3c4d5e6f7a8b
    """
    from pasar.api.base import parse
    from pasar.api.orders import OrderView

    with make_client(market) as client:
        job = client.job(order_id)
        try:
            reply = job.cancel()
        except PasarError as err:
            if err.code != "not_open":
                raise
            raw = job.status()
            if raw.get("status") != "cancelled":
                raise  # done or expired: not cancelled, and cancelling cannot change that now
            reply = None  # cancelled before: nothing to do, and that is no error
        else:
            raw = job.status()
    order = parse(OrderView, raw)
    if reply is None:
        if json:
            print_json({"already": True, "order": raw, "bill": bill_rows(order)})
        else:
            console.print(f"{order_id} was already cancelled: nothing changed", highlight=False)
        return
    if json:
        print_json({**reply, "order": raw, "bill": bill_rows(order)})
        return
    console.print(
        f"cancelled {order_id}: billed {reply['billed']} for verified seconds, "
        f"the rest of the escrow refunded",
        markup=False,
        highlight=False,
    )
    if order.leases:
        _print_lease_table(order, "leases")
        _print_failures(order)


def approve(
    order_id: str = OrderArg,
    shard: int | None = typer.Argument(
        None,
        min=0,
        help="The shard to approve; without one, every result waiting.",
        show_default=False,
    ),
    market: str | None = MarketOpt,
    json: bool = JsonOpt,
) -> None:
    """Approve a job's results (verification: approve): their providers are paid.

    Example: pasar approve o-1a2b3c4d5e6f7a8b 0
    """
    with make_client(market) as client:
        reply = client.job(order_id).approve(shard)
    if json:
        print_json(reply)
        return
    for row in reply.get("approved", []):
        console.print(
            f"approved shard {row['shard']} of {order_id} (lease {row['lease_id']}): billed "
            f"{row['billed']}, provider paid {row['payout']}",
            markup=False,
            highlight=False,
        )


def reject(
    order_id: str = OrderArg,
    shard: int = typer.Argument(..., min=0, help="The shard whose result is wrong."),
    reason: str = typer.Option(..., "--reason", help="What is wrong with the result."),
    market: str | None = MarketOpt,
    json: bool = JsonOpt,
) -> None:
    """Reject one shard's result: its run is not paid and the shard re-runs free on another
    provider; after the network's limit of rejected runs the job ends and is refunded.

    Example: pasar reject o-1a2b3c4d5e6f7a8b 0 --reason 'frame 3 is black'
    """
    with make_client(market) as client:
        reply = client.job(order_id).reject(shard, reason)
    if json:
        print_json(reply)
        return
    if reply.get("ended"):
        after = (
            "the job ended: that was its last re-run, and the escrow left was refunded "
            f"({reply['refund']} for this run)"
        )
    else:
        after = f"{reply['refund']} back in the job's escrow; re-running it on another provider"
    console.print(
        f"rejected shard {shard} of {order_id} (rejection {reply['rejections']}): {after}",
        markup=False,
        highlight=False,
    )


def explain(
    order_id: str = OrderArg,
    market: str | None = MarketOpt,
    json: bool = JsonOpt,
    output: str | None = OutputOpt,
    wide: bool = WideOpt,
) -> None:
    """Why each provider did or did not take the order (the market's reasons).

    Example: pasar explain o-1a2b3c4d5e6f7a8b --wide
    """
    fmt = output_format(output, json)
    with make_client(market) as client:
        data = client.explain(order_id)
    providers = data.get("providers", [])
    columns = [
        Column("provider", "id"),
        Column("fits"),
        Column("price/h", "money", optional=True),
        Column("won", optional=True),
        Column("reason"),
    ]
    rows = [
        [
            p["provider"],
            "yes" if p["fits"] else "no",
            text(p.get("price_per_hour")),
            "✓" if p.get("won") else "",
            text(p.get("reason")),
        ]
        for p in providers
    ]
    if fmt != "table":
        print_rows(fmt, columns, rows, data)
        return
    console.print(
        f"order {data['order_id']}: {data['status']}, pricing {data['mechanism']}; "
        f"needs {data['request']} at most {data['max_price_per_hour']}/h per lease",
        markup=False,
        highlight=False,
    )
    if data.get("note"):
        console.print(f"note: {data['note']}", markup=False, highlight=False)
    if not providers:
        console.print("no provider is registered on this market")
        return
    print_table(columns, rows, title="providers", wide=wide)


__all__ = [
    "approve",
    "cancel",
    "explain",
    "follow_order",
    "launch",
    "logs",
    "reject",
    "result",
    "status",
]
