"""``pasar cluster up/status/exec/down``: a long-running multi-node job that takes commands,
as SkyPilot's ``sky launch -c`` / ``sky exec`` / ``sky down`` do (issue 15).

``up`` launches the spec as a gang whose head, after the spec's own ``run`` (step 0), runs
:mod:`pasar.cluster.steps` and waits for steps; ``exec`` uploads a command (a private blob),
sends it as the order's next ``cluster.exec`` step and prints the head's output for it, exiting
with its code; ``down`` cancels the order (each node billed for its verified time, the rest
refunded); ``status`` lists this account's clusters or shows one.
"""

from __future__ import annotations

import hashlib
import shlex
import time
from pathlib import Path
from typing import Any

import typer

from pasar.cli.common import JsonOpt, MarketOpt, make_client
from pasar.cli.output import console, print_json
from pasar.cli.tables import Column, print_table
from pasar.core.errors import PasarError

app = typer.Typer(
    no_args_is_help=True,
    help="Long-running multi-node clusters: up, exec commands on the head, status, down.",
)
STEPS_MODULE = "python -m pasar.cluster.steps"
UP_TIMEOUT_S = 600.0


def cluster_run(run: str) -> str:
    """The head's command in a long-running cluster: the spec's own ``run`` first (step 0,
    reported like the others), then the step runner, which waits for ``pasar cluster exec``."""
    return (
        'echo "pasar: step 0 started"\n'
        f"sh -c {shlex.quote(run)}\n"
        'echo "pasar: step 0 exited $?"\n'
        f"exec {STEPS_MODULE}\n"
    )


def is_cluster(spec: dict[str, Any]) -> bool:
    return int(spec.get("num_nodes") or 1) > 1 or spec.get("cluster") is not None


