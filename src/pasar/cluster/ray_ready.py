"""``python -m pasar.cluster.ray_ready ADDRESS N TIMEOUT``: wait until a Ray cluster has N
live nodes (the head of a ``cluster: ray`` job, before its ``run``); exit 1, saying how many
joined, after TIMEOUT seconds. Runs inside the job's sandbox, with Ray from the provider's
Python (:mod:`pasar.cluster.ray_nodes`)."""

from __future__ import annotations

import importlib
import logging
import sys
import time
from typing import Any


def main(argv: list[str]) -> int:
    address, wanted, timeout_s = argv[1], int(argv[2]), float(argv[3])
    # the optional `cluster` extra, present wherever this runs (untyped: Ray's hints are partial)
    ray: Any = importlib.import_module("ray")
    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    deadline = time.monotonic() + timeout_s
    alive = 0
    while time.monotonic() < deadline:
        alive = sum(1 for node in ray.nodes() if node.get("Alive"))
        if alive >= wanted:
            print(f"ray cluster ready: {alive} nodes", flush=True)
            ray.shutdown()
            return 0
        time.sleep(0.2)
    print(f"ray cluster not ready: {alive} of {wanted} nodes joined in {timeout_s:g} s", flush=True)
    ray.shutdown()
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
