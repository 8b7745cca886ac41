"""What a ``cluster: ray`` node runs (issue 15): the head starts Ray, waits for every node, then
runs ``run``; a worker joins the head, retrying, and waits; each offers exactly its lease, on
ports of its own; and its memory is bounded by its cgroup rather than an address-space limit."""

from __future__ import annotations

import dataclasses

from pasar.cluster.ray_nodes import bootstrap_script
from pasar.provider.runtime.base import Limits, job_rlimits

GIB = 1 << 30
LIMITS = Limits(
    memory_bytes=2 * GIB, cpu_seconds=600, max_processes=256, max_file_bytes=GIB,
    wall_seconds=600, cpus=2,
)  # fmt: skip


def test_the_head_waits_for_every_node_before_run() -> None:
    head = bootstrap_script(0, 3, LIMITS, setup_file=".pasar-setup.sh", run_file=".pasar-run.sh")
    lines = head.splitlines()
    order = [
        next(i for i, line in enumerate(lines) if marker in line)
        for marker in (
            "sh .pasar-setup.sh",
            "start --head",
            "pasar.cluster.ray_ready",
            "sh .pasar-run.sh",
        )
    ]
    assert order == sorted(order)  # setup, Ray's head, all 3 nodes joined, then run
    assert 'ray_ready "$PASAR_HEAD_IP":6379 3 ' in head and "export RAY_ADDRESS=" in head
    assert "--num-cpus=2" in head and "--num-gpus=0" in head  # the lease's, exactly
    # Ray's token authentication, with the gang's shared secret as the token
    assert 'export RAY_AUTH_MODE=token RAY_AUTH_TOKEN="$PASAR_CLUSTER_SECRET"' in head
    assert f"--object-store-memory={GIB // 2}" in head and f"--memory={GIB * 3 // 2}" in head


def test_workers_join_the_head_on_ports_of_their_own() -> None:
    first = bootstrap_script(1, 3, LIMITS, setup_file=None, run_file=".pasar-run.sh")
    second = bootstrap_script(2, 3, LIMITS, setup_file=None, run_file=".pasar-run.sh")
    for rank, script in ((1, first), (2, second)):
        assert "until python -m ray.scripts.scripts start --address=" in script  # retries
        assert f"sed -n {rank + 1}p" in script  # its own address, from PASAR_NODE_IPS
        assert ".pasar-run.sh" not in script  # run is the head's alone
        assert f"--min-worker-port={20000 + 1000 * rank}" in script
        assert f"--metrics-export-port={19000 + rank}" in script


def test_a_ray_node_is_bounded_by_its_cgroup_not_by_an_address_space_limit() -> None:
    names = {name for _, name, _, _ in job_rlimits(LIMITS)}
    assert "RLIMIT_AS" in names
    ray_node = dataclasses.replace(LIMITS, address_limit=False)
    assert {name for _, name, _, _ in job_rlimits(ray_node)} == names - {"RLIMIT_AS"}