@app.command("up")
def up(
    spec_file: Path = typer.Argument(
        ..., help="A job spec with num_nodes above 1 or cluster: ray."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Launch without asking."),
    market: str | None = MarketOpt,
    json: bool = JsonOpt,
) -> None:
    """Start a cluster from a spec and keep it up (its head takes `pasar cluster exec` steps)
    until `pasar cluster down` or its max_duration.

    Example: pasar cluster up cluster.yaml --yes
    """
    from dataclasses import replace

    from pasar.cli.jobs import _confirm
    from pasar.cli.spec import read_draft_file
    from pasar.core.spec_draft import Draft

    read = read_draft_file(spec_file)  # a SkyPilot task may leave its cap and duration open
    spec = {k: v for k, v in read.checked().to_dict().items() if k not in read.missing}
    if not is_cluster(spec):
        raise PasarError(
            f"{spec_file} is a job of one node, not a cluster",
            code="not_a_cluster",
            field="num_nodes",
            hint="set num_nodes above 1 (or cluster: ray), or run it with `pasar launch`",
        )
    spec["run"] = cluster_run(str(spec["run"]))
    draft = replace(Draft.of(spec, source=str(spec_file)), notes=read.notes, required=read.required)
    base = spec_file.resolve().parent
    with make_client(market) as client:
        decision = client.decide(draft, base_dir=base)  # the cap and duration, said out loud
        if not json and decision.decided is not None:
            for line in decision.decided.lines:
                console.print(f"- {line}", markup=False, highlight=False)
        quote = client.quote(decision.spec, base_dir=base)
        if not (yes or _confirm(quote.escrow)):
            raise typer.Exit(1)
        job = client.launch(decision.spec, base_dir=base)
        order = _wait_until_up(client, job.id)
    nodes = sorted(order["leases"], key=lambda x: x["shard"])
    if json:
        print_json({"cluster": job.id, "nodes": nodes})
        return
    console.print(f"cluster {job.id} is up: {len(nodes)} nodes", highlight=False)
    console.print(
        f"run a command on its head: pasar cluster exec {job.id} -- CMD; "
        f"take it down: pasar cluster down {job.id}",
        highlight=False,
    )


def _wait_until_up(client: Any, order_id: str) -> dict[str, Any]:
    """The order once every node's lease runs and the head's step runner waits for steps."""
    deadline = time.monotonic() + UP_TIMEOUT_S
    job = client.job(order_id)
    while time.monotonic() < deadline:
        order = job.status()
        if order["status"] in ("done", "expired", "cancelled"):
            why = order.get("note") or order["status"]
            raise PasarError(
                f"cluster {order_id} ended before it was up: {why}",
                code="cluster_failed",
                hint=f"`pasar status {order_id}` and `pasar logs {order_id}` say why",
            )
        running = [x for x in order["leases"] if x["status"] == "running"]
        if running and not order["unfilled"] and "waiting for steps" in "".join(job.logs(shard=0)):
            return dict(order)
        time.sleep(0.5)
    raise PasarError(
        f"cluster {order_id} was not up after {UP_TIMEOUT_S:g} s", code="cluster_timeout"
    )


@app.command("exec")
def exec_(
    cluster: str = typer.Argument(..., help="The cluster (its order id)."),
    command: list[str] = typer.Argument(..., help="The command, after --."),
    market: str | None = MarketOpt,
) -> None:
    """Run a command on the cluster's head as its next step, print its output, exit with its
    code.

    Example: pasar cluster exec o-1a2b3c4d5e6f7a8b -- python train.py
    """
    from pasar.client import calls

    text = " ".join(shlex.quote(part) for part in command) + "\n"
    data = text.encode()
    sha = hashlib.sha256(data).hexdigest()
    with make_client(market) as client:
        job = client.job(cluster)
        order = job.status()
        step = len(order.get("steps") or []) + 1
        client._upload(sha, data)
        client._call(calls.cluster_exec(cluster, step, sha))
        code = _print_step(job, step)
    raise typer.Exit(code)


def _print_step(job: Any, step: int) -> int:
    """Follow the head's log: print what step ``step`` wrote, return its exit code."""
    from pasar.cluster.steps import started

    begin = started(step) + "\n"
    end = f"pasar: step {step} exited "
    seen = ""
    printed = 0
    for chunk in job.logs(follow=True, shard=0):
        seen += chunk
        at = seen.find(begin)
        if at < 0:
            continue
        body = seen[at + len(begin) :]
        stop = body.find(end)
        shown = body if stop < 0 else body[:stop]
        console.print(shown[printed:], end="", markup=False, highlight=False)
        printed = len(shown)
        if stop >= 0:
            rest = body[stop + len(end) :].split("\n", 1)[0]
            return int(rest) if rest.strip().lstrip("-").isdigit() else 1
    raise PasarError(
        f"the cluster ended before step {step} did", code="cluster_failed",
        hint=f"`pasar status {job.id}` says why",
    )  # fmt: skip


@app.command("status")
def status(
    cluster: str | None = typer.Argument(None, help="One cluster (its order id)."),
    market: str | None = MarketOpt,
    json: bool = JsonOpt,
) -> None:
    """This account's clusters, or one cluster's nodes and steps.

    Example: pasar cluster status
    """
    with make_client(market) as client:
        orders = [client.job(cluster).status()] if cluster else client.jobs()
    clusters = [o for o in orders if is_cluster(o.get("spec") or {})]
    if json:
        print_json({"clusters": clusters})
        return
    if cluster:
        (order,) = clusters or [orders[0]]
        rows = [
            [str(x["shard"]), x["lease_id"], x["provider"], x["status"]]
            for x in sorted(order["leases"], key=lambda x: x["shard"])
        ]
        steps = len(order.get("steps") or [])
        title = f"cluster {order['order_id']}: {order['status']}, {steps} step(s)"
        columns = [
            Column("rank", "number"),
            Column("lease", "id"),
            Column("provider", "id"),
            Column("status"),
        ]
        print_table(columns, rows, title=title)
        return
    rows = [
        [o["order_id"], o["status"], str(len(o["leases"])), str(len(o.get("steps") or []))]
        for o in clusters
    ]
    columns = [
        Column("cluster", "id"),
        Column("status"),
        Column("nodes", "number"),
        Column("steps", "number"),
    ]
    print_table(columns, rows, title=f"clusters ({len(rows)})")


@app.command("down")
def down(
    cluster: str = typer.Argument(..., help="The cluster (its order id)."),
    market: str | None = MarketOpt,
    json: bool = JsonOpt,
) -> None:
    """Take a cluster down: each node billed for its verified seconds, the rest refunded.

    Example: pasar cluster down o-1a2b3c4d5e6f7a8b
    """
    from pasar.cli.jobs import cancel

    cancel(order_id=cluster, market=market, json=json)
