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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from pasar.cli.common import (
    JsonOpt,
    MarketOpt,
    make_client,
    reputation,
    text,
)
from pasar.cli.order_views import (
    bill_rows,
    exit_codes,
    follow_order,
    held_until_text,
    order_ok,
    print_bill,
    print_failures,
    print_lease_table,
    progress_printer,
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
from pasar.crypto.identity import key_path

if TYPE_CHECKING:
    from pasar.api.orders import OrderView
    from pasar.api.quote import QuotedOfferView, QuoteResponse
    from pasar.client.client import Client
    from pasar.client.defaults import Decided
    from pasar.core.spec import JobSpec
    from pasar.core.spec_draft import Draft

SHOWN_OFFERS = 20  # rows of the considered-offers table (--json lists them all)

OrderArg = typer.Argument(..., help="The order id (o-…), as `pasar launch` printed it.")


# -- the market's quote ----------------------------------------------------------------------------


def _chosen_cell(offer: QuotedOfferView, decided_by: str | None) -> str:
    if offer.chosen:
        return "✓" if offer.leases == 1 else f"✓ ×{offer.leases}"
    if decided_by is not None:
        return "-"
    return offer.reason or ""


def _alternative_cell(alternative: int | None) -> str:
    """Which of resources.alternatives a provider would satisfy, as ``[i]`` (the index the
    quote's ``request`` line and ``pasar spec check`` number them by)."""
    return "" if alternative is None else f"[{alternative}]"


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
    alternatives = any(o.alternative is not None for o in quote.offers)
    if alternatives:  # a spec with resources.alternatives: which one each offer satisfies
        columns.insert(1, Column("alternative"))
    rows = [
        [
            offer.provider,
            *([_alternative_cell(offer.alternative)] if alternatives else []),
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


def _never_fits(quote: QuoteResponse, *, spread: bool = False) -> PasarError:
    """The refusal of a job no provider of the network could ever run (nothing escrowed).
    ``spread``: the job's nodes may share a provider (``placement: spread``)."""
    reasons = sorted(set(quote.reasons.values()))
    said = "; ".join(reasons[:3]) + (f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else "")
    if spread and quote.nodes_fit:  # room for some nodes, too few for the gang
        return PasarError(
            f"this job needs {quote.leases} nodes together ({quote.request}), and the "
            f"{quote.providers_fit} provider(s) on this network that could run one have room "
            f"for {quote.nodes_fit} (placement: spread)",
            code="never_fits",
            field="num_nodes",
            hint=f"ask for at most {quote.nodes_fit} nodes, or launch with --queue to wait "
            "for more providers to join",
        )
    if quote.providers_fit:  # some could run a node, too few for the gang
        return PasarError(
            f"this job needs {quote.leases} providers together, one per node ({quote.request}), "
            f"and {quote.providers_fit} on this network could run one",
            code="never_fits",
            field="num_nodes",
            hint=f"ask for at most {quote.providers_fit} nodes, let nodes share a provider "
            "(placement: spread), or launch with --queue to wait for more providers to join",
        )
    return PasarError(
        f"no provider on this network could ever run this job ({quote.request})"
        + (f": {said}" if said else ": no provider is registered"),
        code="never_fits",
        field="resources",
        hint="ask for less (`pasar gpus` and `pasar offers` show what there is), or launch "
        "with --queue to wait for such a provider to join",
    )


def _confirm(escrow: str, terms: str = "") -> bool:
    """Ask on the terminal; refuse (exit 2) when there is none to ask on."""
    if not sys.stdin.isatty():
        raise PasarError(
            "launch asks before escrowing money, and stdin is not a terminal",
            code="confirmation_required",
            hint="pass --yes to launch without asking (or --dry-run to only look)",
        )
    return typer.confirm(f"launch and escrow {escrow}{terms}?", default=False, err=True)


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
    secret: list[str] = typer.Option(
        [], "--secret", help="KEY=VALUE for the job, kept private and never printed (repeat)."
    ),
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
        secrets=secret,
        cpus=cpus,
        memory=memory,
        gpus=gpus,
        max_price=max_price,
        max_duration=max_duration,
        name=name,
        workdir=workdir,
    )
    draft, base, _ = build_launch_spec(list(args or []), flags)
    if ttl is not None and ttl < 1:
        raise PasarError(
            f"--ttl must be at least 1 second, got {ttl}",
            code="invalid_ttl",
            field="--ttl",
            hint="e.g. --ttl 60",
        )
    inputs = collect_inputs(draft.checked(), base)  # a missing input fails before any request
    with make_client(market) as client:
        spec, decided, quote = _decide_and_quote(client, draft, base)
        plan = {
            "spec": _without_secrets(spec.to_dict()),
            "decided": decided.to_dict() if decided else None,
            "mechanism": quote.mechanism,
            "escrow": quote.escrow,
            "inputs": [i.manifest() for i in inputs],
            "offers": [o.model_dump() for o in quote.offers],
            "chosen": quote.chosen,
            "decided_by": quote.decided_by,
            "quote": quote.model_dump(),
        }
        if not json:
            _print_plan(spec, quote, len(inputs), client, decided.lines if decided else spec.notes)
            _print_offers(quote)
        if not quote.fits_anywhere and not queue and not dry_run:
            raise _never_fits(quote, spread=spec.shares_providers)
        if dry_run:
            if json:
                print_json({"dry_run": True, **plan})
            else:
                console.print("dry run: nothing launched")
            return
        terms = f" (cap {spec.max_price_per_hour}/h per lease, at most {spec.max_duration} s)"
        if not yes and not _confirm(quote.escrow, terms):
            err_console.print("not launched")
            raise typer.Exit(1)
        job = client.launch(spec, base_dir=base, ttl_s=ttl)  # complete: nothing re-decided
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
        from pasar.client.progress import OrderProgress

        try:
            emit = None if json else progress_printer()
            if emit is not None:  # every order starts open; a fast match must not hide that
                emit(f"order {job.id}: open")
            # the bar, on stderr when it is a terminal, stays below the lines printed above it
            with OrderProgress(f"order {job.id}", show=None if emit else False) as bar:
                order = follow_order(client, job.id, emit, shown_status="open", bar=bar)
        except KeyboardInterrupt:
            err_console.print(
                f"stopped following {job.id}; it goes on (pasar status {job.id}, "
                f"pasar cancel {job.id})",
                markup=False,
            )
            raise
    _report_end(job.id, plan, order, json)


def _report_end(order_id: str, plan: dict[str, Any], order: OrderView, json: bool) -> None:
    """``launch --wait``'s end: the bill, one warning line per optional output a lease did not
    write (a missing required one fails its lease), exit 1 if a lease failed."""
    from pasar.client.results import output_warnings

    ok = order_ok(order)
    warnings = output_warnings(order.wire())
    if json:
        print_json(
            {
                "dry_run": False,
                "order_id": order_id,
                **plan,
                "order": order.wire(),
                "bill": bill_rows(order),
                "exit_codes": exit_codes(order),
                "ok": ok,
                "warnings": warnings,
            }
        )
    else:
        print_bill(order)
        for line in warnings:
            console.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)
    if not ok:
        raise typer.Exit(1)


def _decide_and_quote(
    client: Client, draft: Draft, base: Path
) -> tuple[JobSpec, Decided | None, QuoteResponse]:
    """The complete spec (the price cap, duration and alternative a spec leaves open decided by
    :meth:`Client.decide`), what was decided, and the market's quote for it, which refuses a
    spec the market would refuse, as the order would."""
    decision = client.decide(draft, base_dir=base)
    return decision.spec, decision.decided, client.quote(decision.spec)


def _without_secrets(spec: dict[str, Any]) -> dict[str, Any]:
    """A spec as printed: secrets' values never leave this machine in a plan."""
    if spec.get("secrets"):
        return {**spec, "secrets": dict.fromkeys(spec["secrets"], "***")}
    return spec


def _print_plan(
    spec: JobSpec, quote: QuoteResponse, files: int, client: Client, decisions: tuple[str, ...]
) -> None:
    for line in decisions:  # what the file said that pasar translated, ignored or defaulted
        console.print(f"- {line}", markup=False, highlight=False)
    leases = spec.lease_count
    console.print(
        f"job {spec.name or '(unnamed)'}: {leases} lease(s) of "
        f"{quote.request}, at most {spec.max_duration} s at "
        f"{spec.max_price_per_hour}/h each; {files} input file(s)",
        markup=False,
        highlight=False,
    )
    console.print(
        f"price cap {spec.max_price_per_hour}/h per lease; max duration {spec.max_duration} s",
        markup=False,
        highlight=False,
    )
    line = f"pricing: {quote.mechanism} on {client.url}; escrow {quote.escrow}"
    if key_path().exists():  # never create a key just to look
        line += f" (your balance {client.balance()['balance']})"
    console.print(line, markup=False, highlight=False)


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
        disputes = _disputes(client, raw)
    if fmt in ("json", "yaml"):
        print_rows(fmt, [], [], {**raw, "disputes": disputes} if disputes else raw)
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
        print_lease_table(order, "leases")
        print_failures(order)
        _print_held(order)
    for d in disputes:
        console.print(f"dispute {d['dispute_id']}: {dispute_line(d)}", highlight=False)


def _disputes(client: Any, raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The pol disputes over the order's checked leases (none for other policies)."""
    out: list[dict[str, Any]] = []
    for lease in raw.get("leases") or []:
        if lease.get("checks"):
            out += client.transport.get(f"/v1/leases/{lease['lease_id']}/disputes")
    return out


def dispute_line(d: dict[str, Any]) -> str:
    """Where a dispute stands, in one line: the step (and operator) it pinned, and who lost."""
    where = d.get("where") or (
        f"steps {d['agreed_step']}..{d['disputed_step']}, asking step {d.get('asked_step')}"
    )  # "step 34, operator aten.add_.Tensor (#81)" once known (pasar.core.disputes.where)
    lost = f"; {d['loser'][:16]}… lost ({d.get('reason')})" if d.get("loser") else ""
    return f"{d['status']} at {where}{lost}"


def _print_held(order: OrderView) -> None:
    """One line per result waiting for the client's approval, with its deadline."""
    for lease in order.leases:
        if lease.status == "held":
            console.print(
                f"shard {lease.shard} waits for your approval{held_until_text(lease.held_until)} "
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
    # a job may skip an optional output: said, not failed (a required one fails the lease)
    warnings = res.warnings
    data = {
        "order_id": order_id,
        "dest": str(dest),
        "ok": res.ok,
        "warnings": warnings,
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
    for line in warnings:
        console.print(f"warning: {line}", markup=False, highlight=False)


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
        print_lease_table(order, "leases")
        print_failures(order)


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
    alternatives = any(p.get("alternative") is not None for p in providers)
    if alternatives:  # a spec with resources.alternatives: which one each provider would satisfy
        columns.insert(2, Column("alternative"))
    rows = [
        [
            p["provider"],
            "yes" if p["fits"] else "no",
            *([_alternative_cell(p.get("alternative"))] if alternatives else []),
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
