"""Issue 12 §2: ``privacy: sealed`` end to end, on a real market and real provider processes.

The client encrypts the private part and the inputs under a data key, seals the key to the
lease key the winning provider announced, and gets outputs and logs back under it. The test
plants markers in the job's environment, its command, an input file and what it prints, and
then searches everything under the market's home — database, blobs, logs — for them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_market_flow import total_minted

from pasar.client import calls
from pasar.client.client import Client
from pasar.client.inputs import collect_inputs
from pasar.client.sealed import prepare_sealed
from pasar.client.transport import Transport
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.spec import JobSpec
from pasar.crypto.identity import Identity
from pasar.crypto.sealing import lease_keypair, open_key

ENV_MARKER = "SEALEDENV-41c9"
COMMAND_MARKER = "SEALEDCMD-77ab"
FILE_MARKER = "SEALEDFILE-0e12"
PRINTED_MARKER = "SEALEDPRINT-5d3f"
MARKERS = (ENV_MARKER, COMMAND_MARKER, FILE_MARKER, PRINTED_MARKER)
PRICE = ("--price-cpu-hour", "0.05", "--grace", "5")


def _spec(base: Path) -> dict[str, Any]:
    (base / "secret.txt").write_text(FILE_MARKER + "\n")
    return {
        "name": "sealed",
        "privacy": "sealed",
        "run": f'echo "$TOKEN"; cat secret.txt; echo {COMMAND_MARKER}; '
        f"echo {PRINTED_MARKER[::-1]} | rev > out.txt; cat out.txt",
        "envs": {"TOKEN": ENV_MARKER},
        "inputs": ["secret.txt"],
        "outputs": ["out.txt"],
        "resources": {"cpus": 1},
        "max_price_per_hour": "1 USDC",
        "max_duration": "2m",
    }


def _files_with_markers(root: Path) -> list[tuple[str, str]]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [(str(path), m) for m in MARKERS if m.encode() in data]
    return found


def test_a_sealed_job_runs_and_the_market_holds_only_ciphertext(
    market_server: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    winner = spawn_provider(market_server.url, tmp_path / "p1", *PRICE)
    home = tmp_path / "client"
    alice = Client(market_server.url, identity=Identity.generate(), home=home)
    alice.faucet("5 USDC")
    before = alice.balance()
    job = alice.launch(_spec(tmp_path), base_dir=tmp_path)
    order = job.wait(timeout=120)
    assert order["status"] == "done", order
    (lease,) = order["leases"]
    assert lease["provider"] == winner.account and lease["receipt"]["exit_code"] == 0
    assert lease["box_key"] and set(lease["sealed_keys"]) == {winner.account}
    # the client, and only it, reads the job back in plain text
    printed = "".join(job.logs())
    assert all(m in printed for m in MARKERS), printed
    result = job.result(tmp_path / "got")
    assert result.files[0].read_text().strip() == PRINTED_MARKER
    assert (home / "sealed").stat().st_mode & 0o777 == 0o700
    # nothing under the market's home holds a marker: database, blobs, logs
    assert not _files_with_markers(market_server.home)
    assert order["spec"]["privacy"] == "sealed" and "run" not in order["spec"]
    # money: the client paid what its lease billed, no more
    after = alice.balance()
    assert after["escrow"] == before["escrow"]

    # a provider that did not win the lease can read neither the key nor the blobs
    loser = Identity.generate()
    api = Transport(market_server.url, identity=loser)
    sealed = lease["sealed_keys"][winner.account]  # public on the chain: useless to others
    stranger, _ = lease_keypair()
    with pytest.raises(PasarError) as err:
        open_key(sealed, stranger)
    assert err.value.code == "sealed_key_invalid"
    with pytest.raises(PasarError) as forbidden:
        api.request("GET", f"/v1/blobs/{order['private']}")
    assert forbidden.value.status in (401, 403)

    # an audit replays the sealed job from the chain alone
    audit = subprocess.run(
        [sys.executable, "-m", "pasar", "audit", "--market", market_server.url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr

    # a tampered ciphertext on the market's disk is refused, and nothing is kept
    out_sha = lease["receipt"]["outputs"][0]["sha256"]
    blobs = market_server.home / "blobs"
    (blob,) = [p for p in blobs.rglob(out_sha) if p.is_file() and "owners" not in p.parts]
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[60] ^= 1
    blob.write_bytes(bytes(data))
    with pytest.raises(PasarError) as tampered:
        job.result(tmp_path / "again")
    assert tampered.value.code == "output_mismatch"
    assert not (tmp_path / "again" / "out.txt").exists()


def test_a_sealed_job_waits_for_its_client_and_status_says_so(
    market_server: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    """A client that never seals its key: the provider announces its lease key, the order
    says it waits for the client, and when the provider gives up the lease fails as the job's
    fault (paid for its verified seconds, never re-queued). Money is conserved."""
    spawn_provider(market_server.url, tmp_path / "p1", *PRICE)
    alice = Client(market_server.url, identity=Identity.generate(), home=tmp_path / "c")
    alice.faucet("5 USDC")
    job_spec = JobSpec.from_dict({**_spec(tmp_path), "max_duration": "4s"})  # its longest wait
    sealed = prepare_sealed(job_spec, collect_inputs(job_spec, tmp_path), alice._upload)
    order_id = alice._call(calls.create_order(sealed.fields, None)).created()  # no Sealer
    job = alice.job(order_id)
    order: dict[str, Any] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        order = job.status()
        if order["leases"] and order["leases"][0].get("box_key"):
            break
        time.sleep(0.2)
    assert order["leases"][0]["box_key"], order
    assert "waiting for the client" in str(job.status()["note"])
    order = job.wait(timeout=60)
    (lease,) = order["leases"]
    assert lease["receipt"]["failure"]["reason"] == "client_key_missing", lease
    assert lease["status"] == "failed" and order["status"] == "done"
    balances = alice.transport.get("/v1/state/balances")["balances"]
    assert total_minted(balances) >= Money.parse("5 USDC")  # asserts conservation itself


def test_a_sealed_order_naming_someone_elses_blob_is_refused(
    market_server: Any, tmp_path: Path
) -> None:
    alice = Client(market_server.url, identity=Identity.generate(), home=tmp_path / "a")
    alice.faucet("5 USDC")
    job_spec = JobSpec.from_dict(_spec(tmp_path))
    sealed = prepare_sealed(job_spec, collect_inputs(job_spec, tmp_path), alice._upload)
    mallory = Client(market_server.url, identity=Identity.generate(), home=tmp_path / "m")
    mallory.faucet("5 USDC")
    before = mallory.balance()
    with pytest.raises(PasarError) as err:
        mallory._call(calls.create_order(sealed.fields, None))
    assert (err.value.status, err.value.code) == (403, "blob_not_owned")
    assert mallory.balance() == before
