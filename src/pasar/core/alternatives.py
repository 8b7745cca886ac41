"""How the market chooses among an order's ``resources.alternatives`` (SkyPilot's ``any_of`` /
``ordered``): a provider fits the order if it fits ANY alternative.

Why a wrapper and not a change to every mechanism: a mechanism already clears an order of one
request exactly (and audits replay it). An order with alternatives is cleared once per
alternative, each as the plain order it would be (:func:`alternative_orders`), with the same
seed, and one of the outcomes is kept (:func:`choose`):

* ``pick: ordered`` keeps the first alternative whose clearing awards any lease;
* ``pick: cheapest`` keeps, among those that award, the one that fills the most leases at the
  lowest total price per hour (ties: the earlier alternative), so among fitting providers ×
  alternatives the cheapest price wins, and ties between providers stay the mechanism's draw.

One clearing awards one alternative to all its leases, so a gang (``num_nodes`` > 1), which is
filled in one clearing or not at all, runs every node under the same alternative; a node leased
again later (``on_node_loss: replace``) is pinned to the gang's alternative
(:func:`pinned_alternative`). Shards are separate jobs: a shard leased later may get another.

Each lease records the index of its alternative (``LeaseRecord.alternative``), its allocation
is fitted to that alternative's request, and its provider sizes the job by it. Escrow and the
cap are the order's (``max_price_per_hour`` is per hour whatever the alternative); a lease is
billed at its own price. The cost is one clearing per alternative, at most
:data:`~pasar.core.skypilot.MAX_ALTERNATIVES` of them (the spec refuses more).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from pasar.core.orders import Order
from pasar.core.pricing.base import Candidate, MatchResult


def alternative_orders(order: Order, pinned: int | None = None) -> list[tuple[int | None, Order]]:
    """``order`` as one plain order per alternative, with its index (``[(None, order)]`` for an
    order without alternatives; only the ``pinned`` one when given)."""
    if not order.alternatives:
        return [(None, order)]
    indices = range(len(order.alternatives)) if pinned is None else (pinned,)
    return [
        (i, replace(order, request=order.alternatives[i], alternatives=(), pick=None))
        for i in indices
    ]


@dataclass(frozen=True)
class Clearing:
    """One alternative's clearing: its candidates (each marked with the alternative) and the
    mechanism's result (awards marked too)."""

    alternative: int | None
    candidates: list[Candidate]
    result: MatchResult

    @classmethod
    def of(
        cls, alternative: int | None, candidates: Iterable[Candidate], result: MatchResult
    ) -> Clearing:
        if alternative is None:
            return cls(None, list(candidates), result)
        return cls(
            alternative,
            [replace(c, alternative=alternative) for c in candidates],
            replace(
                result,
                awards=tuple(replace(a, alternative=alternative) for a in result.awards),
                alternative=alternative,
            ),
        )


def _cost(result: MatchResult) -> tuple[int, int]:
    """How a ``cheapest`` pick ranks a clearing: more leases filled first, then the lower total
    price per hour of its awards."""
    return -result.filled, sum(a.price_per_hour.micros * a.leases for a in result.awards)


def choose(pick: str | None, clearings: Sequence[Clearing]) -> tuple[list[Candidate], MatchResult]:
    """The clearing the order keeps (see the module docstring), with the candidates of every
    alternative (:func:`merge_candidates`) and a reason for every provider none of them took."""
    if len(clearings) == 1:
        only = clearings[0]
        return only.candidates, only.result
    awarding = [c for c in clearings if c.result.awards]
    kept: Clearing | None = None
    if awarding:
        kept = awarding[0] if pick == "ordered" else min(awarding, key=lambda c: _cost(c.result))
    candidates = merge_candidates(pick, clearings)
    reasons = merge_reasons(clearings, winners=kept.result.winners if kept else ())
    if kept is None:
        first = clearings[0].result
        note = "; ".join(
            f"[{c.alternative}] {c.result.note}" for c in clearings if c.result.note is not None
        )
        return candidates, MatchResult((), reasons, first.unfilled, note or None)
    return candidates, replace(kept.result, reasons=reasons)


def merge_candidates(pick: str | None, clearings: Sequence[Clearing]) -> list[Candidate]:
    """One candidate per provider, marked with the alternative it would satisfy: the first it
    fits (``ordered``), or the one where it is cheapest (``cheapest``; unpriced ones count as
    dearest, ties the earlier alternative). In the order providers first appear."""
    best: dict[str, Candidate] = {}
    for clearing in clearings:
        for c in clearing.candidates:
            held = best.get(c.id)
            if held is None or (pick != "ordered" and _price_key(c) < _price_key(held)):
                best[c.id] = c
    return list(best.values())


def _price_key(c: Candidate) -> int:
    return c.price_per_hour.micros if c.price_per_hour is not None else 1 << 62


def merge_reasons(clearings: Sequence[Clearing], *, winners: Iterable[str] = ()) -> dict[str, str]:
    """Why each provider took no lease, alternative by alternative (``[0] …; [1] …``); one
    alternative's reason as is when every alternative gave the same."""
    won = set(winners)
    by_provider: dict[str, list[tuple[int | None, str]]] = {}
    for clearing in clearings:
        for provider, reason in clearing.result.reasons.items():
            if provider not in won:
                by_provider.setdefault(provider, []).append((clearing.alternative, reason))
    return {p: _joined(said) for p, said in by_provider.items()}


def _joined(said: Sequence[tuple[int | None, str]]) -> str:
    if len({r for _, r in said}) == 1:
        return said[0][1]
    return "; ".join(f"[{i}] {r}" for i, r in said)


def pinned_alternative(order: Order, alternatives_of_leases: Iterable[int | None]) -> int | None:
    """The alternative every later lease of a gang must use: the one its first leases got
    (None for an order without alternatives, a set of shards, or a gang not yet leased)."""
    if not order.alternatives or not order.together:
        return None
    for alternative in alternatives_of_leases:
        if alternative is not None:
            return alternative
    return None
