"""``pasar devnet``: a whole local network on this machine (``up``, ``down``) and the showcase
that runs real jobs on one (``demo``, what ``make demo`` runs).

Only option parsing and printing live here; :mod:`pasar.devnet` starts and stops the processes
and :mod:`pasar.showcase` is the demo.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer

from pasar.cli.output import console, err_console
from pasar.core.errors import PasarError

if TYPE_CHECKING:  # the devnet module (presets, pricing, the agent's parts) loads on use
    from pasar.devnet import Devnet

app = typer.Typer(no_args_is_help=True, help="A local network: a market and providers.")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@app.callback()
def _devnet() -> None:
    """A local network on 127.0.0.1: a market node and provider agents as subprocesses."""


def _say(line: str) -> None:
    console.print(f"[dim]·[/] {line}", highlight=False)


def _prices(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip()) if value else ()


def _warn_process_runtime(runtime: str) -> None:
    if runtime == "process":
        from pasar.provider.runtime.process import PROCESS_WARNING

        err_console.print(PROCESS_WARNING, style="bold yellow", markup=False)


def _on_stop_signals(net: Devnet, stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()
        net.interrupt()

    for sig in _STOP_SIGNALS:
        signal.signal(sig, handler)


@app.command("up")
def up(
    providers: int = typer.Option(3, "--providers", "-n", min=1, max=32, help="Provider agents."),
    preset: str = typer.Option("pasar", "--preset", help="Network preset (`pasar presets`)."),
    home: Path | None = typer.Option(
        None,
        "--home",
        help="Folder for the network (default $PASAR_HOME/devnet or ./.pasar-devnet).",
    ),
    port: int = typer.Option(
        0, "--port", min=0, max=65535, help="Market port; 0 picks a free one."
    ),
    runtime: str = typer.Option(
        "sandbox", "--runtime", help="Providers' runtime: sandbox | process | docker."
    ),
    prices: str | None = typer.Option(
        None, "--prices", help="CPU core-hour price per provider, e.g. 0.30,0.20,0.40."
    ),
    faucet: str = typer.Option("100 USDC", "--faucet", help="Test money for the client key."),
    verifiers: int | None = typer.Option(
        None,
        "--verifiers",
        min=0,
        max=15,
        help="Verifier agents (checkers of replicate jobs); default: the preset's checkers.",
    ),
    detach: bool = typer.Option(
        False, "--detach", help="Start it and return; stop it with `pasar devnet down`."
    ),
    cheaters: int = typer.Option(
        0, "--cheaters", min=0, hidden=True, help="How many providers run --cheat (default 1)."
    ),
    cheat: str | None = typer.Option(
        None, "--cheat", hidden=True, help="KIND:RATE for the cheating providers."
    ),
    tls: bool = typer.Option(
        False, "--tls", help="Serve the market over HTTPS (a self-signed certificate, pinned)."
    ),
    cluster: bool = typer.Option(
        False,
        "--cluster",
        help="Providers take multi-node jobs with a private network (--allow-cluster: needs "
        "root) and, where Ray is installed (the cluster extra), cluster: ray.",
    ),
) -> None:
    """Start a market and N providers on 127.0.0.1 and a funded client key; print the market
    URL and the export lines; run until Ctrl-C or SIGTERM, then stop them all and exit 0.

    Example: pasar devnet up -n 3 --detach
    """
    from pasar.devnet import Devnet, DevnetConfig, DevnetInterrupted, default_home

    _warn_process_runtime(runtime)
    _check_cheat(cheaters, cheat, providers)
    config = DevnetConfig(
        home=(home or default_home()).resolve(),
        providers=providers,
        preset=preset,
        port=port,
        runtime=runtime,
        prices=_prices(prices),
        faucet=faucet,
        cheaters=cheaters or (1 if cheat else 0),  # --cheat alone: one cheater
        cheat=cheat,
        verifiers=verifiers,
        tls=tls,
        cluster=cluster,
    )
    net = Devnet(config, say=_say)
    stop = threading.Event()
    _on_stop_signals(net, stop)
    try:
        net.start(detach=detach)
    except DevnetInterrupted:
        console.print("devnet: stopped before it was up")
        return
    _print_network(net)
    if detach:
        print(f"stop it with: pasar devnet down --home {config.home}", flush=True)
        return
    print("Ctrl-C stops the network.", flush=True)
    code = _watch(net, stop)
    net.stop()
    print("devnet stopped", flush=True)
    if code:
        raise typer.Exit(code)


def _check_cheat(cheaters: int, cheat: str | None, providers: int) -> None:
    """``--cheaters N --cheat KIND:RATE`` go together, for at most every provider; a bad
    KIND:RATE fails here, before anything starts."""
    from pasar.provider.cheat import parse_cheat

    if cheaters and cheat is None:
        raise PasarError(
            "--cheaters needs --cheat KIND:RATE", code="invalid_cheat", field="--cheat"
        )
    if cheaters > providers:
        raise PasarError(
            f"--cheaters {cheaters} is more than the {providers} providers",
            code="invalid_cheat",
            field="--cheaters",
            hint="at most --providers",
        )
    if cheat is not None:
        parse_cheat(cheat, seed="")


def _watch(net: Devnet, stop: threading.Event) -> int:
    """Until a stop signal: report a process that ends on its own (one line when it stopped
    cleanly, else the end of its log, readable); a stopped market ends the network (exit 1),
    a dead provider only a warning."""
    reported: set[str] = set()
    while not stop.wait(1.0):
        for member in net.exited():
            if member.name in reported:
                continue
            reported.add(member.name)
            if member.exit_code() == 0:  # stopped cleanly (by a signal, not by this devnet)
                err_console.print(
                    f"{member.name} stopped (exit 0); its log: {member.log}",
                    style="yellow",
                    markup=False,
                )
            else:
                err_console.print(
                    f"{member.name} exited on its own; the end of {member.log}:\n"
                    f"{member.log_tail()}",
                    style="yellow",
                    markup=False,
                )
            if member.name == "market":
                return 1
    return 0


def _print_network(net: Devnet) -> None:
    """One line per process (long ids are not cut: people copy them), then the export lines."""
    cfg = net.config
    console.print(
        f"[bold]devnet up[/] in {cfg.home} (preset {cfg.preset}, {cfg.runtime} runtime; "
        f"logs in {cfg.logs})",
        soft_wrap=True,
        highlight=False,
    )
    rows = [("market", net.url, "")]
    rows += [(p.name, p.ready, f"{p.price} USDC per CPU core-hour") for p in net.providers]
    rows += [(v.name, v.ready, "verifier") for v in net.verifiers]
    rows.append(("client", net.client_account, f"key in {cfg.client_home / 'keys'}"))
    for name, ident, note in rows:
        console.print(f"  {name:<11} {ident}  [dim]{note}[/]", soft_wrap=True, highlight=False)
    # plain prints: one line each, never wrapped, for people to copy and scripts to read
    print(f"market URL: {net.url}", flush=True)
    print(f"dashboard: {net.url}/ui  (or: pasar dashboard)", flush=True)
    for line in net.export_lines():
        print(line, flush=True)


@app.command("down")
def down_(
    home: Path | None = typer.Option(
        None, "--home", help="The network's folder (default $PASAR_HOME/devnet or ./.pasar-devnet)."
    ),
) -> None:
    """Stop a network started by `pasar devnet up` (detached or in another terminal).

    Example: pasar devnet down
    """
    from pasar.devnet import default_home, down

    where = (home or default_home()).resolve()
    stopped = down(where, say=_say)
    console.print(f"devnet in {where} stopped" + (f" ({', '.join(stopped)})" if stopped else ""))


@app.command("demo")
def demo(
    home: Path | None = typer.Option(
        None, "--home", help="Folder for the demo's network (default: a fresh temporary one)."
    ),
    out: Path = typer.Option(Path("demo-out"), "--out", help="Where render.png and results go."),
    providers: int = typer.Option(3, "--providers", "-n", min=3, max=8, help="Provider agents."),
    runtime: str = typer.Option("sandbox", "--runtime", help="sandbox | process | docker."),
    examples: Path | None = typer.Option(
        None, "--examples", help="The examples/ folder (default: the source checkout's)."
    ),
    keep: bool = typer.Option(False, "--keep", help="Keep the temporary network folder."),
    pol: bool | None = typer.Option(
        None,
        "--pol/--no-pol",
        help="Proof of learning: a training cheater pinned to its step and operator by a "
        "dispute (about a minute). Default: on where torch (the ml extra) is installed.",
    ),
) -> None:
    """The showcase: a local network runs an auction, a tiled render, a training run and
    @pasar.remote .map, then shows every bill, the fees, a conservation check and an audit.

    Example: pasar devnet demo
    """
    from pasar.devnet import Devnet, DevnetConfig, DevnetInterrupted
    from pasar.showcase import Showcase, find_examples

    _warn_process_runtime(runtime)
    examples_dir = find_examples(examples)
    temporary = home is None
    where = Path(tempfile.mkdtemp(prefix="pasar-demo-")) if home is None else home.resolve()
    net = Devnet(DevnetConfig(home=where, providers=providers, runtime=runtime), say=_say)
    interrupted = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not interrupted.is_set():  # the first one stops the demo; the stop is not interrupted
            interrupted.set()
            raise DevnetInterrupted()

    for sig in _STOP_SIGNALS:
        signal.signal(sig, on_signal)
    show = Showcase(net, examples=examples_dir, out=out.resolve(), console=console, pol=pol)
    ok = False
    try:
        ok = show.run()
    except DevnetInterrupted:
        console.print("demo interrupted: stopping the network")
    finally:
        net.stop()
        if temporary and not keep:
            shutil.rmtree(where, ignore_errors=True)
        else:
            console.print(f"the network's folder (keys, database, logs) is in {where}")
    if interrupted.is_set():
        raise typer.Exit(130)
    if not ok:
        raise PasarError(
            "the demo's checks did not all pass (see above)",
            code="demo_failed",
            hint="rerun with --keep and read the logs in the network's logs/ folder",
        )
