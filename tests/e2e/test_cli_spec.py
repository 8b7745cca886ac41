"""`pasar spec check` through the real CLI, as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def check(path: Path | str, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("PASAR_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-m", "pasar", "spec", "check", str(path), *flags],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr
    return result


@pytest.mark.parametrize("name", ["hello.yaml", "gpu-train.yaml"])
def test_examples_pass_and_print_the_normalized_spec(name: str, tmp_path: Path) -> None:
    result = check(EXAMPLES / name, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    normalized = json.loads(result.stdout)
    assert isinstance(normalized["max_duration"], int)
    assert normalized["max_price_per_hour"].endswith(" USDC")
    # the normalized form is itself a valid spec that normalizes to itself
    again = tmp_path / "again.yaml"
    again.write_text(json.dumps(normalized), encoding="utf-8")
    second = check(again, "--json")
    assert second.returncode == 0 and json.loads(second.stdout) == normalized


def test_human_output() -> None:
    result = check(EXAMPLES / "gpu-train.yaml")
    assert result.returncode == 0, result.stderr
    assert "valid job spec" in result.stdout
    assert "2× A100 or H100" in result.stdout
    assert "escrow at most 27.00 USDC" in result.stdout  # 4.5 USDC/h × 6 h


def test_several_mistakes_exit_2_with_every_one(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "resources:\n  acelerators: A100:2\n  cpus: many\nrun: train\n"
        "max_price_per_hour: 1.5\nmax_duration: 2h\npricing: auctoin\n",
        encoding="utf-8",
    )
    result = check(bad, "--json")
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert set(error) >= {"code", "message", "details"}
    assert str(bad) in error["message"]
    details = {d["field"]: d for d in error["details"]}
    assert set(details) == {
        "resources.acelerators",
        "resources.cpus",
        "max_price_per_hour",
        "pricing",
    }
    assert details["resources.acelerators"]["line"] == 2
    assert details["resources.acelerators"]["hint"] == "did you mean 'accelerators'?"
    assert details["max_price_per_hour"]["code"] == "float_money"
    assert '"1.5 USDC"' in details["max_price_per_hour"]["hint"]
    assert all(isinstance(d["line"], int) and d["message"] for d in error["details"])

    text = check(bad)
    assert text.returncode == 2
    assert "4 problems" in text.stderr and "line 2, resources.acelerators" in text.stderr


@pytest.mark.parametrize(
    ("content", "code"),
    [
        ("run: [unclosed\n", "yaml_syntax"),
        ("- a list\n", "invalid_type"),
        ("", "empty_spec"),
        (
            'run: x\nmax_price_per_hour: "1 USDC"\nmax_duration: 1h\n'
            "resources: {accelerators: X9}\n",
            "unknown_gpu",
        ),
    ],
)
def test_one_mistake_exit_2(tmp_path: Path, content: str, code: str) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(content, encoding="utf-8")
    result = check(path, "--json")
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"] == code
    assert error["details"][0]["line"] >= 1
    plain = check(path)
    assert plain.returncode == 2 and "error:" in plain.stderr and "job.yaml" in plain.stderr


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = check(tmp_path / "nope.yaml", "--json")
    assert missing.returncode == 2
    error = json.loads(missing.stdout)["error"]
    assert error["code"] == "file_not_found" and error["hint"]
    directory = check(tmp_path)
    assert directory.returncode == 2 and "not a file" in directory.stderr


def test_binary_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    result = check(path, "--json")
    assert result.returncode == 2
    assert json.loads(result.stdout)["error"]["code"] == "invalid_encoding"
