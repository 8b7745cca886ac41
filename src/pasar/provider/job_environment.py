"""The environment a lease's job runs with: its spec's ``envs``, its secrets (a sealed job's
come from the private part, opened before this is built), pasar's own ``PASAR_*`` variables,
a gang's view of itself, and SkyPilot's ``SKYPILOT_*`` aliases.

Split from :mod:`pasar.provider.executor` and :mod:`pasar.provider.lease_job`: the provider's
run and a verifier's re-run (:mod:`pasar.verifier.rerun`) build it the same way, so a job that
prints its environment prints the same on both.
"""

from __future__ import annotations

from pasar.provider.cheat import cheat_environment
from pasar.provider.lease_job import LeaseJob


def job_environment(job: LeaseJob, cheat: str | None = None) -> dict[str, str]:
    """Everything the job sees in its environment. Later entries win: pasar's own names cannot
    be overridden by a spec's ``envs``."""
    return {
        **job.spec.envs,
        **(job.spec.secrets or {}),
        "PASAR_LEASE": job.lease_id,
        "PASAR_SHARD": str(job.shard),
        "PASAR_SHARDS": str(job.shards),
        **gang_environment(job),
        **skypilot_environment(job),
        **cheat_environment(cheat),  # pol: a training job fakes some of its steps
    }


def gang_environment(job: LeaseJob) -> dict[str, str]:
    """A multi-node job's view of its gang (as SkyPilot's ``SKYPILOT_NODE_*``): its rank
    (0 is the head), how many nodes, each node's address in rank order (one per line),
    the head's, and the gang's shared secret. Nothing for a job of one node."""
    if job.spec.num_nodes <= 1 or not job.nodes:
        return {}
    addresses = [node.address or "" for node in job.nodes]
    return {
        "PASAR_NODE_RANK": str(job.shard),
        "PASAR_NUM_NODES": str(len(job.nodes)),
        "PASAR_NODE_IPS": "\n".join(addresses),
        "PASAR_HEAD_IP": addresses[0],
        "PASAR_CLUSTER_SECRET": job.cluster_secret or "",
    }


def skypilot_environment(job: LeaseJob) -> dict[str, str]:
    """SkyPilot's variables, as aliases of pasar's, on every node of every job, so a
    SkyPilot task's script runs unchanged: its rank, the nodes' addresses one per line in
    rank order (a one-node job: this machine, 127.0.0.1), how many nodes, the GPUs of each
    node, and a task id (the order's: the same on every node of the job)."""
    gang = job.spec.num_nodes > 1 and bool(job.nodes)
    addresses = [node.address or "" for node in job.nodes] if gang else ["127.0.0.1"]
    accelerators = job.spec.resources.accelerators
    return {
        "SKYPILOT_NODE_RANK": str(job.shard) if gang else "0",
        "SKYPILOT_NODE_IPS": "\n".join(addresses),
        "SKYPILOT_NUM_NODES": str(len(addresses)),
        "SKYPILOT_NUM_GPUS_PER_NODE": str(accelerators.count if accelerators else 0),
        "SKYPILOT_TASK_ID": job.order_id,
    }
