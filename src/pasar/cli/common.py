"""What the client-side commands share: the ``--market``/``--json`` options, the SDK client,
and small formatting helpers (reputations, exact money sums).

The market address is resolved by the SDK (:func:`pasar.client.config.market_url`): the
``--market`` flag, then ``$PASAR_MARKET``, then ``market = ...`` in ``$PASAR_HOME/config.toml``.
The client key is ``$PASAR_HOME/keys/default.key``, created on the first signed request.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import TYPE_CHECKING, TypeVar

import typer

from pasar.core.money import Money

if TYPE_CHECKING:
    from pasar.client.calls import Call
    from pasar.client.client import Client

MarketOpt = typer.Option(
    None,
    "--market",
    help="Market URL (default: $PASAR_MARKET, then `market` in $PASAR_HOME/config.toml).",
    show_default=False,
)
T = TypeVar("T")
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout.")


def make_client(market: str | None) -> Client:
    """The SDK client for ``--market`` (or the SDK's fallbacks); raises ``no_market``."""
    from pasar.client.client import Client

    return Client(market)


def perform(client: Client, call: Call[T]) -> T:
    """One described request (:mod:`pasar.client.calls`) through the client's transport, for
    the few CLI loops the SDK has no public method for (``launch --wait``'s progress)."""
    return client._call(call)


def reputation(value: object) -> str:
    """A reputation as people read it everywhere, two decimals (``0.67``): the wire carries it
    exactly, as a fraction (``"2/3"``, quotes and provider views) or a decimal (offers)."""
    if value is None:
        return "-"
    try:
        exact = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return str(value)
    return f"{float(exact):.2f}"


def money(value: object) -> Money | None:
    """A wire amount (``"1.25 USDC"``) as Money; None for a missing one."""
    if value is None:
        return None
    return Money.parse(value)


def total(amounts: Iterable[object], currency: str) -> Money:
    """The exact sum of wire amounts (missing ones count as zero)."""
    out = Money.zero(currency)
    for value in amounts:
        parsed = money(value)
        if parsed is not None:
            out += parsed
    return out


def percent(ratio: object) -> str:
    """``"0.25"`` → ``25%`` (exact decimal text, never a float); ``-`` if unreadable."""
    try:
        value = Decimal(str(ratio)) * 100
    except (InvalidOperation, ValueError):
        return "-"
    text = f"{value.normalize():f}"
    return f"{text}%"


def text(value: object) -> str:
    """A table cell: ``-`` for nothing, the value's text otherwise."""
    return "-" if value is None or value == "" else str(value)
