"""Issue 12 §1: the chain and the public API carry only what matching and audit need.

A job plants a marker in its environment, its command, an input file and what it prints, and
runs for real (a provider process, its sandbox). Then every block, every logged transaction and
every GET route of the public API — called without a signature, with every id the job made —
is searched for the markers: none may appear. The client, signing, reads them all back.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pasar.client.client import Client
from pasar.client.transport import Transport
from pasar.core.errors import PasarError
from pasar.crypto.identity import Identity

ENV_MARKER = "ENVMARKER-7f3a9c"
COMMAND_MARKER = "CMDMARKER-51be02"
FILE_MARKER = "FILEMARKER-c0ffee"
PRINTED_MARKER = "PRINTEDMARKER-9d1e"  # the job prints it without its command containing it
MARKERS = (ENV_MARKER, COMMAND_MARKER, FILE_MARKER, PRINTED_MARKER)
PRICE = ("--price-cpu-hour", "0.05", "--grace", "5")


def _spec(base: Path) -> dict[str, Any]:
    (base / "secret.txt").write_text(FILE_MARKER + "\n")
    reversed_printed = PRINTED_MARKER[::-1]
    return {
        "name": "private",
        "run": f'echo "$TOKEN"; cat secret.txt; echo {COMMAND_MARKER}; '
        f"echo {reversed_printed} | rev > out.txt; cat out.txt",
        "envs": {"TOKEN": ENV_MARKER},
        "inputs": ["secret.txt"],
        "outputs": ["out.txt"],
        "resources": {"cpus": 1},
        "max_price_per_hour": "1 USDC",
        "max_duration": "2m",
    }


def _public_get_paths(url: str, ids: dict[str, str]) -> list[str]:
    """Every GET route of the market's OpenAPI, its path parameters filled with ``ids``."""
    schema = httpx.get(f"{url}/openapi.json", timeout=10).json()
    paths = []
    for template, ops in schema["paths"].items():
        if "get" not in ops:
            continue
        names = re.findall(r"{(\w+)}", template)
        if any(n not in ids for n in names):
            raise AssertionError(f"no id to fill {template}: add one to the test")
        paths.append(re.sub(r"{(\w+)}", lambda m: ids[m.group(1)], template))
    return paths


def _leaks(text: str) -> list[str]:
    return [m for m in MARKERS if m in text]


def test_no_marker_reaches_the_chain_or_the_public_api(
    market_server: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    provider = spawn_provider(market_server.url, tmp_path / "p1", *PRICE)
    alice = Client(market_server.url, identity=Identity.generate())
    alice.faucet("5 USDC")
    job = alice.launch(_spec(tmp_path), base_dir=tmp_path)
    order = job.wait(timeout=90)
    assert order["status"] == "done", order
    (lease,) = order["leases"]
    # the job really ran with its secrets, and its client reads them back (signed)
    printed = "".join(job.logs())
    assert all(m in printed for m in MARKERS), printed
    assert (job.result(tmp_path / "got").files[0].read_text().strip()) == PRINTED_MARKER
    view = job.status()
    assert view["spec"]["envs"] == {"TOKEN": ENV_MARKER}  # the parties' view is whole
    private_sha = view["private"]

    url = market_server.url
    ids = {
        "order_id": job.id,
        "lease_id": lease["lease_id"],
        "provider_id": provider.account,
        "verifier_id": provider.account,
        "account_id": alice.account_id,
        "sha256": private_sha,
        "height": "0",
        "check_id": "c-0",
        "challenge_id": "ch-0",
        "dispute_id": f"{lease['lease_id']}.dispute-0",  # none opened: a 404 must not leak either
    }
    anonymous = httpx.Client(base_url=url, timeout=15)
    seen = 0
    for path in _public_get_paths(url, ids):
        answer = anonymous.get(path, params={"timeout": 0} if path.endswith("/wait") else None)
        seen += 1
        assert not _leaks(answer.text), (path, answer.status_code, _leaks(answer.text))
        assert answer.status_code < 500, (path, answer.text)
    assert seen >= 20  # the whole surface, not a handful of routes
    # the chain: every block, every transaction as logged (what `pasar audit --market` reads)
    txs = anonymous.get("/v1/chain/txs", params={"limit": 5000}).json()["txs"]
    deadline = time.monotonic() + 30
    while (anonymous.get("/v1/chain/head").json()["block"] or {}).get("last_seq", 0) < len(txs):
        assert time.monotonic() < deadline, "the market never sealed the job's transactions"
        time.sleep(0.5)
    blocks = anonymous.get("/v1/chain/blocks", params={"limit": 1000}).json()["blocks"]
    assert blocks and txs
    for text in (str(blocks), str(txs)):
        assert not _leaks(text)
    (create,) = [t for t in txs if t["envelope"]["body"]["type"] == "order.create"]
    assert create["envelope"]["body"]["private"] == private_sha
    assert "run" not in create["envelope"]["body"]["spec"]
    # the stored log itself, byte for byte (the database a market operator would publish)
    db = b"".join(p.read_bytes() for p in market_server.home.glob("market.db*"))  # WAL too
    assert b"order.create" in db
    assert not [m for m in (ENV_MARKER, COMMAND_MARKER) if m.encode() in db]
    # and an audit still replays everything from hashes alone
    audit = subprocess.run(
        [sys.executable, "-m", "pasar", "audit", "--market", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_an_order_cannot_name_another_accounts_private_part(market_server: Any) -> None:
    """The commitment is public; naming it must not make the namer a party that may read it."""
    alice = Client(market_server.url, identity=Identity.generate())
    alice.faucet("5 USDC")
    job = alice.launch(
        {
            "run": f"echo {COMMAND_MARKER}",
            "resources": {"cpus": 64},  # nobody fits: the order just waits
            "max_price_per_hour": "1 USDC",
            "max_duration": "1m",
        }
    )
    private_sha = job.status()["private"]
    mallory = Identity.generate()
    api = Transport(market_server.url, identity=mallory)
    api.post_signed("/v1/faucet", {"type": "faucet", "amount": "5 USDC"}, mallory)
    before = api.get("/v1/state/balances")["balances"]
    body = {
        "type": "order.create",
        "spec": {"resources": {"cpus": 1}, "max_price_per_hour": "1 USDC", "max_duration": "1m"},
        "private": private_sha,
    }
    with pytest.raises(PasarError) as refused:
        api.post_signed("/v1/orders", body, mallory)
    assert (refused.value.status, refused.value.code) == (403, "blob_not_owned")
    assert refused.value.field == "body.private"
    with pytest.raises(PasarError) as unreadable:
        api.request("GET", f"/v1/blobs/{private_sha}")
    assert unreadable.value.status == 403
    assert api.get("/v1/state/balances")["balances"] == before  # nothing moved
