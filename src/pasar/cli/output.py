"""How the CLI prints: rich tables for people, one JSON document for scripts, one error shape."""

from __future__ import annotations

import sys
from typing import Any

import orjson
from rich.console import Console

from pasar.core.errors import PasarError

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Write ``data`` as one indented JSON document on stdout (for ``--json``)."""
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def print_error(err: PasarError, *, json_mode: bool) -> None:
    """Print a PasarError: the JSON error shape on stdout with --json, plain text on stderr."""
    if json_mode:
        print_json(err.to_dict())
    else:
        err_console.print(err.render(), style="red", markup=False, highlight=False, soft_wrap=True)
