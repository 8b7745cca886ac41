"""``pasar devnet up --preset akash --cheaters 1 --cheat garble:1``: the first provider cheats,
every provider is funded for its bid deposits, a job runs through the auction, and the
deposits come back once its lease settles; bad cheat options are refused before anything
starts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psutil
from test_devnet import needs_bwrap, pasar, wait_gone

from pasar.client.raw_orders import prepared_order
from pasar.client.transport import Transport
from pasar.crypto.identity import DEFAULT_KEY_NAME, load_identity
from pasar.provider.cheat import read_cheats

SPEC = {
    "run": "echo 42 > a.txt",
    "outputs": ["a.txt"],
    "resources": {"cpus": 1},
    "max_price_per_hour": "1 USDC",
    "max_duration": "2m",
}


@needs_bwrap
def test_an_akash_devnet_with_one_cheater(tmp_path: Path) -> None:
    home = tmp_path / "net"
    up = pasar(
        "devnet", "up", "--preset", "akash", "--providers", "2", "--cheaters", "1",
        "--cheat", "garble:1.0", "--detach", "--home", str(home),
    )  # fmt: skip
    assert up.returncode == 0, up.stdout + up.stderr
    record = json.loads((home / "devnet.json").read_text())
    try:
        members = {p["name"]: p for p in record["processes"]}
        cmdlines = {n: psutil.Process(int(m["pid"])).cmdline() for n, m in members.items()}
        assert "--cheat" in cmdlines["provider-1"] and "--cheat" not in cmdlines["provider-2"]
        client = load_identity(DEFAULT_KEY_NAME, home / "client")
        api = Transport(record["url"], identity=client)
        providers = [members["provider-1"]["id"], members["provider-2"]["id"]]

        def spendable(who: str) -> str:
            return str(api.get(f"/v1/accounts/{who}")["balance"])

        assert [spendable(p) for p in providers] == ["10.00 USDC", "10.00 USDC"]
        body = prepared_order(api, client, SPEC)
        order_id = api.post_signed("/v1/orders", body, client)["order_id"]
        deadline = time.monotonic() + 90
        order: Any = {}
        while time.monotonic() < deadline:
            order = api.get(f"/v1/orders/{order_id}")
            if order["status"] == "done":
                break
            time.sleep(0.2)
        assert order["status"] == "done", order
        (lease,) = order["leases"]
        cheated = [c["lease_id"] for c in read_cheats(Path(members["provider-1"]["home"]))]
        assert cheated == ([lease["lease_id"]] if lease["provider"] == providers[0] else [])
        assert [spendable(p) for p in providers] == ["10.00 USDC", "10.00 USDC"]
    finally:
        down = pasar("devnet", "down", "--home", str(home))
        assert down.returncode == 0, down.stdout + down.stderr
        assert wait_gone([int(p["pid"]) for p in record["processes"]], 30) == []


def test_bad_cheat_options_are_refused_before_anything_starts(tmp_path: Path) -> None:
    home = tmp_path / "net"
    for args, named in (
        (("--cheat", "steal:1"), "--cheat"),
        (("--cheaters", "3", "--cheat", "skip:1"), "--cheaters"),
        (("--cheaters", "1"), "--cheat"),
    ):
        done = pasar("devnet", "up", "--providers", "2", "--home", str(home), *args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert named in done.stderr
        assert not (home / "devnet.json").exists()
