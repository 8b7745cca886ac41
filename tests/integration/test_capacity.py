"""Capacity proofs against a real market: a real provider proves its score; a provider that
claims more than it delivers (here: answers that are wrong) is excluded after its retry, and
``explain``, the offers and its own record say why; no money moves to it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_provider import PRICE, Client, conserved

from pasar.api.txs import Asks, ProviderRegister
from pasar.core.errors import PasarError
from pasar.crypto.identity import Identity
from pasar.provider.market_api import MarketAPI

if TYPE_CHECKING:
    from conftest import MarketProcess

WAIT_S = 180.0  # a bounded wait for the engine and the proof, not a timing assertion


def wait_for(what: str, probe: Any, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")
def test_a_real_provider_proves_its_score(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Path
) -> None:
    provider = spawn_provider(market_server.url, tmp_path / "p1", *PRICE)
    alice = Client(market_server)

    def passed() -> Any:
        info = alice.get(f"/v1/providers/{provider.account}")
        return info if info["capacity"]["state"] != "unchecked" else None

    info = wait_for("the provider's first verdict", passed)
    assert info["capacity"]["state"] == "passed", info["capacity"]
    assert info["score"] > 0
    (offer,) = info["offers"]
    assert offer["capacity"] == "passed"


def test_a_provider_that_cannot_prove_its_score_is_excluded(
    market_server: MarketProcess, tmp_path: Path
) -> None:
    cheat = MarketAPI(market_server.url, Identity.generate())
    cheat.register(
        ProviderRegister(
            inventory={"gpus": [], "cpus": 4, "memory_gb": 8, "disk_gb": 20},
            asks=Asks(cpu_core="0.01 USDC"),
            score=4 * 200,  # four times what a small machine measures
        )
    )
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")

    def me() -> Any:
        return alice.get(f"/v1/providers/{cheat.id}")

    answered: list[str] = []
    for _ in range(2):  # the challenge, then its retry: both answered with garbage, in time
        open_id = wait_for("a challenge", lambda: me()["capacity"].get("open"))
        challenge = alice.get(f"/v1/capacity/{open_id}")
        assert challenge["provider"] == cheat.id and challenge["n"] >= 256
        garbage = tmp_path / f"{open_id}.bin"
        garbage.write_bytes(bytes(challenge["n"] * challenge["n"]))  # all zeros: wrong
        entry = cheat.put_blob(garbage)
        cheat.capacity_answer(open_id, entry.sha256)
        with pytest.raises(PasarError) as err:  # once only
            cheat.capacity_answer(open_id, entry.sha256)
        assert err.value.status == 409 and err.value.code == "already_answered"
        answered.append(open_id)
        wait_for("the verdict", lambda oid=open_id: alice.get(f"/v1/capacity/{oid}")["verdict"])
    assert alice.get(f"/v1/capacity/{answered[0]}")["verdict"] == "failed"
    status = me()["capacity"]
    assert status["state"] == "failing" and "Freivalds" in status["reason"], status

    # it takes no work, and explain says why
    order_id = alice.launch(run="echo hi")
    explain = alice.get(f"/v1/orders/{order_id}/explain")
    reasons = {p["provider"]: p["reason"] for p in explain["providers"]}
    assert "failed its capacity proof" in reasons[cheat.id], reasons
    assert alice.order(order_id)["leases"] == []
    # its offers are left out of the list, and say why when asked for
    listed = alice.get("/v1/providers")["offers"]
    assert cheat.id not in {o["provider"] for o in listed}
    everyone = alice.get("/v1/providers", include_offline="true")["offers"]
    (offer,) = [o for o in everyone if o["provider"] == cheat.id]
    assert offer["capacity"].startswith("failing: ")

    # someone else cannot answer its challenges, and nothing moved to it
    other = MarketAPI(market_server.url, Identity.generate())
    with pytest.raises(PasarError) as err:
        other.capacity_answer(answered[-1], "ab" * 32)
    assert err.value.status in (403, 409)
    alice.post(f"/v1/orders/{order_id}/cancel", type="order.cancel", order_id=order_id)
    conserved(alice, "10 USDC")
    cheat.close()
    other.close()
