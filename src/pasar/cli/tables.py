"""Tables for people: ids and amounts are never cut, optional columns go first when the
terminal is narrow, and the same rows come out as CSV, YAML or JSON for scripts (``-o``).

Rich shrinks a table to the terminal by cutting cells with "…", which once turned ``o-7f3a…``
and ``0.0001…`` into values nobody could copy or trust. Here every column says what it holds:

- ``id`` (an account, order or lease id): folded onto several lines, never cut;
- ``money`` and ``number``: never wrapped nor cut (right-aligned, as wide as the widest value);
- ``text``: folded when it must be;

and a column marked ``optional`` is left out (and the table says so) when the others would not
fit. ``--wide`` keeps every column and prints as wide as the table needs.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pasar.cli.output import console, print_json
from pasar.client.settings import OUTPUT_FORMATS
from pasar.core.errors import PasarError

Kind = Literal["id", "money", "number", "text"]
FORMATS = OUTPUT_FORMATS  # the `output` setting takes the same names
#: an id column may be as narrow as this (its value folds onto more lines), and no narrower
ID_MIN_WIDTH = 16
#: a text column may be as narrow as this before the table drops optional columns
TEXT_MIN_WIDTH = 8
#: what each column costs beyond its content: a space each side and one border
COLUMN_FRAME = 3

OutputOpt = typer.Option(
    None,
    "--output",
    "-o",
    help="table (default), json, yaml or csv (csv: the table's rows, values whole).",
    show_default=False,
)
WideOpt = typer.Option(False, "--wide", help="Every column, however wide the table gets.")


@dataclass(frozen=True)
class Column:
    """One column: its header, what its cells hold, and whether it may be left out."""

    header: str
    kind: Kind = "text"
    optional: bool = False


def output_format(output: str | None, json: bool) -> str:
    """The format asked for with ``-o``/``--output`` (``--json`` is ``-o json``), else the
    ``output`` setting (``pasar config set output yaml``), else a table."""
    if json:
        return "json"
    if output is None:
        from pasar.client.settings import get_setting
        from pasar.crypto.identity import pasar_home

        return get_setting(pasar_home(), "output") or "table"
    if output not in FORMATS:
        raise PasarError(
            f"unknown output format {output!r}",
            code="invalid_argument",
            field="--output",
            hint="one of: " + ", ".join(FORMATS),
        )
    return output


def _natural_width(column: Column, cells: Sequence[str]) -> int:
    """As wide as its widest cell or header word: what the column takes when there is room."""
    words = [len(w) for w in column.header.split()]
    return max([*(len(c) for c in cells), *words, 1])


def _min_width(column: Column, cells: Sequence[str]) -> int:
    natural = _natural_width(column, cells)
    if column.kind in ("money", "number"):
        return natural  # never wrapped, never cut
    return min(natural, ID_MIN_WIDTH if column.kind == "id" else TEXT_MIN_WIDTH)


def _frame(count: int) -> int:
    return COLUMN_FRAME * count + 1


def kept_columns(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> list[int]:
    """The columns to show in ``width`` characters: all of them if they fit at their narrowest,
    else without optional ones, the rightmost first."""
    narrowest = [_min_width(c, [r[i] for r in rows]) for i, c in enumerate(columns)]
    keep = list(range(len(columns)))
    for i in reversed(range(len(columns))):
        if sum(narrowest[k] for k in keep) + _frame(len(keep)) <= width:
            break
        if columns[i].optional:
            keep.remove(i)
    return keep


def column_widths(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], keep: Sequence[int], width: int | None
) -> list[int]:
    """Each kept column's width: at least its narrowest (an amount is always whole); then the
    room left goes to the text columns, left to right, up to their longest word (a word is
    split only when nothing else fits: ``performa`` / ``nce`` reads badly), then to the folding
    columns, left to right, up to their natural width.
    ``width`` None: every column at its natural width (``--wide``)."""
    natural = [_natural_width(columns[i], [r[i] for r in rows]) for i in keep]
    if width is None:
        return natural
    widths = [_min_width(columns[i], [r[i] for r in rows]) for i in keep]
    words = [_longest_word([r[i] for r in rows]) if columns[i].kind == "text" else 0 for i in keep]
    room = width - sum(widths) - _frame(len(keep))
    for goal in (words, natural):
        for n in range(len(widths)):
            grow = max(0, min(room, goal[n] - widths[n]))
            widths[n] += grow
            room -= grow
    return widths


def _longest_word(cells: Sequence[str]) -> int:
    return max((len(word) for cell in cells for word in cell.split()), default=0)


def build_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    keep: Sequence[int] | None = None,
    width: int | None = None,
    show_header: bool = True,
) -> Table:
    """A rich table of ``rows`` (cells as text) over the columns ``keep`` (default: all), each
    column as wide as :func:`column_widths` says, so rich never has to cut a cell."""
    shown = list(range(len(columns))) if keep is None else list(keep)
    widths = column_widths(columns, rows, shown, width)
    table = Table(title=title, show_header=show_header)
    for i, w in zip(shown, widths, strict=True):
        column = columns[i]
        if column.kind in ("money", "number"):
            table.add_column(column.header, justify="right", no_wrap=True, width=w)
        else:
            table.add_column(column.header, overflow="fold", width=w)
    for row in rows:  # as plain text: a provider's reason must not be read as rich markup
        table.add_row(*(Text(row[i]) for i in shown))
    return table


def print_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    wide: bool = False,
    show_header: bool = True,
) -> None:
    """Print the table for people (see the module doc for what is never cut)."""
    width = console.width
    keep = list(range(len(columns))) if wide else kept_columns(columns, rows, width)
    table = build_table(
        columns,
        rows,
        title=title,
        keep=keep,
        width=None if wide else width,
        show_header=show_header,
    )
    if wide:
        needed = sum(column_widths(columns, rows, keep, None)) + _frame(len(keep))
        wider = Console(
            file=console.file,
            width=max(width, needed),
            color_system=console.color_system,  # type: ignore[arg-type]
            no_color=console.no_color,
            highlight=False,
        )
        wider.print(table, crop=False)
    else:
        console.print(table)
    left_out = [columns[i].header for i in range(len(columns)) if i not in keep]
    if left_out:
        console.print(
            f"({', '.join(left_out)} left out to fit {width} columns: --wide shows them)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def print_rows(
    fmt: str,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    data: Any,
    *,
    title: str | None = None,
    wide: bool = False,
) -> None:
    """One listing in the format asked for: the table, its rows as CSV, or ``data`` (what
    ``--json`` prints) as JSON or YAML."""
    if fmt == "json":
        print_json(data)
    elif fmt == "yaml":
        import yaml  # only for -o yaml: every other command starts without it

        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.header for c in columns])
        writer.writerows(rows)
        sys.stdout.write(out.getvalue())
    else:
        print_table(columns, rows, title=title, wide=wide)
