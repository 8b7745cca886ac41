"""Hostile jobs: outputs and inputs that no result can carry must fail *the job*, not the fleet.

Before failure receipts, each of these made the executor raise after the job ran: no receipt
was sent, the lease was marked lost, the provider went unpaid, lost reputation and was taken
off the market for good, and the order walked to the next provider, which failed the same way.
Now each ends in a signed failure receipt whose reason the client sees in the order view; the
provider is paid for its verified seconds, keeps its reputation, stays on the market and takes
the next job; the bad job is not re-queued to the second provider.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from attacklib import Party, assert_audit_passes, ended

import pasar
from money_checks import assert_conserved
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.crypto.identity import DEFAULT_KEY_NAME, save_identity

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")

BLOB_LIMIT = 64 * 1024  # the market's blob limit in these tests (bytes)
CHEAP = ("--price-cpu-hour", "0.05", "--grace", "5")
DEARER = ("--price-cpu-hour", "0.06", "--grace", "5")

HOSTILE = {
    # a file name with a backslash: no receipt may name it (it reads as a path on Windows)
    "backslash_name": (
        {"run": "sleep 2; mkdir out && printf x > 'out/a\\b'", "outputs": ["out"]},
        "output_rejected",
        "backslash",
    ),
    # a FIFO as an output: opening it for reading would block the executor forever
    "fifo_output": (
        {"run": "sleep 2; mkfifo pipe", "outputs": ["pipe"]},
        "output_rejected",
        "FIFO",
    ),
    # exits 0 without writing its declared output: no result, every provider would find so
    "missing_output": (
        {"run": "sleep 2; echo done", "outputs": ["out.txt"]},
        "missing_outputs",
        "out.txt",
    ),
    "fifo_in_output_dir": (
        {
            "run": "sleep 2; mkdir out && printf ok > out/fine && mkfifo out/pipe",
            "outputs": ["out"],
        },
        "output_rejected",
        "FIFO",
    ),
}


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_a_hostile_job_fails_alone_and_the_provider_keeps_serving(
    attack: str, spawn_market: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    spec, reason, named = HOSTILE[attack]
    market = spawn_market(tmp_path / "market", "--max-blob-bytes", str(BLOB_LIMIT))
    first = spawn_provider(market.url, tmp_path / "p1", *CHEAP)
    second = spawn_provider(market.url, tmp_path / "p2", *DEARER)
    alice = Party(market)
    alice.fund()
    order_id = alice.launch(**spec)
    order = alice.wait(order_id, lambda o: ended(o) and o["status"] == "done", timeout=60)
    # the job failed once, on the cheapest provider; it did not walk to the second one
    (lease,) = order["leases"]
    assert lease["provider"] == first.account and lease["status"] == "failed"
    failure = lease["receipt"]["failure"]
    assert failure["reason"] == reason and failure["fault"] == "job"
    assert named in failure["detail"]
    assert reason in order["note"]
    assert f"failed: {reason} (job's fault)" in _cli_status(alice, order_id, tmp_path / "alice")
    # paid for its heartbeat-verified seconds, exactly
    assert lease["verified_intervals"] >= 1 and lease["billed_seconds"] >= 1
    price = Money.parse(lease["price_per_hour"])
    assert lease["bill"]["billed"] == price.scale(lease["billed_ms"], 3_600_000).to_json()
    # still on the market, reputation not lowered, and it takes the next job
    me = alice.get(f"/v1/providers/{first.account}")
    assert me["available"] is True
    assert Fraction(me["reputation"]) >= Fraction(1, 2)  # the neutral prior, or better
    later = alice.launch(run="echo next")
    done = alice.wait(later, lambda o: o["status"] == "done", timeout=60)
    assert [(x["provider"], x["status"]) for x in done["leases"]] == [(first.account, "settled")]
    assert alice.get(f"/v1/providers/{second.account}")["running"] == []
    assert_conserved(market.url)
    assert_audit_passes(market.url)


def _cli_status(party: Party, order_id: str, home: Path) -> str:
    """What ``pasar status ORDER`` prints to the order's own client."""
    save_identity(party.identity, DEFAULT_KEY_NAME, home)
    env = {**os.environ, "PASAR_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "250"}
    done = subprocess.run(
        [sys.executable, "-m", "pasar", "status", order_id, "--market", party.url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_conflicting_inputs_are_refused_at_order_time(market_server: Any) -> None:
    alice = Party(market_server)
    alice.fund()
    a = alice.put_blob(b"a file\n")
    b = alice.put_blob(b"a file inside it\n")
    inputs = [{"path": "a", "sha256": a, "size": 7}, {"path": "a/b", "sha256": b, "size": 17}]
    with pytest.raises(PasarError) as err:
        alice.launch(run="cat a", inputs=inputs)
    assert err.value.status == 422 and err.value.field == "private.inputs[1].path"
    assert alice.get("/v1/orders", client=alice.id)["orders"] == []
    assert_conserved(market_server.url)
    assert_audit_passes(market_server.url)


def test_an_output_over_the_blob_limit_comes_back_in_parts_verified(
    spawn_market: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    """An honest output larger than the market's blob limit used to end in an HTTP 413 and a
    lost lease; a job allowed the disk may now return it: it travels as parts of at most the
    limit, and the client joins them and checks the whole file against the signed receipt."""
    market = spawn_market(tmp_path / "market", "--max-blob-bytes", str(BLOB_LIMIT))
    spawn_provider(market.url, tmp_path / "p1", *CHEAP)
    alice = Party(market)
    alice.fund()
    size = 3 * BLOB_LIMIT + 123
    order_id = alice.launch(
        run=f"head -c {size} /dev/urandom > big.bin; echo small > small.txt",
        outputs=["big.bin", "small.txt"],
    )
    order = alice.wait(order_id, lambda o: o["status"] == "done", timeout=60)
    (lease,) = order["leases"]
    assert lease["status"] == "settled"
    big = {o["path"]: o for o in lease["receipt"]["outputs"]}["big.bin"]
    assert big["size"] == size and len(big["parts"]) == 4
    client = pasar.Client(market.url, identity=alice.identity)
    result = client.job(order_id).result(tmp_path / "out")
    got = (tmp_path / "out" / "big.bin").read_bytes()
    assert len(got) == size and hashlib.sha256(got).hexdigest() == big["sha256"]
    assert (tmp_path / "out" / "small.txt").read_text() == "small\n"
    assert sorted(p.name for p in result.files) == ["big.bin", "small.txt"]
    # a part swapped on the market's disk is caught: the joined file no longer matches
    part = Path(market.home) / "blobs" / big["parts"][1][:2] / big["parts"][1]
    part.chmod(0o644)
    part.write_bytes(b"\0" * part.stat().st_size)
    with pytest.raises(PasarError) as swapped:
        client.job(order_id).result(tmp_path / "again")
    assert swapped.value.code == "output_mismatch"
    assert not (tmp_path / "again" / "big.bin").exists()
    assert_conserved(market.url)
    assert_audit_passes(market.url)
