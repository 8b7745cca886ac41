"""The market state machine, driven transaction by transaction (pure: no server, no clock)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pytest

from pasar.core.accounts import RESERVE, TREASURY, LedgerAccount
from pasar.core.errors import PasarError
from pasar.core.market_records import Tx
from pasar.core.money import Money
from pasar.core.presets import builtin_preset
from pasar.core.private_part import order_fields
from pasar.core.state import MarketState
from pasar.core.timelock import challenge_message
from pasar.core.verify import BUILDERS
from pasar.crypto.identity import Identity, verify_signature

MARKET = Identity.from_seed(bytes(32))
ALICE = "client-alice"
P1, P2, P3 = "prov-1", "prov-2", "prov-3"
T0 = 1_700_000_000_000
_nonces = itertools.count()


def usdc(text: str) -> Money:
    return Money.parse(f"{text} USDC")


def make_state(preset: str = "pasar", *, devnet: bool = True) -> MarketState:
    return MarketState(
        builtin_preset(preset),
        market_id=MARKET.account_id,
        verify_market_signature=lambda m, s: verify_signature(MARKET.public_key, m, s),
        devnet=devnet,
    )


def tx(signer: str, ts: int, *, stamp: int | None = None, **body: Any) -> Tx:
    """A transaction signed at ``ts`` and stamped by the market at ``stamp`` (default: ``ts``)."""
    n = next(_nonces)
    return Tx(
        type=body["type"],
        body=body,
        signer=signer,
        nonce=f"{n:032x}",
        ts=ts,
        digest=f"{n:064x}",
        at=ts if stamp is None else stamp,
    )


def send(state: MarketState, signer: str, ts: int, **body: Any) -> dict[str, Any]:
    return state.apply(tx(signer, ts, **body)).result


def market(state: MarketState, ts: int, **body: Any) -> dict[str, Any]:
    return send(state, MARKET.account_id, ts, **body)


def register(state: MarketState, provider: str, *, cpu_ask: str, cpus: int = 8) -> None:
    send(
        state,
        provider,
        T0,
        type="provider.register",
        inventory={"gpus": [], "cpus": cpus, "memory_gb": 32, "disk_gb": 100},
        asks={"cpu_core": cpu_ask},
        score=100,
    )


def heartbeat(state: MarketState, lease: Mapping[str, Any] | str, k: int, ts: int) -> None:
    lease_id = lease if isinstance(lease, str) else lease["id"]
    provider = state.leases[lease_id].provider
    sig = MARKET.sign(challenge_message(lease_id, k)).hex()
    send(state, provider, ts, type="heartbeat", lease_id=lease_id, interval=k, challenge=sig)


SPEC = {
    "name": "hello",
    "run": "echo hi",
    "resources": {"cpus": 2},
    "max_price_per_hour": "1 USDC",
    "max_duration": "1h",
}


def conserved(state: MarketState) -> None:
    assert state.ledger.circulating("USDC") == state.ledger.minted("USDC") - state.ledger.burned(
        "USDC"
    )
    total = sum(b.amount.micros for b in state.ledger.balances() if str(b.account) != "mint")
    assert total == state.ledger.minted("USDC").micros - state.ledger.burned("USDC").micros


def test_book_order_runs_and_settles_on_verified_seconds() -> None:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpu_ask="0.10")  # 2 cores -> 0.20 USDC/h
    register(s, P2, cpu_ask="0.05")  # 2 cores -> 0.10 USDC/h: the cheapest wins
    order_id = send(s, ALICE, T0 + 1, type="order.create", **order_fields(SPEC))["order_id"]
    escrow = s.ledger.balance(LedgerAccount.order_escrow(order_id), "USDC")
    assert escrow == usdc("1")  # 1 USDC/h x 1 h, no client-side fees on pasar
    leases = market(s, T0 + 2, type="match", order_id=order_id, seed=7)["leases"]
    assert len(leases) == 1
    lease = s.leases[leases[0]]
    assert lease.provider == P2 and lease.price_per_hour == usdc("0.10")
    assert s.orders[order_id].status == "running"
    assert s.orders[order_id].reasons[P1] == "ask 0.20 > winning ask 0.10"  # the loser is told why
    # heartbeats for intervals 0..2 (5 s each on the pasar preset), then the receipt at 14 s
    for k in range(3):
        heartbeat(s, lease.id, k, lease.started_at + k * 5000 + 100)
    result = send(
        s,
        P2,
        lease.started_at + 14_000,
        type="receipt",
        lease_id=lease.id,
        exit_code=0,
        outputs=[],
        root=_empty_root(),
    )
    assert result["billed_seconds"] == 14  # min(3 beats x 5 s, 14 s wall)
    billed = usdc("0.10").scale(14, 3600)  # 388 micros
    assert result["billed"] == billed.to_json()
    take = billed.scale(builtin_preset("pasar").fee_schedule().take_rate)
    assert s.ledger.balance(LedgerAccount.earnings(P2), "USDC") == billed - take
    assert s.ledger.balance(TREASURY, "USDC") + s.ledger.balance(RESERVE, "USDC") == take
    assert s.ledger.balance(LedgerAccount.client(ALICE), "USDC") == usdc("10") - billed
    assert s.orders[order_id].status == "done"
    conserved(s)


def _empty_root() -> str:
    from pasar.crypto.merkle import root_of_files

    return root_of_files([])


def test_unheartbeated_lease_bills_nothing_and_is_lost_then_requeued() -> None:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpu_ask="0.05")
    register(s, P2, cpu_ask="0.10")
    order_id = send(s, ALICE, T0, type="order.create", **order_fields(SPEC))["order_id"]
    (first,) = market(s, T0 + 1, type="match", order_id=order_id, seed=1)["leases"]
    assert s.leases[first].provider == P1
    heartbeat(s, first, 0, T0 + 1000)
    # grace = 3 intervals of 5 s: not lost at 19 s, lost in interval 4 (20 s..)
    assert s.overdue_leases(T0 + 1 + 19_000) == []
    assert s.overdue_leases(T0 + 1 + 20_000) == [first]
    with pytest.raises(PasarError) as early:
        market(s, T0 + 1 + 19_000, type="lease.lost", lease_id=first)
    assert early.value.code == "too_early"
    result = market(s, T0 + 1 + 20_000, type="lease.lost", lease_id=first)
    assert result["requeued"]
    assert s.ledger.balance(LedgerAccount.earnings(P1), "USDC") == usdc("0")  # paid nothing
    assert s.providers[P1].reputation.score < s.providers[P2].reputation.score
    assert s.orders[order_id].status == "open"
    assert s.ledger.balance(LedgerAccount.order_escrow(order_id), "USDC") == usdc("1")
    assert s.leases[first].rerun_escrow == usdc("1")  # its bill says so, not "refund"
    # the re-queued job goes to another provider: the one that vanished takes no new work
    (second,) = market(s, T0 + 30_000, type="match", order_id=order_id, seed=2)["leases"]
    assert s.leases[second].provider == P2
    assert "gone since it lost a lease" in s.orders[order_id].reasons[P1]
    conserved(s)


def test_cancel_bills_verified_seconds_and_refunds_the_rest() -> None:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpu_ask="0.50")  # 1 USDC/h for 2 cores
    order_id = send(s, ALICE, T0, type="order.create", **order_fields(SPEC))["order_id"]
    (lease,) = market(s, T0, type="match", order_id=order_id, seed=3)["leases"]
    heartbeat(s, lease, 0, T0 + 100)
    heartbeat(s, lease, 1, T0 + 5_100)
    with pytest.raises(PasarError) as other:
        send(s, P1, T0 + 6_000, type="order.cancel", order_id=order_id)
    assert other.value.status == 403
    result = send(s, ALICE, T0 + 60_000, type="order.cancel", order_id=order_id)
    assert result["billed"] == usdc("1").scale(10, 3600).to_json()  # 2 beats x 5 s
    assert s.leases[lease].status == "cancelled"
    assert s.orders[order_id].status == "cancelled"
    conserved(s)


def test_auction_window_closes_early_and_cheapest_score_wins() -> None:
    s = make_state("akash")
    s.ledger.mint(ALICE, usdc("10"))
    for p in (P1, P2, P3):
        register(s, p, cpu_ask="0.10")
        s.ledger.mint(p, usdc("1"))  # akash: a bid holds a deposit (core/bid_deposits.py)
    order_id = send(s, ALICE, T0, type="order.create", **order_fields(SPEC))["order_id"]
    window = s.orders[order_id].window
    assert window is not None and window.invited == {P1, P2, P3}
    with pytest.raises(PasarError) as early:
        market(s, T0 + 10, type="match", order_id=order_id, seed=1)
    assert early.value.code == "window_open"
    send(s, P1, T0 + 20, type="bid", order_id=order_id, price="0.90")
    send(s, P2, T0 + 30, type="bid", order_id=order_id, price="0.40")
    with pytest.raises(PasarError) as dup:
        send(s, P2, T0 + 31, type="bid", order_id=order_id, price="0.30")
    assert dup.value.code == "duplicate_bid"
    send(s, P3, T0 + 40, type="bid", order_id=order_id, price="1.50")  # above max 1.00
    assert window.ready(T0 + 41)  # everyone answered: no need to wait the 5 s window
    (lease,) = market(s, T0 + 41, type="match", order_id=order_id, seed=1)["leases"]
    assert s.leases[lease].provider == P2
    assert s.leases[lease].price_per_hour == usdc("0.40")  # akash: first price
    assert "> max" in s.orders[order_id].reasons[P3]


def test_expiry_refunds_unmatched_escrow_with_reasons() -> None:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpu_ask="0.05", cpus=1)  # too small for 2 CPUs
    spec = {**SPEC, "resources": {"cpus": 2}}
    order_id = send(s, ALICE, T0, type="order.create", **order_fields(spec), ttl_s=60)["order_id"]
    result = market(s, T0 + 1, type="match", order_id=order_id, seed=1)
    assert result["leases"] == []
    assert "needs 2 CPUs, has 1" in s.orders[order_id].reasons[P1]
    assert s.expirable_orders(T0 + 59_999) == []
    assert s.expirable_orders(T0 + 60_000) == [order_id]
    market(s, T0 + 60_000, type="order.expire", order_id=order_id)
    assert s.orders[order_id].status == "expired"
    assert s.ledger.balance(LedgerAccount.client(ALICE), "USDC") == usdc("10")
    conserved(s)


def test_shards_fill_partially_across_providers() -> None:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpu_ask="0.05", cpus=4)  # room for 2 shards of 2 CPUs
    register(s, P2, cpu_ask="0.06", cpus=2)  # room for 1
    spec = {**SPEC, "shards": 4}
    order_id = send(s, ALICE, T0, type="order.create", **order_fields(spec))["order_id"]
    leases = market(s, T0, type="match", order_id=order_id, seed=1)["leases"]
    assert 1 <= len(leases) <= 3
    assert s.orders[order_id].status == "open"  # partially filled, waits for more capacity
    shards = sorted(s.leases[x].shard for x in leases)
    assert shards == list(range(len(leases)))
    conserved(s)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"type": "faucet", "amount": 1.5}, "float_money"),
        ({"type": "faucet", "amount": "-1 USDC"}, "invalid_amount"),
        (
            {
                "type": "order.create",
                **order_fields(SPEC),
                "spec": {**order_fields(SPEC)["spec"], "max_price_per_hour": 1.5},
            },
            "float_money",
        ),
        ({"type": "order.create", **order_fields(SPEC)}, "overdraft"),
        ({"type": "order.create", "spec": SPEC, "private": "a" * 64}, "private_on_chain"),
        ({"type": "order.create", **order_fields(SPEC), "private": "nope"}, "invalid_tx"),
        ({"type": "order.cancel", "order_id": "o-nope"}, "not_found"),
        ({"type": "match", "order_id": "o-nope", "seed": 1}, "wrong_signer"),
        ({"type": "bogus"}, "invalid_tx"),
        ({"type": "order.create", **order_fields(SPEC), "colour": "red"}, "unknown_field"),
    ],
)
def test_bad_transactions_fail_cleanly_and_change_nothing(body: dict[str, Any], code: str) -> None:
    s = make_state()
    before = s.balances_summary()
    with pytest.raises(PasarError) as err:
        send(s, ALICE, T0, **body)
    assert err.value.code == code, err.value.to_dict()
    assert 400 <= err.value.status < 500
    assert s.balances_summary() == before
    assert s.tx_count == 0


def test_nonce_reuse_is_409() -> None:
    s = make_state()
    t = tx(ALICE, T0, type="faucet", amount="1 USDC")
    s.apply(t)
    with pytest.raises(PasarError) as err:
        s.apply(t)
    assert err.value.status == 409


def test_faucet_is_off_without_devnet() -> None:
    s = make_state(devnet=False)
    with pytest.raises(PasarError) as err:
        send(s, ALICE, T0, type="faucet", amount="1 USDC")
    assert err.value.code == "faucet_disabled"


def test_heartbeat_with_a_forged_challenge_is_refused() -> None:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpu_ask="0.05")
    order_id = send(s, ALICE, T0, type="order.create", **order_fields(SPEC))["order_id"]
    (lease,) = market(s, T0, type="match", order_id=order_id, seed=1)["leases"]
    forged = Identity.from_seed(b"\x01" * 32).sign(challenge_message(lease, 0)).hex()
    with pytest.raises(PasarError) as err:
        send(s, P1, T0 + 10, type="heartbeat", lease_id=lease, interval=0, challenge=forged)
    assert err.value.code == "bad_challenge"
    with pytest.raises(PasarError) as other:  # another provider's heartbeat for this lease
        sig = MARKET.sign(challenge_message(lease, 0)).hex()
        send(s, P2, T0 + 10, type="heartbeat", lease_id=lease, interval=0, challenge=sig)
    assert other.value.status == 403


def test_unsupported_verification_is_refused_not_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(BUILDERS, "pol")  # a kind the spec knows and this market does not
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    with pytest.raises(PasarError) as err:
        send(s, ALICE, T0, type="order.create", **order_fields({**SPEC, "verification": "pol"}))
    assert err.value.code == "verification_unavailable"


def test_only_a_sealed_order_names_its_blobs_on_the_chain() -> None:
    """A sealed job's inputs are ciphertext the market cannot list from its private part, so
    its order names them (hashes of ciphertext tell nothing); any other order may not."""
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    before = s.balances_summary()
    with pytest.raises(PasarError) as err:
        send(s, ALICE, T0, type="order.create", **order_fields(SPEC), blobs=["a" * 64])
    assert (err.value.code, err.value.field) == ("private_on_chain", "blobs")
    assert s.balances_summary() == before and not s.orders  # nothing escrowed, nothing stored
    sealed = {**order_fields({**SPEC, "privacy": "sealed"}), "blobs": ["a" * 64]}
    order_id = send(s, ALICE, T0, type="order.create", **sealed)["order_id"]
    assert order_id in s.blob_orders["a" * 64]


def test_release_pays_verified_seconds_and_requeues_the_rest() -> None:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpu_ask="0.50")  # 1 USDC/h per lease
    order_id = send(s, ALICE, T0, type="order.create", **order_fields(SPEC))["order_id"]
    (lease,) = market(s, T0, type="match", order_id=order_id, seed=1)["leases"]
    heartbeat(s, lease, 0, T0 + 100)
    with pytest.raises(PasarError) as err:
        send(s, P2, T0 + 1000, type="lease.release", lease_id=lease)
    assert err.value.status == 403
    result = send(s, P1, T0 + 3_600, type="lease.release", lease_id=lease)
    billed = usdc("1").scale(3_600, 3_600_000)  # 3.6 s of wall time, billed by the millisecond
    assert result["billed"] == billed.to_json() and result["requeued"]
    record = s.orders[order_id]
    assert record.status == "open" and record.free_shards == [0]
    assert s.ledger.balance(LedgerAccount.order_escrow(order_id), "USDC") == usdc("1") - billed
    assert s.providers[P1].reputation.score == s.providers[P1].reputation.initial().score
    # draining: P1 takes no new work; P2 picks the shard up with what is left of its escrow
    send(
        s,
        P1,
        T0 + 4_000,
        type="provider.register",
        available=False,
        inventory={"cpus": 8, "memory_gb": 32, "disk_gb": 100},
        asks={"cpu_core": "0.50"},
    )
    register(s, P2, cpu_ask="0.40")
    (second,) = market(s, T0 + 5_000, type="match", order_id=order_id, seed=2)["leases"]
    assert s.leases[second].provider == P2 and s.leases[second].shard == 0
    assert s.ledger.balance(LedgerAccount.lease_escrow(second), "USDC") == usdc("1") - billed
    assert "draining" in s.orders[order_id].reasons[P1]
    conserved(s)


def test_match_leaves_out_the_providers_it_names_offline() -> None:
    """The engine's liveness is not state: it rides in the ``match`` body, so replay agrees."""
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpu_ask="0.10")
    register(s, P2, cpu_ask="0.05")  # the cheapest, but the market has not heard from it
    order_id = send(s, ALICE, T0 + 1, type="order.create", **order_fields(SPEC))["order_id"]
    leases = market(s, T0 + 2, type="match", order_id=order_id, seed=7, offline=[P2])["leases"]
    assert [s.leases[x].provider for x in leases] == [P1]
    assert "offline" in s.orders[order_id].reasons[P2]
    _, reasons = s.eligible(s.orders[order_id], frozenset({P1}))
    assert "offline" in reasons[P1]


