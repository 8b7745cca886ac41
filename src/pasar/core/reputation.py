"""Reputation: a moving score in [0, 1] built from what a provider's leases came to.

Why a moving score rather than a success ratio: a ratio of lifetime counts forgives a provider
that turns bad after a thousand good leases far too slowly, and punishes a newcomer's first
loss far too hard. An exponentially-weighted average forgets at a known rate, starts every
provider at the same neutral prior, and is one line of arithmetic the simulator can run for
tens of thousands of providers.

The rule. Each event pulls the score a fixed fraction of the way toward a target:

    score' = score + w · (target − score)

================================ ======== ============ ========================================
event                            target   default w    why
================================ ======== ============ ========================================
``completed``                    1        1/20         a receipt arrived, unchecked
``verified``                     1        1/10         a verifier re-ran it and agreed
``failed``                       0        1/10         its own machinery failed a lease (it
                                                       said so in a failure receipt)
``lost``                         0        1/5          the provider vanished mid-lease
``failed_verification``          0        1/2          its result was proven wrong (fraud)
================================ ======== ============ ========================================

A lease that is checked emits ``completed`` and then ``verified``. Failures weigh more than
successes (a cheat must do many honest leases to win back one caught lie), and a proven fraud
halves the score in one step. A preset may change the weights (:meth:`ReputationWeights.
from_mapping`); each must be in (0, 1].

Exactness without growth: the new score is a :class:`~fractions.Fraction` quantised to
millionths (:data:`SCALE`), rounded *toward the old score* — down after a success, up after a
failure, and never past the old score. So the score stays in [0, 1], a success never lowers
it, a failure never raises it, and (from the prior, or any score on the grid) the denominator
never exceeds one million however many events are applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from fractions import Fraction
from typing import Any

from pasar.core.errors import PasarError
from pasar.core.money import parse_rate

#: Scores are whole multiples of ``1 / SCALE``.
SCALE = 1_000_000
#: The neutral prior every new provider starts from (equal to ``orders.NEUTRAL_REPUTATION``).
NEUTRAL = Fraction(1, 2)


class ReputationError(PasarError):
    """An unknown event, or reputation weights outside (0, 1]."""


class Event(StrEnum):
    """What a lease came to, as far as the provider's reputation is concerned."""

    COMPLETED = "completed"
    VERIFIED = "verified"
    FAILED = "failed"
    LOST = "lost"
    FAILED_VERIFICATION = "failed_verification"

    @property
    def is_success(self) -> bool:
        return self in (Event.COMPLETED, Event.VERIFIED)

    @classmethod
    def parse(cls, value: object) -> Event:
        if isinstance(value, str):
            for event in cls:
                if event.value == value:
                    return event
        raise ReputationError(
            f"unknown reputation event {value!r}",
            code="invalid_reputation_event",
            field="event",
            hint="one of: " + ", ".join(e.value for e in cls),
        )


@dataclass(frozen=True)
class ReputationWeights:
    """How far one event moves the score toward its target; each weight in (0, 1]."""

    completed: Fraction = Fraction(1, 20)
    verified: Fraction = Fraction(1, 10)
    failed: Fraction = Fraction(1, 10)
    lost: Fraction = Fraction(1, 5)
    failed_verification: Fraction = Fraction(1, 2)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | Fraction):
                raise ReputationError(
                    f"reputation weight {f.name} must be a Fraction, got {type(value).__name__}",
                    code="invalid_reputation_weights",
                    field=f.name,
                )
            if not 0 < value <= 1:
                raise ReputationError(
                    f"reputation weight {f.name} must be in (0, 1], got {value}",
                    code="invalid_reputation_weights",
                    field=f.name,
                )
            object.__setattr__(self, f.name, Fraction(value))

    def weight(self, event: Event) -> Fraction:
        w: Fraction = getattr(self, event.value)
        return w

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ReputationWeights:
        """Build from preset data such as ``{"lost": "1/4", "failed_verification": "100%"}``;
        omitted events keep their default, unknown keys are refused."""
        if not isinstance(data, Mapping):
            raise ReputationError(
                "reputation weights are a table of event → weight",
                code="invalid_reputation_weights",
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ReputationError(
                f"unknown reputation event(s): {', '.join(unknown)}",
                code="invalid_reputation_weights",
                field=unknown[0],
                hint=f"known events: {', '.join(sorted(known))}",
            )
        return cls(**{k: parse_rate(v, field=k) for k, v in data.items()})

    def to_mapping(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


DEFAULT_WEIGHTS = ReputationWeights()


def _quantise(value: Fraction, *, up: bool) -> Fraction:
    scaled = value * SCALE
    whole = (
        -((-scaled.numerator) // scaled.denominator)
        if up
        else scaled.numerator // scaled.denominator
    )
    return Fraction(whole, SCALE)


def step(score: Fraction, event: Event, weights: ReputationWeights = DEFAULT_WEIGHTS) -> Fraction:
    """One event applied to a bare score (see the module docstring for the rule)."""
    target = Fraction(1) if event.is_success else Fraction(0)
    moved = score + weights.weight(event) * (target - score)
    if event.is_success:
        return max(_quantise(moved, up=False), score)
    return min(_quantise(moved, up=True), score)


@dataclass(frozen=True)
class Reputation:
    """A provider's score and how many of each event produced it (the counts are for people:
    "12 verified, 1 lost" explains a score better than the number alone)."""

    score: Fraction = NEUTRAL
    completed: int = 0
    verified: int = 0
    failed: int = 0
    lost: int = 0
    failed_verification: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.score, bool) or not isinstance(self.score, int | Fraction):
            raise ReputationError("a reputation score must be a Fraction", field="score")
        object.__setattr__(self, "score", Fraction(self.score))
        if not 0 <= self.score <= 1:
            raise ReputationError(
                f"a reputation score must be in [0, 1], got {self.score}", field="score"
            )
        for name in ("completed", "verified", "failed", "lost", "failed_verification"):
            n = getattr(self, name)
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ReputationError(f"{name} must be a count >= 0", field=name)

    @classmethod
    def initial(cls) -> Reputation:
        """The neutral prior, 1/2: a newcomer is neither trusted nor suspect."""
        return cls()

    def apply(self, event: Event | str, weights: ReputationWeights = DEFAULT_WEIGHTS) -> Reputation:
        """The reputation after one more ``event``; ``self`` is unchanged."""
        ev = event if isinstance(event, Event) else Event.parse(event)
        return replace(
            self,
            score=step(self.score, ev, weights),
            **{ev.value: getattr(self, ev.value) + 1},
        )

    def apply_all(
        self, events: Iterable[Event | str], weights: ReputationWeights = DEFAULT_WEIGHTS
    ) -> Reputation:
        """Events in the order they happened (order matters: recent events weigh more)."""
        rep = self
        for event in events:
            rep = rep.apply(event, weights)
        return rep

    @property
    def events(self) -> int:
        return self.completed + self.verified + self.failed + self.lost + self.failed_verification

    def describe(self) -> str:
        """``0.62 (3 completed, 2 verified, 0 failed, 0 lost, 0 failed verification)``."""
        hundredths = round(self.score * 100)
        return (
            f"{hundredths // 100}.{hundredths % 100:02d} ({self.completed} completed, "
            f"{self.verified} verified, {self.failed} failed, {self.lost} lost, "
            f"{self.failed_verification} failed verification)"
        )
