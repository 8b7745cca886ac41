"""Pricing mechanisms, one module each behind the :class:`~pasar.core.pricing.base.Mechanism`
protocol, and the one table that maps a mechanism's name to how it is built from preset data.

Adding a mechanism is a new module plus one row in :data:`BUILDERS`; nothing else branches on
mechanism names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pasar.core.errors import PasarError
from pasar.core.pricing.auction import Auction
from pasar.core.pricing.base import Mechanism
from pasar.core.pricing.book import Book
from pasar.core.pricing.performance import Performance
from pasar.core.pricing.stake import StakeShare
from pasar.core.pricing.tender import Tender
from pasar.core.stake import StakeRule

Builder = Callable[[Mapping[str, Any], StakeRule], Mechanism]

BUILDERS: dict[str, Builder] = {
    "auction": lambda data, _rule: Auction.from_mapping(data),
    "book": lambda data, _rule: Book.from_mapping(data),
    "performance": lambda data, rule: Performance.from_mapping(data, stake_rule=rule),
    "tender": lambda data, rule: Tender.from_mapping(data, stake_rule=rule),
    "stake": lambda data, rule: StakeShare.from_mapping(data, stake_rule=rule),
}

MECHANISM_NAMES: tuple[str, ...] = tuple(BUILDERS)


def build_mechanism(name: str, params: Mapping[str, Any], stake_rule: StakeRule) -> Mechanism:
    """The mechanism called ``name``, configured from a preset's ``[pricing.NAME]`` table."""
    builder = BUILDERS.get(name)
    if builder is None:
        raise PasarError(
            f"unknown pricing mechanism {name!r}",
            code="unknown_mechanism",
            field="pricing",
            hint="one of: " + ", ".join(MECHANISM_NAMES),
        )
    return builder(params, stake_rule)


__all__ = ["BUILDERS", "MECHANISM_NAMES", "Mechanism", "build_mechanism"]
