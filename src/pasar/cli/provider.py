"""``pasar provider``: start the agent, show this machine's inventory, status and earnings."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from pasar.cli.common import reputation
from pasar.cli.output import console, err_console, print_json
from pasar.cli.serving import log_to_stderr, serve
from pasar.core.errors import PasarError
from pasar.crypto.identity import pasar_home
from pasar.provider import PROVIDER_KEY

if TYPE_CHECKING:  # the agent (numpy, the runtimes) loads only for the commands that run it
    from pasar.api.stake import StakeView
    from pasar.provider.market_api import MarketAPI

app = typer.Typer(no_args_is_help=True, help="Sell this machine's compute on a market.")

MarketOpt = typer.Option(None, "--market", envvar="PASAR_MARKET", help="Market URL.")
HomeOpt = typer.Option(None, "--home", help="pasar home (default $PASAR_HOME or ~/.pasar).")


def _market(market: str | None) -> str:
    if not market:
        raise PasarError(
            "no market given",
            code="missing_market",
            field="--market",
            hint="pass --market URL or set PASAR_MARKET (pasar devnet up prints it)",
        )
    return market


@app.command("start")
def start(
    market: str = MarketOpt,
    home: Path = HomeOpt,
    runtime: str = typer.Option("sandbox", "--runtime", help="sandbox | docker | process."),
    price: list[str] = typer.Option([], "--price", help="MODEL=PRICE per GPU-hour (repeat)."),
    price_cpu_hour: str = typer.Option(None, "--price-cpu-hour", help="Price per CPU core-hour."),
    strategy: str = typer.Option("scale", "--strategy", help="scale | script:PATH."),
    stake: str = typer.Option(None, "--stake", help="Stake to lock at start, e.g. '50 USDC'."),
    max_jobs: int = typer.Option(4, "--max-jobs", min=1, help="Leases run at once."),
    warm_pool: int = typer.Option(
        2,
        "--warm-pool",
        min=0,
        help="Sandboxes kept started, per kind of lease, so a short job skips the sandbox's "
        "and Python's start (sandbox runtime; one lease each, then destroyed); 0 = off.",
    ),
    allow_network: bool = typer.Option(
        False, "--allow-network", help="Let jobs that ask for it reach the network."
    ),
    allow_cluster: bool = typer.Option(
        False,
        "--allow-cluster",
        help="Give the nodes of a multi-node job that all run on this machine a private "
        "network of their own (they reach each other, nothing else; needs root).",
    ),
    grace: float = typer.Option(30.0, "--grace", min=0, help="Seconds to finish leases on stop."),
    region: str = typer.Option(None, "--region", help="Region shown in offers, e.g. eu."),
    node_address: str = typer.Option(
        "127.0.0.1",
        "--node-address",
        help="The IP address the other nodes of a multi-node job reach this machine at "
        "(the default fits a network whose providers all run on this machine).",
    ),
    key: str = typer.Option(PROVIDER_KEY, "--key", help="Key name in $PASAR_HOME/keys."),
    gpu_report: Path = typer.Option(
        None,
        "--gpu-report",
        hidden=True,
        help="Register the GPUs of this JSON report (scripts/gpu-check's 'report') instead of "
        "asking NVML: for tests and rehearsals; the market's capacity checks still apply.",
    ),
    tee: str = typer.Option(
        "auto",
        "--tee",
        help="auto | tdx | none: attest with a TEE quote (configfs-tsm or a dstack/tappd "
        "socket) so verification: tee jobs may match; auto says plainly when there is no TEE.",
    ),
    cheat: str = typer.Option(
        None,
        "--cheat",
        hidden=True,
        help="KIND:RATE (skip | garble | lazy | slow): misbehave on that fraction of leases, "
        "to test verification. Refused unless the market runs --devnet.",
    ),
    cheat_seed: str = typer.Option(
        None, "--cheat-seed", hidden=True, help="Seed choosing the leases cheated on."
    ),
    pip_index_url: str = typer.Option(
        None,
        "--pip-index-url",
        help="Where jobs' pip requirements come from (binary wheels only; default: pip's own "
        "configuration). Also `index_url` under [pip] in config.toml.",
    ),
    pip_find_links: list[str] = typer.Option(
        [],
        "--pip-find-links",
        help="A folder (or URL) of wheels for jobs' pip requirements (repeat).",
    ),
    pip_no_index: bool = typer.Option(
        False, "--pip-no-index", help="Install jobs' pip requirements from --pip-find-links only."
    ),
    pip_cache_max_mb: int = typer.Option(
        None,
        "--pip-cache-max-mb",
        help="Most MB of pip installs kept for jobs (least recently used go first; default 10240).",
    ),
) -> None:
    """Register with the market and serve leases until SIGTERM or Ctrl-C (then drain, exit 0).

    Example: pasar provider start --price-cpu-hour '0.20 USDC' --stake '50 USDC'
    """
    from pasar.provider.agent import Agent, AgentConfig
    from pasar.provider.pip_options import pip_options_from_config
    from pasar.provider.runtime.process import PROCESS_WARNING

    log_to_stderr()
    if runtime == "process":
        err_console.print(PROCESS_WARNING, style="bold yellow", markup=False)
    if allow_cluster and os.geteuid() != 0:
        raise PasarError(
            "--allow-cluster needs a provider running as root: a gang's network is a network "
            "namespace, which only root may create",
            code="invalid_argument",
            field="--allow-cluster",
            hint="start the provider as root, or leave --allow-cluster out",
        )
    pip = pip_options_from_config(pasar_home(home)).with_flags(
        index_url=pip_index_url,
        find_links=pip_find_links,
        no_index=pip_no_index,
        cache_max_mb=pip_cache_max_mb,
    )
    config = AgentConfig(
        market=_market(market),
        home=pasar_home(home),
        runtime=runtime,
        prices=tuple(price),
        price_cpu_hour=price_cpu_hour,
        strategy=strategy,
        stake=stake,
        max_jobs=max_jobs,
        warm_pool=warm_pool,
        allow_network=allow_network,
        allow_cluster=allow_cluster,
        grace_s=grace,
        region=region,
        node_address=node_address,
        key_name=key,
        gpu_report=gpu_report,
        cheat=cheat,
        cheat_seed=cheat_seed,
        tee=tee,
        pip=pip.checked(),
    )
    agent = Agent(config)
    ready = f"pasar provider {agent.identity.account_id} serving {config.market}"
    serve(agent, ready=ready, stopped="pasar provider stopped")


@app.command("inventory")
def inventory(
    home: Path = HomeOpt,
    json: bool = typer.Option(False, "--json", help="Print as JSON."),
    bench: bool = typer.Option(True, "--bench/--no-bench", help="Run (or reuse) the benchmark."),
) -> None:
    """What this machine would offer: GPUs (NVML), CPUs, memory, disk, benchmark score.

    Example: pasar provider inventory --json
    """
    from pasar.provider.bench import cached_benchmark
    from pasar.provider.inventory import detect_inventory

    where = pasar_home(home)
    found = detect_inventory(where)
    score = cached_benchmark(where, found.fingerprint) if bench else None
    data = {
        "offer": found.to_wire(),
        "facts": found.facts(),
        "benchmark": None if score is None else score.to_json(),
    }
    if json:
        print_json(data)
        return
    table = Table(title="this machine")
    table.add_column("what")
    table.add_column("value")
    offer = found.to_wire()
    gpus = offer["gpus"]
    table.add_row(
        "GPUs",
        ", ".join(map(str, gpus))
        if isinstance(gpus, list) and gpus
        else f"none ({found.gpu_unavailable_reason or 'NVML found no GPU'})",
    )
    table.add_row("CPUs offered", f"{offer['cpus']} ({found.cpu_model})")
    table.add_row("memory offered", f"{offer['memory_gb']} GB of {found.memory_total_gb} GB")
    table.add_row("disk free", f"{offer['disk_gb']} GB at {found.disk_path}")
    if score is not None:
        table.add_row("benchmark", f"{score.gflops} GFLOP/s ({score.backend} on {score.device})")
    console.print(table)


def _api(market: str | None, home: Path | None, key: str) -> MarketAPI:
    from pasar.provider.agent import load_or_create_key
    from pasar.provider.market_api import MarketAPI

    identity = load_or_create_key(pasar_home(home), key)
    return MarketAPI(_market(market), identity, home=pasar_home(home))


@app.command("status")
def status(
    market: str = MarketOpt,
    home: Path = HomeOpt,
    key: str = typer.Option(PROVIDER_KEY, "--key"),
    json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """This provider as the market sees it: offers, running leases, reputation, stake.

    Example: pasar provider status
    """
    api = _api(market, home, key)
    try:
        me = api.me()
        staking = _staking(api)
    finally:
        api.close()
    if json:
        print_json({**me.wire(), "staking": None if staking is None else staking.wire()})
        return
    console.print(f"provider {me.provider}")
    console.print(f"  GPUs {me.inventory} (free: {me.free}), CPUs {me.cpus}")
    console.print(f"  reputation {reputation(me.reputation)}, stake {me.stake}, score {me.score}")
    console.print(f"  running leases: {', '.join(me.running) or 'none'}")
    if staking is not None:
        _print_staking(staking)


def _staking(api: MarketAPI) -> StakeView | None:
    """The provider's stake view; None from a market too old to have one (404)."""
    try:
        return api.stake_view()
    except PasarError as exc:
        if exc.status == 404 and exc.code != "not_registered":
            return None
        raise


