"""The engine's liveness checks: a suspicion becomes a challenge, a missed one a lost lease.

A provider whose feed dropped (process memory, :class:`Liveness`) or whose heartbeat is late
(ledger state) and that runs a lease is challenged with the reason; the challenge missed, its
leases are declared lost with the challenge's id; answered, nothing happens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pasar.api.txs import LeaseLost, LivenessChallenge
from pasar.core.presets import builtin_preset
from pasar.core.private_part import order_fields
from pasar.crypto.envelope import sign, verify
from pasar.crypto.identity import Identity
from pasar.market.chain import ChainBuilder
from pasar.market.engine import Engine
from pasar.market.liveness import Liveness
from pasar.market.liveness_checks import liveness_due
from pasar.market.service import MarketService
from pasar.market.store import SqlStore

MARKET = Identity.from_seed(bytes(32))
NOW = 1_800_000_000_000
SPEC = {"run": "true", "resources": {"cpus": 1}, "max_price_per_hour": "1 USDC",
        "max_duration": "1m"}  # fmt: skip


class Clocks:
    """The market's clock (ms) and the liveness's (s), moved together."""

    def __init__(self) -> None:
        self.ms = NOW

    def market(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000

    def advance(self, ms: int) -> None:
        self.ms += ms


def setup(tmp_path: Path) -> tuple[MarketService, Clocks, Identity, str]:
    clocks = Clocks()
    service = MarketService(
        store=SqlStore(f"sqlite:///{tmp_path / 'market.db'}"),
        identity=MARKET,
        preset=builtin_preset("pasar"),
        clock=clocks.market,
        devnet=True,
    )
    service.liveness = Liveness(15.0, clock=clocks.monotonic)
    provider, client = Identity.generate(), Identity.generate()
    submit(service, clocks, provider, type="provider.register",
           inventory={"gpus": [], "cpus": 4, "memory_gb": 8, "disk_gb": 50},
           asks={"cpu_core": "0.01 USDC"})  # fmt: skip
    submit(service, clocks, client, type="faucet", amount="10 USDC")
    service.liveness.heard(provider.account_id)
    order_id = submit(service, clocks, client, type="order.create", **order_fields(SPEC))[
        "order_id"
    ]
    Engine(service, ChainBuilder(service.store, MARKET, clocks.market)).run_once()  # the match
    (lease,) = service.state.orders[order_id].leases
    return service, clocks, provider, lease


def submit(service: MarketService, clocks: Clocks, who: Identity, **body: Any) -> dict[str, Any]:
    envelope = sign(body, who, market=MARKET.account_id, now_ms=clocks.ms)
    verified = verify(envelope, market=MARKET.account_id, now_ms=clocks.ms)
    return dict(service.submit(verified).result)


def due(service: MarketService, clocks: Clocks) -> list[Any]:
    with service.lock:
        return liveness_due(service.state, service.liveness, clocks.ms)


def test_a_dropped_feed_is_challenged_and_a_missed_challenge_loses_the_lease(
    tmp_path: Path,
) -> None:
    service, clocks, provider, lease = setup(tmp_path)
    with service.liveness.polling(provider.account_id) as poll:
        poll.dropped = True
    clocks.advance(500)
    assert due(service, clocks) == []  # within the reopen window
    clocks.advance(600)
    (challenge,) = due(service, clocks)
    assert isinstance(challenge, LivenessChallenge)
    assert challenge.provider == provider.account_id
    assert "feed connection dropped" in challenge.reason
    cid = service.submit_market(challenge).result["challenge_id"]
    assert due(service, clocks) == []  # challenged once, and not lost before the deadline
    clocks.advance(service.preset.timing.challenge_deadline_ms + 1)
    (lost,) = due(service, clocks)
    assert isinstance(lost, LeaseLost) and lost.lease_id == lease and lost.challenge_id == cid
    service.submit_market(lost)
    note = service.state.leases[lease].note
    assert service.state.leases[lease].status == "lost"
    assert note is not None and "missed a liveness challenge" in note and "dropped" in note


def test_a_provider_that_answers_keeps_its_lease(tmp_path: Path) -> None:
    service, clocks, provider, lease = setup(tmp_path)
    with service.liveness.polling(provider.account_id) as poll:
        poll.dropped = True
    clocks.advance(1_100)
    (challenge,) = due(service, clocks)
    cid = service.submit_market(challenge).result["challenge_id"]
    with service.liveness.polling(provider.account_id):  # it reopens its feed, sees, answers
        submit(service, clocks, provider, type="liveness.answer", challenge_id=cid)
        clocks.advance(service.preset.timing.challenge_deadline_ms + 1)
        assert due(service, clocks) == []
    assert service.state.leases[lease].status == "running"


def test_a_late_heartbeat_is_a_suspicion_too(tmp_path: Path) -> None:
    service, clocks, provider, lease = setup(tmp_path)
    with service.liveness.polling(provider.account_id):  # its feed is open all along
        interval_ms = service.preset.timing.heartbeat_interval_s * 1000
        clocks.advance(interval_ms - 1)
        assert due(service, clocks) == []  # interval 0's heartbeat may still come
        clocks.advance(1)
        (challenge,) = due(service, clocks)
    assert isinstance(challenge, LivenessChallenge)
    assert f"heartbeat for interval 0 of lease {lease} is late" in challenge.reason
