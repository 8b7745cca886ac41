"""pol's tolerance mode in core (issue 16): a verifier in another environment sends its verdict
with ``mode: tolerance`` and the distance it measured; core holds the distance to the
policy's threshold (a mismatch at or below it is refused: never a slash on a distance an
honest prover in another environment reaches), the checkers' majority decides a tolerance
mismatch as it does a bitwise one (a hostile verifier's forged distance is outvoted), and a
tolerance verdict is never bisected by a dispute. Money is conserved throughout."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from state_snapshot import books_balance
from test_disputes import _open_body, _receipt_outputs
from test_pol_policy import _gensyn
from test_replicate import BAD, V1, V2, V3, _assign, _draw, _outputs, _refused, _send, _usdc
from test_state import ALICE, MARKET, P1, P2, SPEC, T0, heartbeat, register

from pasar.core.accounts import LedgerAccount
from pasar.core.errors import PasarError
from pasar.core.presets import builtin_preset
from pasar.core.private_part import order_fields
from pasar.core.spec_fields import normalize_verification
from pasar.core.state import MarketState
from pasar.core.verify import build_policy
from pasar.core.verify.pol import (
    NOISE_CAP,
    NOISE_MULTIPLE,
    TOLERANCE_HONEST_MAX,
    TOLERANCE_MULTIPLE,
    TOLERANCE_THRESHOLD,
    PolPolicy,
    ToleranceVerdict,
    calibrated_threshold,
    check_tolerance_verdict,
    decimal_text,
)

ABOVE, BELOW = "0.0003", "3e-06"  # a perturbing prover's distance; an honest one's (bench)


def test_the_threshold_is_a_stated_multiple_of_the_measured_honest_distance() -> None:
    assert TOLERANCE_THRESHOLD == TOLERANCE_MULTIPLE * TOLERANCE_HONEST_MAX
    assert Fraction(BELOW) <= TOLERANCE_THRESHOLD < Fraction(ABOVE)


def test_the_spec_chooses_the_mode_and_a_bad_one_is_refused() -> None:
    rules = builtin_preset("gensyn").verification
    assert build_policy("pol", rules).mode == "auto"  # type: ignore[attr-defined]
    for text, mode in (("pol:tolerance", "tolerance"), ("pol:top=2,mode=bitwise", "bitwise")):
        policy = build_policy(normalize_verification(text), rules)
        assert isinstance(policy, PolPolicy) and policy.mode == mode
    for bad in ("pol:mode=loose", "pol:mode=", "pol:tolerance,mode=bitwise"):
        with pytest.raises(PasarError) as err:
            normalize_verification(bad)
        assert err.value.field == "verification" and "mode=" in err.value.message


def test_the_verdict_fields_are_held_to_the_threshold() -> None:
    policy = PolPolicy()
    assert check_tolerance_verdict(policy, True, None, None) == ToleranceVerdict("bitwise")
    got = check_tolerance_verdict(policy, True, "tolerance", BELOW)
    assert got == ToleranceVerdict("tolerance", BELOW)
    got = check_tolerance_verdict(policy, False, "tolerance", ABOVE)
    assert got == ToleranceVerdict("tolerance", ABOVE)
    threshold = str(TOLERANCE_THRESHOLD.numerator / TOLERANCE_THRESHOLD.denominator)
    assert check_tolerance_verdict(policy, True, "tolerance", threshold).mode == "tolerance"
    refused = [
        (False, "tolerance", BELOW, "distance"),  # a mismatch an honest run reaches
        (False, "tolerance", threshold, "distance"),  # at the threshold: never a slash
        (True, "tolerance", ABOVE, "distance"),  # a match above it
        (False, "tolerance", None, "distance"),
        (False, "tolerance", "-1", "distance"),
        (False, "tolerance", "inf", "distance"),
        (False, "tolerance", 0.5, "distance"),  # text only: no floats in signed data
        (False, "loose", ABOVE, "mode"),
        (True, None, BELOW, "distance"),  # a distance without the mode
    ]
    for matches, mode, distance, field in refused:
        with pytest.raises(PasarError) as err:
            check_tolerance_verdict(policy, matches, mode, distance)
        assert (err.value.code, err.value.field) == ("invalid_verdict", field), (mode, distance)
    with pytest.raises(PasarError) as err:  # the spec asked for bitwise replays only
        check_tolerance_verdict(PolPolicy(mode="bitwise"), True, "tolerance", BELOW)
    assert err.value.field == "mode"


NOISY = "0.000404"  # a chaotic job's honest cross-environment noise (bench_pol_tolerance.py)


def test_a_calibrated_threshold_is_the_stated_multiple_of_the_noise_never_below_the_floor() -> None:
    policy = PolPolicy()
    assert calibrated_threshold(policy.threshold, Fraction(0)) == policy.threshold
    assert calibrated_threshold(policy.threshold, Fraction(NOISY)) == NOISE_MULTIPLE * Fraction(
        NOISY
    )
    limit = decimal_text(calibrated_threshold(policy.threshold, Fraction(NOISY)))
    assert Fraction(limit) == Fraction("0.00404")
    honest = "0.0004"  # above the old fixed threshold: the old code would have slashed
    assert Fraction(honest) > TOLERANCE_THRESHOLD
    got = check_tolerance_verdict(policy, True, "tolerance", honest, noise=NOISY, threshold=limit)
    assert got == ToleranceVerdict("tolerance", honest, NOISY, limit)
    with pytest.raises(PasarError) as err:  # a mismatch within the job's threshold: no slash
        check_tolerance_verdict(policy, False, "tolerance", honest, noise=NOISY, threshold=limit)
    assert err.value.field == "distance"
    cheat = "0.05"
    assert (
        check_tolerance_verdict(
            policy, False, "tolerance", cheat, noise=NOISY, threshold=limit
        ).threshold
        == limit
    )
    floor = decimal_text(policy.threshold)  # a quiet job: the floor holds
    assert (
        check_tolerance_verdict(
            policy, True, "tolerance", BELOW, noise="1e-07", threshold=floor
        ).noise
        == "1e-07"
    )


def test_a_forged_threshold_or_noise_is_refused() -> None:
    policy = PolPolicy()
    limit = decimal_text(calibrated_threshold(policy.threshold, Fraction(NOISY)))
    refused = [
        # a threshold that is not max(floor, multiple x noise): raised to certify a cheat
        (True, "0.01", NOISY, "0.1", "threshold"),
        # lowered below the floor to slash an honest run
        (False, "0.00002", "0", "0.00001", "threshold"),
        (False, ABOVE, NOISY, None, "threshold"),  # noise without its threshold
        (False, ABOVE, None, limit, "noise"),  # a threshold without the noise
        (True, BELOW, "-1", limit, "noise"),
        (True, BELOW, 0.0004, limit, "noise"),  # text only
        # noise above the cap: a cheat would hide in it; the verifier must abstain
        (True, "0.05", str(NOISE_CAP * 2), str(NOISE_MULTIPLE * NOISE_CAP * 2), "noise"),
    ]
    for matches, distance, noise, threshold, field in refused:
        with pytest.raises(PasarError) as err:
            check_tolerance_verdict(
                policy, matches, "tolerance", distance, noise=noise, threshold=threshold
            )
        assert (err.value.code, err.value.field) == ("invalid_verdict", field), (noise, threshold)
    with pytest.raises(PasarError) as err:  # calibration is tolerance mode's
        check_tolerance_verdict(policy, True, None, None, noise=NOISY, threshold=limit)
    assert err.value.field == "noise"


# -- through the state -----------------------------------------------------------------------------


def _held(s: MarketState, verification: str = "pol", outputs: Any = None) -> str:
    """A pol order whose lease (on P1) sent its receipt, drawn: held."""
    _send(s, ALICE, T0, type="faucet", amount="100 USDC")
    register(s, P1, cpu_ask="0.10")
    register(s, P2, cpu_ask="0.50")
    for p in (P1, P2):
        _send(s, p, T0, type="faucet", amount="200 USDC")
        _send(s, p, T0, type="stake", amount="100 USDC")
    spec = {**SPEC, "verification": verification}
    order = _send(s, ALICE, T0, type="order.create", **order_fields(spec))["order_id"]
    lease = _send(s, MARKET.account_id, T0, type="match", order_id=order, seed=1)["leases"][0]
    heartbeat(s, lease, 0, T0 + 100)
    receipt = outputs or _outputs(BAD)
    _send(s, P1, T0 + 3_600, type="receipt", lease_id=lease, exit_code=0, **receipt)
    _draw(s, lease)
    return str(lease)


def _tolerance(s: MarketState, check: str, matches: bool, distance: str, at: int) -> Any:
    verifier = s.checks[check].verifier
    return _send(s, verifier, at, type="check.verdict", check_id=check, **_outputs(BAD),
                 matches=matches, mode="tolerance", distance=distance)  # fmt: skip


def test_an_honest_prover_in_another_environment_is_paid_on_a_tolerance_match() -> None:
    s = _gensyn(V1, V2)
    lease = _held(s)
    check = _assign(s, lease)
    result = _tolerance(s, check, True, BELOW, T0 + 6_000)
    assert result["agrees"] is True and s.leases[lease].status == "settled"
    assert (s.checks[check].mode, s.checks[check].distance) == ("tolerance", BELOW)
    assert s.ledger.balance(LedgerAccount.earnings(P1), "USDC").micros > 0
    assert s.stake_of(P1) == _usdc("100")
    books_balance(s)


def test_a_hostile_verifier_claiming_a_mismatch_on_a_small_distance_is_refused() -> None:
    """The distance it signs is within the threshold: a mismatch it cannot be; nothing moves."""
    s = _gensyn(V1, V2)
    lease = _held(s)
    check = _assign(s, lease)
    v = s.checks[check].verifier
    for distance in (BELOW, "0", "2.7e-05"):
        _refused(s, v, T0 + 6_000, "invalid_verdict", 422, type="check.verdict",
                 check_id=check, **_outputs(BAD), matches=False, mode="tolerance",
                 distance=distance)  # fmt: skip
    # a tolerance verdict on a spec that allows bitwise replays only
    s2 = _gensyn(V1, V2)
    lease2 = _held(s2, "pol:mode=bitwise")
    check2 = _assign(s2, lease2)
    _refused(s2, s2.checks[check2].verifier, T0 + 6_000, "invalid_verdict", 422,
             type="check.verdict", check_id=check2, **_outputs(BAD), matches=True,
             mode="tolerance", distance=BELOW)  # fmt: skip
    assert s.leases[lease].status == "held" and s.stake_of(P1) == _usdc("100")


def test_a_forged_large_distance_is_outvoted_by_the_checkers() -> None:
    """A hostile verifier signs a mismatch with a distance far above the threshold (core
    cannot recompute it): it goes to the checkers, whose majority pays the honest prover."""
    s = _gensyn(V1, V2, V3)
    lease = _held(s)
    first = _assign(s, lease)
    spot = _tolerance(s, first, False, "0.5", T0 + 6_000)
    assert spot["agrees"] is False and spot["checks_needed"] == 3
    second = _assign(s, lease, at=T0 + 7_000)
    _tolerance(s, second, True, BELOW, T0 + 8_000)
    third = _assign(s, lease, at=T0 + 9_000)
    result = _tolerance(s, third, True, "0", T0 + 10_000)
    assert result["provider_right"] is True and s.leases[lease].status == "settled"
    assert s.stake_of(P1) == _usdc("100")  # the honest prover is never slashed
    assert s.ledger.balance(LedgerAccount.earnings(P1), "USDC").micros > 0
    books_balance(s)


def test_a_tolerance_mismatch_confirmed_slashes_but_is_never_disputed() -> None:
    """A cheat caught by distance: the checkers' majority slashes it as a bitwise mismatch
    would; a dispute (bisection over step hashes) over a tolerance verdict is refused."""
    s = _gensyn(V1, V2, V3)
    lease = _held(s, outputs=_receipt_outputs())
    first = _assign(s, lease)
    assert _tolerance(s, first, False, ABOVE, T0 + 6_000)["agrees"] is False
    verifier = s.checks[first].verifier
    _refused(s, verifier, T0 + 6_500, "tolerance_verdict", 409, **_open_body(first))
    second = _assign(s, lease, at=T0 + 7_000)
    result = _tolerance(s, second, False, "0.2", T0 + 8_000)
    assert result["provider_right"] is False and s.leases[lease].status == "rejected"
    assert s.stake_of(P1) < _usdc("100")
    books_balance(s)


def test_mode_and_distance_are_refused_on_a_job_that_is_not_pol() -> None:
    s = _gensyn(V1, V2)
    lease = _held(s, "replicate")
    check = _assign(s, lease)
    _refused(s, s.checks[check].verifier, T0 + 6_000, "invalid_verdict", 400,
             type="check.verdict", check_id=check, **_outputs(BAD), mode="tolerance",
             distance=BELOW)  # fmt: skip


def test_a_chaotic_job_is_paid_on_a_calibrated_match_and_a_forged_threshold_moves_nothing() -> None:
    """A job whose honest drift (4e-4) is above the fixed threshold: the verifier's verdict
    with the noise it measured and the threshold that gives settles it; the same verdict with
    a threshold lowered to slash, or a noise above the cap, is refused and nothing moves."""
    s = _gensyn(V1, V2)
    lease = _held(s)
    check = _assign(s, lease)
    v = s.checks[check].verifier
    limit = decimal_text(calibrated_threshold(TOLERANCE_THRESHOLD, Fraction(NOISY)))
    before = s.stake_of(P1)
    for noise, threshold in ((NOISY, "0.0003"), ("0.02", "0.2")):
        _refused(s, v, T0 + 6_000, "invalid_verdict", 422, type="check.verdict",
                 check_id=check, **_outputs(BAD), matches=False, mode="tolerance",
                 distance="0.0004", noise=noise, threshold=threshold)  # fmt: skip
    assert s.leases[lease].status == "held" and s.stake_of(P1) == before
    books_balance(s)
    result = _send(s, v, T0 + 6_000, type="check.verdict", check_id=check, **_outputs(BAD),
                   matches=True, mode="tolerance", distance="0.0004", noise=NOISY,
                   threshold=limit)  # fmt: skip
    assert result["agrees"] is True and s.leases[lease].status == "settled"
    assert (s.checks[check].noise, s.checks[check].threshold) == (NOISY, limit)
    assert s.stake_of(P1) == before
    books_balance(s)