def _print_staking(view: StakeView) -> None:
    """Stake (and what the market requires), unbonding, slashes and why, bid deposits."""
    required = f" (the market requires {view.required})" if view.required else ""
    console.print(f"  stake bonded {view.stake}{required}", highlight=False, soft_wrap=True)
    for item in view.unbonding:
        when = datetime.fromtimestamp(item.release_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        console.print(f"  unbonding {item.amount}, free at {when}", highlight=False, soft_wrap=True)
    console.print(f"  slashed {view.slashed} in all", highlight=False, soft_wrap=True)
    for slash in view.slashes:
        console.print(
            f"    {slash.amount} from {slash.source} ({slash.burned} burned, {slash.reward} "
            f"reward): {slash.reason}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    for deposit in view.bid_deposits:
        line = f"  bid deposit {deposit.amount} held for {deposit.order_id}"
        console.print(line, highlight=False, soft_wrap=True)


@app.command("earnings")
def earnings(
    market: str = MarketOpt,
    home: Path = HomeOpt,
    key: str = typer.Option(PROVIDER_KEY, "--key"),
    json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Earnings, stake and spendable balance of this provider's account.

    Example: pasar provider earnings
    """
    api = _api(market, home, key)
    try:
        account = api.account()
    finally:
        api.close()
    if json:
        print_json(account.wire())
        return
    console.print(
        f"earnings {account.earnings}, stake {account.stake}, spendable {account.balance}"
    )
