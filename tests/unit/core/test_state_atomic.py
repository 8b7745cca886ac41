"""State changes are all-or-nothing: a transaction that fails half-way, or even after its
handler did all its work, leaves the ledger *and* every record exactly as they were.

Before the record journal, a refused transaction rolled the ledger back but kept the record
changes made before the failure (a lease marked settled whose money never moved), so memory
drifted from the log until the next restart.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from state_snapshot import index_content, rebuilt_index, sabotaged, snapshot
from test_state import (
    ALICE,
    MARKET,
    P1,
    P2,
    SPEC,
    T0,
    conserved,
    make_state,
)
from test_state import tx as _tx
from test_tee_state import attest_body

from pasar.core.accounts import LedgerError
from pasar.core.errors import PasarError
from pasar.core.market_records import Tx
from pasar.core.private_part import order_fields
from pasar.core.state import TX_TYPES, MarketState
from pasar.core.timelock import challenge_message
from pasar.core.verify.replicate import draw_message
from pasar.crypto.merkle import root_of_files

BOB = "client-bob"
SHA = "ab" * 32
INVENTORY = {"gpus": [], "cpus": 8, "memory_gb": 32, "disk_gb": 100}


def tx(signer: str, at: int, **body: Any) -> Tx:
    """test_state's transaction with a digest unique in its first 16 digits (order ids)."""
    t = _tx(signer, at, **body)
    return dataclasses.replace(t, digest=hashlib.sha256(t.nonce.encode()).hexdigest())


def _register(provider: str, at: int, **extra: Any) -> Tx:
    body = {"inventory": INVENTORY, "asks": {"cpu_core": "0.50"}, "score": 100, **extra}
    return tx(provider, at, type="provider.register", **body)


def _beat(s: MarketState, lease: str, k: int, at: int) -> Tx:
    sig = MARKET.sign(challenge_message(lease, k)).hex()
    return tx(
        s.leases[lease].provider, at, type="heartbeat", lease_id=lease, interval=k, challenge=sig
    )


def _receipt(s: MarketState, lease: str, at: int) -> Tx:
    outputs = [{"path": "out.txt", "sha256": SHA, "size": 3}]
    root = root_of_files([("out.txt", SHA)])
    provider = s.leases[lease].provider
    return tx(provider, at, type="receipt", lease_id=lease, exit_code=0, outputs=outputs, root=root)


V1, V2 = "verifier-1", "verifier-2"


