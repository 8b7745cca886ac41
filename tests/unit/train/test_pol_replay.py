"""A pol check end to end without a market (issue 16): the job's own script replays the
segments a verifier names (``PASAR_POL_REPLAY``) and :func:`pasar.verifier.pol.judge` compares
them with the commitment. An honest run matches under every challenge; each cheating prover
(:mod:`pasar.train.cheat`) faking >= 10% of steps is caught; a missing checkpoint is a
mismatch; an environment the verifier cannot reproduce is no verdict at all (never a slash).

Expected before measuring (1 - (1 - m/N)^s, N = 6 segments of 10 steps, s = min(Q + r, N) = 6:
every segment is replayed): skip/skipblock/subset/cheap 10% of 60 steps touch m >= 1 segment
-> caught with probability 1; perturb (m = 1) likewise here, since s = N."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pasar.core.disputes import STEP_ROOT
from pasar.train import cheat as cheats
from pasar.train import harness, verifier_replay
from pasar.verifier import pol as verifier

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "pol_train.py"
CHALLENGE = {"top": 1, "random": 8, "segment": 10}


def _job(out: Path, **env: str) -> None:
    """``python pol_train.py train`` as a job runs it (a fresh process: environment pinned)."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "train", "--out", str(out), "--steps", "60", "--every",
         "10"],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _check(out: Path, seed: bytes, **env: str) -> verifier.Judgement:
    """What a verifier decides: plan from the challenge, replay in the job, judge."""
    manifest = json.loads((out / "manifest.json").read_text())
    committed = json.loads((out / "step_hashes.json").read_text())
    plan = verifier.plan({**CHALLENGE, "seed": seed.hex()}, manifest, committed)
    (out / verifier.REPORT).unlink(missing_ok=True)
    _job(out, PASAR_POL_REPLAY=json.dumps(plan.bounds), **env)
    report = json.loads((out / verifier.REPORT).read_text())
    return verifier.judge(committed, plan, report)


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("honest") / "run"
    _job(out)
    return out


def test_the_verifier_repeats_the_harness_names() -> None:
    assert verifier.MANIFEST == harness.MANIFEST and verifier.HASHES == harness.HASHES
    assert verifier.REPORT == verifier_replay.REPORT and verifier.REPLAY_ENV == harness.REPLAY_ENV
    assert verifier.checkpoint_name(20) == "checkpoints/step-00000020.pt"
    assert harness.STEP_ROOT == STEP_ROOT  # what the market binds a dispute's step root by


def test_the_run_commits_its_step_root_as_32_bytes(honest: Path) -> None:
    committed = json.loads((honest / "step_hashes.json").read_text())
    assert (honest / STEP_ROOT).read_bytes() == bytes.fromhex(committed["root"])


def test_an_honest_run_matches_under_any_challenge(honest: Path) -> None:
    committed = json.loads((honest / "step_hashes.json").read_text())
    assert len(committed["norms"]) == 6 and committed["checkpoint_every"] == 10
    judgement = _check(honest, b"\x01" * 64)
    assert judgement.matches is True, judgement.reason
    assert judgement.segments == [0, 1, 2, 3, 4, 5]  # Q + r >= N: all of them


CHEATERS = """
import pasar.train as pt
import json, runpy, sys
from pathlib import Path
from pasar.train.cheat import Cheat
from pasar.train.verifier_replay import replay_for_verifier
from pasar.verifier import pol as verifier
build = runpy.run_path(sys.argv[1])["build"]
for kind in sys.argv[3:]:
    out = Path(sys.argv[2]) / kind
    pt.train(build, steps=60, checkpoint_every=10, seed=7, out=out, script=sys.argv[1],
             cheat=Cheat.parse(kind, salt=7))
    manifest = json.loads((out / "manifest.json").read_text())
    committed = json.loads((out / "step_hashes.json").read_text())
    plan = verifier.plan(CHALLENGE, manifest, committed)
    replay_for_verifier(build, out, json.dumps(plan.bounds))
"""