@pytest.mark.parametrize("offline", ["prov-2", [1], {"prov-2": True}])
def test_match_refuses_a_malformed_offline_list(offline: Any) -> None:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpu_ask="0.10")
    order_id = send(s, ALICE, T0 + 1, type="order.create", **order_fields(SPEC))["order_id"]
    with pytest.raises(PasarError) as err:
        market(s, T0 + 2, type="match", order_id=order_id, seed=7, offline=offline)
    assert err.value.field == "offline"
    assert not s.orders[order_id].leases


# -- failure receipts ------------------------------------------------------------------------------


def _running_lease(s: MarketState, *, cpu_ask: str = "0.50") -> tuple[str, str]:
    """ALICE funded, P1 registered, one order matched to P1 and heartbeated once."""
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpu_ask=cpu_ask)  # 1 USDC/h per lease at 0.50 a core
    order_id = send(s, ALICE, T0, type="order.create", **order_fields(SPEC))["order_id"]
    (lease,) = market(s, T0, type="match", order_id=order_id, seed=1)["leases"]
    heartbeat(s, lease, 0, T0 + 100)
    return order_id, lease


def _failure_receipt(
    s: MarketState, lease: str, ts: int, failure: Any, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "receipt",
        "lease_id": lease,
        "exit_code": 0,
        "outputs": [],
        "root": _empty_root(),
        "failure": failure,
        **extra,
    }
    return send(s, s.leases[lease].provider, ts, **body)


