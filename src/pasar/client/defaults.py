"""What the client decides for a spec that leaves it open — the price cap, the duration — and what
it says of ``resources.alternatives``, before it signs anything, each said out loud.

Why here and not in the market: an order is signed money (its cap is what escrow locks), so
the one who pays decides it; the market only *quotes* (``POST /v1/orders/quote``, computed by
the very code an order runs) and the client derives no price itself:

- **max_duration** missing: ``default_duration`` from ``pasar config`` (1h);
- **max_price_per_hour** missing: the market's quote for the requested resources — the price of
  the lease it would award now (the dearest, for a job of several leases), or else the cheapest
  fitting ask — times ``price_margin`` from ``pasar config`` (1.25). A quote with no price to
  start from (bids decide, nobody fits, or the mechanism prices at the cap itself) is refused,
  naming the field to set;
- **resources.alternatives** (SkyPilot's ``any_of``/``ordered``): the order carries them all
  and the *market* chooses when it matches (:mod:`pasar.core.alternatives`), so an order that
  waits may be matched by a provider fitting any of them, even one that joins later. Each
  alternative is still quoted, to say out loud which providers fit which and which one the
  market would take now (``pick: cheapest``: the cheapest some provider would take now;
  ``ordered``: the first such). Without ``max_price_per_hour``, the one cap (the spec has one:
  per hour, whatever the alternative) is the **max** over the alternatives some provider
  prices now of its quote × ``price_margin``, so every alternative that fits now stays
  affordable; each alternative's own cap is printed beside it.

A spec that says everything costs no request at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from pasar.api.quote import QuoteResponse
from pasar.client import calls
from pasar.client.calls import Call
from pasar.client.settings import DEFAULT_DURATION, DEFAULT_PRICE_MARGIN, get_setting
from pasar.core.errors import PasarError
from pasar.core.money import Money, parse_rate
from pasar.core.spec import JobSpec, parse_duration
from pasar.core.spec_draft import Draft

#: answers a quote request's body (``{"spec": public data, maybe without a price cap}``)
Quoter = Callable[[Mapping[str, Any]], QuoteResponse]


@dataclass(frozen=True)
class Decided:
    """The complete spec to sign and what was decided to make it so, one line each."""

    spec: JobSpec
    max_price_from: str  # "spec" or "quote"
    max_duration_from: str  # "spec" or "config"
    # which of resources.alternatives (0-based) the market would take now, if any (the order
    # carries them all: the market chooses when it matches)
    alternative: int | None = None
    lines: tuple[str, ...] = ()  # the file's notes, then the decisions

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_price_per_hour": self.spec.max_price_per_hour.to_json(),
            "max_price_from": self.max_price_from,
            "max_duration": self.spec.max_duration,
            "max_duration_from": self.max_duration_from,
            "alternative": self.alternative,
            "decisions": list(self.lines),
        }


@dataclass(frozen=True)
class Settings:
    """The two settings a decision reads (``pasar config``), as exact values."""

    price_margin: Fraction
    default_duration_s: int
    margin_text: str = DEFAULT_PRICE_MARGIN
    duration_text: str = DEFAULT_DURATION

    @classmethod
    def read(cls, home: Path) -> Settings:
        margin = get_setting(home, "price_margin") or DEFAULT_PRICE_MARGIN
        duration = get_setting(home, "default_duration") or DEFAULT_DURATION
        return cls(parse_rate(margin), _seconds(duration), margin, duration)


def _seconds(text: str) -> int:
    return parse_duration(text.strip())  # checked when it was set (settings._duration)


def needs_deciding(draft: Draft) -> bool:
    """Whether the client must decide anything (and so ask the market for quotes)."""
    return bool(draft.missing) or draft.data.get("resources", {}).get("alternatives") is not None


def decide(draft: Draft, quote: Quoter, settings: Settings) -> Decided:
    """The complete spec for ``draft``: see the module docstring for each rule."""
    steps = decide_steps(draft, settings, None)
    reply: Any = None
    while True:
        try:
            call = steps.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        reply = quote(call.json or {})  # the QuoteRequest body: {"spec": ...}


def decide_steps(
    draft: Draft, settings: Settings, account: str | None
) -> Generator[Call[QuoteResponse], QuoteResponse, Decided]:
    """:func:`decide` as the quote calls it makes, for a client's ``_drive`` (sync or async):
    each step is one ``POST /v1/orders/quote`` and receives its answer."""
    if (unmet := draft.unmet()) is not None:  # a null env the caller did not give
        raise unmet
    if not needs_deciding(draft):  # said everything: no quote asked
        return Decided(draft.spec(), "spec", "spec", None, draft.notes)
    lines = list(draft.notes)
    duration_from = "spec"
    if "max_duration" not in draft.data:
        draft = draft.with_fields(max_duration=settings.default_duration_s)
        duration_from = "config"
        lines.append(
            f"max_duration: not in the spec: {settings.duration_text} "
            f"({settings.default_duration_s} s), pasar config default_duration"
        )
    priced = "max_price_per_hour" in draft.data
    spec = draft.checked() if not priced else draft.spec()
    choices = spec.choices()
    quotes = []
    for choice in choices:
        quotes.append((yield calls.quote(_public(choice, priced), account)))
    index = _pick(spec, quotes, priced)
    alternatives = spec.resources.alternatives is not None
    caps = [None if priced else _cap(q, settings) for q in quotes]
    if alternatives:
        lines.append(_alternatives_line(spec, choices, quotes, index, caps))
    if priced:
        final = spec if alternatives else choices[index]
        price_from = "spec"
    else:
        priced_now = [(cap, i) for i, cap in enumerate(caps) if cap is not None]
        if not priced_now:
            _price_basis(quotes[index])  # raises, naming why the chosen one has no price
        cap, at = max(priced_now, key=lambda c: (c[0][0].micros, -c[1]))
        final = spec.model_copy(update={"max_price_per_hour": cap[0]})
        price_from = "quote"
        basis, who = cap[1], cap[2]
        over = f" (the dearest of the alternatives' caps: [{at}])" if alternatives else ""
        lines.append(
            f"max_price_per_hour: not in the spec: {cap[0]} = {settings.margin_text} × {basis} "
            f"(the market's quote: {who}){over}, pasar config price_margin"
        )
    # the final spec validated as a whole, as the market will (the cap was set by copy)
    complete = JobSpec.from_dict(final.to_dict(), source=draft.source)
    return Decided(
        complete.with_notes(tuple(lines)),
        price_from,
        duration_from,
        index if alternatives else None,
        tuple(lines),
    )


def _cap(quote: QuoteResponse, settings: Settings) -> tuple[Money, Money, str] | None:
    """``(cap, basis, whose)`` for one quote: its price × the margin, or None when it gives no
    price to start from (:func:`_price_basis` says why)."""
    try:
        basis, who = _price_basis(quote)
    except PasarError:
        return None
    return basis.scale(settings.price_margin), basis, who


def _public(spec: JobSpec, priced: bool) -> dict[str, Any]:
    data = spec.public_dict()
    if not priced:  # quoted uncapped: the market shows what providers ask
        data.pop("max_price_per_hour", None)
    return data


def _price_basis(quote: QuoteResponse) -> tuple[Money, str]:
    """The price the cap starts from, and whose it is; refused when the quote has none."""
    cap = Money.parse(quote.max_price_per_hour)
    if quote.awards:
        award = max(quote.awards, key=lambda a: Money.parse(a.price_per_hour).micros)
        price = Money.parse(award.price_per_hour)
        if price < cap:
            leases = f"{quote.leases} leases, dearest " if quote.leases > 1 else ""
            return price, f"{leases}{award.provider} at {price}/h"
    priced = [Money.parse(o.price_per_hour) for o in quote.offers if o.price_per_hour]
    priced = [p for p in priced if p < cap]
    if priced:
        cheapest = min(priced, key=lambda m: m.micros)
        return cheapest, f"the cheapest fitting ask, {cheapest}/h"
    why = (
        "bids decide the price on this market (an auction)"
        if quote.takes_bids or quote.decided_by
        else "no provider that fits asks a price"
        if quote.offers
        else "no provider fits the job now"
    )
    raise PasarError(
        f"the spec sets no max_price_per_hour, and the market's quote gives none to start "
        f"from: {why}",
        code="no_price_to_default",
        field="max_price_per_hour",
        hint='set it in the spec (max_price_per_hour: "2 USDC") or with --max-price',
    )


def _fits_now(quote: QuoteResponse) -> bool:
    return bool(quote.awards) or any(o.price_per_hour for o in quote.offers)


def _pick(spec: JobSpec, quotes: list[QuoteResponse], priced: bool) -> int:
    """Which choice to send: see the module docstring."""
    if len(quotes) == 1:
        return 0
    now = [i for i, q in enumerate(quotes) if _fits_now(q)]
    if now:
        if spec.resources.pick == "ordered":
            return now[0]
        return min(now, key=lambda i: (_cheapest(quotes[i]), i))
    ever = [i for i, q in enumerate(quotes) if q.fits_anywhere]
    return ever[0] if ever else 0


def _cheapest(quote: QuoteResponse) -> int:
    """The price an alternative would cost per lease now (the dearest award, else the
    cheapest ask): alternatives are compared by it, in micro-units."""
    if quote.awards:
        return max(Money.parse(a.price_per_hour).micros for a in quote.awards)
    prices = [Money.parse(o.price_per_hour).micros for o in quote.offers if o.price_per_hour]
    return min(prices) if prices else 1 << 62


def _alternatives_line(
    spec: JobSpec,
    choices: tuple[JobSpec, ...],
    quotes: list[QuoteResponse],
    index: int,
    caps: list[tuple[Money, Money, str] | None],
) -> str:
    how = "the cheapest that fits" if spec.resources.pick == "cheapest" else "the first that fits"
    parts = []
    for i, (choice, q, cap) in enumerate(zip(choices, quotes, caps, strict=True)):
        fit = [o.provider for o in q.offers if o.price_per_hour or o.leases]
        said = f"{len(fit)} provider(s) fit" + (f" ({', '.join(fit[:3])})" if fit else "")
        capped = f", cap {cap[0]}" if cap is not None else ""
        mark = " <- the market would take it now" if i == index and _fits_now(q) else ""
        parts.append(f"[{i}] {choice.to_request().describe()}: {said}{capped}{mark}")
    return (
        f"resources.alternatives: the order carries all {len(choices)}; the market takes {how} "
        "when it matches: " + "; ".join(parts)
    )


def quote_data(
    spec: object, base_dir: str | os.PathLike[str] | None, home: str | os.PathLike[str] | None
) -> dict[str, Any]:
    """What a quote of ``spec`` (a JobSpec, mapping, file or draft) sends: its public part,
    the default duration where it sets none, and no price cap where it sets none (the market
    then quotes what providers ask)."""
    from pasar.client.inputs import load_draft_job
    from pasar.crypto.identity import pasar_home

    draft, _ = load_draft_job(spec, base_dir)
    if "max_duration" not in draft.data:  # the default only changes the escrow shown
        seconds = Settings.read(pasar_home(home)).default_duration_s
        draft = draft.with_fields(max_duration=seconds)
    return _public(draft.checked(), "max_price_per_hour" in draft.data)
