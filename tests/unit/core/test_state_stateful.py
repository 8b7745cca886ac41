"""A hypothesis state machine drives the market through random transactions, valid and not.

After every step the live state equals a fresh :class:`MarketState` that replayed only the
accepted transactions (balances, unbonding, providers, orders, leases, the blob index, nonces,
counters), the books balance, and the fleet index equals one rebuilt from the records (and
clears as a full scan does). Every refused transaction raised a 4xx ``PasarError`` and
changed nothing at all; so did every *sabotaged* one: its handler ran to the end and then
failed, the hardest case for the rollback (issue 10, part 5).
"""

from __future__ import annotations

from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from state_snapshot import books_balance, index_content, rebuilt_index, sabotaged, snapshot
from test_state import MARKET, SPEC, T0, make_state
from test_state_atomic import tx

from pasar.core.errors import PasarError
from pasar.core.market_records import Tx
from pasar.core.private_part import order_fields
from pasar.core.receipts import FAILURE_FAULTS
from pasar.core.timelock import challenge_message
from pasar.crypto.merkle import root_of_files

CLIENTS = ["client-a", "client-b"]
PROVIDERS = ["prov-1", "prov-2", "prov-3"]
SHA = "cd" * 32
INTERVAL_MS = 5_000  # the pasar preset's heartbeat interval

picks = st.integers(min_value=0, max_value=7)
amounts = st.sampled_from(["0.5 USDC", "5 USDC", "5 USDC", "50 USDC", "-1 USDC", "20000 USDC", 1.5])
#: mostly orders the market takes, sometimes one it refuses
variants = st.sampled_from(["plain"] * 4 + ["inputs"] * 2 + ["pol", "sealed", "unknown_field"])


class MarketMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = make_state()
        self.log: list[Tx] = []
        self.now = T0
        self.sabotage = False

    # -- sending ------------------------------------------------------------------------------

    def send(self, signer: str, **body: Any) -> None:
        t = tx(signer, self.now, **body)
        before = snapshot(self.state)
        sabotage, self.sabotage = self.sabotage, False
        try:
            if sabotage:
                with sabotaged(t.type):
                    self.state.apply(t)
            else:
                self.state.apply(t)
        except PasarError as err:
            assert 400 <= err.status < 500, err.to_dict()
            assert snapshot(self.state) == before, f"a refused {t.type} changed the state"
            event(f"refused {t.type}: {err.code}")
            return
        assert not sabotage, "a sabotaged handler must fail"
        event(f"accepted {t.type}")
        self.log.append(t)

    def market(self, **body: Any) -> None:
        self.send(MARKET.account_id, **body)

    def order_id(self, pick: int) -> str:
        orders = sorted(self.state.orders)
        return orders[pick % len(orders)] if orders else "o-none"

    def lease_id(self, pick: int) -> str:
        """Mostly a running lease (what the lease rules can act on), sometimes any lease."""
        leases = sorted(self.state.leases)
        running = [x for x in leases if self.state.leases[x].status == "running"]
        pool = running if running and pick < 6 else leases
        return pool[pick % len(pool)] if pool else "o-none-0"

    def provider_of(self, lease_id: str, honest: bool) -> str:
        lease = self.state.leases.get(lease_id)
        return lease.provider if lease is not None and honest else CLIENTS[0]

    # -- rules --------------------------------------------------------------------------------

    @initialize()
    def funded_clients_and_two_providers(self) -> None:
        """Start where orders can be taken, so that most runs reach leases and receipts."""
        for client in CLIENTS:
            self.send(client, type="faucet", amount="100 USDC")
        for provider in PROVIDERS[:2]:
            self.register(provider, cpus=8, ask="0.10", available=True)
        self.order_and_match(seed=1)  # one order of two shards, a lease on each provider

    @rule(ms=st.sampled_from([0, 100, 1_000, 4_000, 9_000, 21_000]))
    def tick(self, ms: int) -> None:
        self.now += ms

    @rule()
    def sabotage_next(self) -> None:
        self.sabotage = True

    @rule(who=st.sampled_from(CLIENTS + PROVIDERS), amount=amounts)
    def faucet(self, who: str, amount: Any) -> None:
        self.send(who, type="faucet", amount=amount)

    @rule(
        who=st.sampled_from(PROVIDERS),
        cpus=st.sampled_from([2, 4, 8, -1]),
        ask=st.sampled_from(["0.05", "0.10", "0.50"]),
        available=st.booleans(),
    )
    def register(self, who: str, cpus: int, ask: str, available: bool) -> None:
        inventory = {"gpus": [], "cpus": cpus, "memory_gb": 32, "disk_gb": 100}
        self.send(
            who,
            type="provider.register",
            inventory=inventory,
            asks={"cpu_core": ask},
            score=100,
            available=available,
        )

    @rule(who=st.sampled_from(PROVIDERS), amount=amounts)
    def stake(self, who: str, amount: Any) -> None:
        self.send(who, type="stake", amount=amount)

    @rule(who=st.sampled_from(PROVIDERS), amount=amounts)
    def unstake(self, who: str, amount: Any) -> None:
        self.send(who, type="unstake", amount=amount)

    @rule(who=st.sampled_from(PROVIDERS))
    def withdraw_unbonded(self, who: str) -> None:
        self.send(who, type="unbonded.withdraw")

    @rule(who=st.sampled_from(CLIENTS + PROVIDERS), amount=amounts)
    def withdraw(self, who: str, amount: Any) -> None:
        self.send(who, type="withdraw", amount=amount)

    @rule(
        who=st.sampled_from([*CLIENTS, PROVIDERS[0]]),
        shards=st.integers(min_value=1, max_value=3),
        price=st.sampled_from(["1 USDC", "0.02 USDC", "30 USDC"]),
        ttl=st.sampled_from([1, 30, 600, 600, 0]),
        variant=variants,
    )
    def order_create(self, who: str, shards: int, price: str, ttl: int, variant: str) -> None:
        spec: dict[str, Any] = {**SPEC, "shards": shards, "max_price_per_hour": price}
        extra: dict[str, Any] = {}
        if variant == "inputs":  # a sealed job's encrypted inputs; refused on any other
            extra["blobs"] = [SHA]
        elif variant == "pol":
            spec["verification"] = "pol"
        elif variant == "sealed":
            spec["privacy"] = "sealed"
        elif variant == "unknown_field":
            extra["colour"] = "red"
        self.send(who, type="order.create", **order_fields(spec), ttl_s=ttl, **extra)

    @rule(seed=st.integers(min_value=0, max_value=3))
    def order_and_match(self, seed: int) -> None:
        """A plain order matched at once: the common path, so runs reach leases often."""
        before = set(self.state.orders)
        self.order_create(CLIENTS[seed % 2], 1 + seed % 2, "1 USDC", 600, "plain")
        for order_id in sorted(set(self.state.orders) - before):
            self.market(type="match", order_id=order_id, seed=seed, offline=[])

    @rule(
        pick=picks,
        seed=st.integers(min_value=0, max_value=3),
        offline=st.lists(st.sampled_from(PROVIDERS), max_size=2, unique=True),
    )
    @precondition(lambda self: bool(self.state.orders))
    def match(self, pick: int, seed: int, offline: list[str]) -> None:
        self.market(type="match", order_id=self.order_id(pick), seed=seed, offline=offline)

    @rule(pick=picks, offset=st.sampled_from([0, 0, 0, -1, 1]), honest=st.booleans())
    @precondition(lambda self: bool(self.state.leases))
    def heartbeat(self, pick: int, offset: int, honest: bool) -> None:
        lease_id = self.lease_id(pick)
        lease = self.state.leases.get(lease_id)
        started = lease.started_at if lease is not None else T0
        k = max(0, (self.now - started) // INTERVAL_MS + offset)
        sig = MARKET.sign(challenge_message(lease_id, k)).hex()
        signer = self.provider_of(lease_id, honest)
        self.send(signer, type="heartbeat", lease_id=lease_id, interval=k, challenge=sig)

    @rule(
        pick=picks,
        outputs=st.booleans(),
        good_root=st.booleans(),
        failure=st.sampled_from([None, *sorted(FAILURE_FAULTS)]),
        honest=st.booleans(),
    )
    def receipt(
        self, pick: int, outputs: bool, good_root: bool, failure: str | None, honest: bool
    ) -> None:
        lease_id = self.lease_id(pick)
        files: list[dict[str, Any]] = [{"path": "out.txt", "sha256": SHA, "size": 3}]
        files = files if outputs else []
        root = root_of_files([(str(f["path"]), str(f["sha256"])) for f in files])
        body: dict[str, Any] = {
            "type": "receipt",
            "lease_id": lease_id,
            "exit_code": 0 if failure is None else 1,
            "outputs": files,
            "root": root if good_root else "00" * 32,
        }
        if failure is not None:
            body["failure"] = {"reason": failure, "fault": FAILURE_FAULTS[failure]}
        self.send(self.provider_of(lease_id, honest), **body)

    @rule(pick=picks, honest=st.booleans())
    @precondition(lambda self: bool(self.state.leases))
    def release(self, pick: int, honest: bool) -> None:
        lease_id = self.lease_id(pick)
        self.send(self.provider_of(lease_id, honest), type="lease.release", lease_id=lease_id)

    @rule(pick=picks)
    @precondition(lambda self: bool(self.state.leases))
    def lost(self, pick: int) -> None:
        self.market(type="lease.lost", lease_id=self.lease_id(pick))

    @rule(pick=picks, by_client=st.booleans())
    @precondition(lambda self: bool(self.state.orders))
    def cancel(self, pick: int, by_client: bool) -> None:
        order_id = self.order_id(pick)
        record = self.state.orders.get(order_id)
        signer = record.client if record is not None and by_client else PROVIDERS[1]
        self.send(signer, type="order.cancel", order_id=order_id)

    @rule(pick=picks)
    @precondition(lambda self: bool(self.state.orders))
    def expire(self, pick: int) -> None:
        self.market(type="order.expire", order_id=self.order_id(pick))

    # -- after every step ---------------------------------------------------------------------

    @invariant()
    def equals_a_fresh_replay_of_the_log(self) -> None:
        fresh = make_state()
        for t in self.log:
            fresh.apply(t)
        assert snapshot(self.state) == snapshot(fresh)
        books_balance(self.state)

    @invariant()
    def the_fleet_index_equals_one_rebuilt_from_the_records(self) -> None:
        """The index is derived data: ``_reindex`` after every change (and for every provider a
        rollback restored) keeps it equal to one built afresh, and clearing through it awards
        what a full scan awards."""
        assert index_content(self.state) == rebuilt_index(self.state)
        for record in self.state.orders.values():
            if record.status == "open" and record.unfilled:
                scan = self.state.clear(record, 7, indexed=False)
                found = self.state.clear(record, 7, indexed=True)
                assert found.awards == scan.awards, record.id


MarketMachine.TestCase.settings = settings(max_examples=20, stateful_step_count=30)
TestMarketState = MarketMachine.TestCase
