"""``pasar tee verify``: exit 0 for a quote that verifies, 1 for a refused one, 2 for input
that cannot be read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tee_samples import DATA, sample

from pasar.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["tee", "verify", *args])
    return code, capsys.readouterr().out


def test_a_sample_verifies_at_a_time_its_collateral_is_valid(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, _, at = sample("sgx_quote")
    col = str(DATA / "sgx_quote_collateral.json")
    code, out = run(capsys, str(DATA / "sgx_quote"), "--collateral", col, "--at", str(at), "--json")
    assert code == 0
    verdict = json.loads(out)
    assert verdict["tee"] == "SGX"
    assert verdict["advisories"] == ["INTEL-SA-00289", "INTEL-SA-00615"]
    code, out = run(capsys, str(DATA / "sgx_quote"), "--collateral", col, "--at", str(at))
    assert code == 0
    assert "mrenclave" in out


def test_refused_quotes_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    quote, _, at = sample("tdx_quote")
    col = str(DATA / "tdx_quote_collateral.json")
    # without --at the time is now, and the sample's collateral is long expired
    code, out = run(capsys, str(DATA / "tdx_quote"), "--collateral", col, "--json")
    assert code == 1
    assert json.loads(out)["error"]["code"] == "collateral_expired"
    flipped = tmp_path / "flipped"
    flipped.write_bytes(quote[:200] + bytes([quote[200] ^ 1]) + quote[201:])
    code, out = run(capsys, str(flipped), "--collateral", col, "--at", str(at))
    assert code == 1
    assert "refused" in out


def test_unreadable_input_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    col = str(DATA / "tdx_quote_collateral.json")
    code, out = run(capsys, str(tmp_path / "missing"), "--collateral", col, "--json")
    assert code == 2
    assert json.loads(out)["error"]["code"] == "unreadable_input"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _ = run(capsys, str(DATA / "tdx_quote"), "--collateral", str(bad))
    assert code == 2
