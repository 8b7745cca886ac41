"""A whole local network — one market node and N provider agents — as subprocesses on 127.0.0.1.

``pasar devnet up`` and ``pasar devnet demo`` are thin over :class:`Devnet`; tests use it too.
Every process is the real command a user would run (``python -m pasar market serve …``,
``python -m pasar provider start …``), started without a shell, each with its own home:

```
DIR/
  devnet.json        the running network: URL, and pid + start time of every process
  market/            the market's key and SQLite database (faucet on: --devnet)
  provider-1 … N/    each provider's key and cached benchmark; distinct CPU prices
  client/            a client key funded through the faucet, and config.toml: market = "URL"
  logs/              market.log, provider-i.log (stdout and stderr of each process)
```

**Starting.** Over plain HTTP the providers start while the market does (the devnet binds its
socket and hands it over, so the URL is known at once); then come the funding, the verifiers
and the client. See :meth:`Devnet._spawn_market`.

**Stopping.** Providers first (SIGTERM: they drain, handing back or finishing their leases),
then the market (SIGTERM: it finishes its requests and exits 0); whatever has not exited after
its grace gets SIGKILL. :func:`down` does the same for a network started by another process,
from ``devnet.json``; it checks each pid's start time first, so a pid the system has since
given to another program is never signalled.

**No orphans.** Children run in their own session, so the Ctrl-C a terminal sends reaches only
the supervisor, which then stops them in order. A foreground network's children also ask the
kernel (``PR_SET_PDEATHSIG``, Linux) for SIGTERM if the supervisor dies without cleaning up.
A detached network (``--detach``) outlives its ``up`` and is stopped by ``pasar devnet down``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil

from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.presets import builtin_preset
from pasar.crypto.identity import (
    DEFAULT_KEY_NAME,
    Identity,
    key_path,
    load_identity,
    save_identity,
)
from pasar.crypto.tls import fingerprint_of_pem, pin

__all__ = [
    "DEFAULT_PRICES",
    "DEVNET_FILE",
    "Devnet",
    "DevnetConfig",
    "DevnetInterrupted",
    "default_home",
    "down",
    "provider_price",
    "read_record",
]

DEVNET_FILE = "devnet.json"
LISTENING_PREFIX = "pasar market listening on "  # printed by pasar.market.serve
PROVIDER_PREFIX = "pasar provider "  # "pasar provider <account> serving <url>"
VERIFIER_PREFIX = "pasar verifier "  # "pasar verifier <account> checking for <url>"
DEFAULT_PRICES = ("0.30", "0.20", "0.40")
"""Per CPU core-hour, provider by provider (then continued upwards): distinct, so that an
auction is a real competition; the cheapest is provider-2, not simply the first started. Test
money, priced so that a job of a few seconds has a bill whose 2% fee is not rounded to zero."""
DEFAULT_FAUCET = "100 USDC"
PROVIDER_DEPOSITS = 20  # bid deposits' worth of test money for each provider (akash)
MARKET_START_S = 30.0
PROVIDER_START_S = 90.0  # the first start runs a 1 s benchmark; on 2 busy cores, more
PROVIDER_GRACE_S = 5.0  # how long a stopping provider lets running jobs finish
STOP_WAIT_S = 15.0  # beyond the grace, before SIGKILL
_PR_SET_PDEATHSIG = 1


class DevnetInterrupted(KeyboardInterrupt):
    """A stop was asked for (Ctrl-C, SIGTERM) while the network was still starting."""


def default_home() -> Path:
    """``$PASAR_HOME/devnet`` when PASAR_HOME is set, else ``./.pasar-devnet``."""
    env = os.environ.get("PASAR_HOME")
    return Path(env) / "devnet" if env else Path.cwd() / ".pasar-devnet"


def provider_price(index: int, prices: tuple[str, ...] = ()) -> str:
    """The CPU core-hour price of provider ``index`` (1-based): ``prices`` if given, else the
    defaults, continued past the third provider in steps of 0.005 (so all stay distinct)."""
    table = prices or DEFAULT_PRICES
    if index <= len(table):
        return table[index - 1]
    if prices:
        raise PasarError(
            f"{len(prices)} prices given for more providers",
            code="invalid_flag",
            field="--prices",
            hint="give one price per provider, or none for the defaults",
        )
    return str(Decimal(table[-1]) + Decimal("0.005") * (index - len(table)))


@dataclass(frozen=True)
class DevnetConfig:
    """What ``pasar devnet up`` was told."""

    home: Path
    providers: int = 3
    preset: str = "pasar"
    port: int = 0
    runtime: str = "sandbox"
    prices: tuple[str, ...] = ()
    faucet: str = DEFAULT_FAUCET
    provider_grace_s: float = PROVIDER_GRACE_S
    max_jobs: int = 4
    warm_pool: int | None = None  # providers' --warm-pool (None: the agent's default)
    cheaters: int = 0  # the first N providers start with ``--cheat`` (tests and the demo)
    cheat: str | None = None  # their KIND:RATE (pasar.provider.cheat)
    verifiers: int | None = None  # None: the preset's ``checkers`` (2N+1)
    tls: bool = False  # the market serves HTTPS (--tls auto); every member pins its certificate
    cluster: bool = False  # providers start with --allow-cluster: multi-node jobs, cluster: ray

    @property
    def verifier_count(self) -> int:
        if self.verifiers is not None:
            return self.verifiers
        return builtin_preset(self.preset).verification.checkers

    @property
    def client_home(self) -> Path:
        return self.home / "client"

    @property
    def logs(self) -> Path:
        return self.home / "logs"


@dataclass
class Member:
    """One process of the network."""

    name: str  # "market", "provider-1", …
    home: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    pid: int = 0
    create_time: float = 0.0
    ready: str = ""  # the market's URL, or the provider's account id
    price: str | None = None

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "create_time": self.create_time,
            "home": str(self.home),
            "log": str(self.log),
            "id": self.ready,
            "price_cpu_hour": self.price,
        }

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return _same_process(self.pid, self.create_time) is not None

    def exit_code(self) -> int | None:
        """The exit status of a process this devnet started and that has ended, else None."""
        return self.proc.poll() if self.proc is not None else None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the log, for people: JSON log lines become ``level event key=value``."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""
        lines = text.splitlines()[1:] if len(text) == chars else text.splitlines()
        return "\n".join(readable_log_line(line) for line in lines)


_LOG_NOISE = ("ts", "level", "logger", "event", "msg", "exc")


def readable_log_line(line: str) -> str:
    """One line of a process's log as a person reads it: a JSON line (the market's, see
    :mod:`pasar.market.logging`) as ``level event key=value ...`` plus its traceback, if any;
    any other line as it is."""
    try:
        entry = json.loads(line)
    except ValueError:
        return line
    if not isinstance(entry, dict):
        return line
    what = entry.get("event") or entry.get("msg") or ""
    rest = " ".join(f"{k}={v}" for k, v in entry.items() if k not in _LOG_NOISE)
    out = " ".join(str(x) for x in (entry.get("level", ""), what, rest) if x)
    return out + (f"\n{entry['exc']}" if entry.get("exc") else "")


@dataclass
class Devnet:
    """Start (:meth:`start`), watch (:meth:`exited`) and stop (:meth:`stop`) a local network.

    ``say`` receives one line per step, for people; it defaults to nothing.
    """

    config: DevnetConfig
    say: Callable[[str], None] = lambda line: None
    members: list[Member] = field(default_factory=list)
    url: str = ""
    tls_fingerprint: str | None = None  # the market's certificate, when it serves TLS
    client_account: str = ""
    detached: bool = False
    _interrupt: threading.Event = field(default_factory=threading.Event)

    # -- life cycle -------------------------------------------------------------------------------

    def __enter__(self) -> Devnet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def interrupt(self) -> None:
        """Ask a :meth:`start` in progress to give up (safe from a signal handler)."""
        self._interrupt.set()

    def start(self, *, detach: bool = False) -> None:
        """Start the market, then the providers, fund the client, write ``devnet.json``.

        Raises :class:`PasarError` (with the failing process's log) or
        :class:`DevnetInterrupted`; either way, whatever was started is stopped again.
        """
        self.detached = detach
        self._preflight()
        try:
            listening = self._spawn_market()
            if listening:  # the URL is known already: the providers start while the market does
                self._spawn_providers()
            self._wait_market()
            if not listening:
                self._spawn_providers()
            self._wait_ready(self.providers, PROVIDER_PREFIX, PROVIDER_START_S)
            self._fund_providers()
            self._start_verifiers()
            self._fund_client()
            self._write_record()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Providers first (SIGTERM, drain), then the market; SIGKILL what will not exit."""
        providers = [m for m in self.members if m.name != "market"]
        market = [m for m in self.members if m.name == "market"]
        for group, grace in ((providers, self.config.provider_grace_s), (market, 0.0)):
            alive = [m for m in group if m.alive()]
            if not alive:
                continue
            self.say(f"stopping {', '.join(m.name for m in alive)}")
            _terminate(alive, grace + STOP_WAIT_S)
        record = self.config.home / DEVNET_FILE
        if self.members and record.exists() and not any(m.alive() for m in self.members):
            with contextlib.suppress(OSError):
                record.unlink()

    def stop_member(self, member: Member) -> None:
        """Stop one provider or verifier (SIGTERM, drain), leaving the rest of the network up."""
        _terminate([member], self.config.provider_grace_s + STOP_WAIT_S)

    def exited(self) -> list[Member]:
        """Members whose process has ended (the supervisor's watch loop asks every second)."""
        return [m for m in self.members if not m.alive()]

    @property
    def providers(self) -> list[Member]:
        return [m for m in self.members if m.name.startswith("provider-")]

    @property
    def verifiers(self) -> list[Member]:
        return [m for m in self.members if m.name.startswith("verifier-")]

    # -- the steps --------------------------------------------------------------------------------

    def _preflight(self) -> None:
        from pasar.provider.runtime.base import get_runtime
        from pasar.provider.strategy import PriceTable

        cfg = self.config
        if cfg.providers < 1:
            raise PasarError(
                "a devnet needs at least one provider", code="invalid_flag", field="--providers"
            )
        currency = builtin_preset(cfg.preset).currency  # an unknown preset fails here
        for i in range(1, cfg.providers + 1):  # and a bad price, as the provider would say it
            PriceTable.from_flags((), provider_price(i, cfg.prices), currency=currency)
        Money.parse(cfg.faucet)
        reason = get_runtime(cfg.runtime).available()
        if reason is not None:
            raise PasarError(
                f"the providers' {cfg.runtime} runtime is not usable here: {reason}",
                code="runtime_unavailable",
                field="--runtime",
                hint="`pasar doctor` checks this machine; `pasar devnet up --runtime process` "
                "runs jobs without any isolation (only for jobs you trust)",
            )
        record = read_record(cfg.home)
        if record is not None and _alive_in(record):
            raise PasarError(
                f"a devnet is already running in {cfg.home} ({record.get('url')})",
                code="devnet_running",
                hint=f"use it, or stop it first: pasar devnet down --home {cfg.home}",
            )
        cfg.home.mkdir(parents=True, exist_ok=True)
        cfg.logs.mkdir(exist_ok=True)

    def _spawn(self, member: Member, args: list[str], pass_fds: tuple[int, ...] = ()) -> None:
        member.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PASAR_HOME": str(member.home), "PYTHONUNBUFFERED": "1"}
        env["NO_COLOR"] = "1"
        for name in ("PASAR_MARKET", "PASAR_DEBUG"):
            env.pop(name, None)
        with member.log.open("ab") as log:
            member.proc = subprocess.Popen(
                [sys.executable, "-m", "pasar", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=member.home,
                pass_fds=pass_fds,
                start_new_session=True,  # the terminal's Ctrl-C is for the supervisor alone
                # run between fork and exec; it calls only prctl(2), which is safe there
                preexec_fn=None if self.detached else _die_with_parent,  # noqa: PLW1509
            )
        member.pid = member.proc.pid
        with contextlib.suppress(psutil.Error):
            member.create_time = psutil.Process(member.pid).create_time()
        self.members.append(member)

    def _spawn_market(self) -> bool:
        """Start the market; True when it serves on a socket bound here, whose URL is then
        known before the market listens (:attr:`url`).

        Why bind here: the market's start (Python, FastAPI, SQLAlchemy, replaying its log) is
        the longest of all, on one core; the providers start meanwhile, on the other, and their
        first requests wait in the socket's backlog until the market accepts them. Not over TLS
        (every member pins the certificate the starting market makes), nor when ``--port`` is
        taken (the market then fails as before, with its log)."""
        cfg = self.config
        market = Member("market", cfg.home / "market", cfg.logs / "market.log")
        market.log.write_bytes(b"")
        self.say(f"starting the market (preset {cfg.preset})")
        sock = None if cfg.tls else _listening_socket(cfg.port)
        port = cfg.port if sock is None else int(sock.getsockname()[1])
        args = ["market", "serve", "--home", str(market.home), "--host", "127.0.0.1"]
        args += ["--port", str(port), "--preset", cfg.preset, "--devnet"]
        if cfg.tls:
            args += ["--tls", "auto"]
        try:
            if sock is None:
                self._spawn(market, args)
            else:
                self._spawn(market, [*args, "--listen-fd", str(sock.fileno())], (sock.fileno(),))
                self.url = f"http://127.0.0.1:{port}"
        finally:
            if sock is not None:
                sock.close()  # the market holds it now: its backlog keeps what arrives meanwhile
        return sock is not None

    def _wait_market(self) -> None:
        """Wait for the market's "listening" line; pin its certificate when it serves TLS."""
        cfg = self.config
        market = next(m for m in self.members if m.name == "market")
        self._wait_ready([market], LISTENING_PREFIX, MARKET_START_S)
        self.url = market.ready
        if cfg.tls:  # the certificate the market made: every member pins it before it starts
            pem = (market.home / "tls" / "cert.pem").read_text(encoding="ascii")
            self.tls_fingerprint = fingerprint_of_pem(pem)
            self.say(f"the market serves TLS; its certificate is {self.tls_fingerprint}")

    def _trust(self, home: Path) -> Path:
        """Pin the market's certificate in ``home`` (nothing to do over plain HTTP)."""
        if self.tls_fingerprint is not None:
            pin(home, self.url, self.tls_fingerprint)
        return home

    def _spawn_providers(self) -> None:
        cfg = self.config
        for i in range(1, cfg.providers + 1):
            cheat = cfg.cheat if cfg.cheat and i <= cfg.cheaters else None
            self._spawn_provider(i, provider_price(i, cfg.prices), cheat)
        count = cfg.providers
        self.say(f"starting {count} provider{'' if count == 1 else 's'} ({cfg.runtime} runtime)")

    def add_provider(self, price: str, *, cheat: str | None = None) -> Member:
        """Start one more provider on the running network (the demo adds a cheater this way)
        and wait until it serves."""
        member = self._spawn_provider(len(self.providers) + 1, price, cheat)
        self._wait_ready([member], PROVIDER_PREFIX, PROVIDER_START_S)
        self._fund_providers([member])
        return member

    def _spawn_provider(self, i: int, price: str, cheat: str | None) -> Member:
        cfg = self.config
        name = f"provider-{i}"
        member = Member(name, cfg.home / name, cfg.logs / f"{name}.log")
        member.price = price
        member.log.write_bytes(b"")
        args = ["provider", "start", "--market", self.url, "--home", str(self._trust(member.home))]
        args += ["--runtime", cfg.runtime, "--price-cpu-hour", price]
        args += ["--grace", str(cfg.provider_grace_s), "--max-jobs", str(cfg.max_jobs)]
        if cfg.warm_pool is not None:
            args += ["--warm-pool", str(cfg.warm_pool)]
        if cfg.cluster:
            args.append("--allow-cluster")
        self._spawn(member, args + (["--cheat", cheat] if cheat else []))
        return member

    def _start_verifiers(self) -> None:
        """The checkers of ``replicate`` jobs (the preset's 2N+1 unless told), each staked
        with the preset's ``verifier_stake`` (minted from the devnet's faucet)."""
        cfg = self.config
        stake = builtin_preset(cfg.preset).verification.verifier_stake
        started = []
        for i in range(1, cfg.verifier_count + 1):
            name = f"verifier-{i}"
            member = Member(name, cfg.home / name, cfg.logs / f"{name}.log")
            member.log.write_bytes(b"")
            args = [
                "verifier",
                "start",
                "--market",
                self.url,
                "--home",
                str(self._trust(member.home)),
            ]
            args += ["--runtime", cfg.runtime]
            if stake is not None and stake.micros > 0:
                args += ["--stake", stake.to_json()]
            self._spawn(member, args)
            started.append(member)
        if started:
            self.say(f"starting {len(started)} verifiers ({cfg.runtime} runtime)")
            self._wait_ready(started, VERIFIER_PREFIX, PROVIDER_START_S)

    def _wait_ready(self, members: list[Member], prefix: str, timeout: float) -> None:
        """Wait until each member has printed its ready line; keep what it says in ``ready``."""
        deadline = time.monotonic() + timeout
        waiting = list(members)
        while waiting:
            for member in list(waiting):
                line = _ready_line(member.log, prefix)
                if line is not None:
                    member.ready = line
                    waiting.remove(member)
                    continue
                if not member.alive():
                    code = member.proc.returncode if member.proc else "?"
                    raise PasarError(
                        f"{member.name} exited with code {code} while starting; the end of its "
                        f"log ({member.log}):\n{member.log_tail()}",
                        code="devnet_start_failed",
                        hint="fix what the log says (a port in use: choose another with --port)",
                    )
            if not waiting:
                break
            if self._interrupt.wait(0.05):
                raise DevnetInterrupted()
            if time.monotonic() > deadline:
                names = ", ".join(m.name for m in waiting)
                raise PasarError(
                    f"{names} did not start within {timeout:.0f} s; the end of "
                    f"{waiting[0].log}:\n{waiting[0].log_tail()}",
                    code="devnet_start_failed",
                )

    def stake_provider(self, member: Member, amount: Money) -> None:
        """Mint ``amount`` from the faucet for a provider of this devnet and lock it as stake
        (a bond that proven fraud can cost: the demo's cheater, the benchmarks' fleet)."""
        from pasar.client import calls
        from pasar.client.client import Client
        from pasar.provider import PROVIDER_KEY

        identity = load_identity(PROVIDER_KEY, member.home)
        with Client(self.url, identity=identity, home=member.home) as client:
            client.faucet(amount.to_json())
            client._call(calls.stake(amount.to_json()))

    def _fund_providers(self, members: list[Member] | None = None) -> None:
        """What each provider (of ``members``, default all) needs before it can take work on
        this preset, minted from the faucet: on a preset whose bids hold a deposit (akash),
        :data:`PROVIDER_DEPOSITS` deposits' worth while it has less than one; on a preset whose
        stake rule asks a CPU provider for stake (gensyn and phala: a flat bond), that stake,
        locked. Without them the devnet's providers could not bid or be matched at all."""
        from pasar.client.client import Client
        from pasar.core.resources import Inventory
        from pasar.core.stake import required_stake
        from pasar.provider import PROVIDER_KEY

        preset = builtin_preset(self.config.preset)
        deposit = preset.bid_deposit
        cpu_only = Inventory.build(gpus=[], cpus=1, memory_gb=1, disk_gb=1)
        stake = required_stake(preset.stake_rule, cpu_only)
        if (deposit is None or not deposit.micros) and (stake is None or not stake.micros):
            return
        for member in self.providers if members is None else members:
            identity = load_identity(PROVIDER_KEY, member.home)
            with Client(self.url, identity=identity, home=member.home) as client:
                balance = client.balance()
                spendable = Money.parse(str(balance["balance"]))
                if deposit is not None and deposit.micros and spendable < deposit:
                    client.faucet((deposit * PROVIDER_DEPOSITS).to_json())
            held = Money.parse(str(balance["stake"]))
            if stake is not None and stake.micros and held < stake:
                self.stake_provider(member, stake - held)
        if deposit is not None and deposit.micros:
            self.say(f"providers funded for their bid deposits ({deposit} a bid)")
        if stake is not None and stake.micros:
            self.say(f"providers staked {stake} each (the {preset.name} stake rule)")

    def _fund_client(self) -> None:
        """The client key (made once) gets the faucet amount while it has no money."""
        from pasar.client.client import Client

        cfg = self.config
        home = cfg.client_home
        home.mkdir(parents=True, exist_ok=True)
        if key_path(DEFAULT_KEY_NAME, home).exists():
            identity = load_identity(DEFAULT_KEY_NAME, home)
        else:
            identity = Identity.generate()
            save_identity(identity, DEFAULT_KEY_NAME, home)
        self.client_account = identity.account_id
        (home / "config.toml").write_text(f'market = "{self.url}"\n', encoding="utf-8")
        self._trust(home)
        with Client(self.url, identity=identity, home=home) as client:
            balance = Money.parse(str(client.balance()["balance"]))
            if balance.micros == 0:
                client.faucet(cfg.faucet)
                self.say(f"client funded with {cfg.faucet} from the faucet")

    def _write_record(self) -> None:
        cfg = self.config
        record = {
            "url": self.url,
            "home": str(cfg.home),
            "preset": cfg.preset,
            "runtime": cfg.runtime,
            "supervisor": None
            if self.detached
            else {"pid": os.getpid(), "create_time": _create_time(os.getpid())},
            "client": {"home": str(cfg.client_home), "account": self.client_account},
            "processes": [m.record() for m in self.members],
            "started_at": int(time.time()),
        }
        path = cfg.home / DEVNET_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    # -- for people -------------------------------------------------------------------------------

    def export_lines(self) -> list[str]:
        """The two lines a shell needs to use this network with the CLI and the SDK."""
        return [
            f"export PASAR_MARKET={self.url}",
            f"export PASAR_HOME={self.config.client_home}",  # its config.toml pins the TLS cert
        ]


# -- helpers --------------------------------------------------------------------------------------


def _ready_line(log: Path, prefix: str) -> str | None:
    """What follows ``prefix`` on the first line that starts with it: the URL or account."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(prefix):
            rest = line[len(prefix) :].strip()
            return rest.split()[0] if prefix in (PROVIDER_PREFIX, VERIFIER_PREFIX) else rest
    return None


def _listening_socket(port: int) -> socket.socket | None:
    """A TCP socket listening on 127.0.0.1:``port`` (0: a free port), or None when the port
    cannot be had here."""
    try:
        return socket.create_server(("127.0.0.1", port))
    except OSError:
        return None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM this child if the supervisor dies without stopping it."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _create_time(pid: int) -> float:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return 0.0


def _same_process(pid: int, create_time: float) -> psutil.Process | None:
    """The process ``pid`` if it is still the one recorded (same start time), and running."""
    if pid <= 0:
        return None
    try:
        proc = psutil.Process(pid)
        if create_time and abs(proc.create_time() - create_time) > 0.01:
            return None  # the pid now belongs to another program
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


def _terminate(members: list[Member], timeout: float) -> None:
    """SIGTERM every member, wait up to ``timeout`` s for all, SIGKILL the rest."""
    for m in members:
        _signal(m, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for m in members:
        if not _wait(m, max(0.0, deadline - time.monotonic())):
            _signal(m, signal.SIGKILL)
            _wait(m, 5.0)


def _signal(member: Member, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, psutil.Error):
        if member.proc is not None:
            if member.proc.poll() is None:
                member.proc.send_signal(sig)
        else:
            proc = _same_process(member.pid, member.create_time)
            if proc is not None:
                proc.send_signal(sig)


def _wait(member: Member, timeout: float) -> bool:
    """Wait for the member to exit (reaping it if it is our child); True once it has."""
    if member.proc is not None:
        try:
            member.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    return _wait_pid(member.pid, member.create_time, timeout)


def _wait_pid(pid: int, create_time: float, timeout: float) -> bool:
    """Wait for a process that is not our child to end (a zombie counts as ended: its parent
    reaps it, not us); True once it has."""
    deadline = time.monotonic() + timeout
    while _same_process(pid, create_time) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# -- a network started by another process ----------------------------------------------------------


def read_record(home: Path) -> dict[str, Any] | None:
    """``devnet.json`` of ``home``, or None when there is none (or it cannot be read)."""
    try:
        data = json.loads((home / DEVNET_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _members_of(record: dict[str, Any]) -> list[Member]:
    out = []
    for p in record.get("processes", []):
        out.append(
            Member(
                str(p["name"]),
                Path(p["home"]),
                Path(p["log"]),
                pid=int(p["pid"]),
                create_time=float(p.get("create_time") or 0.0),
                ready=str(p.get("id", "")),
                price=p.get("price_cpu_hour"),
            )
        )
    return out


def _alive_in(record: dict[str, Any]) -> bool:
    return any(m.alive() for m in _members_of(record))


def down(home: Path, *, say: Callable[[str], None] = lambda line: None) -> list[str]:
    """Stop the network recorded in ``home/devnet.json``; the names of what was stopped.

    A network with a live supervisor (a foreground ``pasar devnet up``) is asked to stop
    through it (SIGTERM), so it stops its children in order and exits 0 as on Ctrl-C. Raises
    ``no_devnet`` when nothing of it is running (a stale record is removed).
    """
    record = read_record(home)
    if record is None:
        raise PasarError(
            f"no devnet recorded in {home} (no {DEVNET_FILE})",
            code="no_devnet",
            hint="pass the --home the network was started with",
        )
    members = [m for m in _members_of(record) if m.alive()]
    stopped = [m.name for m in members]
    supervisor = record.get("supervisor") or {}
    boss = _same_process(int(supervisor.get("pid") or 0), float(supervisor.get("create_time") or 0))
    try:
        if boss is None and not members:
            raise PasarError(
                f"the devnet in {home} is not running (a stale {DEVNET_FILE} was removed)",
                code="no_devnet",
            )
        if boss is not None:
            say(f"asking the devnet supervisor (pid {boss.pid}) to stop the network")
            boss.send_signal(signal.SIGTERM)
            _wait_pid(boss.pid, boss.create_time(), 2 * (PROVIDER_GRACE_S + STOP_WAIT_S) + 5)
        members = [m for m in members if m.alive()]  # what the supervisor did not stop
        for group, grace in (
            ([m for m in members if m.name != "market"], PROVIDER_GRACE_S),
            ([m for m in members if m.name == "market"], 0.0),
        ):
            if group:
                say(f"stopping {', '.join(m.name for m in group)}")
                _terminate(group, grace + STOP_WAIT_S)
    finally:
        with contextlib.suppress(OSError):
            (home / DEVNET_FILE).unlink()
    return stopped
