"""How long a ``cluster: ray`` job takes from its order to a Ray cluster of 3 nodes ready for
``run`` (issue 15), beside the floor: the same Ray head and two workers started by hand, in the
same run, on the same machine.

1. a devnet of 3 providers started with ``--allow-cluster`` (root: the gang's network
   namespace), Ray from this Python (the ``cluster`` extra);
2. ``ready_s``: ``client.launch`` of a 3-node ``cluster: ray`` job → the moment its ``run``
   starts on the head (it prints the wall clock; the head starts ``run`` only once all 3 nodes
   have joined) — the order, the gang's match, 3 sandboxes, 3 Ray nodes, the wait;
3. ``raw_ray_s``: ``ray start --head`` and two ``ray start --address`` processes, no sandbox,
   until ``ray.nodes()`` shows 3 live nodes, then ``ray stop``;
4. ``per_node_overhead_s`` = (ready_s - raw_ray_s) / 3.

Target: ``ready_s`` < 15 s here (a raw head plus two workers took ~10 s on this machine;
io.net's docs say < 90 s for theirs). Prints one JSON line.

    sudo python benchmarks/bench_cluster.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pasar.client.client import Client
from pasar.devnet import Devnet, DevnetConfig

NODES = 3
RUN = "python -c \"import time; print('run starts at', repr(time.time()), flush=True)\""
RAY = [sys.executable, "-m", "ray.scripts.scripts"]


def pasar_ready_s(home: Path) -> float:
    """Seconds from the launch of a 3-node ``cluster: ray`` job to its head's ``run``."""
    config = DevnetConfig(home=home, providers=NODES, verifiers=0, cluster=True)
    with Devnet(config) as net:
        net.start()
        with Client(net.url, home=config.client_home) as client:
            spec = {
                "run": RUN,
                "num_nodes": NODES,
                "cluster": "ray",
                "resources": {"cpus": 1, "memory": 2},
                "max_price_per_hour": "0.5 USDC",
                "max_duration": "10m",
            }
            launched = time.time()
            job = client.launch(spec)
            order = job.wait(timeout=300)
            log = "".join(job.logs(shard=0))
            if order["status"] != "done" or "run starts at" not in log:
                raise SystemExit(f"the cluster job did not run: {order['status']}\n{log[-2000:]}")
            started = float(log.split("run starts at", 1)[1].split()[0])
            return started - launched


def raw_ray_s(scratch: Path) -> float:
    """A Ray head and two workers on this machine, by hand, until 3 nodes are alive."""
    # a home of its own: no token file from another Ray run (~/.ray/auth_token) applies
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HOME": str(scratch)}
    common = ["--num-cpus=1", "--disable-usage-stats", f"--temp-dir={scratch}"]
    scratch.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    try:
        subprocess.run(
            [*RAY, "start", "--head", "--port=6390", "--include-dashboard=false", *common],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
        for rank in (1, 2):
            ports = [
                f"--min-worker-port={20000 + 1000 * rank}",
                f"--max-worker-port={20999 + 1000 * rank}",
            ]
            subprocess.run(
                [*RAY, "start", "--address=127.0.0.1:6390", *ports, "--num-cpus=1",
                 "--disable-usage-stats"],
                check=True, capture_output=True, env=env,
            )  # fmt: skip
        probe = (
            "import ray, time\n"
            "ray.init(address='127.0.0.1:6390', logging_level='ERROR')\n"
            "while sum(n['Alive'] for n in ray.nodes()) < 3: time.sleep(0.1)\n"
        )
        subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, env=env)
        return time.time() - t0
    finally:
        subprocess.run([*RAY, "stop", "--force"], capture_output=True, env=env)


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root: a gang's network is a network namespace (--allow-cluster)")
    with tempfile.TemporaryDirectory(prefix="pasar-bench-cluster-") as tmp:
        raw = raw_ray_s(Path(tmp) / "ray")
        ready = pasar_ready_s(Path(tmp) / "devnet")
    print(
        json.dumps(
            {
                "name": "cluster_ready",
                "value": round(ready, 2),
                "unit": "s (3-node cluster: ray, order to run on the head)",
                "ready_s": round(ready, 2),
                "raw_ray_s": round(raw, 2),
                "ratio_to_raw": round(ready / raw, 2),
                "per_node_overhead_s": round((ready - raw) / NODES, 2),
                "target_s": 15,
                "nodes": NODES,
                "machine": f"{platform.machine()} {os.cpu_count()} cores, "
                f"Python {platform.python_version()}",
            }
        )
    )


if __name__ == "__main__":
    main()