def test_a_job_fault_pays_verified_seconds_keeps_reputation_and_does_not_requeue() -> None:
    s = make_state()
    order_id, lease = _running_lease(s)
    before = s.providers[P1].reputation
    failure = {"reason": "output_rejected", "fault": "job", "detail": "output 'a\\\\b': bad name"}
    result = _failure_receipt(s, lease, T0 + 3_000, failure)
    billed = usdc("1").scale(3, 3600)
    assert result["billed"] == billed.to_json() and not result["requeued"]
    record = s.orders[order_id]
    assert s.leases[lease].status == "failed"
    assert s.leases[lease].receipt is not None
    assert s.leases[lease].receipt["failure"]["reason"] == "output_rejected"
    assert record.status == "done" and record.free_shards == []
    assert record.note is not None and "output_rejected" in record.note
    assert s.ledger.balance(LedgerAccount.order_escrow(order_id), "USDC") == usdc("0")
    assert s.ledger.balance(LedgerAccount.client(ALICE), "USDC") == usdc("10") - billed
    rep = s.providers[P1].reputation
    assert rep.score >= before.score and rep.failed == 0 and rep.lost == 0
    assert s.providers[P1].available
    conserved(s)


def test_a_provider_fault_pays_verified_seconds_costs_reputation_and_requeues() -> None:
    s = make_state()
    order_id, lease = _running_lease(s)
    before = s.providers[P1].reputation
    failure = {"reason": "internal_error", "fault": "provider", "detail": "disk full"}
    result = _failure_receipt(s, lease, T0 + 3_000, failure)
    billed = usdc("1").scale(3, 3600)
    assert result["billed"] == billed.to_json() and result["requeued"]
    record = s.orders[order_id]
    assert s.leases[lease].status == "failed"
    assert record.status == "open" and record.free_shards == [0]
    assert s.ledger.balance(LedgerAccount.order_escrow(order_id), "USDC") == usdc("1") - billed
    rep = s.providers[P1].reputation
    assert rep.score < before.score and rep.failed == 1
    conserved(s)


