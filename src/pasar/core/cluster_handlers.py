"""``cluster.exec``: a client runs one more command on its running multi-node job's head, as a
new step of the same lease (issue 15, ``pasar cluster exec``).

Why a transaction: the command reaches a provider through the market, so it must be signed by
the order's client and recorded like any other state change (an audit replays it). The command
itself stays private: the transaction names only the sha256 of a blob holding it, which the
client uploaded and which only the order's parties may read once the step indexes it.

The head's job in a long-running cluster (``pasar cluster up``) is a step runner
(:mod:`pasar.cluster.steps`): its provider hears of each step on its feed, writes the command
into the job's working directory, and the runner runs the steps in order, one at a time, each
between markers in the job's log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pasar.core.market_records import Applied, Tx, fail
from pasar.crypto.hashing import is_sha256_hex

if TYPE_CHECKING:
    from pasar.core.state import MarketState

#: steps one cluster may be sent (each is a record in the order and a blob in the store)
MAX_STEPS = 10_000


def on_cluster_exec(state: MarketState, tx: Tx) -> Applied:
    record = state._order(tx.body.get("order_id"))
    if tx.signer != record.client:
        raise fail("only the order's client may run a step on it", code="wrong_signer", status=403)
    if record.spec.num_nodes <= 1 and record.spec.cluster is None:
        raise fail(
            f"order {record.id} is not a cluster (num_nodes or cluster: in its spec)",
            code="not_a_cluster",
            status=409,
            field="order_id",
        )
    if record.status != "running":
        raise fail(f"order {record.id} is {record.status}", code="not_running", status=409)
    heads = [state.leases[x] for x in record.leases if state.leases[x].shard == 0]
    head = heads[-1] if heads else None
    if head is None or head.status != "running":
        raise fail("the cluster's head is not running", code="not_running", status=409)
    step = tx.body.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step != len(record.steps) + 1:
        raise fail(
            f"step must be {len(record.steps) + 1}, the next one",
            code="invalid_step",
            status=409,
            field="step",
            hint="read the order's steps and send the next number",
        )
    if step > MAX_STEPS:
        raise fail(
            f"a cluster takes at most {MAX_STEPS} steps", code="too_many_steps", field="step"
        )
    command = tx.body.get("command")
    if not is_sha256_hex(command):
        raise fail("command must be the sha256 of the blob holding it", code="invalid_tx",
                   field="command")  # fmt: skip
    record.steps.append(command)
    state._index_blob(command, record.id)  # the head's provider may read it now
    return Applied(
        tx.type,
        {"order_id": record.id, "step": step, "lease_id": head.id, "command": command},
        providers={head.provider},
        orders={record.id},
    )
