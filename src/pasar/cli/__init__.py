"""The pasar command line: typer commands, one module per command group."""
