"""Data-parallel training across a ``cluster: ray`` job's nodes (issue 15): one Ray actor per
node (``SPREAD``), each a torch DistributedDataParallel worker (gloo, CPU) meeting at the head;
the gradients are averaged across the nodes every step, so the loss falls for all of them.

Run it as the ``run`` of a multi-node job (``num_nodes: 3``, ``cluster: ray``); it reads
``PASAR_NUM_NODES`` and ``PASAR_HEAD_IP``. Locally (``python examples/ray_ddp.py``) it starts
a one-node Ray and trains on one worker.
"""

from __future__ import annotations

import os
from typing import Any

import ray as ray_module
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

ray: Any = ray_module  # Ray's hints are partial (untyped calls): used as untyped

STEPS = 60
PORT = "29500"  # the gang's network is its own: a fixed rendezvous port is free


class DataParallelWorker:
    """One data-parallel worker, pinned to a node by the SPREAD strategy."""

    def node(self) -> str:
        return str(ray.get_runtime_context().get_node_id())

    def train(self, rank: int, world: int, head: str) -> list[float]:
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = head, PORT
        dist.init_process_group("gloo", rank=rank, world_size=world)
        torch.manual_seed(0)  # the same initial weights everywhere (DDP also broadcasts them)
        model = DistributedDataParallel(
            torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        )
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        data = torch.Generator().manual_seed(rank)  # each worker its own shard of the data
        target = torch.arange(8.0) / 8
        losses = []
        for _ in range(STEPS):
            x = torch.randn(64, 8, generator=data)
            loss = ((model(x) - (x @ target).unsqueeze(1)) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()  # gradients all-reduced across the nodes here
            optimizer.step()
            losses.append(float(loss.detach()))
        dist.destroy_process_group()
        return losses


# a Ray actor class, one CPU each (untyped: Ray's decorator erases the class for type checkers)
Worker: Any = ray.remote(num_cpus=1)(DataParallelWorker)


def main() -> None:
    ray.init()
    alive = [node for node in ray.nodes() if node["Alive"]]
    print(f"ray nodes {len(alive)} cpus {int(ray.cluster_resources()['CPU'])}", flush=True)
    world = int(os.environ.get("PASAR_NUM_NODES", "1"))
    head = os.environ.get("PASAR_HEAD_IP", "127.0.0.1")
    workers: list[Any] = [
        Worker.options(scheduling_strategy="SPREAD").remote() for _ in range(world)
    ]
    nodes = ray.get([w.node.remote() for w in workers])
    losses = ray.get([w.train.remote(rank, world, head) for rank, w in enumerate(workers)])
    print(f"ddp workers {world} on {len(set(nodes))} nodes", flush=True)
    print(f"loss first {losses[0][0]:.4f} last {losses[0][-1]:.4f}", flush=True)


if __name__ == "__main__":
    main()
