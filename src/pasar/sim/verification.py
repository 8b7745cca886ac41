"""A mixed fleet under one verification policy, on the real state machine and a virtual clock.

Why simulate: the verification figures (how often a cheater is caught, whether an honest
party is ever slashed, what checking costs the client) need hundreds of shards, which real
sandboxes on a small machine take minutes to run. Every decision here is made by the same
code a market runs — :class:`~pasar.core.state.MarketState` applying signed-shaped
transactions (the market's draws are real Ed25519 signatures) — only the work is not done:
an honest party's result is the true root of its shard, a cheater's a wrong one with chance
``cheat_rate`` per lease. ``benchmarks/bench_verification.py`` prints the figures;
``tests/unit/sim`` holds them to the policies' promises.

The fleet: ``honest`` providers and one cheater (the cheapest, so it wins whatever it may
take), ``verifiers`` honest verifiers, one client sending ``shards`` one-shard orders. Each
lease beats once, runs ``job_s`` virtual seconds and sends its receipt; the market draws,
assigns checks (each re-run also takes ``job_s``), and verdicts come back until every order
settles.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from pasar.core.accounts import LedgerAccount
from pasar.core.check_handlers import verification_due
from pasar.core.market_records import Tx
from pasar.core.money import Money
from pasar.core.presets import builtin_preset
from pasar.core.private_part import order_fields
from pasar.core.state import MarketState
from pasar.core.timelock import challenge_message
from pasar.crypto.identity import Identity, verify_signature
from pasar.crypto.merkle import root_of_files

T0 = 1_700_000_000_000
CHEATER = "provider-cheat"
CLIENT = "client"


@dataclass(frozen=True)
class FleetConfig:
    policy: str = "replicate:0.1"
    preset: str = "pasar"  # approve needs a preset with an approval window: render
    shards: int = 200
    honest: int = 3
    verifiers: int = 3
    cheat_rate: float = 0.5
    job_s: int = 10
    seed: int = 1
    stake: str = "20"


@dataclass
class FleetResult:
    """What happened, counted from the ledger and the records afterwards."""

    cheated: int = 0  # leases whose result was wrong
    caught: int = 0  # of those, found wrong (lease rejected)
    false_slashes: int = 0  # slashes of an honest provider or verifier
    cheater_slashed: Money | None = None
    client_spent: Money | None = None  # what the client paid in all (work, fees, checks)
    settle_s: list[float] = field(default_factory=list)  # receipt → paid, virtual seconds
    wrong_results_paid: int = 0  # wrong results that were settled (paid)
    balanced: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "cheated": self.cheated,
            "caught": self.caught,
            "detection_rate": round(self.caught / self.cheated, 4) if self.cheated else None,
            "false_slashes": self.false_slashes,
            "wrong_results_paid": self.wrong_results_paid,
            "client_spent": None if self.client_spent is None else self.client_spent.to_json(),
            "settle_p50_s": median(self.settle_s) if self.settle_s else None,
            "books_balance": self.balanced,
        }


class _Fleet:
    def __init__(self, cfg: FleetConfig) -> None:
        self.cfg = cfg
        self.market = Identity.from_seed(hashlib.sha256(b"sim-market").digest())
        self.state = MarketState(
            builtin_preset(cfg.preset),
            market_id=self.market.account_id,
            verify_market_signature=lambda m, s: verify_signature(self.market.public_key, m, s),
            devnet=True,
        )
        self.rng = random.Random(cfg.seed)
        self.now = T0
        self.n = 0
        self.wrong: set[str] = set()  # leases whose receipt carried a wrong root
        self.result = FleetResult()
        self.receipt_at: dict[str, int] = {}
        self.currency = self.state.preset.currency

    def send(self, signer: str, **body: Any) -> dict[str, Any]:
        self.n += 1
        nonce = f"{self.n:032x}"
        digest = hashlib.sha256(nonce.encode()).hexdigest()
        self.now += 1
        tx = Tx(body["type"], body, signer, nonce, self.now, digest, self.now)
        return self.state.apply(tx).result

    def market_tx(self, **body: Any) -> dict[str, Any]:
        return self.send(self.market.account_id, **body)

    def setup(self) -> None:
        cfg, cur = self.cfg, self.currency
        self.send(CLIENT, type="faucet", amount=f"5000 {cur}")
        providers = [CHEATER] + [f"provider-{i}" for i in range(cfg.honest)]
        for i, p in enumerate(providers):
            self.send(
                p,
                type="provider.register",
                inventory={"gpus": [], "cpus": 64, "memory_gb": 256, "disk_gb": 1000},
                asks={"cpu_core": f"0.{10 + i:02d}"},  # the cheater asks least
                rate_per_score_hour=f"0.00{1 + i} {cur}",  # ... per score-hour too (render)
                score=100,
            )
            self.send(p, type="faucet", amount=f"100 {cur}")
            self.send(p, type="stake", amount=f"{cfg.stake} {cur}")
        for i in range(cfg.verifiers):
            v = f"verifier-{i}"
            self.send(v, type="verifier.register")
            self.send(v, type="faucet", amount=f"100 {cur}")
            self.send(v, type="stake", amount=f"{cfg.stake} {cur}")

    @staticmethod
    def true_root(order_id: str, shard: int) -> tuple[str, str]:
        sha = hashlib.sha256(f"{order_id}/{shard}".encode()).hexdigest()
        return sha, root_of_files([("out.txt", sha)])

    def run(self) -> FleetResult:
        self.setup()
        spec = {
            "run": "python job.py",
            "resources": {"cpus": 1},
            "max_price_per_hour": f"1 {self.currency}",
            "max_duration": "1h",
            "verification": self.cfg.policy,
        }
        spent_before = self._client_total()
        for _ in range(self.cfg.shards):
            order = self.send(CLIENT, type="order.create", **order_fields(spec))["order_id"]
            self._drive(order)
        self.result.client_spent = spent_before - self._client_total()
        self._count()
        return self.result

    def _client_total(self) -> Money:
        ledger = self.state.ledger
        return ledger.balance(LedgerAccount.client(CLIENT), self.currency)

    def _drive(self, order_id: str) -> None:
        """Run one order until it is over: leases, receipts, draws, checks, verdicts."""
        for _ in range(50):
            record = self.state.orders[order_id]
            if record.status == "open":
                self.market_tx(type="match", order_id=order_id, seed=self.rng.randrange(1 << 62))
                if self.state.orders[order_id].status == "open":
                    return  # nobody may take it (every provider excluded): it will expire
            for lease_id in list(record.leases):
                lease = self.state.leases[lease_id]
                if lease.status == "running":
                    self._work(lease_id)
            over = self.state.orders[order_id].status in ("done", "expired", "cancelled")
            if not self._verify() and over:
                return
        raise RuntimeError(f"order {order_id} did not settle")

    def _work(self, lease_id: str) -> None:
        lease = self.state.leases[lease_id]
        sig = self.market.sign(challenge_message(lease_id, 0)).hex()
        self.send(lease.provider, type="heartbeat", lease_id=lease_id, interval=0, challenge=sig)
        self.now += self.cfg.job_s * 1000
        sha, root = self.true_root(lease.order_id, lease.shard)
        if lease.provider == CHEATER and self.rng.random() < self.cfg.cheat_rate:
            sha = hashlib.sha256(sha.encode()).hexdigest()  # a made-up output
            root = root_of_files([("out.txt", sha)])
            self.wrong.add(lease_id)
        outputs = [{"path": "out.txt", "sha256": sha, "size": 64}]
        self.send(lease.provider, type="receipt", lease_id=lease_id, exit_code=0,
                  outputs=outputs, root=root)  # fmt: skip
        self.receipt_at[lease_id] = self.now

    def _judge(self) -> bool:
        """Under ``approve``: a diligent client checks each held result against what it knows
        the shard should produce, approves the right ones and rejects the wrong ones."""
        judged = False
        for lease in list(self.state.leases.values()):
            if lease.status != "held" or lease.draw is not None or lease.held_until is None:
                continue
            if lease.id in self.wrong:
                body = {"shard": lease.shard, "reason": "the output is not the shard's"}
                self.send(CLIENT, type="result.reject", order_id=lease.order_id, **body)
            else:
                self.send(CLIENT, type="result.approve", order_id=lease.order_id, shard=lease.shard)
            judged = True
        return judged

    def _verify(self) -> bool:
        """One round of the engine's verification work; False when there was none."""
        if self._judge():
            return True
        to_draw, to_assign, _expired = verification_due(self.state, self.now)
        for lease_id in to_draw:
            digest = self.state.leases[lease_id].receipt_digest or ""
            from pasar.core.verify.replicate import draw_message

            draw = self.market.sign(draw_message(lease_id, digest)).hex()
            self.market_tx(type="check.draw", lease_id=lease_id, draw=draw)
        assigned = []
        for lease_id, _challenge in to_assign:
            answer = self.market_tx(
                type="check.assign", lease_id=lease_id, seed=self.rng.randrange(1 << 62)
            )
            assigned.append(answer["check_id"])
        if assigned:
            self.now += self.cfg.job_s * 1000  # verifiers re-run in parallel
        for check_id in assigned:
            check = self.state.checks[check_id]
            lease = self.state.leases[check.lease_id]
            sha, root = self.true_root(lease.order_id, lease.shard)
            outputs = [{"path": "out.txt", "sha256": sha, "size": 64}]
            self.send(check.verifier, type="check.verdict", check_id=check_id,
                      outputs=outputs, root=root)  # fmt: skip
        return bool(to_draw or assigned)

    def _count(self) -> None:
        r = self.result
        state = self.state
        r.cheated = len(self.wrong)
        for lease_id in self.wrong:
            lease = state.leases[lease_id]
            if lease.status == "rejected":
                r.caught += 1
            elif lease.status == "settled":
                r.wrong_results_paid += 1
        for lease_id, lease in state.leases.items():
            if lease.status == "settled" and lease.settled_at is not None:
                r.settle_s.append((lease.settled_at - self.receipt_at[lease_id]) / 1000)
        honest = [p for p in state.providers if p != CHEATER] + list(state.verifiers)
        stake = Money.parse(f"{self.cfg.stake} {self.currency}")
        r.false_slashes = sum(state.stake_of(a) < stake for a in honest)
        r.cheater_slashed = stake - state.stake_of(CHEATER)
        r.balanced = _balanced(state.balances_summary(), self.currency)


def _balanced(balances: Mapping[str, str], currency: str) -> bool:
    total = sum(Money.parse(v).micros for k, v in balances.items() if k.endswith(currency))
    return total == 0


def run_fleet(cfg: FleetConfig) -> FleetResult:
    """Run the fleet under ``cfg`` to the end (every order settled or expired)."""
    return _Fleet(cfg).run()
