"""`pasar doctor`: the table of machine checks (the checks themselves live in pasar.doctor)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from pasar.cli.output import console, print_json

_STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}  # by Status value


def doctor(
    home: Path | None = typer.Option(
        None, "--home", help="pasar home (default $PASAR_HOME or ~/.pasar)."
    ),
    json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """Check this machine for running a provider or a market (read-only); exit 1 on a failure.

    Example: pasar doctor --json
    """
    from pasar.doctor import Status, run_checks  # its probes load only for this command

    checks = run_checks(home)
    failed = any(c.status is Status.FAIL for c in checks)
    if json:
        print_json({"ok": not failed, "checks": [c.to_dict() for c in checks]})
    else:
        table = Table(title="pasar doctor")
        table.add_column("check")
        table.add_column("status")
        table.add_column("detail")
        table.add_column("hint")
        for c in checks:
            table.add_row(
                escape(c.name),
                f"[{_STYLE[c.status]}]{c.status.value}[/]",
                escape(c.detail),
                escape(c.hint or ""),
            )
        console.print(table)
    if failed:
        raise typer.Exit(1)
