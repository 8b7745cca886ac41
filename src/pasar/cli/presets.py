"""``pasar presets``: the network presets shipped with pasar, listed or shown one at a time."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from pasar.cli.output import console, print_json

if TYPE_CHECKING:
    from pasar.core.stake import StakeRule

app = typer.Typer(
    help="Network presets: mechanism, fees, stake, timings and verification of each network.",
    invoke_without_command=True,
)


@app.callback()
def list_presets(
    ctx: typer.Context,
    json: bool = typer.Option(False, "--json", help="Print the presets as JSON."),
) -> None:
    """List the presets (run `pasar presets show NAME` for one in full).

    Example: pasar presets
    """
    from pasar.core.presets import BUILTIN_PRESETS, builtin_preset

    if ctx.invoked_subcommand is not None:
        return
    presets = [builtin_preset(name) for name in BUILTIN_PRESETS]
    if json:
        print_json([p.to_dict() for p in presets])
        return
    table = Table(title="network presets")
    for column in ("name", "pricing", "also allowed", "take rate", "stake", "heartbeat", "verify"):
        table.add_column(column)
    for p in presets:
        fees = p.fee_schedule()
        table.add_row(
            p.name,
            p.default_mechanism,
            ", ".join(m for m in p.allowed_mechanisms if m != p.default_mechanism) or "-",
            f"{_percent(fees.take_rate)} ({p.currency})",
            _stake_text(p.stake_rule),
            f"{p.timing.heartbeat_interval_s}s",
            p.verification.default,
        )
    console.print(table)
    console.print("pasar presets show NAME prints a preset with the sources it follows")


def _stake_text(rule: StakeRule) -> str:
    """``none``, ``50.00 USDC`` or ``10.00 USDC /GPU`` (the multipliers are in `show`)."""
    from pasar.core.stake import stake_rule_to_mapping

    data = stake_rule_to_mapping(rule)
    if data["kind"] == "flat":
        return str(data["amount"])
    if data["kind"] == "per_gpu":
        return f"{data['base']} /GPU"
    return "none"


def _percent(rate: Fraction) -> str:
    """An exact rate as a percentage for people: 1/400 -> 0.25%."""
    return f"{(Decimal(rate.numerator) / Decimal(rate.denominator) * 100).normalize():f}%"


@app.command("show")
def show(
    name: str = typer.Argument(..., help="Preset name, e.g. akash."),
    json: bool = typer.Option(False, "--json", help="Print the parsed preset as JSON."),
) -> None:
    """Print one preset: its TOML with the sources it follows, or the parsed form with --json.

    Example: pasar presets show akash
    """
    from pasar.core.presets import builtin_preset, preset_source

    preset = builtin_preset(name)
    if json:
        print_json(preset.to_dict())
        return
    from rich.syntax import Syntax  # the highlighter loads only to show a preset

    console.print(Syntax(preset_source(preset.name), "toml", word_wrap=True))
