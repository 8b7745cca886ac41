"""``pasar dashboard``: open the configured market's web dashboard, or sign in to it.

The dashboard is served by the market itself (``/ui``, :mod:`pasar.market.dashboard`); these
commands only find its address and, for ``login``, sign the market's challenge with the client
key (:meth:`pasar.client.client.Client.dashboard_login_url`). A browser is opened with Python's
``webbrowser`` module; ``--print`` prints the address instead (for a remote shell, or a script).
"""

from __future__ import annotations

import typer

from pasar.cli.common import MarketOpt, make_client

app = typer.Typer(
    help="The market's web dashboard: network, prices, providers, jobs and the chain.",
    invoke_without_command=True,
)
PrintOpt = typer.Option(False, "--print", help="Print the address only; open no browser.")


def _show(url: str, print_only: bool) -> None:
    """Open ``url`` in a browser, and always print it (no browser here: the line is enough)."""
    typer.echo(url)
    if not print_only:
        import webbrowser

        webbrowser.open(url)


@app.callback()
def dashboard(
    ctx: typer.Context, market: str | None = MarketOpt, print_only: bool = PrintOpt
) -> None:
    """Open the market's dashboard in a browser (its address is printed too).

    Example: pasar dashboard --print
    """
    if ctx.invoked_subcommand is not None:
        return
    with make_client(market) as client:
        _show(client.dashboard_url(), print_only)


@app.command()
def login(market: str | None = MarketOpt, print_only: bool = PrintOpt) -> None:
    """Sign in to the dashboard with this client's key (no password): opens a link, good once
    and for two minutes, that shows your own jobs with their logs and results for an hour.

    Example: pasar dashboard login --print
    """
    with make_client(market) as client:
        _show(client.dashboard_login_url(), print_only)
