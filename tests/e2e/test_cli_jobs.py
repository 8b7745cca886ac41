"""The job and network commands through the real ``pasar`` CLI (a subprocess each), against a
real devnet market and a real provider agent running jobs in bubblewrap sandboxes.

faucet → balance → launch --yes --wait (progress, bill, exit code, --json) → status → logs
(and ``logs -f`` on a running job) → result -o DIR (hashes checked, a tampered blob refused) →
cancel mid-run (billed for verified seconds) → a spec that cannot match (explain says why,
expiry refunds) → offers/gpus/stats on a market with GPU providers → bad input exits 2, never
with a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pasar.client.client import Client
from pasar.client.remote import RemoteError, remote
from pasar.client.transport import Transport
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.crypto.identity import Identity

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")

JOB = """\
name: shout
run: echo "hello from $PASAR_LEASE"; tr a-z A-Z < words.txt > loud.txt; sleep 1; echo done
inputs: [words.txt]
outputs: [loud.txt]
max_price_per_hour: "1 USDC"
max_duration: 1m
"""

LONG_JOB = """\
name: ticker
run: for i in $(seq 1 60); do echo tick $i; sleep 1; done
max_price_per_hour: "1 USDC"
max_duration: 2m
"""

H100_JOB = """\
name: needs-h100
resources: {accelerators: H100:1}
run: nvidia-smi
max_price_per_hour: "2 USDC"
max_duration: 10m
"""


def env_for(home: Path, market: str | None) -> dict[str, str]:
    env = {**os.environ, "PASAR_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    for name in ("PASAR_DEBUG", "PASAR_MARKET"):
        env.pop(name, None)
    if market is not None:
        env["PASAR_MARKET"] = market
    return env


def pasar(
    *args: str, home: Path, market: str | None = None, timeout: float = 120, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    """``pasar ARGS`` with stdin closed (not a terminal), the market from $PASAR_MARKET."""
    result = subprocess.run(
        [sys.executable, "-m", "pasar", *args],
        capture_output=True,
        text=True,
        env={**env_for(home, market), "COLUMNS": str(columns)},
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def spent(bills: list[dict[str, Any]]) -> Money:
    """What a client paid for leases: the work plus its side of the fees."""
    out = Money.zero("USDC")
    for bill in bills:
        out += Money.parse(bill["billed"]) + Money.parse(bill["client_fee"])
    return out


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "words.txt").write_text("hello pasar market\n", encoding="utf-8")
    (folder / "job.yaml").write_text(JOB, encoding="utf-8")
    return folder


# -- the whole life of a job -----------------------------------------------------------------------


@needs_bwrap
def test_faucet_launch_wait_status_logs_result(
    cli_network: Any, project: Path, tmp_path: Path
) -> None:
    url = cli_network.market.url
    home = tmp_path / "client"
    minted = ok_json(pasar("faucet", "10 USDC", "--json", home=home, market=url))
    assert minted["minted"] == "10.00 USDC" and minted["account"]["balance"] == "10.00 USDC"
    human = pasar("balance", "--market", url, home=home)  # the flag instead of the environment
    assert human.returncode == 0 and "10.00 USDC" in human.stdout

    # people: the considered offers, progress through the market's states, the bill
    run = pasar("launch", str(project / "job.yaml"), "--yes", "--wait", home=home, market=url)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "considered offers" in out and "✓" in out
    assert cli_network.provider.account[:11] in out
    for state in ("open", "running", "settled (exit 0", "done", "bill of"):
        assert state in out, out
    assert "0.05 USDC" in out  # the provider's ask for one CPU

    # scripts: one JSON document
    data = ok_json(
        pasar(
            "launch", str(project / "job.yaml"), "--yes", "--wait", "--json", home=home, market=url
        )
    )
    assert data["ok"] is True and data["exit_codes"] == [0]
    assert data["chosen"] == cli_network.provider.account
    assert data["mechanism"] == "book"
    order_id = data["order_id"]
    (bill,) = data["bill"]
    assert bill["status"] == "settled" and Money.parse(bill["billed"]) > Money.zero("USDC")
    assert data["order"]["status"] == "done"
    # the provider's log says what it did, not every HTTP request it made (issue 14.9)
    provider_log = cli_network.provider.stderr_path.read_text(encoding="utf-8", errors="replace")
    assert "HTTP Request:" not in provider_log and f"won lease {order_id}-0" in provider_log
    assert re.search(rf"lease {order_id}-0: exited 0 in [0-9.]+ s; earned ", provider_log)

    status = ok_json(pasar("status", order_id, "--json", home=home, market=url))
    assert (
        status["status"] == "done"
        and status["leases"][0]["bill"] == data["order"]["leases"][0]["bill"]
    )
    listed = ok_json(pasar("status", "--json", home=home, market=url))
    assert listed["orders"][0]["order_id"] == order_id
    assert len(listed["orders"]) == 2
    table = pasar("status", order_id, home=home, market=url)
    assert table.returncode == 0 and order_id in table.stdout and "settled" in table.stdout

    logs = pasar("logs", order_id, home=home, market=url)
    assert logs.returncode == 0
    assert logs.stdout == f"hello from {order_id}-0\ndone\n"
    followed = pasar("logs", order_id, "-f", home=home, market=url)  # lease over: it ends
    assert followed.stdout == logs.stdout

    dest = tmp_path / "out"
    fetched = ok_json(pasar("result", order_id, "-d", str(dest), "--json", home=home, market=url))
    (item,) = fetched["files"]
    body = (dest / "loud.txt").read_bytes()
    assert body == b"HELLO PASAR MARKET\n"
    assert item["path"] == "loud.txt" and item["sha256"] == hashlib.sha256(body).hexdigest()
    assert item["size"] == len(body) and fetched["exit_codes"] == [0]
    again = pasar("result", order_id, "-d", str(tmp_path / "out2"), home=home, market=url)
    assert again.returncode == 0 and hashlib.sha256(body).hexdigest() in again.stdout

    account = ok_json(pasar("balance", "--json", home=home, market=url))
    bills = [b for o in listed["orders"] for b in o["leases"] for b in [b["bill"]]]
    assert account["escrow"] == "0.00 USDC"
    assert Money.parse(account["balance"]) == Money.parse("10 USDC") - spent(bills)


@needs_bwrap
def test_a_tampered_output_is_refused_with_exit_2(
    cli_network: Any, project: Path, tmp_path: Path
) -> None:
    url = cli_network.market.url
    home = tmp_path / "client"
    pasar("faucet", "1 USDC", home=home, market=url)
    data = ok_json(
        pasar("launch", str(project / "job.yaml"), "-y", "--wait", "--json", home=home, market=url)
    )
    (output,) = data["order"]["leases"][0]["receipt"]["outputs"]
    stored = cli_network.market.home / "blobs" / output["sha256"][:2] / output["sha256"]
    stored.chmod(0o644)
    stored.write_bytes(b"TRUST BLINDLY\n")  # the market's copy replaced behind its back
    dest = tmp_path / "out"
    refused = pasar("result", data["order_id"], "-d", str(dest), "--json", home=home, market=url)
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["error"]["code"] == "output_mismatch"
    assert not (dest / "loud.txt").exists()
    plain = pasar("result", data["order_id"], "-d", str(dest), home=home, market=url)
    assert plain.returncode == 2 and "does not match its receipt" in plain.stderr


@needs_bwrap
def test_logs_follow_a_running_job_then_cancel_bills_verified_seconds(
    cli_network: Any, tmp_path: Path
) -> None:
    url = cli_network.market.url
    home = tmp_path / "client"
    spec = tmp_path / "ticker.yaml"
    spec.write_text(LONG_JOB, encoding="utf-8")
    pasar("faucet", "10 USDC", home=home, market=url)
    launched = ok_json(pasar("launch", str(spec), "--yes", "--json", home=home, market=url))
    order_id = launched["order_id"]
    assert launched["dry_run"] is False and "order" not in launched  # no --wait

    follower = subprocess.Popen(
        [sys.executable, "-m", "pasar", "logs", order_id, "-f"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env_for(home, url),
    )
    try:
        assert follower.stdout is not None
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = follower.stdout.readline()
            seen.append(line)
            if line == "tick 3\n":
                break
        assert seen[-1] == "tick 3\n", seen  # streamed while the job runs
        assert follower.poll() is None

        cancelled = ok_json(pasar("cancel", order_id, "--json", home=home, market=url))
        (bill,) = cancelled["bill"]
        assert bill["status"] == "cancelled" and cancelled["order"]["status"] == "cancelled"
        assert 0 <= bill["billed_seconds"] < 30  # the time it ran, not the 2 min it could have
        assert Money.parse(cancelled["billed"]) == Money.parse(bill["billed"])
        rest, err = follower.communicate(timeout=60)  # the lease ended: -f stops by itself
        assert follower.returncode == 0, err
        assert "Traceback" not in err
        assert all(line.startswith("tick ") for line in rest.splitlines())
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()

    account = ok_json(pasar("balance", "--json", home=home, market=url))
    assert account["escrow"] == "0.00 USDC"
    assert Money.parse(account["balance"]) == Money.parse("10 USDC") - spent([bill])
    again = pasar("cancel", order_id, "--json", home=home, market=url)  # idempotent (14.9)
    assert again.returncode == 0 and json.loads(again.stdout)["already"] is True
    plain = pasar("cancel", order_id, home=home, market=url)
    assert plain.returncode == 0 and "already cancelled" in plain.stdout
    shown = pasar("status", order_id, home=home, market=url)
    assert "cancelled" in shown.stdout


@needs_bwrap
def test_an_unmatchable_spec_is_explained_and_refunded_on_expiry(
    cli_network: Any, tmp_path: Path
) -> None:
    url = cli_network.market.url
    home = tmp_path / "client"
    spec = tmp_path / "h100.yaml"
    spec.write_text(H100_JOB, encoding="utf-8")
    pasar("faucet", "5 USDC", home=home, market=url)

    dry = pasar("launch", str(spec), "--dry-run", home=home, market=url)
    assert dry.returncode == 0 and "no provider on this network could ever run" in dry.stdout
    assert "escrow 0.333333 USDC" in dry.stdout  # 2 USDC/h × 10 min, the pasar preset's fees

    # nothing on this network could ever run it: refused, nothing escrowed (issue 14.5)
    refused = pasar("launch", str(spec), "-y", "--json", home=home, market=url)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "never_fits" and "--queue" in error["hint"]
    assert "needs 1× H100, has no GPUs" in error["message"]
    plain = pasar("launch", str(spec), "-y", home=home, market=url)
    assert plain.returncode == 2 and "could ever run this job" in plain.stderr
    untouched = ok_json(pasar("balance", "--json", home=home, market=url))
    assert (untouched["balance"], untouched["escrow"]) == ("5.00 USDC", "0.00 USDC")

    waiting = ok_json(
        pasar("launch", str(spec), "-y", "--queue", "--ttl", "60", "--json", home=home, market=url)
    )
    assert waiting["escrow"] == "0.333333 USDC" and waiting["offers"] == []
    held = ok_json(pasar("balance", "--json", home=home, market=url))
    assert held["escrow"] == waiting["escrow"]  # what launch said is what the market holds
    assert held["balance"] == "4.666667 USDC"
    quiet = pasar("logs", waiting["order_id"], home=home, market=url)
    assert quiet.returncode == 0 and quiet.stdout == "" and "the order is open" in quiet.stderr
    dropped = ok_json(pasar("cancel", waiting["order_id"], "--json", home=home, market=url))
    assert dropped["billed"] == "0.00 USDC" and dropped["bill"] == []  # open: all refunded

    run = pasar(
        "launch", str(spec), "--yes", "--queue", "--wait", "--ttl", "7", home=home, market=url
    )
    assert run.returncode == 1, run.stdout + run.stderr  # nothing ran: not a success
    # while it waited, it said why it had not matched (once: the reasons did not change)
    assert run.stdout.count("still open: needs 1× H100, has no GPUs") == 1, run.stdout
    assert "expired" in run.stdout and "pasar explain" in run.stdout
    orders = ok_json(pasar("status", "--json", home=home, market=url))["orders"]
    assert [o["status"] for o in orders] == ["expired", "cancelled"]
    order_id = orders[0]["order_id"]

    explained = pasar("explain", order_id, home=home, market=url)
    assert explained.returncode == 0
    assert "expired unmatched" in explained.stdout
    assert "needs 1× H100, has no GPUs" in explained.stdout
    data = ok_json(pasar("explain", order_id, "--json", home=home, market=url))
    (row,) = [p for p in data["providers"] if p["provider"] == cli_network.provider.account]
    assert row["fits"] is False and "H100" in row["reason"]

    account = ok_json(pasar("balance", "--json", home=home, market=url))
    assert account["balance"] == "5.00 USDC" and account["escrow"] == "0.00 USDC"  # refunded
    no_result = pasar("result", order_id, "--json", home=home, market=url)
    assert no_result.returncode == 2
    assert json.loads(no_result.stdout)["error"]["code"] == "no_result"


@needs_bwrap
def test_launch_asks_first_and_dry_run_launches_nothing(
    cli_network: Any, project: Path, tmp_path: Path
) -> None:
    url = cli_network.market.url
    home = tmp_path / "client"
    pasar("faucet", "1 USDC", home=home, market=url)
    refused = pasar("launch", str(project / "job.yaml"), home=home, market=url)
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    dry = ok_json(
        pasar(
            "launch",
            str(project / "job.yaml"),
            "--dry-run",
            "--max-price",
            "0.04 USDC",
            "--json",
            home=home,
            market=url,
        )
    )
    assert dry["dry_run"] is True and dry["spec"]["max_price_per_hour"] == "0.04 USDC"
    assert dry["inputs"][0]["path"] == "words.txt"
    (offer,) = [o for o in dry["offers"] if o["provider"] == cli_network.provider.account]
    assert offer["price_per_hour"] == "0.05 USDC" and offer["chosen"] is False
    assert offer["reason"] == "price 0.05 > max 0.04"  # the market's reason, not the CLI's
    assert dry["chosen"] is None  # the only offer asks more than the max
    # what --dry-run shows is the market's own quote, field for field
    market_quote = Transport(url).request("POST", "/v1/orders/quote", json={"spec": dry["spec"]})
    assert dry["quote"] == market_quote.json()
    assert dry["escrow"] == dry["quote"]["escrow"] == "0.000666 USDC"  # 0.04 USDC/h × 1 min
    assert ok_json(pasar("status", "--json", home=home, market=url))["orders"] == []
    assert ok_json(pasar("balance", "--json", home=home, market=url))["balance"] == "1.00 USDC"


# -- what the network sells ------------------------------------------------------------------------


def register(url: str, gpus: dict[str, int], asks: dict[str, str], region: str) -> str:
    """A provider that registers (and never serves): enough for offers and statistics."""
    identity = Identity.generate()
    api = Transport(url)
    try:
        api.post_signed(
            "/v1/providers",
            {
                "type": "provider.register",
                "inventory": {"gpus": gpus, "cpus": 16, "memory_gb": 128, "disk_gb": 500},
                "asks": {"gpu": asks},
                "score": 1000,
                "region": region,
            },
            identity,
        )
    finally:
        api.close()
    return identity.account_id


def test_offers_gpus_and_stats(market_server: Any, tmp_path: Path) -> None:
    url = market_server.url
    home = tmp_path / "client"
    cheap = register(url, {"A100-80GB": 2}, {"A100": "1.2"}, "eu")
    dear = register(url, {"A100-40GB": 4}, {"A100": "1.9"}, "us")
    register(url, {"H100": 8}, {"H100": "2.5"}, "us")
    middle = register(url, {"A100-80GB": 1}, {"A100": "1.5"}, "eu")

    query = "gpu_name in [A100-80GB,a100-40gb]"  # (gpu_name=A100 names no offer's exact model)
    found = ok_json(
        pasar("offers", query, "--order", "dph_per_gpu-", "--limit", "2", "--json", "--explain",
              home=home, market=url)
    )  # fmt: skip
    assert [o["provider"] for o in found["offers"]] == [dear, middle]
    assert found["query"]["canonical"] == query
    assert any(c["field"] == "rentable" and c["default"] for c in found["query"]["conditions"])
    eu = ok_json(pasar("offers", "region=eu", "--json", home=home, market=url))
    assert [o["provider"] for o in eu["offers"]] == [middle, cheap]  # default order: dph
    table = pasar("offers", "num_gpus>=2", "--explain", home=home, market=url)
    assert table.returncode == 0 and "num_gpus" in table.stdout and "default" in table.stdout

    models = {
        m["model"]: m for m in ok_json(pasar("gpus", "--json", home=home, market=url))["models"]
    }
    a100 = models["A100"]
    assert (a100["gpus"], a100["free"], a100["providers"]) == (7, 7, 3)
    assert a100["min_price_per_hour"] == "1.20 USDC"
    assert a100["median_price_per_hour"] == "1.50 USDC"  # of 1.2, 1.5, 1.9 — exact, no floats
    assert a100["variants"] == ["A100-40GB", "A100-80GB"]
    assert models["H100"]["median_price_per_hour"] == "2.50 USDC"
    shown = pasar("gpus", home=home, market=url)
    assert shown.returncode == 0 and "A100-40GB, A100-80GB" in shown.stdout

    stats = ok_json(pasar("stats", "--json", home=home, market=url))
    assert (stats["h100"], stats["a100"], stats["gpus"], stats["providers"]) == (8, 7, 15, 4)
    human = pasar("stats", home=home, market=url)
    assert human.returncode == 0
    assert "H100 median ask" in human.stdout and "2.50 USDC" in human.stdout


# -- bad input: exit 2, the one error shape, no traceback ------------------------------------------


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["launch", "missing.yaml", "--yes"], "file_not_found"),
        (["launch", "{bad}", "--yes"], "float_money"),
        (["launch", "{job}", "--yes", "--max-price", "1.5"], "missing_currency"),
        (["launch", "{job}", "--yes", "--max-price", "1.5e3 USDC"], "invalid_amount"),
        (["launch", "{job}", "--yes", "--ttl", "0"], "invalid_ttl"),
        (["launch", "{missing_input}", "--yes"], "input_not_found"),
        (["offers", "gpu_nme=A100"], "unknown_query_field"),
        (["offers", "", "--order", "prise"], "invalid_order"),
        (["status", "o-0000000000000000"], "no_market"),
    ],
)
def test_bad_input_exits_2_with_the_error_shape(
    args: list[str], code: str, project: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: x\nmax_price_per_hour: 1.5\nmax_duration: 1m\n", encoding="utf-8")
    missing_input = project / "missing-input.yaml"
    missing_input.write_text(JOB.replace("words.txt]", "nope.txt]"), encoding="utf-8")
    paths = {"{bad}": bad, "{job}": project / "job.yaml", "{missing_input}": missing_input}
    argv = [str(paths.get(a, a)) for a in args]
    # no market anywhere: every one of these fails before a request (or for want of a market)
    result = pasar(*argv, "--json", home=tmp_path / "client")
    assert result.returncode == 2, result.stdout + result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["code"] == code, error
    plain = pasar(*argv, home=tmp_path / "client")
    assert plain.returncode == 2 and plain.stderr.startswith("error: ")
    assert plain.stdout == ""


def test_unknown_offers_field_points_at_the_column(tmp_path: Path) -> None:
    result = pasar("offers", "num_gpus>=1 gpu_nme=A100", home=tmp_path)
    assert result.returncode == 2
    assert "num_gpus>=1 gpu_nme=A100\n" in result.stderr
    assert "\n              ^" in result.stderr  # column 13, under gpu_nme
    assert "did you mean gpu_name?" in result.stderr


def test_market_errors_exit_2(spawn_market: Any, tmp_path: Path) -> None:
    market = spawn_market(tmp_path / "market", devnet=False)
    home = tmp_path / "client"
    off = pasar("faucet", "10 USDC", "--json", home=home, market=market.url)
    assert off.returncode == 2
    error = json.loads(off.stdout)["error"]
    assert error["code"] == "faucet_disabled" and "--devnet" in error["hint"]
    unknown = pasar("status", "o-0000000000000000", home=home, market=market.url)
    assert unknown.returncode == 2 and "no order" in unknown.stderr
    broke = pasar("launch", str(tmp_path / "x.yaml"), "--yes", home=home, market=market.url)
    assert broke.returncode == 2
    (tmp_path / "x.yaml").write_text(JOB.replace("inputs: [words.txt]\n", ""), encoding="utf-8")
    poor = pasar(  # --queue: nobody is registered here, and the overdraft is what is tested
        "launch",
        str(tmp_path / "x.yaml"),
        "--yes",
        "--queue",
        "--json",
        home=home,
        market=market.url,
    )
    assert poor.returncode == 2
    assert json.loads(poor.stdout)["error"]["code"] == "overdraft"
    gone = pasar("balance", home=home, market="http://127.0.0.1:9")
    assert gone.returncode == 2 and "cannot reach the market" in gone.stderr


SEALED_JOB = """\
name: sealed-shout
privacy: sealed
run: tr a-z A-Z < words.txt > loud.txt; cat loud.txt
inputs: [words.txt]
outputs: [loud.txt]
max_price_per_hour: "1 USDC"
max_duration: 1m
"""


@needs_bwrap
def test_a_sealed_job_launched_without_wait_runs_once_the_seal_agent_seals(
    cli_network: Any, project: Path, tmp_path: Path
) -> None:
    """``launch`` without ``--wait`` says the job needs a sealer; ``pasar seal-agent --order``
    seals the key to the provider, the job runs, and ``logs``/``result`` decrypt it here."""
    url = cli_network.market.url
    home = tmp_path / "client"
    ok_json(pasar("faucet", "5 USDC", "--json", home=home, market=url))
    (project / "sealed.yaml").write_text(SEALED_JOB, encoding="utf-8")
    launched = pasar("launch", str(project / "sealed.yaml"), "--yes", home=home, market=url)
    assert launched.returncode == 0, launched.stdout + launched.stderr
    assert "seal-agent" in launched.stderr
    order_id = launched.stdout.split("launched ", 1)[1].split()[0]
    agent = pasar("seal-agent", "--order", order_id, home=home, market=url, timeout=120)
    assert agent.returncode == 0, agent.stdout + agent.stderr
    assert "sealed the data key" in agent.stdout
    status = ok_json(pasar("status", order_id, "--json", home=home, market=url))
    assert status["status"] == "done", status
    logs = pasar("logs", order_id, home=home, market=url)
    assert "HELLO PASAR MARKET" in logs.stdout, logs.stdout + logs.stderr
    got = pasar("result", order_id, "-d", str(tmp_path / "out"), home=home, market=url)
    assert got.returncode == 0, got.stdout + got.stderr
    assert (tmp_path / "out" / "loud.txt").read_text() == "HELLO PASAR MARKET\n"
    # another machine (another home) has no key: a clear error, exit 2, no traceback
    elsewhere = pasar("logs", order_id, home=tmp_path / "other", market=url)
    assert elsewhere.returncode != 0


def sleep_long(seconds: int) -> int:
    time.sleep(seconds)
    return seconds


SLOW_JOB = """\
name: overrun
run: echo started; sleep 60
max_price_per_hour: "1 USDC"
max_duration: 3s
"""


@needs_bwrap
def test_a_job_killed_at_max_duration_is_called_a_timeout(cli_network: Any, tmp_path: Path) -> None:
    """Issue 14.3: not "exit 137" but the reason, in the progress, the bill and the SDK."""
    url = cli_network.market.url
    home = tmp_path / "client"
    spec = tmp_path / "overrun.yaml"
    spec.write_text(SLOW_JOB, encoding="utf-8")
    pasar("faucet", "10 USDC", home=home, market=url)
    run = pasar("launch", str(spec), "--yes", "--wait", home=home, market=url)
    assert run.returncode != 0, run.stdout + run.stderr
    assert "timeout: it ran past its max_duration" in run.stdout, run.stdout
    order_id = next(w for w in run.stdout.split() if w.startswith("o-"))
    shown = pasar("status", order_id, home=home, market=url)
    assert "timeout: it ran past its max_duration" in shown.stdout, shown.stdout
    with Client(url, home=home) as client:
        result = client.job(order_id).result(tmp_path / "out")
    (shard,) = result.shards
    assert shard.ended_because == "timeout: it ran past its max_duration"
    assert (tmp_path / "out").is_dir() and not result.files  # made, though nothing came back
    order = ok_json(pasar("status", order_id, "--json", home=home, market=url))
    (lease,) = order["leases"]
    assert lease["receipt"]["kill_reason"] == "timeout"
    bills = [lease["bill"]]
    with Client(url, home=home) as client:  # the SDK's remote functions say it too
        overrun = remote(client=client, max_duration="3s", max_price="1 USDC")(sleep_long)
        with pytest.raises(RemoteError) as err:
            overrun.remote(60)
        bills.append(client.job(str(err.value.order_id)).status()["leases"][0]["bill"])
    assert err.value.code == "remote_stopped" and "timeout" in str(err.value)
    assert "max_duration" in (err.value.hint or "")
    account = ok_json(pasar("balance", "--json", home=home, market=url))
    assert account["escrow"] == "0.00 USDC"  # billed for the seconds it ran, the rest back
    assert Money.parse(account["balance"]) == Money.parse("10 USDC") - spent(bills)


@needs_bwrap
def test_launch_an_inline_command_like_sky(cli_network: Any, tmp_path: Path) -> None:
    """Issue 14: `pasar launch -- CMD` with --env, --cpus and --workdir (files sent as inputs,
    the job runs in the same tree), and a bad flag value named by its flag."""
    url = cli_network.market.url
    home = tmp_path / "client"
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "data.txt").write_text("from data\n", encoding="utf-8")
    (work / "sub" / "more.txt").write_text("from sub\n", encoding="utf-8")
    pasar("faucet", "10 USDC", home=home, market=url)
    command = ["sh", "-c", 'cat data.txt sub/more.txt; echo "hello $WHO"']
    run = pasar(
        "launch",
        "--yes",
        "--wait",
        "--workdir",
        str(work),
        "--env",
        "WHO=pasar",
        "--cpus",
        "1",
        "--max-duration",
        "2m",
        "--",
        *command,
        home=home,
        market=url,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    order_id = next(w for w in run.stdout.split() if w.startswith("o-"))
    logs = pasar("logs", order_id, home=home, market=url)
    assert logs.stdout == "from data\nfrom sub\nhello pasar\n", logs.stdout
    order = ok_json(pasar("status", order_id, "--json", home=home, market=url))
    assert order["spec"]["name"] == "sh" and order["spec"]["max_duration"] == 120
    assert {i["path"] for i in order["inputs"]} == {"data.txt", "sub/more.txt"}
    bad = pasar("launch", "--yes", "--cpus", "lots", "--json", "--", "true", home=home, market=url)
    assert bad.returncode == 2 and json.loads(bad.stdout)["error"]["field"] == "--cpus"
    bad_env = pasar("launch", "--yes", "--env", "NOEQUALS", "--", "true", home=home, market=url)
    assert bad_env.returncode == 2 and "KEY=VALUE" in bad_env.stderr
    account = ok_json(pasar("balance", "--json", home=home, market=url))
    assert account["escrow"] == "0.00 USDC"  # the refused ones escrowed nothing
    bill = order["leases"][0]["bill"]
    assert Money.parse(account["balance"]) == Money.parse("10 USDC") - spent([bill])


def _on_a_terminal(args: list[str], home: Path, market: str) -> tuple[int, str, str]:
    """``pasar ARGS`` with stderr on a pseudo-terminal (stdout a pipe): (exit, stdout, what
    the terminal received)."""
    import pty

    main, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pasar", *args],
        stdout=subprocess.PIPE,
        stderr=terminal,
        stdin=subprocess.DEVNULL,
        env={**env_for(home, market), "TERM": "xterm"},
    )
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed: the process is gone
            break
        if not chunk:
            break
        seen += chunk
    out = proc.stdout.read().decode() if proc.stdout else ""
    os.close(main)
    return proc.wait(timeout=120), out, seen.decode(errors="replace")


@needs_bwrap
def test_launch_wait_draws_a_bar_on_a_terminal_only(cli_network: Any, tmp_path: Path) -> None:
    """Issue 14 (progress): `launch --wait` on a terminal draws the shards done / running /
    queued and the spend below its lines; into a pipe it prints the lines alone."""
    url = cli_network.market.url
    home = tmp_path / "client"
    pasar("faucet", "10 USDC", home=home, market=url)
    job = ["launch", "--yes", "--wait", "--max-duration", "1m", "--", "sh", "-c", "sleep 2"]
    code, out, terminal = _on_a_terminal(job, home, url)
    assert code == 0, out + terminal
    assert "order o-" in out and "settled" in out  # the lines, on stdout as before
    assert "shards ·" in terminal and "1 running · 0 queued" in terminal, terminal
    piped = pasar(*job, home=home, market=url)
    assert piped.returncode == 0 and "shards ·" not in piped.stdout + piped.stderr
    account = ok_json(pasar("balance", "--json", home=home, market=url))
    assert account["escrow"] == "0.00 USDC"
    bills = []
    for text in (out, piped.stdout):
        order_id = next(w for w in text.split() if w.startswith("o-")).rstrip(":")
        bills.append(
            ok_json(pasar("status", order_id, "--json", home=home, market=url))["leases"][0]["bill"]
        )
    assert Money.parse(account["balance"]) == Money.parse("10 USDC") - spent(bills)


# an id (order, lease, account) or an amount cut short by a table: "o-7…", "pa1k…", "0.0001…"
CUT_ID_OR_AMOUNT = re.compile(r"(?:\bo-[0-9a-f-]*|\bpa1[0-9a-z]*|\d[\d.,]*)…")


@needs_bwrap
def test_the_readme_walk_at_80_columns_cuts_no_id_or_amount(
    cli_network: Any, tmp_path: Path
) -> None:
    """Issue 14, done means: the README's client commands at 80 columns print every id and
    amount whole (tables drop or wrap other columns first)."""
    url = cli_network.market.url
    home = tmp_path / "client"
    hello = Path(__file__).resolve().parents[2] / "examples" / "hello.yaml"

    def run(*args: str) -> str:
        done = pasar(*args, home=home, market=url, columns=80)
        assert done.returncode == 0, done.stdout + done.stderr
        text = done.stdout + done.stderr
        assert not CUT_ID_OR_AMOUNT.search(text), f"pasar {' '.join(args)}:\n{text}"
        assert "…" not in text, f"pasar {' '.join(args)} cut a cell:\n{text}"  # nothing at all
        return text

    run("faucet", "10 USDC")
    launched = run("launch", str(hello), "--yes", "--wait")
    order_id = next(w for w in launched.split() if re.fullmatch(r"o-[0-9a-f]{16}:?", w))
    order_id = order_id.rstrip(":")
    for args in (
        ("offers", "cpus>=2", "--order", "dph"),
        ("offers", "--include-offline"),
        ("status",),
        ("status", order_id),
        ("explain", order_id),
        ("balance",),
        ("gpus",),
        ("stats",),
        ("presets",),
        ("result", order_id, "-d", str(tmp_path / "out")),
    ):
        text = run(*args)
        if args[0] in ("status", "result") and len(args) > 1:
            assert order_id in text, text
    assert cli_network.provider.account in run("offers", "--include-offline", "--wide")
    account = ok_json(pasar("balance", "--json", home=home, market=url))
    bill = ok_json(pasar("status", order_id, "--json", home=home, market=url))["leases"][0]["bill"]
    assert account["escrow"] == "0.00 USDC"
    assert Money.parse(account["balance"]) == Money.parse("10 USDC") - spent([bill])


@needs_bwrap
def test_file_mounts_put_local_files_where_the_job_reads_them(
    cli_network: Any, tmp_path: Path
) -> None:
    """Issue 14 (`file_mounts`, as in SkyPilot): a folder and a file from anywhere on the
    client's machine arrive at the destinations the spec names; a bucket source is refused
    before anything is escrowed."""
    url = cli_network.market.url
    home = tmp_path / "client"
    datasets = tmp_path / "datasets" / "mnist"
    datasets.mkdir(parents=True)
    (datasets / "train.csv").write_text("1,2,3\n", encoding="utf-8")
    (tmp_path / "app.toml").write_text("lr = 0.1\n", encoding="utf-8")
    project = tmp_path / "project"
    project.mkdir()
    spec = project / "job.yaml"
    spec.write_text(
        "run: cat data/train.csv ~/conf/app.toml\n"
        "file_mounts:\n"
        f"  ~/data: {datasets}\n"
        "  conf/app.toml: ../app.toml\n"
        'max_price_per_hour: "0.5 USDC"\n'
        "max_duration: 1m\n",
        encoding="utf-8",
    )
    pasar("faucet", "10 USDC", home=home, market=url)
    run = pasar("launch", str(spec), "--yes", "--wait", home=home, market=url)
    assert run.returncode == 0, run.stdout + run.stderr
    order_id = next(w for w in run.stdout.split() if re.fullmatch(r"o-[0-9a-f]{16}:?", w))
    order_id = order_id.rstrip(":")
    logs = pasar("logs", order_id, home=home, market=url)
    assert logs.stdout == "1,2,3\nlr = 0.1\n", logs.stdout
    bucket = project / "bucket.yaml"
    bucket.write_text(spec.read_text().replace(str(datasets), "s3://my-bucket/mnist"))
    refused = pasar("launch", str(bucket), "--yes", "--json", home=home, market=url)
    assert refused.returncode == 2
    error = json.loads(refused.stdout)["error"]
    assert error["field"].startswith("file_mounts") and "bucket" in error["message"]
    account = ok_json(pasar("balance", "--json", home=home, market=url))
    bill = ok_json(pasar("status", order_id, "--json", home=home, market=url))["leases"][0]["bill"]
    assert account["escrow"] == "0.00 USDC"  # the refused one escrowed nothing
    assert Money.parse(account["balance"]) == Money.parse("10 USDC") - spent([bill])


def test_a_gang_or_cluster_no_network_could_run_is_refused_at_launch(
    cli_network: Any, tmp_path: Path
) -> None:
    """Issue 15, bad input: more nodes than the network has providers for (with the count that
    fits; under ``placement: spread``, than its providers have room for), a bad placement, and
    ``cluster: ray`` where no provider offers it — refused before any escrow."""
    url = cli_network.market.url
    home = tmp_path / "client"
    pasar("faucet", "10 USDC", home=home, market=url)
    base = 'run: "true"\nmax_price_per_hour: "0.5 USDC"\nmax_duration: 1m\n'
    gang = tmp_path / "gang.yaml"
    gang.write_text(base + "num_nodes: 2\n", encoding="utf-8")
    refused = pasar("launch", str(gang), "--yes", "--json", home=home, market=url)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "never_fits" and error["field"] == "num_nodes"
    assert (
        "needs 2 providers together" in error["message"] and "1 on this network" in error["message"]
    )
    assert "placement: spread" in error["hint"]
    # placement: spread counts the nodes the provider has room for (2 one-CPU nodes here)
    spread = tmp_path / "spread.yaml"
    spread.write_text(base + "num_nodes: 3\nplacement: spread\n", encoding="utf-8")
    refused = pasar("launch", str(spread), "--yes", "--json", home=home, market=url)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "never_fits" and error["field"] == "num_nodes"
    assert "room for 2 (placement: spread)" in error["message"], error
    spread.write_text(base + "num_nodes: 2\nplacement: spread\n", encoding="utf-8")
    fits = ok_json(pasar("launch", str(spread), "--dry-run", "--json", home=home, market=url))
    assert fits["quote"]["nodes_fit"] == 2 and fits["quote"]["unfilled"] == 0, fits
    for line, field in (
        ("num_nodes: 2\nplacement: everywhere\n", "placement"),
        ("placement: spread\n", "placement"),  # one node: nothing to place
        ("num_nodes: 2\nplacement: spread\npricing: performance\n", "spec.placement"),
    ):
        spread.write_text(base + line, encoding="utf-8")
        refused = pasar("launch", str(spread), "--yes", "--json", home=home, market=url)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        error = json.loads(refused.stdout)["error"]
        assert error["field"] == field and error["hint"] and "placement" in error["message"], error
    ray = tmp_path / "ray.yaml"
    ray.write_text(base + "cluster: ray\n", encoding="utf-8")
    refused = pasar("launch", str(ray), "--yes", home=home, market=url)
    assert refused.returncode == 2 and "does not offer cluster: ray" in refused.stderr, (
        refused.stderr
    )
    bad = tmp_path / "spark.yaml"
    bad.write_text(base + "cluster: spark\n", encoding="utf-8")
    refused = pasar("launch", str(bad), "--yes", home=home, market=url)
    assert refused.returncode == 2 and "cluster" in refused.stderr, refused.stderr
    account = ok_json(pasar("balance", "--json", home=home, market=url))
    assert account["balance"] == "10.00 USDC" and account["escrow"] == "0.00 USDC"


FORGETFUL_JOB = """\
name: forgetful
run: echo working; echo 1 > other.txt
outputs: [{out}, other.txt]
max_price_per_hour: "1 USDC"
max_duration: 1m
"""


@needs_bwrap
def test_a_job_that_never_writes_its_output_fails_naming_it(
    cli_network: Any, tmp_path: Path
) -> None:
    """Issue 14.4: a declared output the job never wrote fails the job (launch --wait, status,
    result exit non-zero and name it; the SDK raises naming it); marked optional, it is a
    warning and the job succeeds."""
    url = cli_network.market.url
    home = tmp_path / "client"
    spec = tmp_path / "forgetful.yaml"
    spec.write_text(FORGETFUL_JOB.format(out="out.txt"), encoding="utf-8")
    pasar("faucet", "10 USDC", home=home, market=url)
    run = pasar("launch", str(spec), "--yes", "--wait", home=home, market=url)
    assert run.returncode != 0, run.stdout + run.stderr
    assert "missing_outputs" in run.stdout and "out.txt" in run.stdout, run.stdout
    order_id = next(w for w in run.stdout.split() if w.startswith("o-")).rstrip(":")
    shown = pasar("status", order_id, home=home, market=url)
    assert "missing_outputs" in shown.stdout and "out.txt" in shown.stdout, shown.stdout
    got = pasar("result", order_id, "-d", str(tmp_path / "got"), home=home, market=url)
    assert got.returncode != 0, got.stdout + got.stderr
    assert "out.txt" in got.stdout + got.stderr, got.stdout + got.stderr
    order = ok_json(pasar("status", order_id, "--json", home=home, market=url))
    (lease,) = order["leases"]
    failure = lease["receipt"]["failure"]
    assert (failure["reason"], failure["fault"]) == ("missing_outputs", "job")
    assert lease["status"] == "failed"  # one lease: the shard is not re-queued
    with Client(url, home=home) as client, pytest.raises(PasarError) as err:
        client.job(order_id).result(tmp_path / "sdk")
    assert "missing_outputs" in str(err.value) and "out.txt" in str(err.value)
    bills = [lease["bill"]]
    # the same output marked optional: a warning, and the job succeeds with what it wrote
    spec.write_text(FORGETFUL_JOB.format(out="{path: out.txt, optional: true}"), encoding="utf-8")
    run = pasar("launch", str(spec), "--yes", "--wait", home=home, market=url)
    assert run.returncode == 0, run.stdout + run.stderr
    warned = [x for x in run.stdout.splitlines() if x.startswith("warning:")]
    assert warned == ["warning: shard 0: missing output out.txt (optional)"], run.stdout
    order_id = next(w for w in run.stdout.split() if w.startswith("o-")).rstrip(":")
    with Client(url, home=home) as client:
        sdk = client.job(order_id).result(tmp_path / "sdk2")
    assert sdk.warnings == ["shard 0: missing output out.txt (optional)"] and sdk.ok
    logs = pasar("logs", order_id, home=home, market=url)
    assert "warning: missing outputs: out.txt (optional)" in logs.stdout, logs.stdout
    got = pasar("result", order_id, "-d", str(tmp_path / "got2"), home=home, market=url)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "out.txt (optional)" in got.stdout + got.stderr, got.stdout + got.stderr
    assert (tmp_path / "got2" / "other.txt").read_text() == "1\n"
    shown = ok_json(pasar("status", order_id, "--json", home=home, market=url))
    bills.append(shown["leases"][0]["bill"])
    account = ok_json(pasar("balance", "--json", home=home, market=url))
    assert account["escrow"] == "0.00 USDC"
    assert Money.parse(account["balance"]) == Money.parse("10 USDC") - spent(bills)
