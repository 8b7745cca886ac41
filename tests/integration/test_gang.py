"""Multi-node jobs (issue 15, first slice): ``num_nodes: 3`` leases three providers as a gang;
each node's job sees its rank, the gang's addresses and a shared secret; the job ends when the
head's ``run`` ends, and each node is paid for its own verified time. Real market, real
sandboxed provider agents (one machine, so every node's address is 127.0.0.1)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from pasar.client.client import Client
from pasar.client.transport import Transport
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.crypto.identity import Identity

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")

# each node says who it is; the head ends after a moment, the others would run for minutes
GANG_RUN = """
echo "rank=$PASAR_NODE_RANK of=$PASAR_NUM_NODES head=$PASAR_HEAD_IP secret=$PASAR_CLUSTER_SECRET"
echo "ips=$(printf '%s' "$PASAR_NODE_IPS" | tr '\\n' ,)"
if [ "$PASAR_NODE_RANK" = 0 ]; then sleep 2; else sleep 300; fi
"""
SPEC = {
    "run": GANG_RUN,
    "num_nodes": 3,
    "resources": {"cpus": 1},
    "max_price_per_hour": "0.50 USDC",
    "max_duration": "10m",
}


def _spent(order: dict[str, Any]) -> Money:
    total = Money.zero("USDC")
    for lease in order["leases"]:
        total += Money.parse(lease["bill"]["billed"]) + Money.parse(lease["bill"]["client_fee"])
    return total


def test_a_three_node_job_knows_its_gang_and_ends_with_its_head(
    market_server: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    ids = {
        spawn_provider(market_server.url, tmp_path / f"p{i}", "--price-cpu-hour", "0.05").account
        for i in range(3)
    }
    with Client(market_server.url, home=tmp_path / "client") as client:
        client.faucet("10 USDC")
        job = client.launch(SPEC)
        order = job.wait(timeout=120)
        assert order["status"] == "done", order
        leases = sorted(order["leases"], key=lambda x: x["shard"])
        assert [x["shard"] for x in leases] == [0, 1, 2]
        assert {x["provider"] for x in leases} == ids  # three distinct providers
        head, *workers = leases
        assert head["receipt"]["exit_code"] == 0 and head["receipt"].get("kill_reason") is None
        for worker in workers:  # stopped when the head ended, each with its own receipt
            assert worker["status"] == "settled" and worker["receipt"]["kill_reason"] == "gang"
        views = [
            client.transport.get(f"/v1/leases/{x['lease_id']}", {}, signer=client.identity)
            for x in leases
        ]
        secrets = {v["cluster_secret"] for v in views}
        (secret,) = secrets  # one secret for the gang
        assert len(secret) == 64
        for view in views:
            assert [n["rank"] for n in view["nodes"]] == [0, 1, 2]
            assert [n["address"] for n in view["nodes"]] == ["127.0.0.1"] * 3
        for lease in leases:
            text = "".join(job.logs(shard=lease["shard"]))
            assert f"rank={lease['shard']} of=3 head=127.0.0.1 secret={secret}" in text, text
            assert "ips=127.0.0.1,127.0.0.1,127.0.0.1" in text, text
        # nobody outside the order reads the gang's secret
        stranger = Identity.generate()
        with pytest.raises(PasarError) as err:
            Transport(market_server.url, identity=stranger).get(
                f"/v1/leases/{head['lease_id']}", {}, signer=stranger
            )
        assert err.value.status in (403, 404)
        account = client.balance()
        assert account["escrow"] == "0.00 USDC"
        assert Money.parse(account["balance"]) == Money.parse("10 USDC") - _spent(order)
