"""The showcase (``pasar devnet demo``, ``make demo``): a local network running real jobs.

Read this file top to bottom to see how pasar is used. Every step is real — processes,
sandboxes, signatures, money — and every number printed comes from the market:

1. **a network**: a market node and three provider agents, each with its own key and its own
   price per CPU core-hour, started as subprocesses on 127.0.0.1 (:mod:`pasar.devnet`);
2. **hello, by auction**: ``examples/hello.yaml`` asks for a reverse auction (Akash-style);
   the three providers bid from their price tables and the cheapest wins;
3. **a render**: ``examples/render/render.yaml`` cuts a Mandelbrot image into six tiles, one
   shard each, which the market spreads over the providers; the tiles come back verified
   against the providers' signed receipts and are stitched into ``demo-out/render.png``;
4. **a training run**: ``examples/train/train.yaml`` trains a small neural network on a
   synthetic two-spirals task; its log streams here as it trains; the held-out accuracy is
   read from the job's (verified) ``metrics.json``;
5. **@pasar.remote**: a Python function runs on the providers, ``.map`` over a list;
6. **a cheater is caught** by verifiers re-running its results; where torch is installed
   (or with ``--pol``; ``--no-pol`` leaves it out), also a
   **training cheater** (one weight nudged once) under proof of learning, pinned by a dispute
   to the exact step and aten operator it cheated at;
7. **TEE attestation, offline**: Phala's sample TDX quotes (tests/data/tee, not this machine's:
   there is no TEE here) verified with dcap-qvl at a time their collateral is valid — one
   verifies, a flipped byte and an outdated TCB are refused;
8. **the money**: the bill of every job, what each provider earned, the treasury's and the
   reserve's fees, a conservation check (every micro-unit minted is somewhere), and
   ``pasar audit``, which replays the market's signed chain from genesis.

Each check is printed as it passes or fails; :meth:`Showcase.run` returns whether all passed.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import random
import struct
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from pasar.client.client import Client, Job
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.devnet import Devnet

EXAMPLE_FILES = ("hello.yaml", "render/render.yaml", "train/train.yaml", "render/stitch.py")
JOB_TIMEOUT_S = 120.0
POL_STEPS = 60  # examples/pol_train.py, 60 steps, a checkpoint every 10 (all 6 segments sampled)
POL_TIMEOUT_S = 300.0
POLL_S = 0.25


def find_examples(given: Path | None = None) -> Path:
    """The ``examples/`` folder: ``given``, else the source checkout's, else ``./examples``."""
    candidates = (
        [given]
        if given is not None
        else [Path(__file__).resolve().parents[2] / "examples", Path.cwd() / "examples"]
    )
    for folder in candidates:
        if all((folder / name).is_file() for name in EXAMPLE_FILES):
            return folder.resolve()
    raise PasarError(
        "the demo's job specs were not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + ")",
        code="no_examples",
        field="--examples",
        hint="run the demo from a source checkout of pasar, or pass --examples DIR",
    )


