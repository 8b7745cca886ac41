"""``pasar spec check`` on SkyPilot task files (issue 18), as a user meets it: each accepted file
exits 0 and prints one line per decision; each refused one exits 2 naming its field. The
parametrized checks run the CLI's ``main`` in this process (a subprocess each would cost a
second of CI apiece); one runs it as a subprocess, as a user does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pasar.cli.main import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "skypilot"
ACCEPTED = {  # file: a line spec check must print
    "ddp-two-nodes.yaml": "resources.use_spot: ignored",
    "ray-train.yaml": "resources.max_hourly_cost: price cap 4.5 USDC",
    "any-of.yaml": "resources.any_of: 3 alternatives",
    "ordered.yaml": "resources.ordered: 3 alternatives; the market takes the first that fits",
    "candidates.yaml": "resources.candidates: 2 alternatives",
    "envs-secrets.yaml": "secrets: 2 value(s)",
    "cloud-knobs.yaml": "resources.zone: ignored",
    "image-id.yaml": "resources.image_id: run in that container image",
    "envs-from-launch.yaml": "secrets.HF_TOKEN: no value in the file: give it at launch",
    "workdir-app/task.yaml": "max_duration: not in the spec: launch takes default_duration",
    "file-mounts.yaml": "file_mounts./data: uploaded, and copied to /data in the job's sandbox",
}
REFUSED = {
    "refused/ports.yaml": "resources.ports",
    "refused/bucket-mount.yaml": "file_mounts.~/data",
    "refused/storage-mount.yaml": "file_mounts./checkpoints",
    "refused/service.yaml": "service",
    "refused/nested-any-of.yaml": "resources.any_of[0].any_of",
    "refused/empty-any-of.yaml": "resources.any_of",
    "refused/git-workdir.yaml": "workdir",
    "refused/mount-over-proc.yaml": "file_mounts./proc",
}


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.mark.parametrize(("name", "line"), sorted(ACCEPTED.items()))
def test_each_task_file_is_accepted_with_its_decisions(
    name: str, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["spec", "check", str(FIXTURES / name)]) == 0
    out = capsys.readouterr().out
    # the CLI's console may have been built (at 80 columns) by an earlier test in this process
    # before COLUMNS was set: compare with the line breaks taken out
    flat = " ".join(out.split())
    assert "is a valid job spec" in flat and " ".join(line.split()) in flat, out
    assert "hf_this_is_not_a_real_token" not in out  # secrets are never printed


@pytest.mark.parametrize(("name", "field"), sorted(REFUSED.items()))
def test_each_refused_task_file_exits_2_naming_the_field(
    name: str, field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["spec", "check", str(FIXTURES / name), "--json"]) == 2
    captured = capsys.readouterr()
    error = json.loads(captured.out or captured.err)["error"]
    assert error["field"] == field and error.get("hint"), error


def test_a_subprocess_check_prints_json_decisions_and_masks_secrets() -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("PASAR_DEBUG", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pasar",
            "spec",
            "check",
            "--json",
            str(FIXTURES / "envs-secrets.yaml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    shown = json.loads(result.stdout)
    assert shown["secrets"] == {"HF_TOKEN": "***", "WANDB_API_KEY": "***"}
    assert "max_price_per_hour" not in shown  # left to launch, and said so
    assert any(d.startswith("max_price_per_hour: not in the spec") for d in shown["decisions"])
