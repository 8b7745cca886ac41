"""`pasar market`: run a market node.

Only option parsing lives here; :mod:`pasar.market.serve` builds and runs the server, so that
tests and the devnet can start the very same thing without the CLI.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pasar.market.blobs import DEFAULT_GRACE_S, DEFAULT_QUOTA_BYTES
from pasar.market.config import (
    DEFAULT_HOST,
    DEFAULT_MAX_BLOB_BYTES,
    DEFAULT_PORT,
    MarketConfig,
)
from pasar.market.ratelimit import DEFAULT_RATE_PER_S

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
    rate_limit: int = typer.Option(
        DEFAULT_RATE_PER_S,
        "--rate-limit",
        min=1,
        help="Requests per second one account may make (bursts of twice that); 429 beyond.",
    ),
    blob_quota_mb: int = typer.Option(
        DEFAULT_QUOTA_BYTES >> 20,
        "--blob-quota-mb",
        min=1,
        help="MiB of blobs one account may keep stored.",
    ),
    blob_grace_s: int = typer.Option(
        DEFAULT_GRACE_S,
        "--blob-grace",
        min=1,
        help="Seconds a blob that no order names is kept before it is removed.",
    ),
    max_blob_bytes: int = typer.Option(
        DEFAULT_MAX_BLOB_BYTES,
        "--max-blob-bytes",
        min=1,
        help="Largest blob (one input or output file) the market stores, in bytes.",
    ),
    tls: str | None = typer.Option(
        None,
        "--tls",
        help="'auto': serve HTTPS with a self-signed certificate made once in <home>/tls; "
        "clients pin the fingerprint it prints.",
    ),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="Serve HTTPS: certificate PEM."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="Its private key (PEM)."),
    mtls: bool = typer.Option(
        False,
        "--mtls",
        help="Mutual TLS: every signed request must come over a connection whose client "
        "certificate (issued by this market) names the signer.",
    ),
    standby: bool = typer.Option(
        False,
        "--standby",
        help="If another node is the writer of this database, wait as a hot standby (healthz "
        "says role standby, other requests 503) and take over when it stops; without it, exit 2.",
    ),
    listen_fd: int | None = typer.Option(
        None,
        "--listen-fd",
        min=0,
        hidden=True,
        help="Serve on this inherited file descriptor: a TCP socket already bound and "
        "listening (pasar devnet's, so its providers start before the market listens).",
    ),
) -> None:
    """Serve the market API until SIGTERM or Ctrl-C; prints the URL once listening.

    A database has exactly one writer: a second node on it exits 2, or with --standby waits
    and takes over when the writer stops or dies.

    Example: pasar market serve --port 8420 --db postgresql+psycopg://pasar@localhost/pasar
    """
    from pasar.market.serve import serve as run_market  # FastAPI/uvicorn only when serving

    config = MarketConfig.build(
        home=home,
        db_url=db,
        preset=preset,
        host=host,
        port=port,
        devnet=devnet,
        rate_per_s=rate_limit,
        blob_quota_bytes=blob_quota_mb << 20,
        blob_grace_s=blob_grace_s,
        max_blob_bytes=max_blob_bytes,
        tls=tls,
        tls_cert=tls_cert,
        tls_key=tls_key,
        mtls=mtls,
        listen_fd=listen_fd,
    )
    run_market(config, standby=standby)
