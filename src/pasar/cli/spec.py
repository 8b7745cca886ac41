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
    from pasar.core.spec_draft import Draft

app = typer.Typer(no_args_is_help=True, help="Check and normalize job specs.")


def read_spec_file(path: Path) -> JobSpec:
    """Read and validate a complete spec file (price cap and duration included)."""
    return read_draft_file(path).spec()


def read_draft_file(path: Path) -> Draft:
    """Read and check a spec file that may leave its price cap and duration to the client;
    a missing or unreadable file is a PasarError with a hint."""
    from pasar.core.spec_draft import load_draft

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
    return load_draft(text, str(path))


@app.command("check")
def check(
    path: Path = typer.Argument(..., help="The job spec (YAML) to check.", show_default=False),
    json: bool = typer.Option(False, "--json", help="Print the normalized spec as JSON."),
) -> None:
    """Validate a job spec and print its normalized form (exit 2 with every problem if invalid).

    Example: pasar spec check job.yaml
    """
    draft = read_draft_file(path)
    spec = draft.checked()
    decisions = [*draft.notes, *(_LEFT_TO_LAUNCH[k] for k in draft.missing)]
    shown = _shown(spec, draft.missing)
    if json:
        print_json({**shown, "decisions": decisions} if decisions else shown)
        return
    console.print(f"[green]✓[/] {escape(str(path))} is a valid job spec", highlight=False)
    for line in decisions:
        console.print(f"  - {line}", highlight=False, markup=False)
    needs = " or ".join(f"[{i}] {c.to_request().describe()}" for i, c in enumerate(spec.choices()))
    if spec.resources.alternatives is None:
        needs = spec.to_request().describe()
    console.print(
        f"  each of {spec.lease_count} lease(s) needs: {needs}", highlight=False, markup=False
    )
    if not draft.missing:
        console.print(
            f"  escrow at most {spec.max_escrow()} "
            f"({spec.max_price_per_hour}/h × {spec.max_duration} s × {spec.lease_count})",
            highlight=False,
            markup=False,
        )
    import yaml
    from rich.syntax import Syntax  # the highlighter loads only to show a spec

    text = yaml.safe_dump(shown, sort_keys=False, allow_unicode=True)
    console.print(Syntax(text, "yaml", background_color="default"))


#: what spec check says of a field the file leaves to launch (pasar.client.defaults)
_LEFT_TO_LAUNCH = {
    "max_price_per_hour": "max_price_per_hour: not in the spec: launch sets it to the "
    "market's quote × price_margin (pasar config, 1.25) and shows it before escrowing",
    "max_duration": "max_duration: not in the spec: launch takes default_duration "
    "(pasar config, 1h)",
}


def _shown(spec: JobSpec, missing: tuple[str, ...]) -> dict[str, object]:
    """The normalized spec as printed: secrets' values masked, launch's fields left out."""
    data = {k: v for k, v in spec.to_dict().items() if k not in missing}
    if spec.secrets:
        data["secrets"] = dict.fromkeys(spec.secrets, "***")
    return data
