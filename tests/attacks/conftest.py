"""Attacks on real processes: a market on 127.0.0.1, sandboxed provider agents, hostile parties.

Each file in this folder is one family of attacks (issue 9). Every test performs the attack
against real ``pasar market serve`` / ``pasar provider start`` processes, asserts the refusal,
and then asserts that no money moved wrongly: :func:`assert_conserved` (every micro-unit minted
is still somewhere) and :func:`assert_audit_passes` (``pasar audit`` replays the chain).

The integration fixtures are re-used (``market_server``, ``spawn_market``, ``spawn_provider``);
:class:`Party` is one signing account (a client, a hostile provider...) talking to a market
through the SDK's own transport, so what it sends is what a real client would send.

Test modules import these helpers as ``from pasar_attacks import Party, ...``: several folders
have a ``conftest.py``, so the plain name ``conftest`` may be another folder's module.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from pasar.client.transport import Transport
from pasar.core.money import Money
from pasar.crypto.identity import Identity

_NAME = "pasar_integration_conftest"
_PATH = Path(__file__).resolve().parents[1] / "integration" / "conftest.py"


def _load() -> Any:
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module
    spec.loader.exec_module(module)
    return module


_integration = _load()
MarketLauncher = _integration.MarketLauncher
MarketProcess = _integration.MarketProcess
ProviderProcess = _integration.ProviderProcess
market_server = _integration.market_server
spawn_market = _integration.spawn_market
spawn_provider = _integration.spawn_provider

PROVIDER_ARGS = ("--price-cpu-hour", "0.05", "--grace", "5")
FUNDS = "10 USDC"


class Party:
    """One account on one market: signs what it posts, reads through the SDK transport."""

    def __init__(self, market: Any, identity: Identity | None = None) -> None:
        self.identity = identity or Identity.generate()
        self.id = self.identity.account_id
        self.url: str = market.url
        self.api = Transport(market.url, identity=self.identity)

    def post(self, path: str, **body: Any) -> Any:
        return self.api.post_signed(path, body, self.identity)

    def get(self, path: str, **params: Any) -> Any:
        return self.api.get(path, params)

    def fund(self, amount: str = FUNDS) -> None:
        self.post("/v1/faucet", type="faucet", amount=amount)

    def launch(self, **spec: Any) -> str:
        inputs = spec.pop("inputs", [])
        full = {
            "resources": {"cpus": 1},
            "max_price_per_hour": "1 USDC",
            "max_duration": "2m",
            **spec,
        }
        created = self.post("/v1/orders", type="order.create", spec=full, inputs=inputs)
        return str(created["order_id"])

    def order(self, order_id: str) -> Any:
        return self.get(f"/v1/orders/{order_id}")

    def wait(self, order_id: str, predicate: Callable[[Any], bool], timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            order = self.order(order_id)
            if predicate(order):
                return order
            time.sleep(0.1)
        raise AssertionError(f"order {order_id} never got there: {self.order(order_id)}")

    def logs(self, lease_id: str) -> str:
        return str(self.api.request("GET", f"/v1/leases/{lease_id}/logs").text)

    def put_blob(self, data: bytes) -> str:
        import hashlib

        sha = hashlib.sha256(data).hexdigest()
        self.api.request("PUT", f"/v1/blobs/{sha}", content=data)
        return sha


def ended(order: Any) -> bool:
    """Every lease of the order is over and nothing is left to fill."""
    return (
        bool(order["leases"])
        and not order["unfilled"]
        and all(x["status"] != "running" for x in order["leases"])
    )


def balances(url: str) -> dict[str, str]:
    return dict(httpx.get(f"{url}/v1/state/balances", timeout=10).json()["balances"])


def assert_conserved(url: str) -> None:
    """Every account but the mint sums to exactly what the mint issued (no micro-unit lost)."""
    values = balances(url)
    minted = -sum(Money.parse(v).micros for k, v in values.items() if k.startswith("mint/"))
    rest = sum(Money.parse(v).micros for k, v in values.items() if not k.startswith("mint/"))
    assert rest == minted, f"ledger not conserved: {values}"


def assert_audit_passes(url: str) -> None:
    """``pasar audit --market URL`` replays the whole chain and agrees with the market."""
    deadline = time.monotonic() + 15
    while True:  # the engine seals a block every second; wait until the log is covered
        done = subprocess.run(
            [sys.executable, "-m", "pasar", "audit", "--market", url, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert done.returncode == 0, done.stdout + done.stderr


def assert_money_safe(url: str) -> None:
    assert_conserved(url)
    assert_audit_passes(url)


sys.modules.setdefault("pasar_attacks", sys.modules[__name__])
