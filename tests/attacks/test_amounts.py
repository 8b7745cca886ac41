"""Amounts in look-alike spellings: Unicode digits, a leading '+', stray spaces, a lower-case code.

Python's ``int`` and ``Decimal`` read ``"١"`` (Arabic-Indic one) and ``"１"`` (fullwidth one) as 1,
and a lenient parser would read ``" 5 usdc"`` as 5 USDC. An amount is part of a signed body, so
the market reads exactly one spelling (the one it writes) and refuses the rest with a 400 that
names the field. Every attack here runs against a real market; afterwards no money has moved.
"""

from __future__ import annotations

from typing import Any

import pytest
from attacklib import Party, assert_audit_passes

from money_checks import assert_conserved, balances
from pasar.core.errors import PasarError

LOOK_ALIKES = [
    "\u0665 USDC",  # Arabic-Indic five
    "\uff15 USDC",  # fullwidth five
    "\u096b USDC",  # Devanagari five
    "1\u0660 USDC",  # 1 then Arabic-Indic zero
    "+5 USDC",
    "+5",
    " 5 USDC",
    "5 USDC ",
    "5  USDC",
    "5\tUSDC",
    "5\u00a0USDC",  # no-break space
    "1 000 USDC",
    "5 usdc",
    "5 Usdc",
    "5USDC",
]


def _refused(call: Any, field: str) -> PasarError:
    with pytest.raises(PasarError) as err:
        call()
    error = err.value
    assert error.status == 400, error.to_dict()
    # a spec's problems come as details, each naming its field
    named = [(error.field, error.hint)] + [(d.field, d.hint) for d in error.details]
    assert any(f is not None and field in f and h for f, h in named), error.to_dict()
    return error


def test_faucet_refuses_look_alike_amounts(market_server: Any) -> None:
    party = Party(market_server)
    party.fund("1 USDC")  # the one spelling works
    before = balances(market_server.url)
    for amount in LOOK_ALIKES:
        error = _refused(
            lambda amount=amount: party.post("/v1/faucet", type="faucet", amount=amount), "amount"
        )
        assert error.code == "invalid_amount", (amount, error.to_dict())
    assert balances(market_server.url) == before
    assert_conserved(market_server.url)
    assert_audit_passes(market_server.url)


def test_orders_refuse_look_alike_prices(market_server: Any) -> None:
    party = Party(market_server)
    party.fund("10 USDC")
    before = balances(market_server.url)
    for amount in LOOK_ALIKES:
        if "USDC" not in amount.upper():
            continue  # a spec's price must name its currency anyway
        _refused(
            lambda amount=amount: party.launch(run="true", max_price_per_hour=amount), "max_price"
        )
    assert balances(market_server.url) == before
    assert party.get("/v1/orders", client=party.id)["orders"] == []
    assert_conserved(market_server.url)
    assert_audit_passes(market_server.url)
