"""Tables at 80 columns: ids and amounts whole, optional columns left out first (issue 14.7)."""

from __future__ import annotations

import csv
import io

import pytest
import yaml
from rich.console import Console

from pasar.cli import tables
from pasar.cli.tables import Column, build_table, kept_columns, output_format, print_rows
from pasar.core.errors import PasarError

ACCOUNT = "pa1" + "q" * 57  # as long as a real account id
COLUMNS = [
    Column("provider", "id"),
    Column("GPUs"),
    Column("price/h", "money"),
    Column("memory", "number", optional=True),
    Column("region", optional=True),
    Column("capacity proof", optional=True),
]
ROWS = [
    [ACCOUNT, "8× H100-SXM5-80GB", "0.000123 USDC", "2048", "eu-west", "passed 3 s ago"],
    ["pa1" + "z" * 57, "CPU only", "12345.678901 USDC", "16", "us-east", "-"],
]


def _render(width: int, keep: list[int] | None = None) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(build_table(COLUMNS, ROWS, keep=keep, width=width))
    return console.export_text()


def _first_cells(shown: str) -> str:
    """The first column's text, all lines joined: a folded id reads whole again."""
    return "".join(line.split("│")[1].strip() for line in shown.splitlines() if "│" in line)


def test_at_80_columns_no_id_or_amount_is_cut() -> None:
    keep = kept_columns(COLUMNS, ROWS, 80)
    shown = _render(80, keep)
    assert "…" not in shown
    assert all(len(line) <= 80 for line in shown.splitlines())
    joined = _first_cells(shown)
    assert ACCOUNT in joined and "pa1" + "z" * 57 in joined  # folded, never cut
    for amount in ("0.000123 USDC", "12345.678901 USDC"):
        assert any(amount in line for line in shown.splitlines())  # on one line, whole


def test_optional_columns_go_first_and_from_the_right() -> None:
    keep = kept_columns(COLUMNS, ROWS, 80)
    assert keep[:3] == [0, 1, 2]  # the required ones always stay
    assert 5 not in keep or 4 in keep  # the rightmost optional goes before the one left of it
    assert kept_columns(COLUMNS, ROWS, 400) == list(range(len(COLUMNS)))


def test_print_table_says_what_it_left_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tables, "console", Console(width=60, color_system=None))
    tables.print_table(COLUMNS, ROWS)
    out = capsys.readouterr().out
    assert "left out to fit 60 columns: --wide shows them" in out and "…" not in out


def test_wide_keeps_every_column(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tables, "console", Console(width=60, color_system=None))
    tables.print_table(COLUMNS, ROWS, wide=True)
    out = capsys.readouterr().out
    assert "capacity proof" in out and ACCOUNT in out and "left out" not in out


def test_csv_and_yaml_carry_whole_values(capsys: pytest.CaptureFixture[str]) -> None:
    print_rows("csv", COLUMNS, ROWS, {"rows": ROWS})
    parsed = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert parsed[0][0] == "provider" and parsed[1][0] == ACCOUNT and parsed[2][2].endswith("USDC")
    print_rows("yaml", COLUMNS, ROWS, {"rows": ROWS})
    assert yaml.safe_load(capsys.readouterr().out) == {"rows": ROWS}


def test_a_cell_is_text_not_markup() -> None:
    console = Console(width=120, record=True, color_system=None)
    console.print(build_table([Column("reason")], [["[bold]needs 2× A100[/bold]"]]))
    assert "[bold]needs 2× A100[/bold]" in console.export_text()


def test_an_unknown_format_names_the_option() -> None:
    assert output_format(None, json=True) == "json" and output_format("csv", False) == "csv"
    with pytest.raises(PasarError) as err:
        output_format("xml", json=False)
    assert err.value.field == "--output" and "csv" in (err.value.hint or "")
