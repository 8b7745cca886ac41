"""A client that floods reads, holds long polls open, replays log appends and fills the disk.

Reads used to be built whole under the market's one lock, log reads loaded up to 64 MB on the
event loop, long polls were unbounded, blob uploads were anonymous and kept forever, and log
appends skipped the nonce check. Each attack below runs against a real market; honest writes
go on, and no money moves wrongly.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from attacklib import Party, assert_money_safe

from pasar.core.errors import PasarError
from pasar.crypto.envelope import sign, wall_clock_ms

SPEC = {"resources": {"cpus": 1}, "max_price_per_hour": "1 USDC", "max_duration": "10m"}


def _lease(market: Any) -> tuple[Party, Party, str, str]:
    """A client with a running lease on a provider that is only a key (no agent)."""
    alice, provider = Party(market), Party(market)
    alice.fund()
    provider.post(
        "/v1/providers",
        type="provider.register",
        inventory={"gpus": [], "cpus": 4, "memory_gb": 8, "disk_gb": 50},
        asks={"cpu_core": "0.05"},
        score=100,
    )
    threading.Thread(  # a live provider polls its feed: keep this one online for a while
        target=lambda: provider.get(f"/v1/providers/{provider.id}/feed", timeout=20),
        daemon=True,
    ).start()
    order_id = alice.launch(run="sleep 600", **{k: v for k, v in SPEC.items() if k != "resources"})
    order = alice.wait(order_id, lambda o: bool(o["leases"]), timeout=15)
    return alice, provider, order_id, order["leases"][0]["lease_id"]


def test_flooding_reads_is_throttled_while_writes_go_on(spawn_market: Any, tmp_path: Path) -> None:
    market = spawn_market(tmp_path / "m", "--rate-limit", "20")
    mallory, alice = Party(market), Party(market)
    mallory.fund("1 USDC")
    order_id = mallory.launch(run="true")
    statuses: list[int] = []
    retry_after: list[str] = []

    def flood() -> None:
        with httpx.Client(base_url=market.url, timeout=10) as http:
            for _ in range(150):  # bounded: three times the burst
                request = mallory.api.build("GET", f"/v1/orders/{order_id}")
                response = http.send(request)
                statuses.append(response.status_code)
                if response.status_code == 429:
                    retry_after.append(response.headers.get("retry-after", ""))

    flooder = threading.Thread(target=flood)
    flooder.start()
    latencies = []
    for _ in range(10):  # an honest account's writes during the flood
        t = time.perf_counter()
        alice.fund("1 USDC")
        latencies.append(time.perf_counter() - t)
        time.sleep(0.05)
    flooder.join()
    assert 429 in statuses and 200 in statuses
    assert all(int(r) >= 1 for r in retry_after)
    assert alice.get(f"/v1/accounts/{alice.id}")["balance"] == "10.00 USDC"
    print(f"write latency during the flood: p50 {statistics.median(latencies) * 1000:.1f} ms")
    assert_money_safe(market.url)


def test_long_polls_are_bounded_per_account(market_server: Any) -> None:
    mallory = Party(market_server)
    mallory.fund("1 USDC")
    order_id = mallory.launch(run="true", max_price_per_hour="0.01 USDC")
    head = mallory.get(f"/v1/orders/{order_id}/wait", timeout=0)["next"]
    codes: list[int] = []
    lock = threading.Lock()

    def hold() -> None:
        params = {"after": head, "timeout": 4}  # nothing happens to the order: each one waits
        request = mallory.api.build("GET", f"/v1/orders/{order_id}/wait", params=params)
        with httpx.Client(base_url=market_server.url, timeout=15) as http:
            code = http.send(request).status_code
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=hold) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes.count(429) >= 1 and codes.count(200) >= 1
    assert Party(market_server).get("/v1/stats")  # the market still serves everyone else
    assert_money_safe(market_server.url)


def test_log_appends_cannot_be_replayed_raced_or_reopened(market_server: Any) -> None:
    alice, provider, order_id, lease_id = _lease(market_server)
    path = f"/v1/leases/{lease_id}/logs"
    body = {"type": "logs", "lease_id": lease_id, "offset": 0, "data": "line 1\n"}
    envelope = sign(body, provider.identity, now_ms=wall_clock_ms(), market=provider.api.market)
    first = httpx.post(f"{market_server.url}{path}", json=envelope)
    assert first.status_code == 200 and first.json()["size"] == 7
    replay = httpx.post(f"{market_server.url}{path}", json=envelope)
    assert replay.status_code == 409 and replay.json()["error"]["code"] == "nonce_reused"

    results: list[int] = []
    barrier = threading.Barrier(4)

    def race(n: int) -> None:
        chunk = {"type": "logs", "lease_id": lease_id, "offset": 7, "data": f"racer {n}\n"}
        env = sign(chunk, provider.identity, now_ms=wall_clock_ms(), market=provider.api.market)
        barrier.wait()
        results.append(httpx.post(f"{market_server.url}{path}", json=env).status_code)

    racers = [threading.Thread(target=race, args=(n,)) for n in range(4)]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    assert sorted(results) == [200, 409, 409, 409]  # one append per offset, never two
    text = alice.logs(lease_id)
    assert text.startswith("line 1\nracer ") and text.count("racer") == 1

    alice.post(f"/v1/orders/{order_id}/cancel", type="order.cancel", order_id=order_id)
    with pytest.raises(PasarError) as closed:
        provider.post(path, type="logs", lease_id=lease_id, offset=len(text), data="late\n")
    assert closed.value.status == 409 and closed.value.code == "not_running"
    assert_money_safe(market_server.url)


def test_blob_uploads_are_signed_counted_and_collected(spawn_market: Any, tmp_path: Path) -> None:
    market = spawn_market(tmp_path / "m", "--blob-quota-mb", "1", "--blob-grace", "2")
    alice, bob = Party(market), Party(market)
    alice.fund()
    data = os.urandom(600_000)
    sha = hashlib.sha256(data).hexdigest()
    anonymous = httpx.put(f"{market.url}/v1/blobs/{sha}", content=data)
    assert anonymous.status_code == 401
    assert alice.put_blob(data) == sha
    assert alice.put_blob(data) == sha  # the same blob again costs nothing more
    with pytest.raises(PasarError) as full:
        alice.put_blob(os.urandom(600_000))
    assert full.value.status == 413 and full.value.code == "quota_exceeded"
    kept = os.urandom(1000)
    kept_sha = bob.put_blob(kept)  # another account has its own quota
    bob.fund()
    bob.launch(
        run="cat in.bin",
        max_price_per_hour="0.01 USDC",  # nobody takes it: the order just names the blob
        inputs=[{"path": "in.bin", "sha256": kept_sha, "size": len(kept)}],
    )

    def stored(who: Party, blob: str) -> bool:  # a signed HEAD: 200 to those who may read it
        try:
            return who.api.request("HEAD", f"/v1/blobs/{blob}").status_code == 200
        except PasarError as err:
            assert err.status == 404
            return False

    assert stored(alice, sha)
    assert httpx.head(f"{market.url}/v1/blobs/{sha}").status_code == 404  # nobody else learns
    assert not stored(bob, sha)
    deadline = time.monotonic() + 20
    while stored(alice, sha):
        assert time.monotonic() < deadline, "the unreferenced blob was never collected"
        time.sleep(0.5)
    assert stored(bob, kept_sha)  # named by bob's order: kept
    assert alice.put_blob(os.urandom(600_000))  # the collected blob no longer counts
    assert_money_safe(market.url)
