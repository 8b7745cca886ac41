"""Calibrating pol's tolerance mode (issue 16): how far apart honest runs in different
environments end up over a k-step segment, and how far the cheats' runs are.

Why measured: a verifier whose environment differs from the manifest's replays in tolerance
mode (:mod:`pasar.train.tolerance`) and holds the segment's end to a distance threshold; set
too low, an honest prover in another environment is slashed; too high, a cheat passes. So:

* **honest** — the example job (``examples/pol_train.py``: an MLP on two spirals, Adam, T=60
  steps, k=10) trained in the pinned environment A (1 thread, ``ATEN_CPU_CAPABILITY=default``,
  mkldnn off) and in B (avx2), then every segment of each replayed in the other environments
  this machine offers (capability default/avx2/avx512, threads 1/2, mkldnn on/off): the
  largest distance over all pairs and segments is ``honest_max``;
* **threshold** — ``TOLERANCE_MULTIPLE`` × ``honest_max`` (the policy's constant,
  :data:`pasar.core.verify.pol.TOLERANCE_THRESHOLD`, is checked against it: ``calibrated``);
* **cheats** — each cheat of :mod:`pasar.train.cheat` (perturb 1e-3 once, a cheap model, a
  data subset, skipped steps; 10% of the steps) trained in A and replayed in B (avx2): the
  smallest distance over the segments it touched (``cheats``) and the ratio of the smallest
  of those to the threshold (``margin``: > 1 means tolerance mode catches every cheat on
  every segment it touched).

    python benchmarks/bench_pol_tolerance.py     # one process per environment (< 1 min)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pasar.core.verify.pol import TOLERANCE_MULTIPLE, TOLERANCE_THRESHOLD
from pasar.train.cheat import Cheat

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "pol_train.py"
STEPS, EVERY, SEED = 60, 10, 7
SEGMENTS = [[s, min(s + EVERY, STEPS)] for s in range(0, STEPS, EVERY)]
CHEATS = ("perturb", "cheap", "subset", "skip")


def capabilities() -> list[str]:
    """The CPU capabilities this machine runs (default always)."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return ["default"] + [c for c in ("avx2", "avx512") if f" {c}" in flags + " "
                          and (c != "avx512" or " avx512f" in flags)]  # fmt: skip


def environments() -> dict[str, dict[str, str]]:
    """Named environments (``PASAR_TRAIN_*`` choices): A, the pinned one, first."""
    envs: dict[str, dict[str, str]] = {"A:default": {}}
    for cap in capabilities()[1:]:
        envs[f"cap:{cap}"] = {"PASAR_TRAIN_CAPABILITY": cap}
    envs["threads:2"] = {"PASAR_TRAIN_THREADS": "2"}
    envs["mkldnn:on"] = {"PASAR_TRAIN_MKLDNN": "1"}
    envs["avx2+threads:2+mkldnn"] = {
        "PASAR_TRAIN_CAPABILITY": "avx2",
        "PASAR_TRAIN_THREADS": "2",
        "PASAR_TRAIN_MKLDNN": "1",
    }
    return envs


def _worker(env: dict[str, str], tasks: list[list[str]]) -> list[list[float]]:
    """Run ``tasks`` in one fresh process in ``env`` (torch reads it when it loads): each
    ``["train", out, cheat]`` (cheat "" for honest) or ``["replay", out]`` (every segment in
    tolerance mode: its distances)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PASAR_")}
    command = [sys.executable, __file__, "--worker", json.dumps(tasks)]
    done = subprocess.run(command, capture_output=True, text=True, env={**base, **env},
                          timeout=600)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    result: list[list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _work(tasks: list[list[str]]) -> None:
    """The worker: the example's ``build``, trained and replayed in this process."""
    import importlib.util

    import pasar.train as pt  # first: it pins the environment (the PASAR_TRAIN_* choices)
    from pasar.train.verifier_replay import tolerance_segments

    spec = importlib.util.spec_from_file_location("pol_train", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out: list[list[float]] = []
    for task in tasks:
        if task[0] == "train":
            cheat = Cheat.parse(task[2], salt=SEED) if task[2] else None
            pt.train(example.build, steps=STEPS, checkpoint_every=EVERY, seed=SEED,
                     out=task[1], script=EXAMPLE, cheat=cheat)  # fmt: skip
            out.append([])
        else:
            done = tolerance_segments(example.build, task[1], [(a, b) for a, b in SEGMENTS])
            out.append([r.distance for r in done])
    print(json.dumps(out))


def touched(kind: str) -> set[int]:
    """The segments (indexes) the cheat's steps fall in, for the job's seed."""
    steps = Cheat.parse(kind, salt=SEED).for_run(STEPS).steps
    return {(step - 1) // EVERY for step in steps}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        _work(json.loads(sys.argv[2]))
        return
    envs = environments()
    other = "cap:avx2" if "cap:avx2" in envs else "threads:2"
    honest: dict[str, float] = {}
    cheats: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        a, b = str(Path(tmp) / "A"), str(Path(tmp) / "B")
        cheat_runs = {kind: str(Path(tmp) / kind) for kind in CHEATS}
        # A: the honest run and the cheats, in the pinned environment; its own replay
        _worker(envs["A:default"], [["train", a, ""]] + [["train", r, k] for k, r in
                                                        cheat_runs.items()])  # fmt: skip
        got = _worker(envs[other], [["train", b, ""], ["replay", a]]
                      + [["replay", r] for r in cheat_runs.values()])  # fmt: skip
        honest[f"A:default->{other}"] = max(got[1])
        for kind, distances in zip(CHEATS, got[2:], strict=True):
            cheats[kind] = min(distances[i] for i in touched(kind))
        back = _worker(envs["A:default"], [["replay", b], ["replay", a]])
        honest[f"{other}->A:default"] = max(back[0])
        same = max(back[1])  # the same environment: bit for bit, 0
        for name, env in envs.items():
            if name not in ("A:default", other):
                honest[f"A:default->{name}"] = max(_worker(env, [["replay", a]])[0])
    honest_max = max(honest.values())
    threshold = TOLERANCE_MULTIPLE * honest_max
    caught = {k: v > float(TOLERANCE_THRESHOLD) for k, v in cheats.items()}
    print(json.dumps({
        "name": "pol_tolerance_margin",
        "value": round(min(cheats.values()) / float(TOLERANCE_THRESHOLD), 2),
        "unit": "x threshold (smallest cheat distance / threshold)",
        "honest_max": honest_max,
        "honest_same_environment": same,
        "honest": honest,
        "multiple": TOLERANCE_MULTIPLE,
        "threshold_measured": threshold,
        "threshold": float(TOLERANCE_THRESHOLD),
        "calibrated": float(TOLERANCE_THRESHOLD) >= threshold,
        "cheats": cheats,
        "caught": caught,
        "margin": {k: round(v / float(TOLERANCE_THRESHOLD), 2) for k, v in cheats.items()},
        "steps": STEPS,
        "segment": EVERY,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