def _scenario() -> list[Callable[[MarketState], Tx]]:
    """One transaction of every type, each valid in the state the previous ones leave."""
    m = MARKET.account_id
    two = {**SPEC, "shards": 2}

    def order(s: MarketState, n: int) -> str:
        return sorted(s.orders, key=lambda o: s.orders[o].created_at)[n]

    def lease(s: MarketState, n: int) -> str:
        return sorted(s.leases)[n]

    def run(s: MarketState, o: int, n: int) -> str:  # the n-th lease of the o-th order
        return s.orders[order(s, o)].leases[n]

    def shard(s: MarketState, o: int, n: int) -> int:
        return s.leases[run(s, o, n)].shard

    approve = {**SPEC, "shards": 2, "verification": "approve"}

    checked = {**SPEC, "verification": "replicate:1"}

    sealed = order_fields({**SPEC, "privacy": "sealed"})
    gang = {**SPEC, "num_nodes": 2}

    def newest_lease(s: MarketState) -> str:
        return max(s.leases.values(), key=lambda x: (x.started_at, x.id)).id

    def newest_check(s: MarketState) -> str:
        return max(s.checks.values(), key=lambda c: (c.assigned_at, c.id)).id

    def deadline(s: MarketState) -> int:
        return max(c.deadline for c in s.checks.values())

    def draw(s: MarketState) -> str:
        held = s.leases[newest_lease(s)]
        assert held.receipt_digest is not None
        return MARKET.sign(draw_message(held.id, held.receipt_digest)).hex()

    return [
        lambda s: tx(ALICE, T0, type="faucet", amount="100 USDC"),
        lambda s: tx(P1, T0, type="faucet", amount="100 USDC"),
        lambda s: _register(P1, T0),
        lambda s: _register(P2, T0 + 1),
        lambda s: tx(P1, T0 + 2, type="stake", amount="10 USDC"),
        lambda s: tx(P1, T0 + 3, type="unstake", amount="4 USDC"),
        lambda s: tx(ALICE, T0 + 10, type="order.create", **order_fields(two)),
        lambda s: tx(m, T0 + 11, type="match", order_id=order(s, 0), seed=1),
        lambda s: _beat(s, lease(s, 0), 0, T0 + 100),
        lambda s: _beat(s, lease(s, 1), 0, T0 + 200),
        lambda s: _receipt(s, lease(s, 0), T0 + 4_000),
        lambda s: tx(
            s.leases[lease(s, 1)].provider, T0 + 4_500, type="lease.release", lease_id=lease(s, 1)
        ),
        lambda s: tx(m, T0 + 5_000, type="match", order_id=order(s, 0), seed=2),
        lambda s: tx(
            m,
            T0 + 5_100,
            type="liveness.challenge",
            provider=s.leases[lease(s, 2)].provider,
            reason="its feed connection dropped",
        ),
        lambda s: tx(
            s.leases[lease(s, 2)].provider,
            T0 + 5_200,
            type="liveness.answer",
            challenge_id=f"{s.leases[lease(s, 2)].provider}.live-{T0 + 5_100}",
        ),
        lambda s: tx(m, T0 + 40_000, type="lease.lost", lease_id=lease(s, 2)),
        lambda s: tx(ALICE, T0 + 41_000, type="order.cancel", order_id=order(s, 0)),
        lambda s: tx(ALICE, T0 + 42_000, type="order.create", **order_fields(SPEC), ttl_s=1),
        lambda s: tx(m, T0 + 43_000, type="order.expire", order_id=order(s, 1)),
        lambda s: tx(P1, T0 + 44_000, type="unbonded.withdraw"),
        lambda s: tx(P1, T0 + 45_000, type="withdraw", amount="0.000001 USDC"),
        lambda s: tx(m, T0 + 46_000, type="capacity.challenge", provider=P2, seed=7),
        lambda s: tx(
            P2, T0 + 46_500, type="capacity.answer", challenge_id=_open(s, P2), sha256=SHA
        ),
        lambda s: tx(
            m, T0 + 47_000, type="capacity.verdict", challenge_id=_open(s, P2), result="failed"
        ),
        lambda s: tx(m, T0 + 47_500, **attest_body(P2, T0 + 47_000)),
        # a checked order: verifiers, the market's draw, checks, an expiry and a verdict
        lambda s: tx(V1, T0 + 56_000, type="verifier.register"),
        lambda s: tx(V2, T0 + 56_000, type="verifier.register", operator="v2 inc"),
        lambda s: tx(ALICE, T0 + 57_000, type="order.create", **order_fields(checked)),
        lambda s: tx(m, T0 + 57_001, type="match", order_id=order(s, 2), seed=1),
        lambda s: _beat(s, newest_lease(s), 0, T0 + 57_100),
        lambda s: _receipt(s, newest_lease(s), T0 + 58_000),
        lambda s: tx(m, T0 + 58_001, type="check.draw", lease_id=newest_lease(s), draw=draw(s)),
        lambda s: tx(m, T0 + 58_002, type="check.assign", lease_id=newest_lease(s), seed=0),
        lambda s: tx(m, deadline(s), type="check.expire", check_id=newest_check(s)),
        lambda s: tx(m, deadline(s), type="check.assign", lease_id=newest_lease(s), seed=0),
        lambda s: tx(
            s.checks[newest_check(s)].verifier,
            deadline(s) - 1,
            type="check.verdict",
            check_id=newest_check(s),
            outputs=[{"path": "out.txt", "sha256": SHA, "size": 3}],
            root=root_of_files([("out.txt", SHA)]),
        ),
        # a whistleblower challenges the settled result with a bond
        lambda s: tx(V1, deadline(s), type="faucet", amount="5 USDC"),
        lambda s: tx(
            V1,
            deadline(s),
            type="challenge.open",
            lease_id=newest_lease(s),
            claim="the output is not what the job computes",
            bond="1 USDC",
        ),
        # verification: approve (the state's preset has a 60 s window: see _approving)
        lambda s: _register(P1, deadline(s) + 1_000),  # back after a lost lease
        lambda s: _register(P2, deadline(s) + 1_000),
        lambda s: tx(ALICE, deadline(s) + 1_000, type="order.create", **order_fields(approve)),
        lambda s: tx(m, deadline(s) + 1_001, type="match", order_id=order(s, 3), seed=3),
        lambda s: _receipt(s, run(s, 3, 0), deadline(s) + 2_000),
        lambda s: _receipt(s, run(s, 3, 1), deadline(s) + 2_000),
        lambda s: tx(
            ALICE,
            deadline(s) + 3_000,
            type="result.approve",
            order_id=order(s, 3),
            shard=shard(s, 3, 0),
        ),
        lambda s: tx(
            ALICE,
            deadline(s) + 3_000,
            type="result.reject",
            order_id=order(s, 3),
            shard=shard(s, 3, 1),
            reason="wrong colours",
        ),
        lambda s: tx(m, deadline(s) + 3_001, type="match", order_id=order(s, 3), seed=4),
        lambda s: _receipt(s, run(s, 3, 2), deadline(s) + 4_000),
        lambda s: tx(m, deadline(s) + 64_000, type="result.auto_approve", lease_id=run(s, 3, 2)),
        # a sealed job: its provider announces a lease key, its client seals the data key to it
        lambda s: tx(ALICE, deadline(s) + 65_000, type="order.create", **sealed, blobs=[SHA]),
        lambda s: tx(m, deadline(s) + 65_001, type="match", order_id=order(s, 4), seed=5),
        lambda s: tx(
            s.leases[run(s, 4, 0)].provider,
            deadline(s) + 65_002,
            type="lease.accept",
            lease_id=run(s, 4, 0),
            key="ab" * 32,
        ),
        lambda s: tx(
            ALICE,
            deadline(s) + 65_003,
            type="key.seal",
            lease_id=run(s, 4, 0),
            recipient=s.leases[run(s, 4, 0)].provider,
            sealed_key="cd" * 80,
        ),
        # a two-node cluster takes a step on its head (pasar cluster exec)
        lambda s: tx(ALICE, deadline(s) + 66_000, type="order.create", **order_fields(gang)),
        lambda s: tx(m, deadline(s) + 66_001, type="match", order_id=order(s, 5), seed=6),
        lambda s: tx(
            ALICE,
            deadline(s) + 66_002,
            type="cluster.exec",
            order_id=order(s, 5),
            step=1,
            command=SHA,
        ),
    ]


