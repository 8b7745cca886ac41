"""Reputation: the moving score's arithmetic, its bounds and its monotonicity."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pasar.core.errors import PasarError
from pasar.core.orders import NEUTRAL_REPUTATION
from pasar.core.reputation import (
    SCALE,
    Event,
    Reputation,
    ReputationWeights,
    step,
)

events = st.sampled_from(list(Event))
scores = st.fractions(min_value=0, max_value=1, max_denominator=10**9)


def test_initial_is_the_neutral_prior() -> None:
    rep = Reputation.initial()
    assert rep.score == Fraction(1, 2) == NEUTRAL_REPUTATION
    assert rep.events == 0


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (Event.COMPLETED, Fraction(21, 40)),  # 1/2 + 1/20 × (1 − 1/2)
        (Event.VERIFIED, Fraction(11, 20)),  # 1/2 + 1/10 × (1 − 1/2)
        (Event.LOST, Fraction(2, 5)),  # 1/2 − 1/5 × 1/2
        (Event.FAILED_VERIFICATION, Fraction(1, 4)),  # 1/2 − 1/2 × 1/2
    ],
)
def test_one_event_from_neutral(event: Event, expected: Fraction) -> None:
    rep = Reputation.initial().apply(event)
    assert rep.score == expected
    assert getattr(rep, event.value) == 1
    assert rep.events == 1


def test_two_successes_in_a_row() -> None:
    rep = Reputation.initial().apply_all(["completed", "verified"])
    # 21/40 + 1/10 × 19/40 = 229/400
    assert rep.score == Fraction(229, 400)
    assert (rep.completed, rep.verified, rep.lost, rep.failed_verification) == (1, 1, 0, 0)


def test_rounding_goes_toward_the_old_score() -> None:
    third = Reputation(score=Fraction(1, 3))
    # 1/3 + 1/20 × 2/3 = 11/30 = 0.3666…: a success rounds down
    assert third.apply(Event.COMPLETED).score == Fraction(366_666, SCALE)
    # 1/3 − 1/5 × 1/3 = 4/15 = 0.2666…: a failure rounds up
    assert third.apply(Event.LOST).score == Fraction(266_667, SCALE)


def test_fraud_weighs_more_than_a_success() -> None:
    rep = Reputation.initial().apply(Event.VERIFIED).apply(Event.FAILED_VERIFICATION)
    assert rep.score < Fraction(1, 2)


def test_custom_weights_from_preset_data() -> None:
    w = ReputationWeights.from_mapping({"lost": "1/4", "failed_verification": "100%"})
    assert w.lost == Fraction(1, 4) and w.failed_verification == 1
    assert w.completed == Fraction(1, 20)  # default kept
    assert Reputation.initial().apply(Event.FAILED_VERIFICATION, w).score == 0
    assert ReputationWeights.from_mapping(w.to_mapping()) == w


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"lots": "1/2"}, "lots"),
        ({"lost": "0"}, "lost"),
        ({"lost": "3/2"}, "lost"),
        ({"lost": 0.2}, "lost"),
    ],
)
def test_bad_weights_are_refused_naming_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(PasarError) as info:
        ReputationWeights.from_mapping(data)
    assert info.value.field == field


def test_unknown_event_is_refused() -> None:
    with pytest.raises(PasarError, match="unknown reputation event"):
        Reputation.initial().apply("vanished")


def test_bad_scores_are_refused() -> None:
    with pytest.raises(PasarError):
        Reputation(score=Fraction(3, 2))
    with pytest.raises(PasarError):
        Reputation(lost=-1)


def test_describe() -> None:
    rep = Reputation.initial().apply(Event.VERIFIED)
    assert rep.describe() == (
        "0.55 (0 completed, 1 verified, 0 failed, 0 lost, 0 failed verification)"
    )


@given(st.lists(events, max_size=200))
def test_any_history_stays_in_bounds_with_a_small_denominator(history: list[Event]) -> None:
    rep = Reputation.initial().apply_all(history)
    assert 0 <= rep.score <= 1
    assert SCALE % rep.score.denominator == 0
    assert rep.events == len(history)


@given(scores, events)
def test_a_success_never_lowers_and_a_failure_never_raises(score: Fraction, event: Event) -> None:
    after = step(score, event)
    assert 0 <= after <= 1
    if event.is_success:
        assert after >= score
    else:
        assert after <= score


@given(st.lists(events, max_size=50), events)
def test_monotone_along_any_history(history: list[Event], event: Event) -> None:
    before = Reputation.initial().apply_all(history)
    after = before.apply(event)
    assert (after.score >= before.score) if event.is_success else (after.score <= before.score)


@given(st.lists(events, max_size=50), st.lists(events, max_size=50))
def test_more_successes_never_hurt(prefix: list[Event], suffix: list[Event]) -> None:
    """Replacing a failure by a success anywhere never gives a lower score (the update is
    monotone in the score as well as in the event)."""
    history = [*prefix, Event.LOST, *suffix]
    better = [*prefix, Event.COMPLETED, *suffix]
    assert (
        Reputation.initial().apply_all(better).score
        >= Reputation.initial().apply_all(history).score
    )
