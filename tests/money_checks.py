"""The check every test that moves money ends with: the ledger is conserved.

A module of its own at the top of ``tests/`` (on ``sys.path`` there, as ``tests/conftest.py``'s
folder), importable from every test folder: test folders are not packages, so one folder's
helper module (``attacklib``) is not importable from another's.
"""

from __future__ import annotations

import httpx

from pasar.core.money import Money


def balances(url: str) -> dict[str, str]:
    """Every non-zero balance of the market at ``url``, as ``{account/currency: amount}``."""
    return dict(httpx.get(f"{url}/v1/state/balances", timeout=10).json()["balances"])


def assert_conserved(url: str) -> None:
    """The market at ``url``'s ledger is conserved: every account but the mint holds, in all,
    exactly what the mint issued (no micro-unit lost or made)."""
    values = balances(url)
    minted = -sum(Money.parse(v).micros for k, v in values.items() if k.startswith("mint/"))
    rest = sum(Money.parse(v).micros for k, v in values.items() if not k.startswith("mint/"))
    assert rest == minted, f"ledger not conserved: {values}"
