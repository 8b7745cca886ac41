"""`pasar market`: run a market node.

Only option parsing lives here; :mod:`pasar.market.serve` builds and runs the server, so that
tests and the devnet can start the very same thing without the CLI.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pasar.market.config import DEFAULT_HOST, DEFAULT_PORT, MarketConfig

app = typer.Typer(no_args_is_help=True, help="Run a market node.")


@app.callback()
def _market() -> None:
    """Run a market node."""


@app.command("serve")
def serve(
    *,
    home: Path | None = typer.Option(
        None, "--home", help="pasar home (default $PASAR_HOME or ~/.pasar)."
    ),
    db: str | None = typer.Option(
        None, "--db", help="SQLAlchemy URL (default sqlite:///<home>/market.db)."
    ),
    preset: str = typer.Option("pasar", "--preset", help="Network preset (`pasar presets`)."),
    host: str = typer.Option(
        DEFAULT_HOST, "--host", help="Address to bind; 0.0.0.0 exposes the market to the network."
    ),
    port: int = typer.Option(
        DEFAULT_PORT, "--port", min=0, max=65535, help="TCP port; 0 picks a free one."
    ),
    devnet: bool = typer.Option(
        False, "--devnet", help="Development network: enables the faucet. Never with real money."
    ),
) -> None:
    """Serve the market API until SIGTERM or Ctrl-C; prints the URL once listening."""
    from pasar.market.serve import serve as run_market  # FastAPI/uvicorn only when serving

    config = MarketConfig.build(
        home=home, db_url=db, preset=preset, host=host, port=port, devnet=devnet
    )
    run_market(config)