@pytest.mark.parametrize(
    ("failure", "extra", "field"),
    [
        ({"reason": "gremlins", "fault": "job"}, {}, "failure.reason"),
        ({"reason": "internal_error", "fault": "job"}, {}, "failure.fault"),  # dodging the cost
        ({"reason": "output_rejected"}, {}, "failure.fault"),
        ({"reason": "output_rejected", "fault": "job", "why": "x"}, {}, "failure.why"),
        ({"reason": "output_rejected", "fault": "job", "detail": 7}, {}, "failure.detail"),
        ("output_rejected", {}, "failure"),
        (
            {"reason": "output_rejected", "fault": "job"},
            {
                "outputs": [{"path": "a", "sha256": "0" * 64, "size": 1}],
                "root": None,  # filled in below: a valid root over the outputs
            },
            "outputs",
        ),
    ],
)
def test_bad_failure_receipts_are_refused_naming_the_field(
    failure: Any, extra: dict[str, Any], field: str
) -> None:
    from pasar.crypto.merkle import root_of_files

    s = make_state()
    _, lease = _running_lease(s)
    if "outputs" in extra:
        extra["root"] = root_of_files((o["path"], o["sha256"]) for o in extra["outputs"])
    before = s.balances_summary()
    with pytest.raises(PasarError) as err:
        _failure_receipt(s, lease, T0 + 3_000, failure, **extra)
    assert err.value.status == 400 and err.value.field == field, err.value.to_dict()
    assert s.leases[lease].status == "running" and s.balances_summary() == before