def _approving(s: MarketState) -> MarketState:
    """``s`` with a 60 s approval window on its preset (the pasar preset has none)."""
    rules = dataclasses.replace(s.preset.verification, approve_window_s=60, max_reruns=3)
    s.preset = dataclasses.replace(s.preset, verification=rules)
    return s


def _open(s: MarketState, provider: str) -> str:
    open_id = s.providers[provider].capacity.open
    assert open_id is not None
    return open_id


def test_every_transaction_type_undoes_all_its_work_when_it_fails_at_the_end() -> None:
    s = _approving(make_state())
    seen: set[str] = set()
    for build in _scenario():
        t = build(s)
        before = snapshot(s)
        with sabotaged(t.type), pytest.raises(PasarError) as err:
            s.apply(t)
        assert err.value.code == "injected", (t.type, err.value.to_dict())
        assert snapshot(s) == before, f"a failed {t.type} left changes behind"
        assert index_content(s) == rebuilt_index(s), f"a failed {t.type} left the index off"
        s.apply(t)  # and the same transaction, not sabotaged, still goes through
        assert snapshot(s) != before
        assert index_content(s) == rebuilt_index(s), f"{t.type} left the index off"
        seen.add(t.type)
        conserved(s)
    # bids: tested on an auction market below; disputes on a gensyn market (test_disputes.py)
    missing = set(TX_TYPES) - seen - {"bid"} - {t for t in TX_TYPES if t.startswith("dispute.")}
    assert not missing, f"add a transaction of each new type to the scenario: {missing}"


def test_a_failed_bid_leaves_the_window_as_it_was() -> None:
    s = make_state("akash")
    s.apply(tx(ALICE, T0, type="faucet", amount="10 USDC"))
    for p in (P1, P2):
        s.apply(_register(p, T0))
    order_id = s.apply(tx(ALICE, T0, type="order.create", **order_fields(SPEC))).result["order_id"]
    bid = tx(P1, T0 + 10, type="bid", order_id=order_id, price="0.40")
    before = snapshot(s)
    with sabotaged("bid"), pytest.raises(PasarError):
        s.apply(bid)
    assert snapshot(s) == before
    window = s.orders[order_id].window
    assert window is not None and window.bids == {}


