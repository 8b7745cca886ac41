"""``pasar approve`` / ``pasar reject`` through the real CLI against a real render market
(``verification: approve`` by default) and real sandboxed providers: ``launch --wait`` stops
when every result waits for the client, ``status`` shows the held shards and their deadline,
a rejection re-runs the shard, an approval pays; bad input exits 2 with a clear error, never a
traceback, and moves nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_cli_jobs import env_for, needs_bwrap, ok_json, pasar

FRAME = """\
name: frame
run: echo frame > frame.txt
outputs: [frame.txt]
resources: {cpus: 1}
max_price_per_hour: "5 USDC"
max_duration: 2m
"""
PRICE = ("--price-cpu-hour", "0.05", "--grace", "5")


def _held(home: Path, url: str, order_id: str, runs: int) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        order = ok_json(pasar("status", order_id, "--json", home=home, market=url))
        leases = order["leases"]
        if len(leases) >= runs and leases[runs - 1]["status"] == "held":
            return dict(order)
        time.sleep(0.2)
    raise AssertionError(f"run {runs} of {order_id} was never held")


def _refused(args: list[str], code: str, home: Path, url: str) -> None:
    result = pasar(*args, "--json", home=home, market=url)
    assert result.returncode == 2, result.stdout + result.stderr
    assert json.loads(result.stdout)["error"]["code"] == code, result.stdout
    plain = pasar(*args, home=home, market=url)
    assert plain.returncode == 2 and plain.stdout == "", plain.stdout + plain.stderr
    if code != "invalid_argument":  # click prints its own usage errors
        assert plain.stderr.startswith("error: "), plain.stderr


@needs_bwrap
def test_launch_wait_status_reject_approve(
    spawn_market: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    market = spawn_market(tmp_path / "market", "--preset", "render")
    for i in (1, 2):
        spawn_provider(market.url, tmp_path / f"p{i}", *PRICE)
    url, home = market.url, tmp_path / "client"
    job = tmp_path / "frame.yaml"
    job.write_text(FRAME, encoding="utf-8")
    ok_json(pasar("faucet", "10 USDC", "--json", home=home, market=url))

    run = pasar("launch", str(job), "--yes", "--wait", home=home, market=url)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "held" in run.stdout and "waiting for your approval" in run.stdout
    order_id = json.loads(pasar("status", "--json", home=home, market=url).stdout)["orders"][0][
        "order_id"
    ]
    shown = pasar("status", order_id, home=home, market=url)
    assert shown.returncode == 0
    assert "shard 0 waits for your approval until" in shown.stdout
    assert f"pasar approve {order_id} 0" in shown.stdout

    before = ok_json(pasar("balance", "--json", home=home, market=url))
    _refused(["reject", order_id, "0", "--reason", " "], "invalid_reason", home, url)
    _refused(["reject", order_id, "0"], "invalid_argument", home, url)  # --reason is required
    _refused(["approve", order_id, "3"], "not_found", home, url)  # one shard: 0
    _refused(["approve", order_id, "-1"], "invalid_argument", home, url)
    _refused(["approve", "o-0000000000000000"], "not_found", home, url)
    _refused(["approve", order_id], "wrong_signer", tmp_path / "mallory", url)
    assert ok_json(pasar("balance", "--json", home=home, market=url)) == before

    rejected = pasar(
        "reject", order_id, "0", "--reason", "the frame is black", home=home, market=url
    )
    assert rejected.returncode == 0, rejected.stdout + rejected.stderr
    assert "re-running it on another provider" in rejected.stdout
    order = _held(home, url, order_id, 2)
    first, rerun = order["leases"]
    assert first["status"] == "rejected" and rerun["provider"] != first["provider"]

    approved = pasar("approve", order_id, home=home, market=url)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert f"approved shard 0 of {order_id}" in approved.stdout
    _refused(["approve", order_id, "0"], "not_held", home, url)  # twice
    done = ok_json(pasar("status", order_id, "--json", home=home, market=url))
    assert done["status"] == "done" and done["leases"][1]["status"] == "settled"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["reject", "o-0000000000000000", "0"], "invalid_argument"),
        (["approve", "o-0000000000000000", "x"], "invalid_argument"),
        (["approve", "o-0000000000000000"], "no_market"),
    ],
)
def test_bad_input_without_a_market_exits_2(args: list[str], code: str, tmp_path: Path) -> None:
    result = pasar(*args, "--json", home=tmp_path / "client")
    assert result.returncode == 2, result.stdout + result.stderr
    assert json.loads(result.stdout)["error"]["code"] == code


@needs_bwrap
def test_the_approve_example_shows_a_rejection_and_its_rerun(
    spawn_market: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    market = spawn_market(tmp_path / "market", "--preset", "render")
    for i in (1, 2):
        spawn_provider(market.url, tmp_path / f"p{i}", *PRICE)
    home = tmp_path / "client"
    ok_json(pasar("faucet", "20 USDC", "--json", home=home, market=market.url))
    out = tmp_path / "out" / "approve"
    script = Path(__file__).resolve().parents[2] / "examples" / "render" / "approve.py"
    run = subprocess.run(
        [sys.executable, str(script), "--reject", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env_for(home, market.url),
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "rejected shard 1" in run.stdout and "approved the re-rendered shard 1" in run.stdout
    assert "held" in run.stdout and "judge by" in run.stdout
    assert ": done;" in run.stdout
    assert len(list(out.rglob("tile.ppm"))) == 6
