"""Losing a dead provider in seconds, never a live one (issue 13's liveness challenges).

- A provider SIGKILLed mid-job: its feed connection drops, the market challenges it, the
  challenge is missed, the lease is lost with the reason on it and the job ends with the right
  result from the other provider; money is conserved and ``pasar audit`` replays the decision.
- A live provider whose connection is cut (a network blip: every connection through a proxy
  closed, new ones held back for longer than the reopen window) is challenged, answers, and
  keeps its lease.
- A hostile client cannot make the market suspect someone else's provider: it cannot poll (or
  hang up on) another provider's feed, sign a challenge, or answer one for it.

Real ``pasar market serve`` and ``pasar provider start`` processes on 127.0.0.1 throughout.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from attacklib import Party, assert_money_safe

from pasar.core.errors import PasarError
from pasar.core.money import Money

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")

JOB = "echo working; sleep 5; echo done > out.txt"


def events(market: Any, kind: str) -> list[dict[str, Any]]:
    """The market's logged transactions of one type (its JSON log on stderr)."""
    return [line for line in market.log() if line.get("event") == kind]


def test_a_sigkilled_provider_is_lost_quickly_and_another_gives_the_right_result(
    market_server: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    victim = spawn_provider(market_server.url, tmp_path / "p1", "--price-cpu-hour", "0.01")
    other = spawn_provider(market_server.url, tmp_path / "p2", "--price-cpu-hour", "0.05")
    alice = Party(market_server)
    alice.fund()
    order_id = alice.launch(run=JOB, outputs=["out.txt"])
    alice.wait(order_id, lambda o: o["leases"] and o["leases"][0]["verified_intervals"] >= 1)
    assert alice.order(order_id)["leases"][0]["provider"] == victim.account
    victim.kill()  # SIGKILL mid-job: no drain, no release, no goodbye
    order = alice.wait(order_id, lambda o: o["status"] == "done", timeout=90)
    lost, done = order["leases"]
    assert lost["provider"] == victim.account and lost["status"] == "lost"
    # the reason is in the job's history: on the lost lease, and in the chain's challenge
    assert "missed a liveness challenge" in lost["note"] and "feed" in lost["note"]
    (challenge,) = [e for e in events(market_server, "liveness.challenge")
                    if e["provider"] == victim.account]  # fmt: skip
    assert challenge["reason"] in lost["note"]
    assert not [e for e in events(market_server, "liveness.answer")
                if e["provider"] == victim.account]  # fmt: skip
    # the lost lease is paid its verified time only, up to the challenge
    price = Money.parse(lost["price_per_hour"])
    assert lost["bill"]["billed"] == price.scale(lost["billed_ms"], 3_600_000).to_json()
    assert lost["billed_ms"] <= lost["verified_intervals"] * 5_000
    # the right result, from the other provider
    assert done["provider"] == other.account and done["status"] == "settled"
    (out,) = done["receipt"]["outputs"]
    assert alice.api.request("GET", f"/v1/blobs/{out['sha256']}").content == b"done\n"
    assert_money_safe(market_server.url)


class BlipProxy:
    """A TCP proxy to the market on 127.0.0.1: :meth:`cut` closes every connection through it
    and holds new ones back for ``hold_s`` (the provider's requests wait, as in a blip)."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.passing = threading.Event()
        self.passing.set()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self.passing.wait()
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        with self.lock:
            self.sockets += [client, upstream]
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self, hold_s: float) -> None:
        self.passing.clear()
        with self.lock:
            cut, self.sockets = self.sockets, []
        for s in cut:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        threading.Timer(hold_s, self.passing.set).start()

    def close(self) -> None:
        self.server.close()
        self.cut(0)


@pytest.fixture
def blip_proxy(market_server: Any) -> Iterator[BlipProxy]:
    proxy = BlipProxy(market_server.url)
    try:
        yield proxy
    finally:
        proxy.close()


def test_a_live_provider_whose_connection_drops_answers_and_keeps_its_lease(
    market_server: Any, spawn_provider: Any, blip_proxy: BlipProxy, tmp_path: Path
) -> None:
    provider = spawn_provider(blip_proxy.url, tmp_path / "p1", "--price-cpu-hour", "0.01")
    alice = Party(market_server)
    alice.fund()
    order_id = alice.launch(run="echo working; sleep 6; echo done > out.txt", outputs=["out.txt"])
    alice.wait(order_id, lambda o: o["leases"] and o["leases"][0]["verified_intervals"] >= 1)
    # its feed connection drops and its reconnection is held past the reopen window (1 s):
    # the market suspects it and challenges it; it answers once its poll gets through
    blip_proxy.cut(hold_s=1.8)
    order = alice.wait(order_id, lambda o: o["status"] == "done", timeout=60)
    (lease,) = order["leases"]  # never lost, never re-queued
    assert lease["provider"] == provider.account and lease["status"] == "settled"
    assert lease["receipt"]["exit_code"] == 0
    challenges = [e for e in events(market_server, "liveness.challenge")
                  if e["provider"] == provider.account]  # fmt: skip
    assert challenges, "the cut connection should have made the market suspicious"
    assert "feed" in challenges[0]["reason"]
    answered = {e["challenge_id"] for e in events(market_server, "liveness.answer")}
    assert {c["challenge_id"] for c in challenges} <= answered
    assert not events(market_server, "lease.lost")
    assert_money_safe(market_server.url)


def test_a_hostile_client_cannot_make_the_market_suspect_someone_elses_provider(
    market_server: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    provider = spawn_provider(market_server.url, tmp_path / "p1", "--price-cpu-hour", "0.01")
    alice, mallory = Party(market_server), Party(market_server)
    alice.fund()
    mallory.fund("1 USDC")
    before = mallory.get(f"/v1/accounts/{mallory.id}")
    order_id = alice.launch(run=JOB, outputs=["out.txt"])
    alice.wait(order_id, lambda o: o["leases"] and o["leases"][0]["status"] == "running")
    feed = f"/v1/providers/{provider.account}/feed"
    for _ in range(5):  # open the victim's feed and hang up at once, again and again
        with pytest.raises(PasarError) as err:
            mallory.api.request("GET", feed, params={"timeout": 5})
        assert err.value.status == 403
    # sign the market's challenge itself, through the only liveness route there is
    fake_id = f"{provider.account}.live-1"
    with pytest.raises(PasarError) as err:
        mallory.post(f"/v1/liveness/{fake_id}/answer", type="liveness.challenge",
                     provider=provider.account, reason="it is dead, trust me")  # fmt: skip
    assert 400 <= err.value.status < 500
    # answer (or pre-empt) the victim's challenge for it
    with pytest.raises(PasarError) as err:
        mallory.post(f"/v1/liveness/{fake_id}/answer", type="liveness.answer",
                     challenge_id=fake_id)  # fmt: skip
    assert err.value.status == 404
    order = alice.wait(order_id, lambda o: o["status"] == "done", timeout=60)
    (lease,) = order["leases"]
    assert lease["provider"] == provider.account and lease["status"] == "settled"
    assert not [e for e in events(market_server, "liveness.challenge")
                if e["provider"] == provider.account]  # fmt: skip
    after = mallory.get(f"/v1/accounts/{mallory.id}")
    assert after["balance"] == before["balance"]
    assert_money_safe(market_server.url)