def test_a_refused_second_lease_start_undoes_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    s = make_state()
    s.apply(tx(ALICE, T0, type="faucet", amount="10 USDC"))
    s.apply(_register(P1, T0))
    s.apply(_register(P2, T0))  # a book match gives each provider one lease of the two
    order_id = s.apply(
        tx(ALICE, T0, type="order.create", **order_fields({**SPEC, "shards": 2}))
    ).result["order_id"]
    real = s.ledger.escrow_to_lease
    calls: list[str] = []

    def second_refused(order: str, lease: str, amount: Any) -> Any:
        calls.append(lease)
        if len(calls) == 2:
            raise LedgerError("injected", code="overdraft")
        return real(order, lease, amount)

    monkeypatch.setattr(s.ledger, "escrow_to_lease", second_refused)
    before = snapshot(s)
    with pytest.raises(LedgerError):
        s.apply(tx(MARKET.account_id, T0 + 1, type="match", order_id=order_id, seed=1))
    assert len(calls) == 2  # the first lease had started when the second was refused
    assert snapshot(s) == before
    assert not s.leases and not s.providers[P1].running and not s.providers[P2].running
    assert index_content(s) == rebuilt_index(s)  # both providers' capacity is free again
    assert s.orders[order_id].free_shards == [0, 1] and s.orders[order_id].status == "open"
    conserved(s)


def test_a_ledger_refusal_after_a_lease_was_settled_undoes_the_settlement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = make_state()
    s.apply(tx(ALICE, T0, type="faucet", amount="10 USDC"))
    s.apply(_register(P1, T0))
    order_id = s.apply(tx(ALICE, T0, type="order.create", **order_fields(SPEC))).result["order_id"]
    (lease,) = s.apply(tx(MARKET.account_id, T0, type="match", order_id=order_id, seed=1)).result[
        "leases"
    ]
    s.apply(_beat(s, lease, 0, T0 + 100))

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise LedgerError("injected", code="overdraft")

    # a release settles the lease, then re-escrows what is left for the re-queued shard
    monkeypatch.setattr(s.ledger, "escrow_order", refused)
    before = snapshot(s)
    with pytest.raises(LedgerError):
        s.apply(tx(P1, T0 + 3_000, type="lease.release", lease_id=lease))
    assert snapshot(s) == before
    assert s.leases[lease].status == "running" and lease in s.providers[P1].running
    assert s.leases[lease].charges is None and s.orders[order_id].free_shards == []
    conserved(s)


def test_a_rolled_back_provider_is_handed_to_the_restore_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = make_state()
    restored: list[frozenset[str]] = []
    monkeypatch.setattr(s, "_restored_providers", restored.append)
    with sabotaged("provider.register"), pytest.raises(PasarError):
        s.apply(_register(P1, T0))
    assert P1 not in s.providers
    assert restored == [frozenset({P1})]
    s.apply(tx(ALICE, T0, type="faucet", amount="10 USDC"))  # touches no provider
    with sabotaged("faucet"), pytest.raises(PasarError):
        s.apply(tx(ALICE, T0, type="faucet", amount="1 USDC"))
    assert restored[-1] == frozenset()


def test_a_rolled_back_registration_leaves_no_trace_in_the_fleet_index() -> None:
    s = make_state()
    s.apply(_register(P2, T0))
    with sabotaged("provider.register"), pytest.raises(PasarError):
        s.apply(_register(P1, T0))
    assert P1 not in s.providers and len(s.index) == 1
    assert index_content(s) == rebuilt_index(s)
    with sabotaged("provider.register"), pytest.raises(PasarError):  # an update undone
        s.apply(_register(P2, T0 + 1, asks={"cpu_core": "0.10"}))
    assert index_content(s) == rebuilt_index(s)
    s.apply(_register(P1, T0 + 2))  # registered for real, it is last in the scan's order
    assert index_content(s)["rank_order"] == [P2, P1] == list(s.providers)


def test_a_failed_receipt_forgets_the_blobs_it_named() -> None:
    s = make_state()
    s.apply(tx(ALICE, T0, type="faucet", amount="10 USDC"))
    s.apply(_register(P1, T0))
    order_id = s.apply(tx(ALICE, T0, type="order.create", **order_fields(SPEC))).result["order_id"]
    (lease,) = s.apply(tx(MARKET.account_id, T0, type="match", order_id=order_id, seed=1)).result[
        "leases"
    ]
    with sabotaged("receipt"), pytest.raises(PasarError):
        s.apply(_receipt(s, lease, T0 + 1_000))
    assert SHA not in s.blob_orders  # nobody may read an output no receipt was accepted for
    assert s.leases[lease].status == "running" and s.leases[lease].receipt is None
