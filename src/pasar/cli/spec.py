"""``pasar spec``: check a job spec before spending anything on it.

The command is thin on purpose: it reads the file (the only I/O), hands the text to
:func:`pasar.core.spec.load_spec`, and prints the normalized spec. Any problem is raised as a
PasarError and rendered once by :mod:`pasar.cli.main` (exit code 2, JSON under ``--json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from pasar.cli.output import console, print_json
from pasar.core.errors import PasarError

if TYPE_CHECKING:
    from pasar.core.spec import JobSpec

app = typer.Typer(no_args_is_help=True, help="Check and normalize job specs.")


def read_spec_file(path: Path) -> JobSpec:
    """Read and validate a spec file; a missing or unreadable file is a PasarError with a hint."""
    from pasar.core.spec import load_spec

    if not path.exists():
        raise PasarError(
            f"no such file: {path}",
            code="file_not_found",
            field="path",
            hint="check the path; examples/hello.yaml is a minimal job spec",
        )
    if not path.is_file():
        raise PasarError(
            f"{path} is not a file",
            code="not_a_file",
            field="path",
            hint="pass the path of a YAML job spec, e.g. examples/hello.yaml",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PasarError(
            f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})",
            code="invalid_encoding",
            field="path",
            hint="save the spec as UTF-8 YAML",
        ) from None
    except OSError as exc:
        raise PasarError(
            f"cannot read {path}: {exc.strerror or exc}",
            code="unreadable_file",
            field="path",
            hint="check the file's permissions",
        ) from None
    return load_spec(text, str(path))


@app.command("check")
def check(
    path: Path = typer.Argument(..., help="The job spec (YAML) to check.", show_default=False),
    json: bool = typer.Option(False, "--json", help="Print the normalized spec as JSON."),
) -> None:
    """Validate a job spec and print its normalized form (exit 2 with every problem if invalid).

    Example: pasar spec check job.yaml
    """
    spec = read_spec_file(path)
    if json:
        print_json(spec.to_dict())
        return
    console.print(f"[green]✓[/] {escape(str(path))} is a valid job spec", highlight=False)
    request = spec.to_request()
    console.print(
        f"  each of {spec.lease_count} lease(s) needs: {request.describe()}\n"
        f"  escrow at most {spec.max_escrow()} "
        f"({spec.max_price_per_hour}/h × {spec.max_duration} s × {spec.lease_count})",
        highlight=False,
        markup=False,
    )
    from rich.syntax import Syntax  # the highlighter loads only to show a spec

    console.print(Syntax(spec.to_yaml(), "yaml", background_color="default"))
