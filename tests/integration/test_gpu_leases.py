"""GPUs belong to someone, end to end: a real market, a real provider agent process, real
sandboxes.

**No GPU is present on the machine that runs these tests.** The provider *registers* two H100s
from a recorded NVML report (``--gpu-report``: its inventory is data), so the market, the lease
views and the agent's device mapping are all real, and the job — which cannot run CUDA here —
prints the environment the runtime gave it. Two concurrent 1-GPU leases must get distinct
devices, each job must be told exactly its lease's device (``CUDA_VISIBLE_DEVICES``, by UUID),
and the agent must have asked the sandbox for exactly that device's node.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_provider import Client, conserved

if TYPE_CHECKING:
    from conftest import MarketProcess

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")

# Two H100s as NVML would report them; device 1's node is /dev/nvidia3 on purpose (the driver's
# minor numbers need not be NVML's indices), so the test sees which number the agent binds.
REPORT = {
    "gpus": [
        {
            "index": 0,
            "name": "NVIDIA H100 80GB HBM3",
            "memory_mib": 81559,
            "uuid": "GPU-aaaa0000-0000-0000-0000-000000000000",
            "minor": 0,
        },
        {
            "index": 1,
            "name": "NVIDIA H100 80GB HBM3",
            "memory_mib": 81559,
            "uuid": "GPU-bbbb1111-1111-1111-1111-111111111111",
            "minor": 3,
        },
    ],
    "driver_version": "550.54.15",
    "cuda_version": "12.4",
}
NODE = {0: "/dev/nvidia0", 1: "/dev/nvidia3"}
UUID = {g["index"]: g["uuid"] for g in REPORT["gpus"]}  # type: ignore[index]
PRINT_ENV = 'echo "cvd=$CUDA_VISIBLE_DEVICES order=$CUDA_DEVICE_ORDER"'


def one_gpu_job(client: Client, run: str) -> str:
    return client.launch(
        run=run,
        resources={"accelerators": "H100:1", "cpus": 1, "memory": 1, "disk": 1},
        max_price_per_hour="5 USDC",
    )


def test_two_concurrent_one_gpu_leases_get_distinct_devices_and_exactly_those(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Path
) -> None:
    report = tmp_path / "gpus.json"
    report.write_text(json.dumps(REPORT))
    provider = spawn_provider(
        market_server.url,
        tmp_path / "p1",
        "--gpu-report",
        str(report),
        "--price",
        "H100=1",
        "--grace",
        "5",
    )
    me = Client(market_server)
    me.post("/v1/faucet", type="faucet", amount="50 USDC")

    # both jobs hold their GPU until cancelled, so they run at the same time
    first = one_gpu_job(me, f"{PRINT_ENV}; sleep 120")
    second = one_gpu_job(me, f"{PRINT_ENV}; sleep 120")
    for order in (first, second):
        me.wait(order, lambda o: o["leases"] and "cvd=" in me.logs(o["leases"][0]["lease_id"]))
    assert all(me.order(o)["leases"][0]["status"] == "running" for o in (first, second))

    leases = [me.order(o)["leases"][0] for o in (first, second)]
    assert all(x["provider"] == provider.account for x in leases)
    devices = [x["devices"] for x in leases]
    assert sorted(d["index"] for (d,) in devices) == [0, 1]  # one device each, not both 0
    for lease in leases:
        ((device,),) = [lease["devices"]]
        assert device["uuid"] == UUID[device["index"]]
        # the job was told exactly its lease's GPU, by UUID
        log = me.logs(lease["lease_id"])
        assert f"cvd={device['uuid']} order=PCI_BUS_ID" in log
        # and the agent asked the sandbox for that device's node (and no other GPU's)
        said = re.search(rf"lease {lease['lease_id']}: GPUs (.*)", provider.output())
        assert said is not None
        assert (
            said.group(1).strip()
            == f"{device['index']} ({device['uuid']}) at " + NODE[device["index"]]
        )

    # both GPUs are held: a third 1-GPU order waits and says why
    third = one_gpu_job(me, PRINT_ENV)
    explain = me.get(f"/v1/orders/{third}/explain")
    mine = [p for p in explain["providers"] if p["provider"] == provider.account]
    assert mine and "needs 1× H100, has no GPUs" in (mine[0]["reason"] or ""), explain
    # the second lease ends: its device, and only it, goes to the waiting order
    me.post(f"/v1/orders/{second}/cancel", type="order.cancel", order_id=second)
    done = me.wait(third, lambda o: o["status"] == "done")
    assert done["leases"][0]["devices"] == leases[1]["devices"]
    assert f"cvd={leases[1]['devices'][0]['uuid']} " in me.logs(done["leases"][0]["lease_id"])
    me.post(f"/v1/orders/{first}/cancel", type="order.cancel", order_id=first)
    conserved(me, "50 USDC")
