"""``pasar presets``: the network presets shipped with pasar, listed or shown one at a time."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

import typer

from pasar.cli.output import console, print_json
from pasar.cli.tables import Column, OutputOpt, WideOpt, output_format, print_rows

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
    output: str | None = OutputOpt,
    wide: bool = WideOpt,
) -> None:
    """List the presets (run `pasar presets show NAME` for one in full).

    Example: pasar presets
    """
    from pasar.core.presets import BUILTIN_PRESETS, builtin_preset

    if ctx.invoked_subcommand is not None:
        return
    presets = [builtin_preset(name) for name in BUILTIN_PRESETS]
    fmt = output_format(output, json)
    columns = [
        Column("name"),
        Column("pricing"),
        Column("also allowed", optional=True),
        Column("take rate", "money"),
        Column("stake", "money"),
        Column("verify"),
        Column("heartbeat", "number", optional=True),
    ]
    rows = [
        [
            p.name,
            p.default_mechanism,
            ", ".join(m for m in p.allowed_mechanisms if m != p.default_mechanism) or "-",
            f"{_percent(p.fee_schedule().take_rate)} ({p.currency})",
            _stake_text(p.stake_rule),
            p.verification.default,
            f"{p.timing.heartbeat_interval_s}s",
        ]
        for p in presets
    ]
    print_rows(
        fmt, columns, rows, [p.to_dict() for p in presets], title="network presets", wide=wide
    )
    if fmt == "table":
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
