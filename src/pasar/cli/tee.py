"""``pasar tee``: verify a TDX/SGX attestation quote offline (what the market does with a
provider's quote, minus the binding to a key and nonce).

Exit codes: 0 the quote verifies; 1 it is refused (tampered, outdated TCB, expired collateral,
unknown TEE type); 2 the input cannot be read (missing file, collateral that is not JSON, or
dcap-qvl not installed), like every other pasar command's bad input.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from pasar.cli.output import console, print_json
from pasar.core.errors import PasarError
from pasar.tee.verify import Verdict, verify_quote

app = typer.Typer(help="TEE attestation: verify Intel TDX/SGX DCAP quotes offline.")

#: Refusals of a readable quote (exit 1); any other PasarError is unreadable input (exit 2).
REFUSALS = frozenset({"quote_invalid", "tcb_out_of_date", "collateral_expired", "tee_unknown_type"})


def _read(path: Path, what: str, *, binary: bool) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PasarError(
            f"cannot read the {what} {str(path)!r}: {exc.strerror or exc}",
            code="unreadable_input",
            field=what,
            hint="give the path of the raw quote file and its collateral JSON"
            if binary
            else "give the collateral JSON fetched for the quote (e.g. with dcap-qvl)",
        ) from None


@app.command("verify")
def verify(
    quote: Path = typer.Argument(..., help="The raw quote file (binary, as the TEE produced it)."),
    collateral: Path = typer.Option(
        ..., "--collateral", help="The quote's collateral JSON (TCB info, QE identity, CRLs)."
    ),
    at: int | None = typer.Option(
        None,
        "--at",
        help="Verify as of this unix time (seconds); default now. Collateral is valid for about "
        "a month after it is issued.",
    ),
    json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> None:
    """Verify QUOTE with its collateral, offline; print the TEE type, TCB status, advisories,
    measurements and report data. Exit 0 when it verifies, 1 when refused, 2 on bad input.

    Example: pasar tee verify quote.bin --collateral collateral.json
    """
    raw = _read(quote, "quote", binary=True)
    text = _read(collateral, "collateral", binary=False).decode("utf-8", errors="replace")
    when = int(time.time()) if at is None else at
    try:
        verdict = verify_quote(raw, text, when)
    except PasarError as err:
        if err.code not in REFUSALS:
            raise
        if json:
            print_json({"verified": False, "at": when, **err.to_dict()})
        else:
            console.print(f"[red]refused[/red] ({err.code}): {err.message}", soft_wrap=True)
            if err.hint:
                console.print(f"  hint: {err.hint}", soft_wrap=True)
        raise typer.Exit(1) from None
    if json:
        print_json(verdict.to_dict())
        return
    _show(verdict)


def _show(verdict: Verdict) -> None:
    console.print(
        f"[green]verified[/green]: {verdict.tee} quote, TCB {verdict.tcb_status}", soft_wrap=True
    )
    console.print(f"  advisories: {', '.join(verdict.advisories) or 'none'}", soft_wrap=True)
    for name, value in verdict.measurements.items():
        console.print(f"  {name}: {value}", soft_wrap=True)
    console.print(f"  report data: {verdict.report_data}", soft_wrap=True)
    console.print(f"  quote sha256: {verdict.quote_sha256}", soft_wrap=True)
    console.print(
        f"  verified at {verdict.verified_at}; collateral valid until "
        f"{verdict.collateral_expires_at}"
    )
