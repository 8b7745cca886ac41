"""``pasar verifier``: re-run other providers' work for a fee, and see a verifier's standing."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from pasar.cli.output import console, print_json
from pasar.cli.provider import HomeOpt, MarketOpt, _market
from pasar.cli.serving import log_to_stderr, serve
from pasar.crypto.identity import pasar_home
from pasar.verifier import VERIFIER_KEY

app = typer.Typer(no_args_is_help=True, help="Check other providers' work and earn per check.")


@app.command("start")
def start(
    market: str = MarketOpt,
    home: Path = HomeOpt,
    runtime: str = typer.Option("sandbox", "--runtime", help="sandbox | docker | process."),
    stake: str = typer.Option(
        None, "--stake", help="Stake to lock at start, e.g. '10 USDC' (the preset's minimum)."
    ),
    operator: str = typer.Option(
        None, "--operator", help="Who runs this verifier: it never checks its own operator's work."
    ),
    key: str = typer.Option(VERIFIER_KEY, "--key", help="Key name in $PASAR_HOME/keys."),
) -> None:
    """Register as a verifier, then re-run the checks the market assigns until SIGTERM.

    Example: pasar verifier start --stake '10 USDC'
    """
    from pasar.verifier.agent import VerifierAgent, VerifierConfig

    log_to_stderr()
    config = VerifierConfig(
        market=_market(market),
        home=pasar_home(home),
        runtime=runtime,
        stake=stake,
        operator=operator,
        key_name=key,
    )
    agent = VerifierAgent(config)
    ready = f"pasar verifier {agent.identity.account_id} checking for {config.market}"
    serve(agent, ready=ready, stopped="pasar verifier stopped")


@app.command("status")
def status(
    market: str = MarketOpt,
    home: Path = HomeOpt,
    key: str = typer.Option(VERIFIER_KEY, "--key", help="Key name in $PASAR_HOME/keys."),
    json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """This verifier's stake, checks done and missed, and checks waiting for it.

    Example: pasar verifier status
    """
    from pasar.cli.jobs import dispute_line
    from pasar.client import calls
    from pasar.provider.agent import load_or_create_key
    from pasar.provider.market_api import MarketAPI

    identity = load_or_create_key(pasar_home(home), key)
    api = MarketAPI(_market(market), identity, home=pasar_home(home))
    try:
        info = api.perform(calls.verifier(identity.account_id))
        earned = api.account()
    finally:
        api.close()
    if json:
        print_json({**info.wire(), "balances": earned.wire()})
        return
    table = Table(title=f"verifier {info.verifier[:16]}…")
    table.add_column("what")
    table.add_column("value")
    table.add_row("available", "yes" if info.available else "no (missed a check: start again)")
    table.add_row("stake", info.stake)
    table.add_row("checks done", str(info.checks_done))
    table.add_row("checks missed", str(info.checks_missed))
    table.add_row("assigned now", ", ".join(info.assigned) or "none")
    for d in info.disputes:
        table.add_row(f"dispute {d['dispute_id']}", dispute_line(d))
    console.print(table)


@app.command("challenge")
def challenge(
    lease: str = typer.Argument(..., help="The settled lease whose result is wrong."),
    claim: str = typer.Option(..., "--claim", help="What is wrong with it, in a sentence."),
    bond: str = typer.Option(..., "--bond", help="The bond to post (the preset's whistle_bond)."),
    market: str = MarketOpt,
    home: Path = HomeOpt,
    key: str = typer.Option(VERIFIER_KEY, "--key", help="Key name in $PASAR_HOME/keys."),
) -> None:
    """Challenge a settled result (whistleblower): 2N+1 checkers re-run it; if they find it
    wrong the provider is slashed and you are rewarded, else you lose the bond.

    Example: pasar verifier challenge o-1a2b3c4d5e6f7a8b-0 --claim 'wrong output' --bond '1 USDC'
    """
    from pasar.client import calls
    from pasar.provider.agent import load_or_create_key
    from pasar.provider.market_api import MarketAPI

    identity = load_or_create_key(pasar_home(home), key)
    api = MarketAPI(_market(market), identity, home=pasar_home(home))
    try:
        answer = api.perform(calls.open_challenge(lease, claim, bond))
    finally:
        api.close()
    print_json(answer.wire())
