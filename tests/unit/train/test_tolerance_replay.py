"""pol's tolerance mode at the harness and the verifier's judgement (issue 16): a verifier in
another environment (here another CPU capability, ``PASAR_TRAIN_CAPABILITY=avx2``) replays the
sampled segments in its own and compares each end state with the prover's end checkpoint by a
normalized distance. An honest run is within the threshold (paid); a prover perturbing one
weight by 1e-3 once is above it (caught), and the verdict opens no dispute; under
``pol:mode=bitwise`` the same verifier sends no verdict. The distance itself, the state it
compares, and a forged commitment are checked without a replay."""

from __future__ import annotations

# isort: off
import pasar.train  # noqa: F401  first: pins the environment before torch loads (later tests)

# isort: on
import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import torch

from pasar.core.verify.pol import NOISE_MULTIPLE, TOLERANCE_THRESHOLD
from pasar.train import environment, verifier_replay
from pasar.train.state_hash import state_tensors
from pasar.train.tolerance import distance
from pasar.verifier import pol as verifier

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "pol_train.py"
CHALLENGE = {"top": 1, "random": 8, "segment": 10, "seed": "01" * 64}
OTHER = {"PASAR_TRAIN_CAPABILITY": "avx2"}  # another environment than the prover's

RUNS = """
import pasar.train as pt
import runpy, sys
from pathlib import Path
from pasar.train.cheat import Cheat
build = runpy.run_path(sys.argv[1])["build"]
for kind in ("honest", "perturb"):
    cheat = None if kind == "honest" else Cheat.parse(kind, salt=7)
    pt.train(build, steps=60, checkpoint_every=10, seed=7, out=Path(sys.argv[2]) / kind,
             script=sys.argv[1], cheat=cheat)
"""


def test_the_distance_is_the_largest_per_tensor_normalized_distance() -> None:
    b = {"w": torch.tensor([3.0, 4.0]), "v": torch.tensor([1.0, 0.0])}
    assert distance(b, b) == 0.0
    a = {"w": torch.tensor([3.0, 4.5]), "v": torch.tensor([1.0, 0.001])}
    assert distance(a, b) == pytest.approx(0.5 / 5.0)  # w's 0.1 beats v's 0.001
    assert distance({"w": b["w"]}, b) == math.inf  # a tensor missing
    assert distance({**b, "w": torch.zeros(3)}, b) == math.inf  # another shape
    assert distance({**b, "w": torch.tensor([math.nan, 4.0])}, b) == math.inf
    zero = {"z": torch.zeros(2)}
    assert distance(zero, zero) == 0.0 and distance({"z": torch.ones(2)}, zero) > 1e6


def test_the_compared_state_holds_parameters_and_optimizer_moments() -> None:
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    names = set(state_tensors(model, optimizer))
    assert {"model.weight", "model.bias", "optimizer.0.exp_avg", "optimizer.1.exp_avg_sq"} <= names


def test_the_verifier_repeats_the_harness_names() -> None:
    assert verifier.MODE_ENV == verifier_replay.MODE_ENV and verifier.CHOICES == environment.CHOICES


def _replay(out: Path, *options: str, **env: str) -> verifier.Judgement:
    """A verifier's check of ``out`` in ``env``: plan, the job's own replay (its command
    line with ``options``), judge."""
    manifest = json.loads((out / "manifest.json").read_text())
    committed = json.loads((out / "step_hashes.json").read_text())
    plan = verifier.plan(CHALLENGE, manifest, committed)
    (out / verifier.REPORT).unlink(missing_ok=True)
    command = [sys.executable, str(EXAMPLE), "train", "--out", str(out), "--steps", "60",
               "--every", "10", *options]  # fmt: skip
    replay_env = {"PASAR_POL_REPLAY": json.dumps(plan.bounds), **env}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**_clean(), **replay_env})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return verifier.judge(committed, plan, json.loads((out / verifier.REPORT).read_text()))


def _clean() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PASAR_")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An honest run and a perturbing prover's, in the pinned environment (one process)."""
    folder = tmp_path_factory.mktemp("tolerance")
    done = subprocess.run([sys.executable, "-c", RUNS, str(EXAMPLE), str(folder)],
                          capture_output=True, text=True, timeout=300, env=_clean())  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def test_an_honest_run_replayed_in_another_environment_is_within_the_threshold(
    runs: Path,
) -> None:
    judgement = _replay(runs / "honest", **OTHER)
    assert judgement.matches is True, judgement.reason
    assert judgement.mode == "tolerance" and judgement.distance is not None
    assert judgement.distance <= TOLERANCE_THRESHOLD
    assert judgement.segments == [0, 1, 2, 3, 4, 5]