def test_money_held_by_a_running_lease_is_shown_as_escrow() -> None:
    """Issue 14.1: the order's escrow moves into its lease's when matched; what the client
    sees as "in escrow" is both, so a running job's money never looks gone."""
    s = make_state()
    order_id, lease = _running_lease(s)
    record = s.orders[order_id]
    assert s.ledger.balance(LedgerAccount.order_escrow(order_id), "USDC") == usdc("0")
    held = s.ledger.balance(LedgerAccount.lease_escrow(lease), "USDC")
    assert held > usdc("0")
    assert s.held_for(record) == held
    spendable = s.ledger.balance(LedgerAccount.client(ALICE), "USDC")
    assert spendable + s.held_for(record) == usdc("10")  # nothing else has moved yet
    send(
        s, P1, T0 + 200, type="receipt", lease_id=lease, exit_code=0, outputs=[], root=_empty_root()
    )
    assert s.held_for(record) == usdc("0")  # settled: billed, the rest refunded
    conserved(s)


def test_a_match_says_whether_a_window_reopened_for_the_leases_left() -> None:
    """The match event tells the agents whether to read the order for a bid (issue 13: not
    one read per call beside the lease's own)."""
    s = make_state()
    s.ledger.mint(ALICE, usdc("10"))
    register(s, P1, cpu_ask="0.10")
    order_id = send(s, ALICE, T0, type="order.create", **order_fields(SPEC))["order_id"]
    assert market(s, T0 + 1, type="match", order_id=order_id, seed=1)["takes_bids"] is False
    s = make_state("akash")
    s.ledger.mint(ALICE, usdc("10"))
    for p in (P1, P2):
        register(s, p, cpu_ask="0.10", cpus=2)
        s.ledger.mint(p, usdc("1"))
    order_id = send(s, ALICE, T0, type="order.create", **order_fields({**SPEC, "shards": 3}))
    order_id = order_id["order_id"]
    send(s, P1, T0 + 20, type="bid", order_id=order_id, price="0.40")
    result = market(s, T0 + 10_000, type="match", order_id=order_id, seed=1)
    assert len(result["leases"]) == 1 and s.orders[order_id].unfilled == 2
    assert result["takes_bids"] is True  # P2 is invited again for the two left
    conserved(s)
