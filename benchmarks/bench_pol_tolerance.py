"""Calibrating pol's tolerance mode (issue 16): how far apart honest runs in different
environments end up over a k-step segment, what the verifier's own two replays measure of it
(the job's noise), the threshold that gives, and how far the cheats' runs are.

Why measured: a verifier whose environment differs from the manifest's replays in tolerance
mode (:mod:`pasar.train.tolerance`) and holds the segment's end to a distance threshold; set
too low, an honest prover in another environment is slashed; too high, a cheat passes. One
market-wide number cannot fit every job (a deeper model or a larger learning rate drifts
further), so the verifier calibrates it per job: it replays each sampled segment in two
environments of its own and the threshold is ``max(floor, NOISE_MULTIPLE x noise)``
(:func:`pasar.core.verify.pol.calibrated_threshold`). For two jobs — the example
(``examples/pol_train.py``: an MLP on two spirals, Adam lr 0.01, T=60, k=10) and a harder one
(lr 0.08, 3 hidden layers of 64: chaotic enough that honest drift is above the floor) — the
honest run and each cheat of :mod:`pasar.train.cheat` (10% of the steps) are trained in the
pinned environment A (capability ``default``, 1 thread, mkldnn off); the verifier replays
every segment in B (avx2) and measures its noise in its second environment (the manifest's
capability, as :func:`pasar.train.verifier_replay.second_environment` picks). Per job:
``honest`` (largest honest distance), ``noise``, ``threshold``, ``old_verdict`` (what the
fixed floor would have said of the honest run), each cheat's smallest distance over the
segments it touched and its ``margin`` (distance / threshold: > 1 is caught), and the cost of
tolerance mode against one bitwise replay (``tolerance_cost_x``). ``--full`` adds the honest
matrix over every environment this machine offers (capability default/avx2/avx512, threads
1/2, mkldnn on/off) for the example, checking the floor :data:`TOLERANCE_THRESHOLD`.

    python benchmarks/bench_pol_tolerance.py          # < 1 min on 2 cores
    python benchmarks/bench_pol_tolerance.py --full   # + the environment matrix
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pasar.core.verify.pol import (
    NOISE_CAP,
    NOISE_MULTIPLE,
    TOLERANCE_MULTIPLE,
    TOLERANCE_THRESHOLD,
)
from pasar.train.cheat import Cheat

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "pol_train.py"
STEPS, EVERY, SEED = 60, 10, 7
SEGMENTS = [[s, min(s + EVERY, STEPS)] for s in range(0, STEPS, EVERY)]
CHEATS = ("perturb", "cheap", "subset", "skip")
#: the jobs: (lr, width, depth) of examples/pol_train.py's make_build
JOBS = {"example": (0.01, 32, 2), "hard": (0.08, 64, 3)}


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
    ``["train", out, job, cheat]`` (cheat "" for honest), ``["replay", out, job, ends]``
    (every segment in tolerance mode: its distances; the end states kept in ``ends``),
    ``["noise", out, job, ends]`` (every segment again: its distance from ``ends``'s) or
    ``["bitwise", out, job]`` (every segment bit for bit); each answers its numbers and, last,
    the seconds its replay took."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PASAR_")}
    command = [sys.executable, __file__, "--worker", json.dumps(tasks)]
    done = subprocess.run(command, capture_output=True, text=True, env={**base, **env},
                          timeout=600)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    result: list[list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _work(tasks: list[list[str]]) -> None:
    """The worker: the example's ``make_build``, trained and replayed in this process."""
    import importlib.util

    import torch

    import pasar.train as pt  # first: it pins the environment (the PASAR_TRAIN_* choices)
    from pasar.train.harness import replay_segments
    from pasar.train.verifier_replay import tolerance_segments

    spec = importlib.util.spec_from_file_location("pol_train", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    segments = [(a, b) for a, b in SEGMENTS]
    out: list[list[float]] = []
    for task in tasks:
        build = example.make_build(*JOBS[task[2]])
        began = time.perf_counter()
        if task[0] == "train":
            cheat = Cheat.parse(task[3], salt=SEED) if task[3] else None
            pt.train(build, steps=STEPS, checkpoint_every=EVERY, seed=SEED,
                     out=task[1], script=EXAMPLE, cheat=cheat)  # fmt: skip
            out.append([])
        elif task[0] == "replay":
            ends: dict[str, object] = {}
            done = tolerance_segments(build, task[1], segments, keep=ends)
            out.append([r.distance for r in done] + [time.perf_counter() - began])
            torch.save(ends, task[3])
        elif task[0] == "noise":
            first = torch.load(task[3], weights_only=True)
            done = tolerance_segments(build, task[1], segments, against=first)
            out.append([float(r.noise or 0.0) for r in done] + [time.perf_counter() - began])
        else:
            hashes = json.loads((Path(task[1]) / "step_hashes.json").read_text())["hashes"]
            replay_segments(build, task[1], segments, committed=hashes)
            out.append([time.perf_counter() - began])
    print(json.dumps(out))


def touched(kind: str) -> set[int]:
    """The segments (indexes) the cheat's steps fall in, for the job's seed."""
    steps = Cheat.parse(kind, salt=SEED).for_run(STEPS).steps
    return {(step - 1) // EVERY for step in steps}


def job_figures(job: str, tmp: Path, other: str, envs: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The per-job figures (see the module doc): trained in A, replayed in ``other``, the
    noise measured back in A's capability (the manifest's: the second environment)."""
    runs = {kind: str(tmp / job / (kind or "honest")) for kind in ("", *CHEATS)}
    _worker(envs["A:default"], [["train", r, job, k] for k, r in runs.items()])
    warm = [["bitwise", runs[""], job]]  # first: torch's first calls are slow (not counted)
    replays = [["replay", r, job, r + ".ends"] for r in runs.values()]
    got = _worker(envs[other], warm + replays)[1:]
    noises = [["noise", r, job, r + ".ends"] for r in runs.values()]
    back = _worker(envs["A:default"], warm + noises + warm)[1:]
    floor = float(TOLERANCE_THRESHOLD)
    honest, noise = max(got[0][:-1]), max(back[0][:-1])
    threshold = max(floor, NOISE_MULTIPLE * noise)
    cheats: dict[str, float] = {}
    thresholds: dict[str, float] = {}
    for i, kind in enumerate(CHEATS, start=1):
        cheats[kind] = min(got[i][s] for s in touched(kind))
        thresholds[kind] = max(floor, NOISE_MULTIPLE * max(back[i][:-1]))
    bitwise_s = back[-1][0]
    return {
        "honest": honest,
        "noise": noise,
        "threshold": threshold,
        "old_verdict": "match" if honest <= floor else "MISMATCH (a false slash)",
        "new_verdict": "match" if honest <= threshold else "MISMATCH",
        "abstains": noise > float(NOISE_CAP),
        "cheats": cheats,
        "margin": {k: round(v / thresholds[k], 2) for k, v in cheats.items()},
        "caught": {k: v > thresholds[k] for k, v in cheats.items()},
        "tolerance_cost_x": round((got[0][-1] + back[0][-1]) / bitwise_s, 2),
    }


def honest_matrix(tmp: Path, other: str, envs: dict[str, dict[str, str]]) -> dict[str, float]:
    """``--full``: the example's honest run replayed in every environment (the floor's data)."""
    a, b = str(tmp / "matrix" / "A"), str(tmp / "matrix" / "B")
    _worker(envs["A:default"], [["train", a, "example", ""]])
    _worker(envs[other], [["train", b, "example", ""]])
    back = _worker(envs["A:default"], [["replay", b, "example", b + ".ends"]])
    honest = {f"{other}->A:default": max(back[0][:-1])}
    for name, env in envs.items():
        if name != "A:default":
            got = _worker(env, [["replay", a, "example", a + ".ends"]])
            honest[f"A:default->{name}"] = max(got[0][:-1])
    return honest


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        _work(json.loads(sys.argv[2]))
        return
    envs = environments()
    other = "cap:avx2" if "cap:avx2" in envs else "threads:2"
    with tempfile.TemporaryDirectory() as tmp:
        jobs = {job: job_figures(job, Path(tmp), other, envs) for job in JOBS}
        extra: dict[str, object] = {}
        if "--full" in sys.argv:
            honest = honest_matrix(Path(tmp), other, envs)
            honest_max = max(honest.values())
            extra = {"honest": honest, "honest_max": honest_max,
                     "floor_calibrated": float(TOLERANCE_THRESHOLD)
                     >= TOLERANCE_MULTIPLE * honest_max}  # fmt: skip
    print(json.dumps({
        "name": "pol_tolerance_margin",
        "value": min(min(j["margin"].values()) for j in jobs.values()),
        "unit": "x threshold (smallest cheat distance / its job's calibrated threshold)",
        "floor": float(TOLERANCE_THRESHOLD),
        "noise_multiple": NOISE_MULTIPLE,
        "noise_cap": float(NOISE_CAP),
        "verifier_environment": other,
        "jobs": jobs,
        "steps": STEPS,
        "segment": EVERY,
        **extra,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
