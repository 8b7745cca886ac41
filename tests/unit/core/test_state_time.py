"""Time comes from the market's stamp, not the signer's ``ts`` (issue 9, "High").

A signer may choose its ``ts`` anywhere within 60 s of the market's clock. Before stamps, the
state machine ruled with that ``ts``: a cancel backdated by 46 s billed 0 s of 46 s of work, a
receipt dated forward billed whole intervals, a bid backdated slipped into a closed window.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from test_state import ALICE, MARKET, P1, P2, SPEC, T0, _empty_root, conserved, make_state, tx, usdc

from pasar.core.errors import PasarError
from pasar.core.market_records import Tx
from pasar.core.private_part import order_fields
from pasar.core.timelock import challenge_message
from pasar.crypto.envelope import MAX_SKEW_MS

_n = itertools.count(10_000_000)


def at(state: Any, signer: str, *, ts: int, stamp: int, **body: Any) -> dict[str, Any]:
    """Apply a transaction the signer dated ``ts`` and the market stamped ``stamp``."""
    return state.apply(tx(signer, ts, stamp=stamp, **body)).result


def running_lease(s: Any) -> str:
    at(s, ALICE, ts=T0, stamp=T0, type="faucet", amount="10 USDC")
    for p, ask in ((P1, "0.50"), (P2, "0.60")):
        at(
            s,
            p,
            ts=T0,
            stamp=T0,
            type="provider.register",
            inventory={"gpus": [], "cpus": 8, "memory_gb": 32, "disk_gb": 100},
            asks={"cpu_core": ask},
            score=100,
        )
    order = at(s, ALICE, ts=T0, stamp=T0, type="order.create", **order_fields(SPEC))["order_id"]
    (lease,) = at(s, MARKET.account_id, ts=T0, stamp=T0, type="match", order_id=order, seed=1)[
        "leases"
    ]
    return str(lease)


def beat(s: Any, lease: str, k: int, stamp: int) -> None:
    sig = MARKET.sign(challenge_message(lease, k)).hex()
    at(s, P1, ts=stamp, stamp=stamp, type="heartbeat", lease_id=lease, interval=k, challenge=sig)


def test_a_backdated_cancel_bills_the_time_the_market_saw() -> None:
    s = make_state()
    lease = running_lease(s)
    for k in range(10):  # 46 s of verified work (5 s intervals)
        beat(s, lease, k, T0 + k * 5000 + 100)
    order = s.leases[lease].order_id
    now = T0 + 46_000
    result = at(s, ALICE, ts=now - 46_000, stamp=now, type="order.cancel", order_id=order)
    assert s.leases[lease].billed_ms == 46_000  # not 0: the market's stamp rules
    assert result["billed"] == usdc("1").scale(46_000, 3_600_000).to_json()
    conserved(s)


def test_a_forward_dated_receipt_does_not_bill_time_that_has_not_passed() -> None:
    s = make_state()
    lease = running_lease(s)
    beat(s, lease, 0, T0 + 100)
    now = T0 + 1_200
    at(
        s,
        P1,
        ts=now + 59_000,  # claims the job ran a minute
        stamp=now,
        type="receipt",
        lease_id=lease,
        exit_code=0,
        outputs=[],
        root=_empty_root(),
    )
    assert s.leases[lease].billed_ms == 1_200  # what the market saw, by the millisecond
    conserved(s)


def test_a_sub_second_lease_is_billed_by_the_millisecond() -> None:
    s = make_state()
    lease = running_lease(s)
    beat(s, lease, 0, T0 + 10)
    result = at(
        s,
        P1,
        ts=T0 + 800,
        stamp=T0 + 800,
        type="receipt",
        lease_id=lease,
        exit_code=0,
        outputs=[],
        root=_empty_root(),
    )
    assert result["billed_ms"] == 800 and result["billed"] != "0.00 USDC"
    assert result["billed"] == usdc("1").scale(800, 3_600_000).to_json()
    conserved(s)


def test_a_backdated_bid_cannot_enter_a_closed_window() -> None:
    s = make_state("akash")
    at(s, ALICE, ts=T0, stamp=T0, type="faucet", amount="10 USDC")
    at(
        s,
        P1,
        ts=T0,
        stamp=T0,
        type="provider.register",
        inventory={"gpus": [], "cpus": 8, "memory_gb": 32, "disk_gb": 100},
        asks={"cpu_core": "0.5"},
        score=100,
    )
    spec = {**SPEC, "max_price_per_hour": "1 USDC"}
    order = at(s, ALICE, ts=T0, stamp=T0, type="order.create", **order_fields(spec))["order_id"]
    deadline = s.orders[order].window.deadline
    with pytest.raises(PasarError) as err:
        at(
            s,
            P1,
            ts=deadline - 1_000,  # dated inside the window
            stamp=deadline + 5_000,  # arrived after it closed
            type="bid",
            order_id=order,
            price="0.5",
        )
    assert err.value.code == "auction_closed"


def test_a_ts_far_from_the_stamp_is_stale_and_changes_nothing() -> None:
    s = make_state()
    at(s, ALICE, ts=T0, stamp=T0, type="faucet", amount="10 USDC")
    before = s.balances_summary()
    with pytest.raises(PasarError) as err:
        at(s, ALICE, ts=T0, stamp=T0 + MAX_SKEW_MS + 1, type="faucet", amount="1 USDC")
    assert err.value.code == "stale_timestamp" and err.value.status == 401
    assert s.balances_summary() == before


def test_nonces_are_forgotten_only_once_they_can_no_longer_be_replayed() -> None:
    s = make_state()
    first = Tx("faucet", {"type": "faucet", "amount": "1 USDC"}, ALICE, "ab" * 16, T0, "0" * 64, T0)
    s.apply(first)
    replay = Tx("faucet", first.body, ALICE, first.nonce, T0, "1" * 64, T0 + 30_000)
    with pytest.raises(PasarError) as err:  # within the window: remembered, refused
        s.apply(replay)
    assert err.value.code == "nonce_reused"
    later = T0 + 3 * MAX_SKEW_MS
    at(s, ALICE, ts=later, stamp=later, type="faucet", amount="1 USDC")  # moves the horizon
    assert (ALICE, first.nonce) not in s.nonces  # pruned: the store does not grow forever
    with pytest.raises(PasarError) as stale:  # and a replay of it is stale anyway
        s.apply(Tx("faucet", first.body, ALICE, first.nonce, T0, "2" * 64, later))
    assert stale.value.code == "stale_timestamp"
    conserved(s)


def test_unstake_waits_out_the_unbonding_and_is_refused_while_stake_backs_leases() -> None:
    s = make_state("ionet")  # a per-GPU stake rule and a 14-day unbonding
    at(s, P1, ts=T0, stamp=T0, type="faucet", amount="500 USDC")
    at(
        s,
        P1,
        ts=T0,
        stamp=T0,
        type="provider.register",
        inventory={"gpus": {"A100-80GB": 1}, "cpus": 8, "memory_gb": 32, "disk_gb": 100},
        asks={"gpu": {"A100-80GB": "1.0"}},
        score=100,
    )
    at(s, P1, ts=T0, stamp=T0, type="stake", amount="300 USDC")
    at(s, ALICE, ts=T0, stamp=T0, type="faucet", amount="50 USDC")
    gpu_spec = {
        **SPEC,
        "resources": {"accelerators": "A100", "cpus": 2},
        "max_price_per_hour": "2 USDC",
    }
    order = at(s, ALICE, ts=T0, stamp=T0, type="order.create", **order_fields(gpu_spec))["order_id"]
    leases = at(s, MARKET.account_id, ts=T0, stamp=T0, type="match", order_id=order, seed=1)
    assert leases["leases"], s.orders[order].reasons
    with pytest.raises(PasarError) as busy:  # everything staked backs the running lease
        at(s, P1, ts=T0, stamp=T0 + 1, type="unstake", amount="300 USDC")
    assert busy.value.code == "stake_in_use" and busy.value.status == 409
    with pytest.raises(PasarError) as more:
        at(s, P1, ts=T0, stamp=T0 + 1, type="unstake", amount="301 USDC")
    assert more.value.code == "insufficient_funds"
    at(s, ALICE, ts=T0 + 2, stamp=T0 + 2, type="order.cancel", order_id=order)  # lease ends
    done = at(s, P1, ts=T0 + 3, stamp=T0 + 3, type="unstake", amount="300 USDC")
    unbonding = s.preset.timing.unbonding_s
    assert unbonding == 14 * 24 * 3600
    assert done["release_at_ms"] == (T0 // 1000 + unbonding) * 1000
    assert s.stake_of(P1) == usdc("0")  # out of stake at once: no new work backed by it
    with pytest.raises(PasarError) as early:
        at(s, P1, ts=T0 + 5000, stamp=T0 + 5000, type="unbonded.withdraw")
    assert early.value.code == "cooldown"
    later = T0 + (unbonding + 1) * 1000
    out = at(s, P1, ts=later, stamp=later, type="unbonded.withdraw")
    assert out["withdrawn"] == usdc("300").to_json()
    conserved(s)


def test_uptime_blocks_pay_only_for_blocks_verifiably_up() -> None:
    from pasar.core.timelock import billable_ms

    hour = 3_600_000
    every = set(range(180))  # three hours of one-minute heartbeats, all answered
    common = {"started_at_ms": 0, "interval_s": 60, "max_duration_s": 10 * 3600}
    assert billable_ms(every, ended_at_ms=3 * hour, uptime_block_s=3600, **common) == 3 * hour
    gap = every - {75}  # one minute missed in the second hour: that hour pays nothing
    assert billable_ms(gap, ended_at_ms=3 * hour, uptime_block_s=3600, **common) == 2 * hour
    # a job that ends 30.5 minutes into its second hour pays that hour's answered minutes
    partial = set(range(91))
    ended = hour + 30 * 60_000 + 500
    assert billable_ms(partial, ended_at_ms=ended, uptime_block_s=3600, **common) == ended
    # without blocks the same gap costs only the minute
    assert billable_ms(gap, ended_at_ms=3 * hour, **common) == 3 * hour - 60_000
