"""The provider agent: register, keep asks current, listen to the market, bid, run leases.

One long-poll of the market's feed drives everything (no tight polling): a new order the
provider was invited to bid on gets a bid from its strategy (auction markets); a ``match`` that
names one of its leases starts an executor; a cancelled or lost lease stops one. On SIGTERM the
agent drains: it tells the market it takes no new work, lets running leases finish for a grace
period, hands back whatever is still running (paid for its verified seconds, re-queued for
someone else) and exits 0.

When the market suspects the provider dead (its feed dropped, a heartbeat came late) it pushes a
``liveness.challenge`` on the feed; the agent answers it before anything else in the page, and
hands the other events to a thread of their own, so its poll reopens at once: a live provider
never loses its leases to a dropped connection or a long page of events.

A provider that lost a lease (it was frozen, or the network dropped) is taken off the market by
the market; the agent notices — the feed's ``lease.lost`` for one of its leases, or a periodic
look at its own record — and registers again, so a blip never takes it off for good. On start,
workdirs left under ``<home>/work`` by a previous run (a crash, a SIGKILL) are removed.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pasar.api.feed import FeedEvent
from pasar.api.leases import LeaseView
from pasar.api.txs import Asks, ProviderRegister
from pasar.core.account_handlers import CLUSTERS, NODE_ADDRESS
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.presets import builtin_preset
from pasar.core.resources import ResourceRequest, fit
from pasar.core.spec import JobSpec
from pasar.crypto.envelope import wall_clock_ms
from pasar.crypto.identity import Identity, IdentityError, key_path, load_identity, save_identity
from pasar.provider import PROVIDER_KEY
from pasar.provider.bench import BenchResult, cached_benchmark
from pasar.provider.capacity import CapacityProver
from pasar.provider.cheat import (
    CheatLog,
    CheatPlan,
    local_seed,
    parse_cheat,
    refuse_unless_devnet,
)
from pasar.provider.executor import LeaseExecutor, clear_workroot, workroot_for
from pasar.provider.hardware import load_gpu_report
from pasar.provider.inventory import MachineInventory, detect_inventory
from pasar.provider.lease_job import LeaseJob, no_gpus
from pasar.provider.market_api import MarketAPI
from pasar.provider.pip_cache import PipCache
from pasar.provider.pip_options import PipOptions
from pasar.provider.runtime.base import Runtime, check_usable, enforcement, get_runtime
from pasar.provider.runtime.sandbox import SandboxRuntime
from pasar.provider.runtime.warm import WarmPool
from pasar.provider.sealed import clear_sealed_workroot, sealed_workroot
from pasar.provider.strategy import PriceTable, Strategy, make_strategy
from pasar.provider.tee_attest import attest
from pasar.tee.sources import QuoteSource, detect
from pasar.verifier.dispute import DisputeAnswerer, provider_side
from pasar.verifier.trace import Tracer

log = logging.getLogger("pasar.provider")

FEED_TIMEOUT_S = 10.0
FEED_RETRY_S = 0.1  # after a failed poll, doubling up to FEED_RETRY_MAX_S while it keeps failing
FEED_RETRY_MAX_S = 1.0
EVENT_WAIT_S = 0.5  # how often the event thread looks at the stop flag while idle
AVAILABILITY_CHECK_S = 30.0  # how often the agent makes sure the market still offers it work
DEFAULT_GRACE_S = 30.0
PROOF_STOP_S = 30.0  # how long a stopping agent waits for a capacity proof to stop
START_SLACK_MS = 2_000  # the market's clock may trail ours by this much
# How long a thread may hold the GIL while another waits for it (CPython's default: 5 ms). The
# agent is many threads that mostly wait (feed, events, each lease's executor, heartbeats, log
# readers, usage samplers, the warm pool's refills); at the default, a lease's thread woken by
# its job's pipe waits up to 5 ms each time a busy thread holds the GIL — measured at 4-6 ms
# per step of a warm lease. Its CPU-heavy work (benchmark, capacity proofs) runs in numpy or
# torch, which release the GIL, so switching more often costs it little.
GIL_SWITCH_INTERVAL_S = 0.001
PIP_CACHE_DIR = "pip-cache"  # under the agent's home: the jobs' pip installs


#: how often a main thread waiting for its stop lets a signal's Python handler run
SIGNAL_CHECK_S = 0.5


def wait_interruptibly(stop: threading.Event) -> None:
    """Wait on the main thread until ``stop`` is set, in short waits. Why not one
    ``stop.wait()``: Python runs a signal's handler on the main thread, and the kernel may hand
    SIGTERM to any thread of the process (another one, when the main thread already has a
    signal pending); then nothing interrupts the main thread's lock wait, the handler never
    runs, and the agent ignores its SIGTERM until it is killed (a provider was, 120 s later)."""
    while not stop.wait(SIGNAL_CHECK_S):
        pass


@dataclass(frozen=True)
class AgentConfig:
    """Everything ``pasar provider start`` was told."""

    market: str
    home: Path
    runtime: str = "sandbox"
    prices: tuple[str, ...] = ()
    price_cpu_hour: str | None = None
    strategy: str = "scale"
    stake: str | None = None
    max_jobs: int = 4
    allow_network: bool = False
    grace_s: float = DEFAULT_GRACE_S
    region: str | None = None
    key_name: str = PROVIDER_KEY
    bench_seconds: float = 1.0
    reserve_memory_gb: int = 1
    gpu_report: Path | None = None  # a recorded NVML report to register instead of asking NVML
    cheat: str | None = None  # KIND:RATE, devnet markets only (pasar.provider.cheat)
    cheat_seed: str | None = None  # picks the leases cheated on (default: one kept in home)
    tee: str = "none"  # auto | tdx | none: attest through a TEE quote source (pasar.tee.sources)
    warm_pool: int = 2  # warm sandboxes kept per key (sandbox runtime only); 0 = off
    # where the other nodes of a multi-node job reach this machine (an IP address)
    node_address: str = "127.0.0.1"
    # a multi-node job whose nodes are all on this machine gets a network of its own
    allow_cluster: bool = False
    # where jobs' pip requirements are installed from, and how much of them is kept
    pip: PipOptions = field(default_factory=PipOptions)


def load_or_create_key(home: Path, name: str) -> Identity:
    if key_path(name, home).exists():
        return load_identity(name, home)
    identity = Identity.generate()
    try:
        save_identity(identity, name, home)
    except IdentityError as err:
        if err.code != "key_exists":
            raise
        return load_identity(name, home)
    return identity


@dataclass
class AgentState:
    """What the agent is doing, for ``pasar provider status`` and tests."""

    running: dict[str, LeaseExecutor] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)
    bids: int = 0
    draining: bool = False


class Agent:
    """A provider agent for one market; :meth:`start` then :meth:`run` (blocks)."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.identity = load_or_create_key(config.home, config.key_name)
        self.runtime: Runtime = get_runtime(config.runtime)
        self.api = MarketAPI(config.market, self.identity, home=config.home)
        # pol disputes over its leases: answered from the step hashes its receipts committed
        self.disputes = DisputeAnswerer(self.api, provider_side(self.api, self.identity.account_id))
        # ... and their narrowed step traced as it ran here, cheat and all (pasar.verifier.trace)
        self.tracer = Tracer(self.api, self.runtime, lambda: workroot_for(config.home),
                             self.identity.account_id, self._cheat_kind)  # fmt: skip
        self.state = AgentState()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.inventory: MachineInventory | None = None
        self.bench: BenchResult | None = None
        self.strategy: Strategy | None = None
        self.preset_name = ""
        self.max_blob_bytes: int | None = None
        self._available = True
        self._started_ms = 0  # set by start(): the moment this run of the agent began
        self.cheat: CheatPlan | None = None
        self.cheat_log = CheatLog(config.home)
        if config.cheat is not None:  # a bad --cheat fails before the market is asked
            seed = config.cheat_seed or local_seed(config.home)
            self.cheat = parse_cheat(config.cheat, seed=seed)
        self.prover: CapacityProver | None = None  # answers capacity challenges (after start)
        # where this machine's TEE quotes come from; ``--tee tdx`` without one fails here,
        # before the market is asked
        self.quote_source: QuoteSource | None = detect(config.tee)
        self.attestation: dict[str, Any] | None = None
        self._feed_start: int | None = None
        self._events: queue.Queue[FeedEvent] = queue.Queue()  # the feed's, for _handle_events
        self.pool: WarmPool | None = None  # warm sandboxes, started by start()
        # jobs' pip installs (``pip:``), made outside their sandboxes and shared read-only
        self.pip = PipCache(
            config.home / PIP_CACHE_DIR, config.pip.pip_args(), config.pip.cap_bytes
        )

    # -- start-up ---------------------------------------------------------------------------------

    def check_runtime(self) -> None:
        """Refuse to start on a runtime this machine cannot provide (with how to fix it)."""
        check_usable(self.runtime, self.config.runtime)

    def start(self) -> None:
        """Measure the machine, register with the market, stake."""
        self.check_runtime()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self._started_ms = wall_clock_ms()  # leases that start after this are this run's
        clear_workroot(self.config.home)
        self._start_pool()
        health = self.api.health()
        if self.cheat is not None:
            refuse_unless_devnet(health.devnet)
        self.preset_name = health.preset
        self.max_blob_bytes = health.max_blob_bytes
        currency = builtin_preset(self.preset_name).currency
        table = PriceTable.from_flags(
            self.config.prices, self.config.price_cpu_hour, currency=currency
        )
        self.strategy = make_strategy(self.config.strategy, table)
        report = self.config.gpu_report
        self.inventory = detect_inventory(
            self.config.home,
            reserve_memory_gb=self.config.reserve_memory_gb,
            gpu_report=None if report is None else load_gpu_report(report),
        )
        self.bench = cached_benchmark(
            self.config.home, self.inventory.fingerprint, seconds=self.config.bench_seconds
        )
        # the challenge runs where the score was measured (a GPU score on that GPU)
        self.prover = CapacityProver(
            self.api, self.config.home, device=self.bench.device, stop=self._stop
        )
        # the feed's position before registering: the challenge that follows registration
        # is then on the feed :meth:`run` follows (events in between are replayed, harmlessly)
        self._feed_start = self.api.feed(0, 0).next
        self.register(available=True)
        if self.config.stake:
            self.api.stake(self.config.stake)
        self._attest()
        log.info(
            "registered %s with %s (%s)",
            self.identity.account_id,
            self.config.market,
            self.preset_name,
        )

    def _start_pool(self) -> None:
        """Start filling the warm sandbox pool (``--warm-pool``, sandbox runtime only) while
        the agent measures the machine and registers: the first lease finds it ready."""
        if self.config.warm_pool <= 0 or not isinstance(self.runtime, SandboxRuntime):
            return
        self.pool = WarmPool(self.runtime, workroot_for(self.config.home), self.config.warm_pool)
        self.pool.start()

    def _attest(self) -> None:
        """Present a TEE quote (``--tee``); say plainly when this machine has no TEE."""
        if self.quote_source is None:
            if self.config.tee == "auto":
                log.info(
                    "no TEE on this machine: not attesting (verification: tee jobs go elsewhere)"
                )
            return
        try:
            self.attestation = attest(self.api.perform, self.identity, self.quote_source)
        except (PasarError, OSError, ValueError) as exc:
            if self.config.tee != "auto":
                raise  # --tee tdx: attesting is what was asked for
            # auto: the provider still serves, just not verification: tee jobs
            log.warning(
                "attesting through %s failed, serving without: %s", self.quote_source.name, exc
            )
            return
        log.info(
            "attested as %s (TCB %s) through %s",
            self.attestation.get("tee"),
            self.attestation.get("tcb_status"),
            self.quote_source.name,
        )

    def register(self, *, available: bool) -> None:
        assert self.inventory is not None and self.strategy is not None and self.bench
        asks = self.strategy.asks()
        body = ProviderRegister(
            inventory=self.inventory.to_wire(),
            asks=Asks(
                gpu={k: v.to_json() for k, v in asks.gpu.items()},
                cpu_core=None if asks.cpu_core is None else asks.cpu_core.to_json(),
            ),
            score=self.cheat.claimed_score(self.bench.gflops) if self.cheat else self.bench.gflops,
            available=available,
            # how job limits hold here (cgroup-v1/-v2 per job, or rlimit per process)
            attributes={
                "limits": enforcement(self.runtime),
                NODE_ADDRESS: self.config.node_address,
                **({CLUSTERS: "ray"} if self._offers_ray() else {}),
            },
        )
        gpu = self.inventory.inventory.devices()[0] if self.inventory.inventory.devices() else None
        rate = self.strategy.rate_per_score_hour(
            self.bench.gflops,
            gpu=gpu if self.bench.device != "cpu" else None,
            cpus=self.inventory.inventory.cpus,
        )
        if rate is not None:
            body.rate_per_score_hour = rate.to_json()
        if self.config.region:
            body.region = self.config.region
        self.api.register(body)

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Follow the feed (on a thread) until :meth:`stop`, then drain on this thread — so a
        SIGTERM starts the drain at once, not after the feed's long-poll returns.

        The feed's position is taken *before* the leases already assigned are adopted: a match
        that lands in between is then both adopted and replayed by the feed (running a lease
        twice is refused by :meth:`_maybe_run`), never missed by both."""
        cursor = self.api.feed(0, 0).next if self._feed_start is None else self._feed_start
        self._adopt_assigned()
        feeder = threading.Thread(
            target=self._follow_feed, args=(cursor,), name="feed", daemon=True
        )
        feeder.start()
        threading.Thread(target=self._handle_events, name="events", daemon=True).start()
        wait_interruptibly(self._stop)
        self.drain()
        if self.pool is not None:
            self.pool.close()
        clear_sealed_workroot(self.config.home)  # no sealed job's plaintext outlives the agent
        if self.prover is not None:  # a proof in progress stops at its next step
            self.prover.join(PROOF_STOP_S)

    def _follow_feed(self, cursor: int) -> None:
        checked = time.monotonic()
        retry_s = FEED_RETRY_S
        while not self._stop.is_set():
            if time.monotonic() - checked >= AVAILABILITY_CHECK_S:
                checked = time.monotonic()
                self._recover_availability()
            try:
                page = self.api.feed(cursor, FEED_TIMEOUT_S)
            except PasarError as exc:
                log.warning("feed: %s", exc.message)
                # a dropped poll is reopened at once (the market suspects a feed closed for
                # long, see pasar.market.liveness); a market that stays away, less often
                self._stop.wait(retry_s)
                retry_s = min(2 * retry_s, FEED_RETRY_MAX_S)
                continue
            retry_s = FEED_RETRY_S
            if page.next < cursor:  # the market restarted and renumbered its feed
                cursor = 0
                continue
            cursor = page.next
            self._answer_liveness(page.events)  # first: its deadline is seconds away
            for event in page.events:
                self._events.put(event)

    def _handle_events(self) -> None:
        """Handle the feed's events in order, on their own thread: the feed thread reopens its
        poll at once however long a page takes to handle (the market suspects a provider
        whose feed stays closed, see :mod:`pasar.market.liveness`)."""
        while not self._stop.is_set():
            try:
                event = self._events.get(timeout=EVENT_WAIT_S)
            except queue.Empty:
                continue
            if not self._stop.is_set():
                self.handle(event)

    def _answer_liveness(self, events: list[FeedEvent]) -> None:
        """Answer the market's liveness challenges of this provider at once: the market
        suspected it dead (its feed dropped, a heartbeat came late) and its running leases are
        lost unless it answers within the preset's ``challenge_deadline_ms``."""
        mine = f"{self.identity.account_id}.live-"
        for event in events:
            if event.type != "liveness.challenge" or not (event.challenge_id or "").startswith(
                mine
            ):
                continue
            try:
                self.api.liveness_answer(str(event.challenge_id))
            except PasarError as exc:  # answered already (a replayed event), or too late
                log.info("liveness challenge %s: %s", event.challenge_id, exc.message)

    def stop(self) -> None:
        self._stop.set()

    def handle(self, event: FeedEvent) -> None:
        kind = event.type
        try:
            if kind == "order.create" and not self.state.draining:
                if event.takes_bids is not False:  # the order's mechanism takes sealed bids
                    self._maybe_bid(str(event.order_id))
            elif kind == "match":
                # the event names each lease's provider: run ours, never read the others'
                assigned = event.assigned or {}
                views = event.views or {}  # ours, as GET /v1/leases/{id} answers (a new market)
                seen_at = time.monotonic()
                for lease_id in event.leases or []:
                    if assigned.get(lease_id, self.identity.account_id) == self.identity.account_id:
                        self._maybe_run(lease_id, seen_at, views.get(lease_id))
                # a reopened auction window (an older market does not say: look)
                if event.order_id and not self.state.draining and event.takes_bids is not False:
                    self._maybe_bid(event.order_id)
            elif kind in ("order.cancel", "order.expire"):
                self._stop_order(str(event.order_id))
            elif kind == "cluster.exec" and event.lease_id and event.step and event.command:
                self._add_step(event.lease_id, event.step, event.command)
            elif kind == "receipt" and event.stop:  # a multi-node job's head ended
                self._end_with_gang(event.stop)
            elif kind == "lease.lost":
                self._stop_lease(str(event.lease_id))
                for lease_id in event.stop or ():  # its gang ended with it (on_node_loss: fail)
                    self._stop_lease(lease_id)
                self._recover_availability()
            elif kind == "lease.release" and event.stop:  # a gang ended with a released node
                for lease_id in event.stop:
                    self._stop_lease(lease_id)
            elif kind.startswith("dispute."):  # a pol dispute over a lease of ours
                self.disputes.on_event(event.model_dump())
                self.tracer.on_event(event.model_dump())
            elif kind == "capacity.challenge" and self.prover and event.challenge_id:
                self.prover.on_event(self.api.capacity_challenge(event.challenge_id))
        except PasarError as exc:
            log.warning("handling %s: %s", kind, exc.message)

    def _adopt_assigned(self) -> None:
        """Leases the market thinks we run but we do not: those of an earlier run of this agent
        (it restarted; the job's state is gone) are handed back, and those matched since this
        run registered — before the feed was followed, so their ``match`` event was not seen —
        are run now."""
        for lease_id in self.api.me().running:
            if lease_id in self.state.running:
                continue
            try:
                view = self.api.lease(lease_id)
                if view.started_at >= self._started_ms - START_SLACK_MS:
                    self._maybe_run(lease_id, view=view)
                else:
                    self.api.release(lease_id)
            except PasarError as exc:
                log.warning("adopting %s: %s", lease_id, exc.message)

    def _maybe_bid(self, order_id: str) -> None:
        try:
            order = self.api.order(order_id)
        except PasarError as exc:
            if exc.status == 403:  # not invited to this order's window: nothing to bid on
                return
            raise
        auction = order.auction
        if order.status != "open" or not order.takes_bids or not auction:
            return
        if self.identity.account_id not in auction.invited:
            return
        assert self.strategy is not None and self.inventory is not None
        spec = JobSpec.from_public(order.spec)  # bidders see the requirements only
        price: Money | None = None
        # a spec with resources.alternatives: bid for the first this machine fits (one bid
        # per provider; the market clears each alternative over the bidders that fit it)
        for choice in spec.choices():
            request: ResourceRequest = choice.to_request()
            allocation = fit(request, self.inventory.inventory).allocation
            if allocation is not None:
                price = self.strategy.bid(
                    request, allocation, spec.max_price_per_hour, duration_s=spec.max_duration
                )
                break
        try:
            self.api.bid(order_id, None if price is None else price.to_json())
            self.state.bids += 1
        except PasarError as exc:
            if exc.code not in ("duplicate_bid", "auction_closed", "not_open"):
                raise

    def _maybe_run(
        self, lease_id: str, seen_at: float | None = None, view: LeaseView | None = None
    ) -> None:
        """Run ``lease_id`` if it is ours, running, and we have room. ``view``: the lease as
        the market's feed carried it with its ``match`` (or as just read); without one (an
        older market, a page over its limits) it is read here."""
        with self._lock:
            if lease_id in self.state.running:
                return
        if view is None or view.lease_id != lease_id:
            view = self.api.lease(lease_id)
        if view.provider != self.identity.account_id or view.status != "running":
            return
        with self._lock:
            full = len(self.state.running) >= self.config.max_jobs
        if full:  # a match that crossed our "full" notice: hand it back for someone else
            self.api.release(lease_id)
            return
        executor = LeaseExecutor(
            self.api,
            self.runtime,
            LeaseJob.from_view(view),
            # a sealed job's plaintext stays in memory (a tmpfs), never on the provider's disk
            workroot=sealed_workroot(self.config.home)
            if (view.spec or {}).get("privacy") == "sealed"
            else workroot_for(self.config.home),
            allow_network=self.config.allow_network,
            allow_cluster=self.config.allow_cluster,
            on_done=self._done,
            max_blob_bytes=self.max_blob_bytes,
            gpus=self.inventory.grants if self.inventory is not None else no_gpus,
            cheat=self._cheat_on(view.lease_id, view.order_id),
            pool=self.pool,
            seen_at=seen_at,
            pip=self.pip,
        )
        with self._lock:
            self.state.running[lease_id] = executor
            now_full = len(self.state.running) >= self.config.max_jobs
        thread = threading.Thread(target=executor.run, name=f"lease-{lease_id}", daemon=True)
        thread.start()
        if now_full:
            self._set_available(False)

    def _cheat_on(self, lease_id: str, order_id: str) -> str | None:
        """The cheat kind for this lease (recorded in ``cheats.jsonl``), or None: honest."""
        if self.cheat is None or not self.cheat.applies(lease_id):
            return None
        self.cheat_log.record(lease_id, self.cheat.kind, order_id=order_id)
        log.warning("cheating on %s (%s)", lease_id, self.cheat.kind)
        return self.cheat.kind

    def _cheat_kind(self, lease_id: str) -> str | None:
        """The cheat this agent ran ``lease_id`` with, if any (what its trace must re-run)."""
        if self.cheat is None or not self.cheat.applies(lease_id):
            return None
        return self.cheat.kind

    def _set_available(self, available: bool) -> None:
        """``--max-jobs``: tell the market we are full (no new work) or free again."""
        if available == self._available or (available and self.state.draining):
            return
        self._available = available
        try:
            self.register(available=available)
        except PasarError as exc:
            log.warning("updating availability: %s", exc.message)

    def _recover_availability(self) -> None:
        """Register again if the market stopped offering us work while we think we take it.

        The market marks a provider unavailable when it loses one of its leases (it may have
        vanished for good); this agent is evidently back, and nothing else would ever tell
        the market so, since its own flag still says "available" and :meth:`_set_available`
        only speaks on a change."""
        if self.state.draining or not self._available:
            return
        try:
            if self.api.me().available:
                return
            log.warning("the market took this provider off after a lost lease; registering again")
            self.register(available=True)
        except PasarError as exc:
            log.warning("checking availability: %s", exc.message)

    def _done(self, executor: LeaseExecutor) -> None:
        with self._lock:
            self.state.running.pop(executor.job.lease_id, None)
            self.state.finished.append(executor.job.lease_id)
            has_room = len(self.state.running) < self.config.max_jobs
        if has_room:
            self._set_available(True)

    def _stop_order(self, order_id: str) -> None:
        with self._lock:
            targets = [e for e in self.state.running.values() if e.job.order_id == order_id]
        for executor in targets:
            executor.cancel()

    def _offers_ray(self) -> bool:
        """``cluster: ray`` jobs come here only if this provider gives gangs their network
        (``--allow-cluster``, sandbox runtime) and Ray imports in its Python."""
        from pasar.cluster import ray_nodes

        return (
            self.config.allow_cluster and self.config.runtime == "sandbox" and ray_nodes.available()
        )

    def _add_step(self, lease_id: str, step: int, command: str) -> None:
        """A step of a cluster this agent runs the head of (``pasar cluster exec``)."""
        with self._lock:
            executor = self.state.running.get(lease_id)
        if executor is not None:
            executor.add_step(step, command)

    def _end_with_gang(self, lease_ids: list[str]) -> None:
        with self._lock:
            targets = [self.state.running[x] for x in lease_ids if x in self.state.running]
        for executor in targets:
            executor.end_with_gang()

    def _stop_lease(self, lease_id: str) -> None:
        with self._lock:
            executor = self.state.running.get(lease_id)
        if executor is not None:
            executor.cancel()

    # -- shutting down ----------------------------------------------------------------------------

    def drain(self) -> None:
        """Take no new work, let running leases finish for ``grace_s``, release the rest."""
        self.state.draining = True
        try:
            self.register(available=False)
        except PasarError as exc:
            log.warning("could not tell the market we are draining: %s", exc.message)
        deadline = threading.Event()
        timer = threading.Timer(self.config.grace_s, deadline.set)
        timer.start()
        try:
            while not deadline.is_set():
                with self._lock:
                    if not self.state.running:
                        break
                deadline.wait(0.1)
        finally:
            timer.cancel()
        with self._lock:
            left = list(self.state.running.values())
        for executor in left:
            executor.release()
        for _ in range(50):
            with self._lock:
                if not self.state.running:
                    break
            threading.Event().wait(0.1)
        self.api.close()
