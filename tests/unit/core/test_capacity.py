"""Capacity proofs: sizing and deadlines (pure), the proof's arithmetic, the engine's policy."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pasar.capacity.proof import ProofCancelledError, answer_bytes, check, derive, solve
from pasar.core.capacity import (
    MODULUS,
    N_MAX,
    N_MIN,
    RETRY_BACKOFF_MS,
    SLACK_DEN,
    SLACK_NUM,
    STEPS_MAX,
    TARGET_MS,
    CapacityStatus,
    challenge_due,
    exclusion_reason,
    icbrt,
    plan,
)


@pytest.mark.parametrize("x", [0, 1, 7, 8, 9, 26, 27, 28, 10**18, 10**18 - 1, 2**62 + 12345])
def test_integer_cube_root(x: int) -> None:
    r = icbrt(x)
    assert r**3 <= x < (r + 1) ** 3


def test_every_product_is_exact_in_float32() -> None:
    # the largest partial sum of a step: n terms of (MODULUS-1)², below float32's 2^24
    assert N_MAX * (MODULUS - 1) ** 2 < 2**24


@pytest.mark.parametrize("score", [1, 10, 44, 196, 784, 5_000, 60_000])
def test_plan_takes_the_target_time_at_the_claimed_rate(score: int) -> None:
    p = plan(score)
    assert N_MIN <= p.n <= N_MAX and 1 <= p.steps <= STEPS_MAX
    assert p.flop == 2 * p.n**3 * p.steps
    assert p.claimed_ms == -(-p.flop // (score * 1_000_000))
    if p.steps < STEPS_MAX and p.n > N_MIN:  # not clamped: about the target, never much less
        assert TARGET_MS <= p.claimed_ms < TARGET_MS * 1.2
    assert p.deadline_ms >= p.claimed_ms * SLACK_NUM // SLACK_DEN
    assert p.n * p.n <= 64 << 20  # the answer is one blob of at most 64 MiB


def test_a_4x_claim_cannot_meet_its_deadline_at_the_real_rate() -> None:
    """The cheater's chain at its real rate takes 4× the claimed time; its deadline allows
    SLACK× plus fixed allowances, which the target time is chosen to dwarf."""
    for real in (44, 196, 400):
        cheat = plan(4 * real)
        real_ms = cheat.flop // (real * 1_000_000)
        assert real_ms > cheat.deadline_ms, (real, real_ms, cheat)


def test_a_larger_claim_gets_more_work() -> None:
    flops = [plan(s).flop for s in (10, 100, 1_000, 10_000)]
    assert flops == sorted(flops) and len(set(flops)) == 4


def test_plan_refuses_no_claim() -> None:
    with pytest.raises(ValueError):
        plan(0)


# -- the proof ------------------------------------------------------------------------------------


def test_the_answer_is_deterministic_and_checks() -> None:
    a = solve(7, 96, 5)
    assert np.array_equal(a, solve(7, 96, 5))
    assert a.dtype == np.uint8 and a.shape == (96, 96) and int(a.max()) < MODULUS
    assert check(7, 96, 5, answer_bytes(a), check_seed=1) is None
    assert not np.array_equal(a, solve(8, 96, 5))  # another seed, another answer


def test_the_answer_is_the_chain_of_products() -> None:
    """Against a plain integer reference (int64, reduced each step)."""
    n, steps = 40, 4
    w, offsets = derive(3, n, steps)
    x = w[:, :n].astype(np.int64)
    for s in offsets:
        x = (x @ w[:, s : s + n].astype(np.int64)) % MODULUS
    assert np.array_equal(solve(3, n, steps), x.astype(np.uint8))


@pytest.mark.parametrize("flip", [0, 1, 16, 31])
def test_freivalds_catches_a_single_wrong_entry(flip: int) -> None:
    good = bytearray(answer_bytes(solve(11, 80, 3)))
    bad = bytearray(good)
    where = 80 * 37 + 5
    bad[where] = (bad[where] + (flip or 1)) % MODULUS
    for check_seed in range(3):
        problem = check(11, 80, 3, bytes(bad), check_seed=check_seed)
        assert problem is not None and "wrong" in problem


def test_freivalds_catches_the_answer_to_another_challenge() -> None:
    other = answer_bytes(solve(12, 80, 3))
    assert check(11, 80, 3, other, check_seed=5) is not None
    shorter = answer_bytes(solve(11, 80, 2))  # one step skipped
    assert check(11, 80, 3, shorter, check_seed=5) is not None


def test_malformed_answers_are_refused_with_a_reason() -> None:
    assert "bytes" in (check(1, 64, 2, b"\0" * 10, check_seed=1) or "")
    assert "32 or more" in (check(1, 64, 2, b"\xff" * 64 * 64, check_seed=1) or "")


# -- the engine's policy --------------------------------------------------------------------------


def test_when_a_challenge_is_due() -> None:
    fresh = CapacityStatus()
    due = {"score": 100, "idle": True, "now_ms": 10_000_000, "interval_s": 900}
    assert challenge_due(fresh, **due)
    assert not challenge_due(fresh, **{**due, "score": 0})  # nothing claimed
    assert not challenge_due(fresh, **{**due, "idle": False})  # leases would slow it down
    assert not challenge_due(CapacityStatus(open="c1"), **due)  # awaiting a verdict
    retry = CapacityStatus(misses=1, last_challenge_at=9_999_000)
    assert challenge_due(retry, **due)  # the retry follows at once
    passed = CapacityStatus("passed", 1, last_challenge_at=10_000_000 - 899_999)
    assert not challenge_due(passed, **due)
    assert challenge_due(passed, **{**due, "now_ms": 10_000_001})  # the interval is over
    assert not challenge_due(passed, **{**due, "interval_s": 0, "now_ms": 10**12})  # only once
    failing = CapacityStatus("failing", 1, "late", 2, None, 10_000_000 - RETRY_BACKOFF_MS + 1)
    assert not challenge_due(failing, **due)
    assert challenge_due(failing, **{**due, "now_ms": 10_000_001})


def test_only_a_failing_status_excludes() -> None:
    assert exclusion_reason(CapacityStatus()) is None
    assert exclusion_reason(CapacityStatus("passed", 5)) is None
    assert exclusion_reason(CapacityStatus(misses=1, reason="late")) is None  # a retry is owed
    why = exclusion_reason(CapacityStatus("failing", 5, "the product is wrong", 2))
    assert why is not None and "the product is wrong" in why and "until it passes" in why


def test_a_new_claim_needs_a_new_challenge_but_failing_stays_failing() -> None:
    passed = CapacityStatus("passed", 5, "", 0, None, 4)
    assert passed.for_new_claim() == CapacityStatus()
    failing = CapacityStatus("failing", 5, "late", 2, None, 4)
    renewed = failing.for_new_claim()
    assert renewed.state == "failing" and renewed.last_challenge_at is None
    assert challenge_due(renewed, score=10, idle=True, now_ms=6, interval_s=0)


@pytest.mark.parametrize("gpu_score", [20_000, 60_000, 400_000])
def test_a_cpu_claiming_a_gpu_score_cannot_answer_in_time(gpu_score: int) -> None:
    """A GPU score (tens of TFLOP/s) asks for work a CPU (say 1 TFLOP/s, a large server) needs
    many times the deadline for."""
    sized = plan(gpu_score)
    cpu_ms = sized.flop // (1_000 * 1_000_000)
    assert cpu_ms > 2 * sized.deadline_ms, (cpu_ms, sized)


def test_a_stopping_agent_abandons_a_proof_between_steps() -> None:
    """A provider stopping mid-proof must not exit inside an OpenBLAS product (OpenBLAS's exit
    handler then waits for ever): the chain stops at its next step."""
    stop = threading.Event()
    stop.set()
    with pytest.raises(ProofCancelledError):
        solve(7, 256, 4, stop=stop)
    assert solve(7, 256, 2).shape == (256, 256)  # without a stop it runs to the end
