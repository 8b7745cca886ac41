"""The verifier agent: register, stake, follow the feed, re-run the checks given to it.

Like the provider agent it is driven by one long-poll of its feed (the market publishes each
``check.assign`` to the verifier it names) and runs each check on a thread of its own in the
same sandbox runtimes (:class:`~pasar.verifier.rerun.CheckExecutor`). On start it also picks
up the checks already assigned to it (a restart loses none); a check it cannot finish before
its deadline goes to another verifier and this one gets no more until it registers again,
which every start does.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pasar.api.feed import FeedEvent
from pasar.client import calls
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.provider.agent import PIP_CACHE_DIR, load_or_create_key, wait_interruptibly
from pasar.provider.executor import LeaseExecutor, clear_workroot, workroot_for
from pasar.provider.market_api import MarketAPI
from pasar.provider.pip_cache import PipCache
from pasar.provider.pip_options import pip_options_from_config
from pasar.provider.runtime.base import Runtime, check_usable, get_runtime
from pasar.provider.sealed import clear_sealed_workroot, sealed_workroot
from pasar.verifier import VERIFIER_KEY
from pasar.verifier.dispute import DisputeAnswerer
from pasar.verifier.pol import PolCheckExecutor
from pasar.verifier.rerun import CheckExecutor
from pasar.verifier.trace import Tracer

log = logging.getLogger("pasar.verifier")

FEED_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class VerifierConfig:
    """Everything ``pasar verifier start`` was told."""

    market: str
    home: Path
    runtime: str = "sandbox"
    stake: str | None = None
    operator: str | None = None
    key_name: str = VERIFIER_KEY


@dataclass
class VerifierState:
    running: dict[str, CheckExecutor] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)


class VerifierAgent:
    """:meth:`start` then :meth:`run` (blocks until :meth:`stop`)."""

    def __init__(self, config: VerifierConfig) -> None:
        self.config = config
        self.identity = load_or_create_key(config.home, config.key_name)
        self.runtime: Runtime = get_runtime(config.runtime)
        self.api = MarketAPI(config.market, self.identity, home=config.home)
        # a re-run of a job with pip: needs its install, as the provider made it; where from:
        # the [pip] table of config.toml (pasar.provider.pip_options), else pip's defaults
        pip = pip_options_from_config(config.home)
        self.pip = PipCache(config.home / PIP_CACHE_DIR, pip.pip_args(), pip.cap_bytes)
        self.state = VerifierState()
        self.disputes = DisputeAnswerer(self.api)  # pol disputes it opened (pasar.verifier.dispute)
        # ... whose narrowed step it traces, and those it referees (pasar.verifier.trace)
        self.tracer = Tracer(self.api, self.runtime, lambda: workroot_for(config.home),
                             self.identity.account_id)  # fmt: skip
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self) -> None:
        check_usable(self.runtime, self.config.runtime)
        clear_workroot(self.config.home)
        health = self.api.health()
        self.api.perform(calls.verifier_register(self.config.operator))
        if self.config.stake:
            if health.devnet:
                self._fund_from_faucet(self.config.stake)
            self.api.stake(self.config.stake)
        log.info("verifier %s registered with %s", self.identity.account_id, self.config.market)

    def _fund_from_faucet(self, stake: str) -> None:
        """On a devnet (test money), mint what the stake needs beyond the spendable balance:
        ``pasar devnet up`` starts verifiers with the preset's stake and nobody to fund them."""
        need = Money.parse(stake)
        have = Money.parse(self.api.account().balance)
        if have.currency == need.currency and have < need:
            self.api.perform(calls.faucet((need - have).to_json()))

    def run(self) -> None:
        """Follow the feed on a thread of its own until :meth:`stop` — as the provider agent
        does — so a SIGTERM ends the agent at once, not after the feed's long-poll returns
        (up to :data:`FEED_TIMEOUT_S` later)."""
        cursor = self.api.feed(0, 0).next
        for check_id in self.api.perform(calls.verifier(self.identity.account_id)).assigned:
            self._maybe_check(check_id)
        threading.Thread(target=self._follow_feed, args=(cursor,), name="feed", daemon=True).start()
        wait_interruptibly(self._stop)
        clear_sealed_workroot(self.config.home)  # no sealed job's plaintext outlives the agent

    def _follow_feed(self, cursor: int) -> None:
        while not self._stop.is_set():
            try:
                page = self.api.feed(cursor, FEED_TIMEOUT_S)
            except PasarError as exc:
                log.warning("feed: %s", exc.message)
                self._stop.wait(1.0)
                continue
            cursor = 0 if page.next < cursor else page.next
            for event in page.events:
                if self._stop.is_set():
                    return
                self.handle(event)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            running = list(self.state.running.values())
        for executor in running:
            executor.cancel()

    def handle(self, event: FeedEvent) -> None:
        mine = event.verifier == self.identity.account_id
        if event.type == "check.assign" and mine and event.check_id is not None:
            self._maybe_check(event.check_id)
        elif event.type.startswith("dispute."):
            self.disputes.on_event(event.model_dump())
            self.tracer.on_event(event.model_dump())

    def _maybe_check(self, check_id: str) -> None:
        with self._lock:
            if check_id in self.state.running or check_id in self.state.done:
                return
        try:
            view = self.api.perform(calls.check(check_id))
        except PasarError as exc:
            log.warning("check %s: %s", check_id, exc.message)
            return
        if view.status != "assigned" or view.verifier != self.identity.account_id:
            return
        sealed = (view.spec or {}).get("privacy") == "sealed"  # its plaintext stays in memory
        root = sealed_workroot(self.config.home) if sealed else workroot_for(self.config.home)
        kind = PolCheckExecutor if view.challenge is not None else CheckExecutor
        executor = kind(self.api, self.runtime, view, workroot=root)
        executor.pip = self.pip
        executor.on_done = self._done
        if isinstance(executor, PolCheckExecutor):
            executor.disputes = self.disputes
        with self._lock:
            self.state.running[check_id] = executor
        threading.Thread(target=executor.run, name=f"check-{check_id}", daemon=True).start()

    def _done(self, executor: LeaseExecutor) -> None:
        assert isinstance(executor, CheckExecutor)
        with self._lock:
            self.state.running.pop(executor.check.check_id, None)
            self.state.done.append(executor.check.check_id)
