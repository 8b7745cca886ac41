"""The demo's TEE step runs without a network: three checks on the sample quotes, all passing
(the genuine one verifies, the flipped and the outdated ones are refused)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rich.console import Console

from pasar.showcase import Showcase

ROOT = Path(__file__).resolve().parents[3]


def test_the_demo_verifies_the_samples_and_says_they_are_not_ours() -> None:
    out = io.StringIO()
    net: Any = None  # this step needs no network
    show = Showcase(net=net, examples=ROOT / "examples", out=ROOT, console=Console(file=out))
    show.attest_offline()
    assert [ok for _, ok in show.checks] == [True, True, True]
    assert "not this machine's" in out.getvalue()
