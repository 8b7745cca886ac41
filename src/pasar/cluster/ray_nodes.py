"""``cluster: ray``: a Ray cluster across a multi-node job's nodes, started before ``run``
(issue 15).

Why Ray and not a scheduler of pasar's own: users of io.net's clusters and SkyPilot already
write Ray programs (Ray Train, Ray Data, tasks); pasar's job is to hand them a ready cluster on
the leased nodes. What each node's job runs, instead of ``setup`` then ``run``
(:func:`bootstrap_script`):

* every node runs ``setup`` first (as any job);
* rank 0 (the head) starts a Ray head at ``PASAR_HEAD_IP``, waits until every node has joined
  (:mod:`pasar.cluster.ray_ready`), then runs ``run`` with ``RAY_ADDRESS`` set, so
  ``ray.init()`` finds the cluster; the job's exit code is ``run``'s;
* the other ranks start a Ray worker node joined to the head (retrying until the head is up),
  then wait: their jobs end when the head's ``run`` ends (the gang rule of multi-node jobs).

Each node offers exactly its lease: ``--num-cpus`` / ``--num-gpus`` are the lease's, Ray's
``memory`` and object store are carved from the lease's memory, and the ports a node opens are
its own (a worker-port range and a metrics port per rank), since nodes on one machine share a
network (:mod:`pasar.cluster.network`). Ray runs from the provider's Python (``python -m
ray.scripts.scripts``: the ``ray`` launcher's first line names the host's path, which the
sandbox does not have). Ray is the optional ``cluster`` extra; a provider offers
``cluster: ray`` only when Ray imports in its Python (:func:`available`).
"""

from __future__ import annotations

import importlib.util
import shlex

from pasar.provider.runtime.base import Limits

RAY = "python -m ray.scripts.scripts"
HEAD_PORT = 6379
READY_TIMEOUT_S = 120  # how long the head waits for every node to join before it gives up
WORKER_PORTS = 1000  # per rank: 20000 + 1000 * rank ...
OBJECT_STORE_SHARE = 4  # a quarter of the lease's memory for Ray's object store
MIN_OBJECT_STORE = 80 * 1024 * 1024  # Ray refuses less than ~75 MB


def available() -> bool:
    """Ray imports in this Python (the one the sandbox binds for jobs)."""
    return importlib.util.find_spec("ray") is not None


def bootstrap_script(
    rank: int, num_nodes: int, limits: Limits, *, setup_file: str | None, run_file: str
) -> str:
    """The shell script a ``cluster: ray`` node runs (see the module doc)."""
    cpus = max(1, int(limits.cpus or 1))
    gpus = len(limits.gpus)
    object_store = max(MIN_OBJECT_STORE, limits.memory_bytes // OBJECT_STORE_SHARE)
    low = 20000 + WORKER_PORTS * rank
    common = " ".join(
        [
            f"--num-cpus={cpus}",
            f"--num-gpus={gpus}",
            f"--memory={max(1, limits.memory_bytes - object_store)}",
            f"--object-store-memory={object_store}",
            f"--min-worker-port={low}",
            f"--max-worker-port={low + WORKER_PORTS - 1}",
            f"--metrics-export-port={19000 + rank}",
            "--disable-usage-stats",
        ]
    )
    # Ray's token authentication, with the gang's secret as the token: a Ray process that does
    # not hold it (not one of the gang's jobs) is refused by the cluster
    lines = [
        "export RAY_USAGE_STATS_ENABLED=0",
        'export RAY_AUTH_MODE=token RAY_AUTH_TOKEN="$PASAR_CLUSTER_SECRET"',
    ]
    if setup_file is not None:
        lines.append(f"sh {shlex.quote(setup_file)} || exit $?")
    address = f'"$PASAR_HEAD_IP":{HEAD_PORT}'
    if rank == 0:
        lines += [
            f'{RAY} start --head --node-ip-address="$PASAR_HEAD_IP" --port={HEAD_PORT} '
            f"--include-dashboard=false {common} > .pasar-ray-start.log 2>&1 "
            "|| { cat .pasar-ray-start.log; exit 1; }",
            f"python -m pasar.cluster.ray_ready {address} {num_nodes} {READY_TIMEOUT_S} || exit 1",
            f"export RAY_ADDRESS={address}",
            f"sh {shlex.quote(run_file)}",
            "status=$?",
            f"{RAY} stop --force > /dev/null 2>&1",
            "exit $status",
        ]
    else:
        own = f'"$(printf \'%s\\n\' "$PASAR_NODE_IPS" | sed -n {rank + 1}p)"'
        lines += [
            f"until {RAY} start --address={address} --node-ip-address={own} {common} "
            "> .pasar-ray-start.log 2>&1; do sleep 1; done",
            'echo "ray worker node joined the head at $PASAR_HEAD_IP"',
            "exec sleep infinity  # until the head's run ends and the gang stops",
        ]
    return "\n".join(lines) + "\n"
