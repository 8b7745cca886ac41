"""What the attack tests share: a signing party, and the checks that no money moved wrongly.

A module of its own (not ``conftest``): test folders are not packages, so ``from conftest
import ...`` may find another folder's conftest when the whole suite runs in one session.
:class:`Party` is one signing account (a client, a hostile provider...) talking to a market
through the SDK's own transport, so what it sends is what a real client would send.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from money_checks import assert_conserved
from pasar.client.raw_orders import send_order
from pasar.client.transport import Transport
from pasar.crypto.identity import Identity

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
        created = send_order(self.api, self.identity, full, inputs)
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


# -- a provider whose jobs start cold or warm ---------------------------------------------------

WARM_READY_S = 60.0


def spawn_sandboxed(spawn_provider: Any, url: str, home: Any, mode: str) -> Any:
    """A provider (``PROVIDER_ARGS``) whose leases start ``mode``: "cold" (``--warm-pool 0``)
    or "warm" (the default pool, waited for until its first key is full, so the first lease
    finds a warm sandbox). It logs each lease's timeline (``PASAR_TRACE=1``), for
    :func:`started_as`."""
    os.environ["PASAR_TRACE"] = "1"  # read by the provider process when it starts
    try:
        if mode == "cold":
            return spawn_provider(url, home, *PROVIDER_ARGS, "--warm-pool", "0")
        provider = spawn_provider(url, home, *PROVIDER_ARGS)
    finally:
        del os.environ["PASAR_TRACE"]
    deadline = time.monotonic() + WARM_READY_S
    while "warm sandboxes ready" not in provider.output():
        if time.monotonic() > deadline:
            raise AssertionError(f"no warm sandbox ready:\n{provider.output()[-4000:]}")
        time.sleep(0.05)
    return provider


def started_as(provider: Any, lease_id: str, wait_s: float = 30.0) -> str:
    """How the provider started a lease's job, from its timeline (``PASAR_TRACE=1``). The
    timeline is logged once the receipt is sent, so the market may have the lease's end a
    moment before the provider's log has the line: wait for it."""
    deadline = time.monotonic() + wait_s
    while True:
        for line in provider.output().splitlines():
            if f"lease {lease_id} timeline" in line:
                return "warm" if "workdir (warm)" in line else "cold"
        if time.monotonic() > deadline:
            raise AssertionError(f"no timeline for {lease_id}:\n{provider.output()[-4000:]}")
        time.sleep(0.05)