def test_a_perturbing_prover_is_caught_in_another_environment_and_not_disputed(
    runs: Path,
) -> None:
    judgement = _replay(runs / "perturb", **OTHER)
    assert judgement.matches is False, judgement.reason
    assert judgement.mode == "tolerance" and judgement.distance is not None
    assert judgement.distance > TOLERANCE_THRESHOLD
    assert judgement.disputed is None  # step hashes across environments: no bisection
    assert Fraction(verifier.distance_text(judgement.distance)) > TOLERANCE_THRESHOLD


def test_under_bitwise_mode_another_environment_sends_no_verdict(runs: Path) -> None:
    judgement = _replay(runs / "honest", PASAR_POL_MODE="bitwise", **OTHER)
    assert judgement.matches is None and "cannot reproduce" in judgement.reason


def _report(committed: dict[str, Any], plan: verifier.Plan, **over: Any) -> dict[str, Any]:
    hashes, norms = committed["hashes"], committed["norms"]
    segments = [
        {"start": s, "end": e, "start_hash": hashes[s], "end_hash": hashes[e],
         "distance": 1e-7, "norm": norms[i], "noise": 1e-8}
        for i, (s, e) in zip(plan.indexes, plan.bounds, strict=True)
    ]  # fmt: skip
    report = {"mode": "tolerance", "segments": segments, "final_hash": hashes[plan.steps]}
    for key, value in over.items():
        segments[1][key] = value
    return report


def test_a_checkpoint_that_is_not_the_committed_state_is_a_bitwise_mismatch(runs: Path) -> None:
    """Loading is exact everywhere: a tolerance replay still holds every loaded checkpoint's
    hash to the committed leaf (a mismatch a dispute could bisect is not claimed)."""
    out = runs / "honest"
    committed = json.loads((out / "step_hashes.json").read_text())
    plan = verifier.plan(CHALLENGE, json.loads((out / "manifest.json").read_text()), committed)
    ok = verifier.judge(committed, plan, _report(committed, plan))
    assert ok.matches is True and ok.distance == pytest.approx(1e-7)
    forged = verifier.judge(committed, plan, _report(committed, plan, end_hash="0" * 64))
    assert forged.matches is False and forged.mode == "bitwise" and "step 20" in forged.reason
    norm = verifier.judge(committed, plan, _report(committed, plan, norm=123.0))
    assert norm.matches is False and "norm" in norm.reason
    far = verifier.judge(committed, plan, _report(committed, plan, distance=math.nan))
    assert far.matches is False and far.mode == "tolerance"
    assert far.noise == "1e-08" and far.threshold == TOLERANCE_THRESHOLD  # the floor holds


def test_a_far_replay_without_its_noise_or_above_the_cap_sends_no_verdict(runs: Path) -> None:
    """Where the verifier could not measure its own noise (the second replay failed), or the
    noise is so large that a cheat would hide in it, it abstains: no slash, no certificate."""
    out = runs / "honest"
    committed = json.loads((out / "step_hashes.json").read_text())
    plan = verifier.plan(CHALLENGE, json.loads((out / "manifest.json").read_text()), committed)
    unmeasured = verifier.judge(committed, plan, _report(committed, plan, noise=None, distance=1.0))
    assert unmeasured.matches is None and "no noise measured" in unmeasured.reason
    near = verifier.judge(committed, plan, _report(committed, plan, noise=None))
    assert near.matches is True and near.noise is None  # within the floor: a match as before
    noisy = verifier.judge(committed, plan, _report(committed, plan, noise=0.05))
    assert noisy.matches is None and "above the cap" in noisy.reason
    assert verifier.distance_text(math.inf) == "1e+300"


# -- a chaotic job: honest drift above the fixed threshold ------------------------------------

