"""The proof-of-learning harness (issue 16): a run is bitwise reproducible in its pinned
environment, every step's hash is committed, a replay from any checkpoint recomputes them, and
a perturbed step shows up at that very step. Each run is a fresh process (`python
examples/pol_train.py`), as a job runs it: the environment is pinned before torch loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "pol_train.py"


def _run(*args: str, script: Path = EXAMPLE) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout.splitlines()[-1]))


def _hashes(out: Path) -> list[str]:
    return list(json.loads((out / "step_hashes.json").read_text())["hashes"])


def test_a_run_is_reproducible_bit_for_bit_and_commits_every_step(tmp_path: Path) -> None:
    first = _run("train", "--out", str(tmp_path / "a"), "--steps", "60", "--every", "20")
    again = _run("train", "--out", str(tmp_path / "b"), "--steps", "60", "--every", "20")
    other = _run("train", "--out", str(tmp_path / "c"), "--steps", "60", "--seed", "8")
    assert first["root"] == again["root"] and first["root"] != other["root"]
    assert first["last_loss"] < first["first_loss"]  # it learns
    hashes = _hashes(tmp_path / "a")
    assert len(hashes) == 61 and len(set(hashes)) == 61  # step 0 (W0) then every step
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["steps"] == 60 and manifest["checkpoint_every"] == 20
    assert manifest["initial_state_sha256"] == hashes[0]
    assert manifest["environment"]["threads"] == 1 and manifest["environment"]["mkldnn"] is False
    assert manifest["environment"]["env"]["ATEN_CPU_CAPABILITY"] == "default"
    checkpoints = sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir())
    assert checkpoints == [f"step-{n:08d}.pt" for n in (0, 20, 40, 60)]


def test_a_replay_from_a_checkpoint_recomputes_the_committed_hashes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run("train", "--out", str(out), "--steps", "60", "--every", "20")
    assert _run("replay", "--out", str(out), "20", "40") == {
        "matched": 20,
        "of": 20,
        "first_mismatch": None,
    }


CHEAT = """
import pasar.train as pt
import runpy, sys
import torch

example = runpy.run_path({example!r})
honest = example["build"]


def build(seed):
    setup = honest(seed)
    draw = setup.batches

    def batches(step, generator):
        if step == {step}:  # the cheat: one weight nudged by 1e-3, once
            with torch.no_grad():
                next(setup.model.parameters()).view(-1)[0] += 1e-3
        return draw(step, generator)

    setup.batches = batches
    return setup


sys.argv = [sys.argv[0], *sys.argv[1:]]
example["build"] = build
pt.train(build, steps=60, checkpoint_every=20, seed=7, out=sys.argv[1])
print("{{}}")
"""


def test_one_nudged_weight_is_caught_at_its_step_by_replaying_its_segment(tmp_path: Path) -> None:
    """A prover nudges one weight by 1e-3 at step 33; its committed hashes follow the nudged
    run. Replaying the segment 20..40 from the honest checkpoint at 20 disagrees first at 33;
    the segments before it agree (only a sampled segment catches it)."""
    cheat = tmp_path / "cheat.py"
    cheat.write_text(CHEAT.format(example=str(EXAMPLE), step=33), encoding="utf-8")
    out = tmp_path / "run"
    _run(str(out), script=cheat)
    assert _run("replay", "--out", str(out), "0", "20")["first_mismatch"] is None
    assert _run("replay", "--out", str(out), "20", "40")["first_mismatch"] == 33


def test_torch_loaded_before_the_harness_is_refused(tmp_path: Path) -> None:
    out = str(tmp_path / "x")
    probe = (
        "import torch, pasar.train as pt\n"
        "try:\n"
        f"    pt.train(lambda s: None, steps=1, checkpoint_every=1, seed=0, out={out!r})\n"
        "except Exception as e:\n"
        "    print(getattr(e, 'code', type(e).__name__))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("OMP_NUM_THREADS",)}
    env.pop("ATEN_CPU_CAPABILITY", None)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.stdout.strip() == "environment_not_pinned", done.stdout + done.stderr
    assert not (tmp_path / "x").exists()


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    """Checkpoints come from the prover: loading one never unpickles arbitrary objects."""
    out = tmp_path / "run"
    _run("train", "--out", str(out), "--steps", "20", "--every", "10")
    evil = (
        "import os, pickle, torch\n"
        "class Boom:\n"
        "    def __reduce__(self):\n"
        f"        return (os.system, ('touch {tmp_path / 'pwned'}',))\n"
        f"torch.save({{'model': Boom()}}, {str(out / 'checkpoints' / 'step-00000010.pt')!r})\n"
    )
    subprocess.run([sys.executable, "-c", evil], check=True, timeout=120)
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "replay", "--out", str(out), "10", "20"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "cannot be loaded safely" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "pwned").exists()
