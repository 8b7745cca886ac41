"""``pasar audit``: replay a market's chain and check it reproduces the market's balances."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from pasar.cli.output import console, print_json
from pasar.core.errors import PasarError

if TYPE_CHECKING:
    from pasar.market.audit import AuditReport


def audit(
    market: str = typer.Option(
        None, "--market", envvar="PASAR_MARKET", help="Market URL, e.g. http://127.0.0.1:8420."
    ),
    db: str = typer.Option(
        None, "--db", help="Audit a market database directly instead (SQLAlchemy URL)."
    ),
    json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Verify every block and transaction from genesis and compare the replayed balances with
    the market's; exit 1 on any mismatch, naming the height or account; exit 2 when the chain
    cannot be read (a tampered block, a missing or damaged database file).

    Example: pasar audit --market http://127.0.0.1:8420
             pasar audit --db sqlite:///market/market.db
    """
    # imported here: the market's store (SQLAlchemy, alembic) costs half a second to load,
    # which every other command would pay at start-up
    from pasar.client.transport import Transport
    from pasar.market.audit import audit_market, audit_store
    from pasar.market.store import SqlStore
    from pasar.market.tx_records import StoreError

    if db:
        try:
            with SqlStore(db, must_exist=True) as store:
                report = audit_store(store)
        except StoreError as exc:  # missing, damaged, unreachable: exit 2 naming the database
            exc.field = exc.field or "--db"
            raise
    elif market:
        transport = Transport(market)
        try:
            report = audit_market(transport.get)
        finally:
            transport.close()
    else:
        raise PasarError(
            "no market to audit",
            code="missing_market",
            field="--market",
            hint="pass --market URL (or set PASAR_MARKET), or --db URL for a database",
        )
    _print(report, json)
    if not report.ok:
        raise typer.Exit(1)


def _print(report: AuditReport, json: bool) -> None:
    if json:
        print_json(report.to_dict())
        return
    status = "[green]ok[/]" if report.ok else "[red]MISMATCH[/]"
    console.print(
        f"audit {status}: {report.blocks} blocks, {report.txs} transactions replayed "
        f"({report.unsealed_txs} not yet sealed), {len(report.balances)} balances compared"
    )
    for line in report.mismatches:
        console.print(f"  [red]{line}[/]", markup=True, highlight=False)
