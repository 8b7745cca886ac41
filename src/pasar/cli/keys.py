"""`pasar keys` commands (being written)."""

import typer

app = typer.Typer(no_args_is_help=True, help="keys commands.")