def monte_carlo_pi(seed: int, samples: int = 200_000) -> int:
    """How many of ``samples`` random points of the unit square fall inside the quarter
    circle. This plain function is what step 5 runs remotely, once per seed."""
    rng = random.Random(seed)
    return sum(1 for _ in range(samples) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header; raises ValueError if it is not a PNG."""
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG file")
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def _load_script(path: Path) -> ModuleType:
    """Import one of the example scripts (they are plain files, not a package)."""
    spec = importlib.util.spec_from_file_location(f"pasar_example_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise PasarError(f"cannot load {path}", code="no_examples")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _micros(value: object) -> int:
    return Money.parse(str(value)).micros


def _usdc(micros: int) -> str:
    return f"{micros / 1_000_000:.6f}"


@dataclass
class Showcase:
    """The demo's steps, over one :class:`~pasar.devnet.Devnet` (started by :meth:`run`)."""

    net: Devnet
    examples: Path
    out: Path
    console: Console = field(default_factory=Console)
    checks: list[tuple[str, bool]] = field(default_factory=list)
    jobs: list[tuple[str, str]] = field(default_factory=list)  # (what, order id)
    # part 6b, a training cheater pinned to its step and operator: ``--pol``/``--no-pol``;
    # None (the default) runs it where torch is installed and otherwise says how to add it
    pol: bool | None = None
    _client: Client | None = None

    # -- printing ---------------------------------------------------------------------------------

    def part(self, title: str) -> None:
        self.console.print()
        self.console.rule(f"[bold]{title}", align="left")

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def check(self, what: str, ok: bool, detail: str = "") -> bool:
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        self.console.print(f"{mark} {what}" + (f" [dim]({detail})[/]" if detail else ""))
        self.checks.append((what, ok))
        return ok

    def show_file(self, path: Path) -> None:
        self.say(f"[dim]{path.relative_to(self.examples.parent)}[/]")
        self.console.print(Syntax(path.read_text(encoding="utf-8"), "yaml", theme="ansi_dark"))

    # -- the network ------------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        assert self._client is not None, "the network is not up"
        return self._client

    def name_of(self, account: str) -> str:
        """``provider-2`` for a provider's account id (what people can read)."""
        for member in self.net.providers:
            if member.ready == account:
                return member.name
        return account[:12] + "…"

    def names_of(self, accounts: Iterable[str]) -> str:
        """``provider-2``, or ``providers 1, 2, 3`` for several (short enough for a table)."""
        names = sorted({self.name_of(a) for a in accounts})
        if len(names) == 1:
            return names[0]
        return "providers " + ", ".join(n.removeprefix("provider-") for n in names)

    def run(self) -> bool:
        """All the parts in order; True when every check passed."""
        started = time.monotonic()
        self.console.print(
            "[bold]pasar devnet demo[/]: a compute market on this machine, for real — a market "
            "node, providers running jobs in sandboxes, signed orders, verified results, real "
            "money flows (test USDC from the faucet)."
        )
        parts: list[Callable[[], None]] = [
            self.start_network,
            self.hello_by_auction,
            self.render_in_tiles,
            self.train_a_model,
            self.remote_map,
            self.catch_a_cheater,
            self.catch_a_training_cheater if self._with_pol() else self.tell_of_pol,
            self.attest_offline,
            self.follow_the_money,
        ]
        try:
            for part in parts:
                part()
        except PasarError as err:
            self.check(f"the demo ran to the end: {err.message}", False, err.hint or "")
        finally:
            if self._client is not None:
                self._client.close()
        passed = sum(ok for _, ok in self.checks)
        if self._client is not None:  # the network started: its dashboard is worth a look
            self.say(
                f"dashboard: {self.net.url}/ui (network, prices, providers, jobs, the chain; "
                "this demo's network stops now: `pasar devnet up` keeps one running)"
            )
        self.console.print()
        self.console.rule(
            f"[bold]{passed}/{len(self.checks)} checks passed in "
            f"{time.monotonic() - started:.0f} s",
            align="left",
        )
        return bool(self.checks) and all(ok for _, ok in self.checks)

    def start_network(self) -> None:
        count = self.net.config.providers
        providers = f"{count} provider{'' if count == 1 else 's'}"
        self.part(f"1. a local network: one market, {providers}, one funded client")
        self.net.start()
        self._client = Client(self.net.url, home=self.net.config.client_home)
        table = Table(box=None, pad_edge=False)
        for column in ("process", "account", "price per CPU core-hour"):
            table.add_column(column)
        table.add_row("market", self.net.url, "")
        for p in self.net.providers:
            table.add_row(p.name, p.ready[:24] + "…", f"{p.price} USDC")
        table.add_row("client", self.net.client_account[:24] + "…", "")
        self.console.print(table)
        balance = self.client.balance()["balance"]
        self.say(
            f"the client's spendable balance: {balance}; each provider runs jobs in a sandbox. "
            "(`pasar devnet up` starts the same network and keeps it up for your own jobs.)"
        )
        self.say(f"watch it live in a browser while the demo runs: {self.net.url}/ui")

    # -- 2. hello, through a reverse auction ------------------------------------------------------

    def hello_by_auction(self) -> None:
        self.part("2. hello: a reverse auction — the providers bid, the cheapest wins")
        spec = self.examples / "hello.yaml"
        self.show_file(spec)
        job = self.client.launch(spec)
        self.jobs.append(("hello (auction)", job.id))
        order = job.status()
        self.say(
            f"order {job.id} signed and sent; {order['spec']['max_price_per_hour']}/h × "
            f"{order['spec']['max_duration']} s escrowed; auction window open"
        )
        seen = -1
        while order["status"] == "open":
            answered = (order.get("auction") or {}).get("answered", 0)
            invited = len((order.get("auction") or {}).get("invited", []))
            if answered != seen:
                self.say(f"  sealed bids in: {answered}/{invited}")
                seen = answered
            time.sleep(POLL_S)
            order = job.status()
        auction = order.get("auction") or {}
        self.say(
            f"  window closed: {auction.get('answered', '?')}/{len(auction.get('invited', []))} "
            "bids; the market's match is a signed transaction anyone can re-derive"
        )
        order = job.wait(JOB_TIMEOUT_S)
        explained = job.explain()
        if not order["leases"]:
            reasons = "; ".join(str(p["reason"]) for p in explained["providers"])
            raise PasarError(f"no provider took {job.id}: {reasons}", code="not_matched")
        table = Table(title="the auction", title_justify="left")
        for column in ("provider", "bid per hour", "outcome"):
            table.add_column(column)
        bids: dict[str, int] = {}
        winner = ""
        for p in explained["providers"]:
            name = self.name_of(p["provider"])
            if p.get("price_per_hour"):
                bids[name] = _micros(p["price_per_hour"])
            if p["won"]:
                winner = name
            outcome = "[green]won[/]" if p["won"] else f"lost: {p['reason']}"
            table.add_row(name, str(p.get("price_per_hour") or "no bid"), outcome)
        self.console.print(table)
        (lease,) = order["leases"]
        self.say(
            f"{winner} runs it and is paid {lease['price_per_hour']}/h: the pasar preset's "
            "auction is second-price, so the winner gets the runner-up's bid (bidding one's "
            "true cost is the best strategy)"
        )
        for line in "".join(job.logs()).splitlines():
            self.say(f"  [cyan]│[/] {line}")
        cheapest = min(bids, key=lambda name: bids[name]) if bids else ""
        self.check(
            f"the cheapest of {len(self.net.providers)} providers won the auction",
            len(bids) == len(self.net.providers) and winner == cheapest,
            f"{len(bids)} bids, winner {winner}",
        )
        self.check("the job exited 0", lease["receipt"]["exit_code"] == 0)

    # -- 3. a render, split into tiles ------------------------------------------------------------

    def render_in_tiles(self) -> None:
        self.part("3. render: one image cut into 6 tiles, one shard per tile, across providers")
        spec = self.examples / "render" / "render.yaml"
        self.show_file(spec)
        job = self.client.launch(spec)
        self.jobs.append(("render (6 tiles)", job.id))
        self.say(f"order {job.id}: tile.py uploaded by its hash; 6 leases to fill")
        order = self._follow_shards(job)
        results = self.out / "render"
        result = job.result(results, timeout=JOB_TIMEOUT_S)
        self.say(
            f"{len(result.files)} tiles downloaded into {results}, each hash checked against "
            "its provider's signed receipt"
        )
        stitch = _load_script(self.examples / "render" / "stitch.py")
        png = self.out / "render.png"
        width, height, tiles = stitch.stitch_dir(results, png)
        self.say(f"stitched {tiles} tiles into [bold]{png}[/] ({width}×{height})")
        used = {lease["provider"] for lease in order["leases"]}
        self.check("every tile exited 0", result.ok, f"exit codes {result.exit_codes}")
        self.check(
            "the tiles were spread over several providers",
            len(used) > 1,
            self.names_of(used),
        )
        self.check("render.png is a PNG of the full image", png_size(png) == (width, height))

    def _follow_shards(self, job: Job) -> dict[str, Any]:
        """Print each lease as it starts and ends, until the order is over."""
        said: set[tuple[str, str]] = set()
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while True:
            order = job.status()
            for lease in order["leases"]:
                key = (lease["lease_id"], lease["status"])
                if key in said:
                    continue
                said.add(key)
                who = self.name_of(lease["provider"])
                if lease["status"] == "running":
                    self.say(f"  shard {lease['shard']} → {who} at {lease['price_per_hour']}/h")
                else:
                    code = (lease.get("receipt") or {}).get("exit_code")
                    self.say(
                        f"  shard {lease['shard']} {lease['status']} on {who} "
                        f"(exit {code}, {lease['billed_seconds']} s billed)"
                    )
            if order["status"] not in ("open", "running"):
                return order
            if time.monotonic() > deadline:
                raise PasarError(f"{job.id} did not finish in time", code="wait_timeout")
            time.sleep(POLL_S)

    # -- 4. a training run ------------------------------------------------------------------------

    def train_a_model(self) -> None:
        self.part("4. training: a small neural network learns two spirals (synthetic data)")
        spec = self.examples / "train" / "train.yaml"
        self.show_file(spec)
        job = self.client.launch(spec)
        self.jobs.append(("train (MLP)", job.id))
        self.say(f"order {job.id}; its log, streamed from the provider as it trains:")
        buffered = ""
        for chunk in job.logs(follow=True):
            buffered += chunk
            *lines, buffered = buffered.split("\n")
            for line in lines:
                self.say(f"  [cyan]│[/] {line}")
        if buffered:
            self.say(f"  [cyan]│[/] {buffered}")
        results = self.out / "train"
        result = job.result(results, timeout=JOB_TIMEOUT_S)
        metrics = json.loads((results / "metrics.json").read_text(encoding="utf-8"))
        accuracy = float(metrics["test_accuracy"])
        baseline = float(metrics["linear_baseline_test_accuracy"])
        self.say(
            f"test accuracy [bold]{accuracy:.1%}[/] on {metrics['test_points']} held-out points "
            f"(a straight line: {baseline:.1%}); data: {metrics['data']}, seed {metrics['seed']}"
        )
        self.check("the training job exited 0", result.ok)
        self.check(
            "the network beat a linear classifier on held-out data",
            accuracy >= baseline + 0.1,
            f"{accuracy:.1%} vs {baseline:.1%}",
        )

    # -- 5. @pasar.remote ------------------------------------------------------------------------

    def remote_map(self) -> None:
        import pasar

        self.part("5. @pasar.remote: a Python function, .map over a list, run on the providers")
        self.console.print(Syntax(inspect.getsource(monte_carlo_pi), "python", theme="ansi_dark"))
        pi = pasar.remote(cpus=1, max_price="0.50 USDC", max_duration="1m", client=self.client)(
            monte_carlo_pi
        )
        seeds = list(range(6))
        self.say(f"monte_carlo_pi.map({seeds}): one job, a batch of calls per free provider")
        before = {o["order_id"] for o in self.client.jobs()}
        started = time.monotonic()
        hits = pi.map(seeds)
        (order_id,) = {o["order_id"] for o in self.client.jobs()} - before
        self.jobs.append(("@remote .map", order_id))
        samples = 200_000 * len(seeds)
        estimate = 4 * sum(hits) / samples
        self.say(f"hits per seed: {hits} ({time.monotonic() - started:.1f} s)")
        self.say(f"π ≈ 4 × {sum(hits)} / {samples} = [bold]{estimate:.5f}[/]")
        self.check(
            "the results came back in input order and match a local run",
            hits[0] == monte_carlo_pi(0),
            "seed 0 recomputed here",
        )
        self.check("π is within 0.01", abs(estimate - 3.14159) < 0.01)

    # -- 6. a cheater ---------------------------------------------------------------------------

    def catch_a_cheater(self) -> None:

        verifiers = len(self.net.verifiers)
        self.part(f"6. a cheater is caught: every result re-run, {verifiers} verifiers decide")
        cheater = self.net.add_provider("0.05", cheat="garble:1")
        self.net.stake_provider(cheater, Money.parse("2 USDC"))  # a bond that fraud can cost
        self.say(
            f"{cheater.name} joins at 0.05 USDC/h, the cheapest, staked 2 USDC — and flips the "
            "bytes of every output it returns (a devnet-only test mode). The job asks "
            "[bold]verification: replicate:1[/]: a verifier re-runs every result."
        )
        spec = self.examples / "verification" / "checked.yaml"
        self.show_file(spec)
        job = self.client.launch(spec)
        self.jobs.append(("checked (cheater)", job.id))
        order = self._follow_checks(job)
        leases = order["leases"]
        caught = [x for x in leases if x["provider"] == cheater.ready]
        honest = [x for x in leases if x["provider"] != cheater.ready]
        verdicts = [self.client.check(c) for x in caught for c in x.get("checks", [])]
        against = sum(v["agrees"] is False for v in verdicts)
        self.check(
            f"{cheater.name}'s wrong result was outvoted and not paid",
            bool(caught)
            and all(x["status"] == "rejected" for x in caught)
            and against >= 2
            and all(_micros((x.get("bill") or {}).get("provider_payout", "0 USDC")) == 0
                    for x in caught),
            f"{against} of {len(verdicts)} checkers found it wrong",
        )  # fmt: skip
        self.check(
            "the shard was re-run on an honest provider and paid",
            order["status"] == "done" and any(x["status"] == "settled" for x in honest),
        )
        stake = self.client.balance(cheater.ready)["stake"]
        self.check(
            f"{cheater.name} was slashed (half its stake)",
            _micros(stake) == 1_000_000,
            f"stake now {stake}; half of the slash rewards the verifier who caught it",
        )
        self.net.stop_member(cheater)

    # -- 6b. a training cheater, pinned to its step and operator (--pol) ------------------------

    def _with_pol(self) -> bool:
        """--pol or --no-pol as given; by default where torch imports (the ml extra: the
        sandboxed training job uses the same Python)."""
        if self.pol is not None:
            return self.pol
        import importlib.util

        return importlib.util.find_spec("torch") is not None

    def tell_of_pol(self) -> None:
        """Without torch (or with --no-pol): one line on what part 6b would show."""
        why = "--no-pol" if self.pol is False else "torch is not installed here"
        self.say(
            f"[dim]6b. proof of learning (a training cheater pinned to its step and aten "
            f"operator by a dispute) is skipped: {why}; pip install 'pasar[ml]' and run "
            "pasar devnet demo --pol to see it[/]"
        )

    def catch_a_training_cheater(self) -> None:
        from pasar.train.cheat import Cheat  # pins the thread environment: the demo runs no torch

        self.part("6b. proof of learning: a training cheater pinned to its step and operator")
        cheater = self.net.add_provider("0.01", cheat="pol:perturb")
        self.net.stake_provider(cheater, Money.parse("2 USDC"))
        self.say(
            f"{cheater.name} joins at 0.01 USDC/h, staked 2 USDC, and nudges one weight of the "
            "model by 1e-3 once, after an optimizer step (a devnet-only test mode). The job "
            "trains under [bold]verification: pol[/]: every step's state hash is committed, a "
            "verifier replays sampled segments from the checkpoints; when one differs it opens "
            "a dispute — bisection over the step hashes, then over the step's aten operators — "
            "and a third verifier referees the one operator they part at."
        )
        perturbed = min(Cheat.parse("perturb", salt=7).for_run(POL_STEPS).steps)
        spec = {
            "run": f"python pol_train.py train --out pol-out --steps {POL_STEPS} --every 10",
            "inputs": ["pol_train.py"],
            "outputs": ["pol-out/"],
            "resources": {"cpus": 1, "memory": 2},
            "max_price_per_hour": "1 USDC",
            "max_duration": "5m",
            "verification": "pol",
        }
        job = self.client.launch(spec, base_dir=self.examples)
        self.jobs.append(("pol (cheater)", job.id))
        order = self._follow_checks(job, timeout_s=POL_TIMEOUT_S)
        caught = [x for x in order["leases"] if x["provider"] == cheater.ready]
        disputes = [
            d for x in caught
            for d in self.client.transport.get(f"/v1/leases/{x['lease_id']}/disputes")
        ]  # fmt: skip
        for d in disputes:
            self.say(f"  dispute {d['dispute_id']}: {d['status']} at {d.get('where')}")
        lost = [d for d in disputes if d["status"] == "prover_lost"]
        operator = (lost[0].get("operator") or {}) if lost else {}
        self.check(
            f"{cheater.name} lost the dispute at exactly the step it cheated on",
            bool(lost) and lost[0]["step"] == perturbed,
            f"step {lost[0]['step'] if lost else '?'}; the cheat nudged step {perturbed}",
        )
        self.check(
            "... and the operator is named: its extra in-place add after the optimizer",
            operator.get("name") == "aten.add_.Tensor",
            f"operator #{operator.get('index')} {operator.get('name')}, where the honest step "
            f"ran {operator.get('referee')}",
        )
        self.check(
            "the shard was re-run on an honest provider and paid; the cheater was slashed",
            order["status"] == "done"
            and any(x["status"] == "settled" for x in order["leases"])
            and _micros(self.client.balance(cheater.ready)["stake"]) == 1_000_000,
        )
        self.net.stop_member(cheater)

    def _follow_checks(self, job: Job, timeout_s: float = JOB_TIMEOUT_S) -> dict[str, Any]:
        """Print each lease and each verifier's check as they change, until the order ends."""
        said: set[str] = set()
        deadline = time.monotonic() + timeout_s
        while True:
            order = job.status()
            for lease in order["leases"]:
                if (key := f"{lease['lease_id']}:{lease['status']}") not in said:
                    said.add(key)
                    who = self.name_of(lease["provider"])
                    self.say(f"  shard {lease['shard']} on {who}: {lease['status']}")
                for check_id in lease.get("checks", []):
                    check = self.client.check(check_id)
                    if (key := f"{check_id}:{check['status']}") in said:
                        continue
                    said.add(key)
                    verdict = {True: "same result", False: "[red]different result[/]"}
                    busy = check["status"] == "assigned"
                    pending = "re-running" if busy else "not needed any more"
                    self.say(
                        f"    verifier {check['verifier'][:10]}… {check['status']}: "
                        f"{verdict.get(check['agrees'], pending)}"
                    )
            if order["status"] not in ("open", "running"):
                if order.get("note"):
                    self.say(f"  {order['note']}")
                return order
            if time.monotonic() > deadline:
                raise PasarError(f"{job.id} did not finish in time", code="wait_timeout")
            time.sleep(POLL_S)

    # -- 7. TEE attestation ----------------------------------------------------------------------

    def attest_offline(self) -> None:
        """Verify the sample quotes (fast: a few ms each); honest that they are not ours."""
        from pasar.tee.verify import collateral_issued, verify_quote

        self.part("7. TEE attestation: real TDX quotes verified offline (dcap-qvl)")
        samples = self.examples.parent / "tests" / "data" / "tee"
        if not (samples / "tdx_quote").is_file():
            self.say(f"[dim]skipped: the sample quotes are not here ({samples})[/]")
            return
        self.say(
            "No TEE exists on this machine, so these are [bold]Phala's sample quotes[/] "
            "(dcap-qvl's, MIT), not this machine's. A provider on TDX hardware presents one "
            "bound to its key and a market nonce; the market verifies it like this, at its own "
            "clock. Here the time is the samples' collateral issue date + 1 h."
        )

        def attempt(name: str, flip: int | None = None) -> tuple[bool, str]:
            quote = (samples / name).read_bytes()
            if flip is not None:
                quote = quote[:flip] + bytes([quote[flip] ^ 1]) + quote[flip + 1 :]
            collateral = (samples / f"{name}_collateral.json").read_text()
            try:
                v = verify_quote(quote, collateral, collateral_issued(collateral) + 3600)
            except PasarError as err:
                return False, f"{err.code}: {err.message[:90]}"
            return True, f"{v.tee}, TCB {v.tcb_status}, MRTD {v.measurements['mrtd'][:16]}…"

        try:
            ok, detail = attempt("tdx_quote")
        except PasarError as err:  # dcap-qvl is not installed
            self.say(f"[dim]skipped: {err.message} ({err.hint})[/]")
            return
        self.check("the sample TDX quote verifies", ok, detail)
        ok, detail = attempt("tdx_quote", flip=200)
        self.check("the same quote with one byte flipped is refused", not ok, detail)
        ok, detail = attempt("tdx_quote_outdated")
        self.check("a quote whose TCB is out of date is refused", not ok, detail)

    # -- 8. the money -----------------------------------------------------------------------------

    def follow_the_money(self) -> None:
        from pasar.market.audit import audit_market

        self.part("8. the money: bills, earnings, fees, conservation, audit")
        bills = Table(title="bill per job (test USDC)", title_justify="left")
        for column in ("job", "leases", "providers", "seconds", "billed", "to providers"):
            bills.add_column(column, justify="left" if column in ("job", "providers") else "right")
        for column in ("fees", "refunded"):
            bills.add_column(column, justify="right")
        for what, order_id in self.jobs:
            order = self.client.job(order_id).status()
            leases = order["leases"]
            total = dict.fromkeys(("billed", "provider_payout", "fees", "refund"), 0)
            for lease in leases:
                bill = lease.get("bill") or {}
                total["billed"] += _micros(bill.get("billed", "0 USDC"))
                total["provider_payout"] += _micros(bill.get("provider_payout", "0 USDC"))
                total["fees"] += _micros(bill.get("treasury", "0 USDC")) + _micros(
                    bill.get("reserve", "0 USDC")
                )
                total["refund"] += _micros(bill.get("refund", "0 USDC"))
            bills.add_row(
                what,
                str(len(leases)),
                self.names_of(x["provider"] for x in leases),
                str(sum(x["billed_seconds"] for x in leases)),
                _usdc(total["billed"]),
                _usdc(total["provider_payout"]),
                _usdc(total["fees"]),
                _usdc(total["refund"]),
            )
        self.console.print(bills)
        self.say(
            "billed = heartbeat-verified seconds × price; the provider gets the bill less the "
            "network's take rate; what the escrow held beyond the bill goes back to the client"
        )

        balances = {
            key: _micros(value)
            for key, value in self.client.transport.get("/v1/state/balances")["balances"].items()
        }

        def balance(account: str) -> int:
            return sum(v for k, v in balances.items() if k.rpartition("/")[0] == account)

        earnings = Table(title="provider earnings", title_justify="left")
        for column in ("provider", "price per core-hour", "leases run", "earned"):
            earnings.add_column(column, justify="left" if column == "provider" else "right")
        runs: dict[str, int] = {}
        for _, order_id in self.jobs:
            for lease in self.client.job(order_id).status()["leases"]:
                runs[lease["provider"]] = runs.get(lease["provider"], 0) + 1
        for p in self.net.providers:
            earned = balance(f"earnings:{p.ready}")
            earnings.add_row(p.name, f"{p.price}", str(runs.get(p.ready, 0)), _usdc(earned))
        self.console.print(earnings)

        minted = -balance("mint")
        parts = {
            "client (spendable)": balance(f"client:{self.net.client_account}"),
            "providers' earnings": sum(v for k, v in balances.items() if k.startswith("earnings:")),
            "treasury (fees)": balance("treasury"),
            "reserve (fees)": balance("reserve"),
            "in escrow": sum(v for k, v in balances.items() if "escrow:" in k),
        }
        others = sum(v for k, v in balances.items() if not k.startswith("mint/")) - sum(
            parts.values()
        )
        parts["other accounts"] = others
        ledger = Table(title="where every minted micro-unit is", title_justify="left")
        ledger.add_column("account")
        ledger.add_column("USDC", justify="right")
        for name, micros in parts.items():
            ledger.add_row(name, _usdc(micros))
        ledger.add_row("[bold]total[/]", f"[bold]{_usdc(sum(parts.values()))}[/]")
        ledger.add_row("minted by the faucet", _usdc(minted))
        self.console.print(ledger)
        self.check(
            "conservation: the sum of all balances equals what was minted",
            sum(parts.values()) == minted,
            f"{_usdc(sum(parts.values()))} = {_usdc(minted)}",
        )
        self.check(
            "the network collected fees",
            parts["treasury (fees)"] > 0 and parts["reserve (fees)"] >= 0,
            f"treasury {_usdc(parts['treasury (fees)'])}, reserve {_usdc(parts['reserve (fees)'])}",
        )

        self.say(f"pasar audit --market {self.net.url}: replaying the signed chain from genesis…")
        report = audit_market(self.client.transport.get)
        self.say(
            f"{report.blocks} blocks, {report.txs} transactions replayed "
            f"({report.unsealed_txs} not yet sealed), {len(report.balances)} balances compared"
        )
        for line in report.mismatches:
            self.say(f"  [red]{line}[/]")
        self.check("pasar audit: the replay reproduces every balance exactly", report.ok)