HARD = ("--lr", "0.08", "--width", "64", "--depth", "3")  # bench_pol_tolerance.py's "hard" job
HARD_RUNS = """
import pasar.train as pt
import runpy, sys
from pathlib import Path
from pasar.train.cheat import Cheat
build = runpy.run_path(sys.argv[1])["make_build"](0.08, 64, 3)
for kind in ("honest", "skip", "perturb"):
    cheat = None if kind == "honest" else Cheat.parse(kind, salt=7)
    pt.train(build, steps=60, checkpoint_every=10, seed=7, out=Path(sys.argv[2]) / kind,
             script=sys.argv[1], cheat=cheat)
"""


@pytest.fixture(scope="module")
def hard_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chaotic job's honest run and two cheats', in the pinned environment."""
    folder = tmp_path_factory.mktemp("hard")
    done = subprocess.run([sys.executable, "-c", HARD_RUNS, str(EXAMPLE), str(folder)],
                          capture_output=True, text=True, timeout=300, env=_clean())  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def test_a_chaotic_honest_job_drifting_above_the_fixed_threshold_is_a_calibrated_match(
    hard_runs: Path,
) -> None:
    """Its honest distance in another environment is above the market-wide threshold (the
    fixed threshold sent a mismatch, and checkers in that environment would have slashed);
    the verifier's own two replays measure the job's noise and the threshold it gives
    covers the honest drift: a match."""
    judgement = _replay(hard_runs / "honest", *HARD, **OTHER)
    assert judgement.mode == "tolerance" and judgement.distance is not None
    assert judgement.distance > TOLERANCE_THRESHOLD  # the fixed threshold: a false mismatch
    assert judgement.matches is True, judgement.reason
    assert judgement.noise is not None and judgement.threshold is not None
    assert judgement.threshold == NOISE_MULTIPLE * Fraction(judgement.noise) > TOLERANCE_THRESHOLD
    assert judgement.distance <= judgement.threshold
    assert not (hard_runs / "honest" / verifier_replay.ENDS).exists()  # cleaned up


def test_in_the_chaotic_job_a_skipping_prover_is_still_caught_and_a_tiny_perturbation_is_not(
    hard_runs: Path,
) -> None:
    """Skipping 10% of the steps ends far above the calibrated threshold: caught. Nudging one
    weight by 1e-3 once moves the state less than this job's own environment noise: tolerance
    mode cannot see it (the documented limit; a verifier in the prover's environment replays
    bit for bit and does)."""
    skip = _replay(hard_runs / "skip", *HARD, **OTHER)
    assert skip.matches is False and skip.mode == "tolerance", skip.reason
    assert skip.threshold is not None and skip.distance is not None
    assert skip.distance > skip.threshold
    perturb = _replay(hard_runs / "perturb", *HARD, **OTHER)
    assert perturb.threshold is not None and perturb.distance is not None
    assert perturb.distance <= perturb.threshold and perturb.matches is True, perturb.reason
    bitwise = _replay(hard_runs / "perturb", *HARD)  # the prover's own environment
    assert bitwise.matches is False and bitwise.mode == "bitwise", bitwise.reason


def test_the_second_environment_differs_from_this_one_the_way_the_manifests_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in environment.CHOICES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(verifier_replay, "_capabilities", lambda: ["default", "avx2", "avx512"])
    mine = {"capability": "AVX2", "threads": 1, "mkldnn": False, "torch": "2.13.0"}
    second = verifier_replay.second_environment
    # the prover ran default kernels: the second replay runs them too (what differs)
    assert second({**mine, "capability": "DEFAULT"}, mine) == {"PASAR_TRAIN_CAPABILITY": "default"}
    assert second({**mine, "threads": 2, "mkldnn": True}, mine) == {
        "PASAR_TRAIN_THREADS": "2", "PASAR_TRAIN_MKLDNN": "1",
    }  # fmt: skip
    # only the torch version differs (nothing to select): another capability than its own
    assert second({**mine, "torch": "2.12.0"}, mine) == {"PASAR_TRAIN_CAPABILITY": "default"}
    here = {**mine, "capability": "DEFAULT"}
    assert second({**here, "torch": "2.12.0"}, here) == {"PASAR_TRAIN_CAPABILITY": "avx2"}
    # a capability this CPU lacks is not chosen
    monkeypatch.setattr(verifier_replay, "_capabilities", lambda: ["default"])
    assert second({**mine, "capability": "AVX512"}, mine) == {"PASAR_TRAIN_CAPABILITY": "default"}
