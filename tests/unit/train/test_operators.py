"""A disputed step traced operator by operator (issue 16: pasar.train.operators). Each run is a
fresh process of the example, as a job runs it; ``PASAR_POL_TRACE=t`` makes its harness trace
step t from the checkpoint before it instead of training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pasar.core.dispute_trace import first_difference

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "pol_train.py"
ARGS = ["train", "--steps", "60", "--every", "10", "--seed", "7"]
STEP = 34  # Cheat.parse("perturb", salt=7).for_run(60): the step the cheat nudges


def _run(out: Path, **env: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), *ARGS, "--out", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _trace(out: Path, step: int, **env: str) -> dict[str, Any]:
    _run(out, PASAR_POL_TRACE=str(step), **env)
    return dict(json.loads((out / "pol_trace.json").read_text()))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    honest, cheat = tmp_path_factory.mktemp("honest"), tmp_path_factory.mktemp("cheat")
    _run(honest)
    _run(cheat, PASAR_POL_CHEAT="perturb")
    return honest, cheat


def _hashes(out: Path) -> list[str]:
    return list(json.loads((out / "step_hashes.json").read_text())["hashes"])


def test_the_cheats_step_is_pinned_to_the_operator_it_added(runs: tuple[Path, Path]) -> None:
    from pasar.train.cheat import Cheat

    assert Cheat.parse("perturb", salt=7).for_run(60).steps == {STEP}
    honest, cheat = runs
    mine = _trace(honest, STEP)
    theirs = _trace(cheat, STEP, PASAR_POL_CHEAT="perturb")
    # each trace ends in the state that side committed at the step (the market checks it)
    assert mine["hash"] == _hashes(honest)[STEP] and theirs["hash"] == _hashes(cheat)[STEP]
    assert _hashes(honest)[STEP - 1] == _hashes(cheat)[STEP - 1]  # the agreed state before
    ops = {k: [tuple(op) for op in v["operators"]] for k, v in (("h", mine), ("c", theirs))}
    index = first_difference(ops["c"], ops["h"])
    assert index is not None
    assert ops["c"][index][0] == "aten.add_.Tensor"  # the nudge, after the optimizer's step
    assert ops["h"][index][0] == "aten._local_scalar_dense.default"  # the loss read out
    assert ops["c"][:index] == ops["h"][:index]  # forward, backward and Adam: the same bits
    assert not any("view" in name or "select" in name for name, _ in ops["c"])  # aliases only


def test_a_cheaters_step_it_did_not_cheat_on_traces_like_the_honest_one(
    runs: tuple[Path, Path],
) -> None:
    honest, cheat = runs
    assert _trace(cheat, 12, PASAR_POL_CHEAT="perturb") == _trace(honest, 12)


def test_a_step_outside_the_run_is_reported_not_traced(runs: tuple[Path, Path]) -> None:
    honest, _cheat = runs
    assert _trace(honest, 61)["error"]["code"] == "invalid_segment"


def test_the_agents_repeat_the_harness_names() -> None:
    from pasar.train.harness import TRACE_ENV
    from pasar.train.operators import TRACE
    from pasar.verifier import trace

    assert (trace.TRACE_ENV, trace.TRACE) == (TRACE_ENV, TRACE)
