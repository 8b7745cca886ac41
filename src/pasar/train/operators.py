"""One step of a committed run, traced operator by operator: a pol dispute's second bisection
(issue 16; the market's side is :mod:`pasar.core.dispute_trace`).

Once a dispute is narrowed to step ``t``, the prover, the verifier and then the dispute's
referee each run the job's own script with :data:`~pasar.train.harness.TRACE_ENV` set to
``t``: :func:`pasar.train.train` lands here instead of training. From the checkpoint at or
before ``t - 1`` (the state at ``t - 1`` both sides committed) it replays to ``t - 1``, then
runs step ``t`` under the same dispatch trace that refuses a non-deterministic step at commit
time (:func:`pasar.train.determinism.traced_step`), and writes :data:`TRACE`: every aten
operator the step dispatched with the sha256 of its outputs (views, which only alias, left
out), and the state hash it reached.

A prover runs it with its own cheat, if any (``PASAR_POL_CHEAT``, as its run had): its trace
is what it actually computed — a weight nudged after the optimizer shows as an extra in-place
``aten.add_`` — and it must end in the state hash the prover committed at ``t``, or the
market refuses it and the prover loses at the deadline. A trace can only tell the truth about
the run it explains.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pasar.core.errors import PasarError
from pasar.train.cheat import Cheat
from pasar.train.determinism import traced_step
from pasar.train.environment import configure_torch
from pasar.train.harness import MANIFEST, Setup, _step, load_checkpoint
from pasar.train.state_hash import state_hash

TRACE = "pol_trace.json"


def trace_step(
    build: Callable[[int], Setup], out: str | Path, step: int, cheat: Cheat | None = None
) -> dict[str, Any]:
    """``{step, operators: [[name, sha256], ...], hash}``: step ``step`` of the run in ``out``,
    traced from the checkpoint before it (see the module doc)."""
    folder = Path(out)
    manifest = json.loads((folder / MANIFEST).read_text())
    steps, every, seed = int(manifest["steps"]), int(manifest["checkpoint_every"]), manifest["seed"]
    if not 1 <= step <= steps:
        raise PasarError(f"no step {step} in a {steps}-step run", code="invalid_segment",
                         field="step")  # fmt: skip
    if cheat is not None:
        cheat = cheat.for_run(steps)
    configure_torch()
    setup = build(int(seed))
    start = (step - 1) // every * every
    load_checkpoint(folder, start, setup)
    for earlier in range(start + 1, step):
        _step(setup, int(seed), earlier, cheat)
    operators = traced_step(lambda: _step(setup, int(seed), step, cheat), views=False)
    value = state_hash(setup.model, setup.optimizer, step, setup.scheduler)
    return {"step": step, "operators": [list(op) for op in operators], "hash": value}


def trace_for_dispute(
    build: Callable[[int], Setup], out: str | Path, text: str, cheat: Cheat | None
) -> None:
    """Write :data:`TRACE` (or ``{error}``) into ``out`` for the step ``text`` names."""
    folder = Path(out)
    try:
        report: dict[str, Any] = trace_step(build, folder, int(text), cheat)
    except PasarError as exc:
        report = {"error": {"code": exc.code, "message": exc.message}}
    except (OSError, ValueError) as exc:
        report = {"error": {"code": "bad_manifest", "message": f"{type(exc).__name__}: {exc}"}}
    (folder / TRACE).write_text(json.dumps(report))