@pytest.fixture(scope="module")
def cheaters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every cheating prover's run, and a verifier's replay of it (one process for all: the
    job's own replay path is the honest tests')."""
    folder = tmp_path_factory.mktemp("cheaters")
    challenge = {**CHALLENGE, "seed": "07" * 64}
    script = CHEATERS.replace("CHALLENGE", repr(challenge))
    done = subprocess.run(
        [sys.executable, "-c", script, str(EXAMPLE), str(folder), *cheats.KINDS],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


@pytest.mark.parametrize("kind", cheats.KINDS)
def test_a_cheating_prover_is_caught_at_a_cheated_step(kind: str, cheaters: Path) -> None:
    out = cheaters / kind
    manifest = json.loads((out / "manifest.json").read_text())
    committed = json.loads((out / "step_hashes.json").read_text())
    plan = verifier.plan({**CHALLENGE, "seed": "07" * 64}, manifest, committed)
    report = json.loads((out / verifier.REPORT).read_text())
    judgement = verifier.judge(committed, plan, report)
    assert judgement.matches is False, judgement.reason
    cheated = cheats.Cheat.parse(kind, salt=7).for_run(60).steps  # seed 7: the example's
    assert judgement.first_bad_step is not None
    assert judgement.first_bad_step == min(cheated), (judgement.reason, sorted(cheated))


def test_a_missing_checkpoint_is_a_mismatch(honest: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(honest, out)
    (out / "checkpoints" / "step-00000030.pt").unlink()
    judgement = _check(out, b"\x01" * 64)
    assert judgement.matches is False and "missing_checkpoint" in judgement.reason


def test_a_final_model_that_is_not_the_committed_one_is_a_mismatch(
    honest: Path, tmp_path: Path
) -> None:
    """The prover ships an earlier (cheaper) model as the result: every replayed segment
    matches, the last checkpoint does not."""
    out = tmp_path / "run"
    shutil.copytree(honest, out)
    checkpoints = out / "checkpoints"
    shutil.copy(checkpoints / "step-00000050.pt", checkpoints / "step-00000060.pt")
    judgement = _check(out, b"\x01" * 64)
    assert judgement.matches is False and "last checkpoint" in judgement.reason


def test_another_environment_cannot_reproduce_and_sends_no_verdict(
    honest: Path, tmp_path: Path
) -> None:
    """Under ``pol:mode=bitwise`` (by default it replays in tolerance mode instead:
    test_tolerance_replay.py)."""
    out = tmp_path / "run"
    shutil.copytree(honest, out)
    manifest: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    manifest["environment"]["capability"] = "AVX512"
    (out / "manifest.json").write_text(json.dumps(manifest))
    judgement = _check(out, b"\x01" * 64, PASAR_POL_MODE="bitwise")
    assert judgement.matches is None and "cannot reproduce" in judgement.reason
    assert "capability" in judgement.reason


def test_a_commitment_that_does_not_add_up_is_refused_before_any_replay(honest: Path) -> None:
    manifest = json.loads((honest / "manifest.json").read_text())
    committed = json.loads((honest / "step_hashes.json").read_text())
    challenge = {**CHALLENGE, "seed": "01" * 64}
    forged = {**committed, "hashes": [*committed["hashes"][:-1], "0" * 64]}
    with pytest.raises(Exception, match="committed root"):
        verifier.plan(challenge, manifest, forged)
    with pytest.raises(Exception, match="at most 5"):
        verifier.plan({**challenge, "segment": 5}, manifest, committed)
    with pytest.raises(Exception, match="segment norms"):
        verifier.plan(challenge, manifest, {**committed, "norms": committed["norms"][:2]})


NOISY = """
import pasar.train as pt
import os, runpy, sys
import torch

honest = runpy.run_path({example!r})["build"]


class Noisy(torch.nn.Module):  # noise from the OS, not from the generator the harness seeds
    def forward(self, x):
        seed = int.from_bytes(os.urandom(4), "big")
        return x + 1e-3 * torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))


def build(seed):
    setup = honest(seed)
    setup.model = torch.nn.Sequential(setup.model[0], Noisy(), *list(setup.model)[1:])
    setup.optimizer = torch.optim.Adam(setup.model.parameters(), lr=0.01)
    return setup


try:
    pt.train(build, steps=5, checkpoint_every=5, seed=7, out=sys.argv[1])
except Exception as exc:
    print(exc.code, exc.message)
"""


def test_a_nondeterministic_operator_is_refused_by_name_before_anything_is_committed(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    script = NOISY.format(example=str(EXAMPLE))
    done = subprocess.run(
        [sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.stdout.startswith("nondeterministic_operator"), done.stdout + done.stderr
    assert "aten.rand.generator" in done.stdout
    assert not out.exists()  # no manifest, no checkpoint, no commitment
