"""Akash-style reverse auction: fitting providers send sealed bids; the lowest score wins.

Why a *score* and not the bare price: a cheap bid from a provider that often vanishes, or from a
slow card, is not the best deal for the client. Akash leaves that judgement to the tenant; pasar
folds it into one documented number so that the market can clear on its own and anyone can
recompute the outcome from the chain.

**Score formula** (exact, no floats)::

    score = price × (1 + w_rep × (1 − reputation)) × (1 − w_perf × performance)

* ``price`` is the bid per hour of one lease;
* ``reputation`` is the provider's reputation, clamped to [0, 1] — a perfect record adds
  nothing, a zero one makes the price count ``1 + w_rep`` times;
* ``performance`` is the provider's benchmark score divided by the best benchmark score among
  the *valid* bids of this clearing (0 for everyone when nobody has a score), so the fastest
  bidder earns a discount of ``w_perf`` on its price and slower ones proportionally less;
* ``w_rep >= 0`` and ``0 <= w_perf < 1`` are the mechanism's weights (Fractions).

Every factor is a Fraction of integers, so scores are compared exactly; internally they are
scaled to a common integer denominator, which keeps a 20-bid clearing to tens of microseconds.

**Outcome.** The ``order.leases`` lowest scores win, one lease per provider. A ``together`` order
(a multi-node cluster) needs that many valid bids or nobody wins; a sharded order is filled as
far as the bids go. A bid is per lease: with ``placement: spread`` a bidder whose free room
holds several of a gang's nodes offers each at its bid, and the lowest-scored places win
(:func:`~pasar.core.pricing.base.fill_nodes`), so a gang needs room for its nodes, not that
many bidders. Equal scores are ordered by a permutation drawn from the ``rng`` the market
passes (seeded by a value it records), applied to the tied providers sorted by id, so the
result does not depend on the order in which bids arrived.

**Payment.** First price: each winner is paid its own bid. Second price: each winner is paid the
price of the first losing valid bid (the (k+1)-th by score; under ``placement: spread`` the
first place left over, which may be a winner's own further node), capped at the order's max, and
never less than its own bid (with score adjustments the runner-up may have bid less); with no
runner-up, the winner is paid its own bid. Nobody is ever paid above the order's max, because a
bid above it is not valid.

**Reasons.** Every provider that does not win gets one: ``declined``, ``price 1.9 > max 1.5``,
a currency mismatch, ``score 1.42 > winner's 1.10``, a lost tie-break, or a ``together`` order
that found too few bidders. A candidate listed twice keeps its first bid; later copies are
ignored (the :class:`AuctionWindow` refuses duplicates before they get here).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from operator import itemgetter
from typing import ClassVar, TypeVar

from pasar.core.errors import PasarError
from pasar.core.money import MICROS_PER_UNIT, Money, parse_rate
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.base import (
    Award,
    Candidate,
    Candidates,
    MatchResult,
    Offers,
    fill_nodes,
    no_fit_note,
    price_problem,
    screen,
)
from pasar.core.resources import Allocation

__all__ = ["Auction", "AuctionError", "AuctionWindow", "rank", "score_text"]

_T = TypeVar("_T")
_KEY_AND_ID = itemgetter(0, 1)


class AuctionError(PasarError):
    """A bid the auction window cannot take: not invited, a second bid, or too late."""

    default_status = 409


def rank(entries: list[tuple[int, str, _T]], rng: random.Random) -> list[_T]:
    """Order ``(key, id, item)`` entries by key, breaking ties by a seeded permutation.

    Ids must be unique. Tied entries are first sorted by id and then shuffled with ``rng``, so
    the outcome depends only on the seed and the set of entries, never on their arrival order.
    ``rng`` is consumed only when there is a tie. Shared by the auction and the book.
    """
    entries.sort(key=_KEY_AND_ID)
    n = len(entries)
    i = 0
    while i < n - 1:
        if entries[i][0] != entries[i + 1][0]:
            i += 1
            continue
        j = i + 2
        while j < n and entries[j][0] == entries[i][0]:
            j += 1
        group = entries[i:j]
        rng.shuffle(group)
        entries[i:j] = group
        i = j
    return [e[2] for e in entries]


def score_text(micros: int) -> str:
    """A score in micro-units as people read prices: ``1.1`` → ``"1.10"``, at most 6 decimals."""
    whole, frac = divmod(micros, MICROS_PER_UNIT)
    return f"{whole}.{f'{frac:06d}'.rstrip('0').ljust(2, '0')}"


def _weight(value: object, what: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | Fraction):
        raise PasarError(
            f"the auction's {what} weight must be an int or a Fraction, not {type(value).__name__}",
            code="invalid_mechanism",
            hint='write it as a fraction, e.g. Fraction(1, 4) or parse_rate("0.25")',
        )
    return Fraction(value)


@dataclass(frozen=True)
class Auction:
    """The reverse auction's parameters; see the module docstring for the score formula."""

    name: ClassVar[str] = "auction"
    takes_bids: ClassVar[bool] = True
    opens_window: ClassVar[bool] = True
    walks_cheapest_asks: ClassVar[bool] = False
    packs_gangs: ClassVar[bool] = True

    second_price: bool = False
    reputation_weight: Fraction = Fraction(1, 2)
    performance_weight: Fraction = Fraction(1, 5)

    def __post_init__(self) -> None:
        w_rep = _weight(self.reputation_weight, "reputation")
        w_perf = _weight(self.performance_weight, "performance")
        if w_rep < 0:
            raise PasarError(
                f"reputation weight must be >= 0, got {w_rep}", code="invalid_mechanism"
            )
        if not 0 <= w_perf < 1:
            raise PasarError(
                f"performance weight must be in [0, 1), got {w_perf}",
                code="invalid_mechanism",
                hint="at 1 the fastest bidder would score 0 whatever it asks",
            )
        object.__setattr__(self, "reputation_weight", w_rep)
        object.__setattr__(self, "performance_weight", w_perf)

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> Auction:
        """Build from preset data: ``{"second_price": true, "reputation_weight": "1/2",
        "performance_weight": "1/5"}``; weights are rate strings, never floats."""
        known = {"second_price", "reputation_weight", "performance_weight"}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise PasarError(
                f"unknown auction parameter(s): {', '.join(unknown)}",
                code="invalid_pricing",
                field=unknown[0],
                hint="known: " + ", ".join(sorted(known)),
            )
        second = data.get("second_price", False)
        if not isinstance(second, bool):
            raise PasarError(
                "second_price must be true or false", code="invalid_pricing", field="second_price"
            )
        weights = {
            key: parse_rate(data[key], field=key)
            for key in ("reputation_weight", "performance_weight")
            if key in data
        }
        return cls(second_price=second, **weights)

    def candidates(self, order: Order, views: Sequence[ProviderView], offers: Offers) -> Candidates:
        """The fitting providers that bid in the open window, each at its bid."""
        fitting, reasons = screen(order, views)
        bids = offers.bids()
        candidates = []
        for view, allocation in fitting:
            if view.id in bids:
                candidates.append(Candidate(view, allocation, bids[view.id]))
            else:
                reasons[view.id] = "did not bid in this window"
        return candidates, reasons

    def score(self, price: Money, reputation: Fraction, performance: Fraction) -> Fraction:
        """The score of one bid, in currency units per hour (the formula, written plainly)."""
        rep = min(max(Fraction(reputation), Fraction(0)), Fraction(1))
        perf = min(max(Fraction(performance), Fraction(0)), Fraction(1))
        return (
            Fraction(price.micros, MICROS_PER_UNIT)
            * (1 + self.reputation_weight * (1 - rep))
            * (1 - self.performance_weight * perf)
        )

    def scores(self, order: Order, candidates: Sequence[Candidate]) -> dict[str, Fraction]:
        """The score of every valid bid among ``candidates`` (first bid per provider)."""
        valid = _valid_bids(order, candidates, {})
        keys, denominator = self._keys(valid)
        return {
            c.provider.id: Fraction(k, denominator * MICROS_PER_UNIT)
            for c, k in zip(valid, keys, strict=True)
        }

    def _keys(self, valid: Sequence[Candidate]) -> tuple[list[int], int]:
        """Integer keys proportional to the scores, and the denominator that makes them micros.

        With ``w_rep = a/b``, ``w_perf = c/d``, ``reputation = p/q`` and ``performance = s/S``,
        ``score × 10⁶ = price_micros × (bq + a(q−p)) × (dS − cs) / (b·q·d·S)``; multiplying every
        bid by ``L/q`` (L = lcm of the q's) gives one common denominator ``L·b·d·S``.
        """
        a, b = self.reputation_weight.numerator, self.reputation_weight.denominator
        c, d = self.performance_weight.numerator, self.performance_weight.denominator
        rows: list[tuple[int, int, int, int]] = []  # (price micros, p, q, benchmark score)
        best = 0
        for x in valid:
            provider = x.provider
            rep = provider.reputation
            p, q = rep.numerator, rep.denominator
            if p < 0:
                p = 0
            elif p > q:
                p = q
            s = provider.score if provider.score > 0 else 0
            best = max(best, s)
            price = x.price_per_hour
            assert price is not None  # _valid_bids guarantees it
            rows.append((price.micros, p, q, s))
        big_s = best if best > 0 else 1
        lcm = math.lcm(*(row[2] for row in rows)) if rows else 1
        ds = d * big_s
        keys = [
            micros * (b * q + a * (q - p)) * (ds - c * s) * (lcm // q) for micros, p, q, s in rows
        ]
        return keys, lcm * b * d * big_s

    def clear(
        self, order: Order, candidates: Sequence[Candidate], rng: random.Random
    ) -> MatchResult:
        """Award the ``order.leases`` lowest scores; give every other candidate its reason."""
        reasons: dict[str, str] = {}
        valid = _valid_bids(order, candidates, reasons)
        wanted = order.leases
        if not valid:
            note = "no valid bid" if reasons else "no provider bid"
            return MatchResult((), reasons, wanted, note)
        keys, denominator = self._keys(valid)
        ranked = rank([(k, c.provider.id, (k, c)) for k, c in zip(keys, valid, strict=True)], rng)
        fill = fill_nodes(order, ranked)
        if order.together and fill.nodes < wanted:
            why = (
                f"together order needs {wanted} nodes, the {len(ranked)} valid bids have room "
                f"for {fill.nodes} (placement: spread)"
                if order.shares_providers
                else f"together order needs {wanted} providers, only {len(ranked)} valid bids"
            )
            for _, c in ranked:
                reasons[c.provider.id] = why
            return MatchResult((), reasons, wanted, why + ": nobody wins")
        losers = [(k, c) for k, c in ranked if c.id not in fill.winners]
        awards = []
        # the first place nobody takes: a loser's bid, or a further node of a winner's
        runner_up = fill.runner_up.price_per_hour if fill.runner_up is not None else None
        cap = order.max_price_per_hour
        for _, c, n in fill.placed:
            own = c.price_per_hour
            assert own is not None
            pay = own
            if self.second_price and runner_up is not None:
                pay = max(min(runner_up, cap), own)
            awards.append(Award(c.provider.id, pay, n, c.allocation))
        threshold = fill.placed[-1][0]
        shown = score_text(_round_div(threshold, denominator))
        for key, c in losers:
            mine = score_text(_round_div(key, denominator))
            if key == threshold:
                reasons[c.provider.id] = f"score {mine} ties winner's {shown}; lost the tie-break"
            else:
                reasons[c.provider.id] = f"score {mine} > winner's {shown}"
        unfilled = wanted - fill.nodes
        partial = f"filled {fill.nodes} of {wanted} leases: too few valid bids"
        return MatchResult(tuple(awards), reasons, unfilled, partial if unfilled else None)


def _round_div(n: int, d: int) -> int:
    """``n / d`` rounded half up, in integers (for showing a score in micro-units)."""
    return (2 * n + d) // (2 * d)


def _valid_bids(
    order: Order, candidates: Iterable[Candidate], reasons: dict[str, str]
) -> list[Candidate]:
    """The first bid of each provider that can win; the others' reasons go into ``reasons``."""
    seen: set[str] = set()
    valid: list[Candidate] = []
    currency = order.currency
    ceiling = order.max_price_per_hour.micros
    for c in candidates:
        pid = c.provider.id
        if pid in seen:
            continue
        seen.add(pid)
        price = c.price_per_hour
        if price is None:
            reasons[pid] = "declined"
        elif price.currency == currency and 0 < price.micros <= ceiling:
            valid.append(c)  # the common case, without building a reason
        else:
            reasons[pid] = price_problem(order, price) or "invalid bid"
    return valid


class AuctionWindow:
    """The bidding window of one order: who was invited, who answered, and when it closes.

    A plain state object (no clock, no I/O): the market passes ``now_ms`` where time matters.
    Invited providers are those that fit the order; each may bid once or decline. The window
    is :meth:`ready` as soon as every invited provider has answered — so a small network clears
    in milliseconds instead of waiting for the deadline — or once the deadline has passed.
    A bid above the max, or in another currency, is recorded (the provider has answered) and
    :meth:`bid` returns the reason at once; :meth:`close` gives the same reason in the result.
    """

    def __init__(
        self,
        order: Order,
        fitting: Iterable[tuple[ProviderView, Allocation]],
        deadline_ms: int,
        auction: Auction | None = None,
        excluded: Mapping[str, str] | None = None,
    ) -> None:
        self.order = order
        self.deadline_ms = deadline_ms
        self.auction = auction if auction is not None else Auction()
        self._invited: dict[str, tuple[ProviderView, Allocation]] = {}
        for provider, allocation in fitting:
            self._invited.setdefault(provider.id, (provider, allocation))
        self._excluded: dict[str, str] = dict(excluded or {})
        self._answers: dict[str, Money | None] = {}
        self._closed = False

    @classmethod
    def open(
        cls,
        order: Order,
        providers: Iterable[ProviderView],
        deadline_ms: int,
        auction: Auction | None = None,
    ) -> AuctionWindow:
        """Screen ``providers`` and invite those that fit; the others' reasons are kept."""
        fitting, reasons = screen(order, providers)
        return cls(order, fitting, deadline_ms, auction, reasons)

    # -- state -------------------------------------------------------------------------------

    @property
    def invited(self) -> frozenset[str]:
        return frozenset(self._invited)

    @property
    def pending(self) -> frozenset[str]:
        """Invited providers that have neither bid nor declined."""
        return frozenset(self._invited.keys() - self._answers.keys())

    @property
    def closed(self) -> bool:
        return self._closed

    def ready(self, now_ms: int) -> bool:
        """True once every invited provider has answered, or the deadline has passed."""
        return len(self._answers) == len(self._invited) or now_ms >= self.deadline_ms

    # -- answers -----------------------------------------------------------------------------

    def _check(self, provider: str, now_ms: int | None) -> None:
        if self._closed:
            raise AuctionError(
                f"the auction for order {self.order.id} is closed", code="auction_closed"
            )
        if now_ms is not None and now_ms > self.deadline_ms:
            raise AuctionError(
                f"the auction for order {self.order.id} ended at {self.deadline_ms} ms",
                code="auction_closed",
            )
        if provider not in self._invited:
            reason = self._excluded.get(provider)
            raise AuctionError(
                f"provider {provider} is not invited to order {self.order.id}"
                + (f": {reason}" if reason else ""),
                code="not_invited",
                hint="only providers that fit the order may bid",
            )
        if provider in self._answers:
            raise AuctionError(
                f"provider {provider} already answered order {self.order.id}",
                code="duplicate_bid",
                hint="bids are sealed: one bid or decline per provider",
            )

    def bid(self, provider: str, price: Money, *, now_ms: int | None = None) -> str | None:
        """Record a sealed bid; return why it cannot win (e.g. above the max), or None."""
        self._check(provider, now_ms)
        self._answers[provider] = price
        return price_problem(self.order, price)

    def decline(self, provider: str, *, now_ms: int | None = None) -> None:
        """Record that ``provider`` will not bid (so the window need not wait for it)."""
        self._check(provider, now_ms)
        self._answers[provider] = None

    def close(self, rng: random.Random) -> MatchResult:
        """Clear the auction over the answers so far; silent invitees are told so."""
        if self._closed:
            raise AuctionError(
                f"the auction for order {self.order.id} is already closed", code="auction_closed"
            )
        self._closed = True
        candidates = [
            Candidate(provider, allocation, self._answers.get(pid))
            for pid, (provider, allocation) in self._invited.items()
            if pid in self._answers
        ]
        result = self.auction.clear(self.order, candidates, rng)
        reasons = dict(self._excluded)
        reasons.update(result.reasons)
        for pid in self._invited.keys() - self._answers.keys():
            reasons[pid] = "did not bid before the window closed"
        note: str | None = result.note
        if not result.awards and not self._invited:
            note = no_fit_note(self.order, self._excluded)
        return MatchResult(result.awards, reasons, result.unfilled, note)
