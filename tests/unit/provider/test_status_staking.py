"""``pasar provider status`` prints stake, unbonding, each slash and why, and bid deposits."""

from __future__ import annotations

import pytest

from pasar.api.stake import BidDepositView, SlashView, StakeView, UnbondingView
from pasar.cli.provider import _print_staking


def test_staking_lines(capsys: pytest.CaptureFixture[str]) -> None:
    view = StakeView(
        provider="p",
        currency="USDC",
        stake="40.00 USDC",
        required="50.00 USDC",
        unbonding=[UnbondingView(amount="5.00 USDC", release_at=0)],
        slashed="10.00 USDC",
        slashes=[
            SlashView(
                at=1,
                amount="10.00 USDC",
                reward="5.00 USDC",
                burned="5.00 USDC",
                reason="fraud proven by [v]",
                source="stake",
            )
        ],
        bid_deposits=[BidDepositView(order_id="o-1", amount="0.50 USDC")],
    )
    _print_staking(view)
    out = capsys.readouterr().out
    assert "stake bonded 40.00 USDC (the market requires 50.00 USDC)" in out
    assert "unbonding 5.00 USDC, free at 1970-01-01 00:00 UTC" in out
    assert "slashed 10.00 USDC in all" in out
    assert "10.00 USDC from stake (5.00 USDC burned, 5.00 USDC reward): fraud proven by [v]" in out
    assert "bid deposit 0.50 USDC held for o-1" in out
