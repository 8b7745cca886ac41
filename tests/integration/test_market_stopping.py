"""Stopping the market (SIGTERM/SIGINT) while clients wait on it (issue 14.6).

A real market process and real long-poll clients: an open feed or order wait is answered at once
with 503 ``market_stopping`` and ``Retry-After`` (never a 500, never a traceback in the log);
the SDK's wait rides through a restart on the same port; a client that gives up says one
sentence; and the ledger stays conserved across the stop.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from pasar.client.client import Client
from pasar.core.errors import PasarError
from pasar.core.money import Money

if TYPE_CHECKING:
    from conftest import MarketProcess

IDLE = {  # no provider serves it: the order stays open, and its wait long-polls
    "name": "idle",
    "run": "true",
    "resources": {"cpus": 1},
    "max_price_per_hour": "1 USDC",
    "max_duration": "10m",
}


def _conserved(client: Client, minted: str) -> None:
    balances = client.transport.get("/v1/state/balances")["balances"]
    rest = sum(Money.parse(v).micros for k, v in balances.items() if not k.startswith("mint/"))
    assert rest == -Money.parse(balances["mint/USDC"]).micros == Money.parse(minted).micros


def _clean_log(market: MarketProcess) -> None:
    """No traceback, no 500, and the stop was graceful."""
    assert "Traceback" not in market.stderr_path.read_text()
    log = market.log()
    assert not [e for e in log if e.get("event") == "request" and e.get("status") == 500]
    assert any(e.get("event") == "market.stopped" for e in log)


def _in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # handed to the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _waiting(market: MarketProcess, path_part: str, before: int) -> None:
    """Until the market has answered one more request on ``path_part`` than ``before`` (the
    client's first, short poll), so that its next request is the long poll."""
    for _ in range(200):
        seen = [e for e in market.log() if path_part in str(e.get("path", ""))]
        if len(seen) > before:
            time.sleep(0.3)  # the long poll's request is on its way
            return
        time.sleep(0.05)
    raise AssertionError(f"no request on {path_part}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_open_wait_is_answered_503_market_stopping_with_retry_after(
    market_server: MarketProcess, tmp_path: Path, sig: int
) -> None:
    with Client(market_server.url, home=tmp_path / "client-home") as client:
        client.faucet("5 USDC")
        job = client.launch(IDLE, base_dir=tmp_path)
        wait = f"/v1/orders/{job.id}/wait"
        head = client.transport.request(
            "GET", wait, signer=client.identity, params={"after": 0, "timeout": 0}
        ).json()["next"]
        request = client.transport.build(
            "GET", wait, client.identity, params={"after": head, "timeout": 25}
        )
    thread, out = _in_thread(lambda: httpx.Client(timeout=60).send(request))
    time.sleep(1.0)  # the poll is open (nothing happens to an order no provider serves)
    assert "value" not in out
    assert market_server.stop(sig) == 0
    thread.join(30)
    response: httpx.Response = out["value"]
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "market_stopping"
    assert error["message"] and error["hint"]
    _clean_log(market_server)


def test_the_sdk_wait_rides_through_a_restart_on_the_same_port(
    market_server: MarketProcess, tmp_path: Path
) -> None:
    with Client(market_server.url, home=tmp_path / "client-home") as client:
        client.faucet("5 USDC")
        # a handle made from the id: its wait reads the order first (a short poll, which the
        # market logs when it answers), then long-polls (a launched job's handle long-polls at
        # once, from the cursor its creation answered, and nothing is logged until it ends)
        job = client.job(client.launch(IDLE, base_dir=tmp_path).id)
        before = len([e for e in market_server.log() if "/wait" in str(e.get("path", ""))])
        thread, out = _in_thread(lambda: job.wait(timeout=120))
        _waiting(market_server, "/wait", before)
        port = market_server.url.rsplit(":", 1)[1]
        again = market_server.restart("--port", port)
        assert again.url == market_server.url
        _clean_log(market_server)
        assert thread.is_alive()  # still waiting: the 503 was retried, not raised
        with Client(again.url, home=tmp_path / "client-home") as other:
            other.job(job.id).cancel()  # the end the waiting call hears of
            thread.join(60)
            assert "error" not in out, out.get("error")
            assert out["value"]["status"] == "cancelled"
            _conserved(other, "5 USDC")


def test_the_sdk_says_one_sentence_when_the_market_stays_away(
    market_server: MarketProcess, tmp_path: Path
) -> None:
    with Client(market_server.url, home=tmp_path / "client-home") as client:
        client.faucet("5 USDC")
        job = client.job(client.launch(IDLE, base_dir=tmp_path).id)  # as above: a short poll
        client.transport.stopping_wait_s = 3.0  # not the default 30 s
        before = len([e for e in market_server.log() if "/wait" in str(e.get("path", ""))])
        thread, out = _in_thread(lambda: job.wait(timeout=120))
        _waiting(market_server, "/wait", before)
        assert market_server.stop() == 0
        thread.join(60)
        error = out["error"]
        assert isinstance(error, PasarError)
        assert error.code == "market_stopping"
        assert error.message.startswith(f"the market at {market_server.url} is stopping")
        assert "try again in" in error.message
        _clean_log(market_server)


def test_cli_result_prints_one_sentence_and_exits_2(
    market_server: MarketProcess, tmp_path: Path
) -> None:
    home = tmp_path / "client-home"
    with Client(market_server.url, home=home) as client:
        client.faucet("5 USDC")
        job = client.launch(IDLE, base_dir=tmp_path)
    before = len([e for e in market_server.log() if "/wait" in str(e.get("path", ""))])
    env = {**os.environ, "PASAR_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    cli = subprocess.Popen(
        [sys.executable, "-m", "pasar", "result", job.id, "-d", str(tmp_path / "out")],
        env={**env, "PASAR_MARKET": market_server.url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _waiting(market_server, "/wait", before)
        assert market_server.stop() == 0
        stdout, stderr = cli.communicate(timeout=90)  # 30 s of retries, then the sentence
    finally:
        cli.kill()
    assert cli.returncode == 2
    text = (stdout + stderr).strip()
    assert f"the market at {market_server.url} is stopping (restart or upgrade)" in text
    assert "{" not in text and "Traceback" not in text
    _clean_log(market_server)


def test_writes_racing_a_stop_are_whole_or_absent_and_money_is_conserved(
    market_server: MarketProcess, tmp_path: Path
) -> None:
    """A client firing orders and faucet calls as fast as it can while the market stops: each
    one the market acknowledged is there after a restart, and the ledger adds up."""
    acknowledged: list[str] = []
    refused: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        with Client(market_server.url, home=tmp_path / "hostile") as hostile:
            hostile.transport.stopping_wait_s = 0  # no retries: see every refusal
            hostile.faucet("50 USDC")
            while not stop.is_set():
                try:
                    acknowledged.append(hostile.launch(IDLE, base_dir=tmp_path).id)
                    hostile.faucet("1 USDC")
                except PasarError as exc:
                    refused.append(exc.code)
                    return

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    for _ in range(200):  # until some orders went through
        if len(acknowledged) >= 3:
            break
        time.sleep(0.05)
    assert market_server.stop() == 0
    stop.set()
    thread.join(30)
    assert refused and set(refused) <= {"market_stopping", "unreachable"}
    _clean_log(market_server)
    again = market_server.restart()
    with Client(again.url, home=tmp_path / "hostile") as hostile:
        for order_id in acknowledged:
            assert hostile.job(order_id).status()["status"] == "open"
        balances = hostile.transport.get("/v1/state/balances")["balances"]
        assert sum(Money.parse(v).micros for v in balances.values()) == 0


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")
def test_a_provider_agent_keeps_its_feed_through_a_restart_and_runs_the_next_job(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Path
) -> None:
    """The real provider agent's feed is open when the market stops; the market comes back on
    the same port and database; the agent's next poll finds it, and a new job runs."""
    provider = spawn_provider(
        market_server.url, tmp_path / "p1", "--price-cpu-hour", "0.05", "--grace", "5"
    )
    port = market_server.url.rsplit(":", 1)[1]
    again = market_server.restart("--port", port)
    _clean_log(market_server)
    with Client(again.url, home=tmp_path / "client-home") as client:
        client.faucet("5 USDC")
        job = client.launch({**IDLE, "run": "echo back"}, base_dir=tmp_path)
        order = job.wait(timeout=120)
        assert order["status"] == "done", order
        assert [x["status"] for x in order["leases"]] == ["settled"]
        _conserved(client, "5 USDC")
    assert provider.stop() == 0
    said = provider.output()
    assert "Traceback" not in said
    assert "answered 500" not in said  # what its feed met before: a cancelled long poll
