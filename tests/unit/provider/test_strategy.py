"""Provider pricing: --price flags, Akash's scale arithmetic, and the price-script contract."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pasar.core.money import Money
from pasar.core.pricing.performance import quote
from pasar.core.resources import Allocation, GpuModel, Inventory, ResourceRequest, fit
from pasar.provider.strategy import (
    SCRIPT_CONTRACT,
    PriceTable,
    ScaleStrategy,
    ScriptStrategy,
    StrategyError,
    make_strategy,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "price_script.py"


def usdc(text: str) -> Money:
    return Money.parse(text, default_currency="USDC")


def table(*prices: str, cpu: str | None = None) -> PriceTable:
    return PriceTable.from_flags(prices, cpu, currency="USDC")


def allocate(request: ResourceRequest, inventory: Inventory) -> Allocation:
    allocation = fit(request, inventory).allocation
    assert allocation is not None
    return allocation


GPU_BOX = Inventory.build(
    gpus={"A100-80GB-SXM": 2, "RTX4090": 4}, cpus=64, memory_gb=512, disk_gb=2000
)


def gpu_lease(
    count: int = 2, models: tuple[str, ...] = ("RTX4090",), cpus: str = "8"
) -> tuple[ResourceRequest, Allocation]:
    request = ResourceRequest.build(gpus=count, models=models, cpus=cpus, memory_gb=32, disk_gb=100)
    return request, allocate(request, GPU_BOX)


def cpu_lease(cpus: str = "4") -> tuple[ResourceRequest, Allocation]:
    request = ResourceRequest.build(cpus=cpus, memory_gb=8, disk_gb=10)
    return request, allocate(request, GPU_BOX)


# -- flags -----------------------------------------------------------------------------------------


def test_flags_are_normalized_and_exact() -> None:
    t = table("RTX4090=0.35", "a100-80gb=1.2 USDC", "h100 = 2", cpu="0.02")
    assert t.currency == "USDC"
    assert set(t.asks.gpu) == {"RTX4090", "A100-80GB", "H100"}
    assert t.unit_for(GpuModel.parse("NVIDIA GeForce RTX 4090")) == usdc("0.35")
    assert t.unit_for(GpuModel.parse("A100-80GB-SXM")) == usdc("1.2")
    assert t.unit_for(GpuModel.parse("A100-40GB")) is None
    assert t.asks.cpu_core == Money(20_000, "USDC")
    assert not t.empty
    assert table().empty


def test_lower_case_currency_is_refused() -> None:
    """Currency codes are exact, as on the wire (``usdc`` is not ``USDC``)."""
    with pytest.raises(StrategyError) as err:
        table("L4=0.5 usdc")
    assert err.value.field == "--price"
    assert "upper case" in err.value.message


@pytest.mark.parametrize(
    ("flag", "words"),
    [
        ("RTX4090", "MODEL=PRICE"),
        ("=0.3", "MODEL=PRICE"),
        ("RTX4090=", "MODEL=PRICE"),
        ("RTX9999=1", "unknown GPU"),
        ("RTX4090=cheap", "cannot read"),
        ("RTX4090=0.1234567", "decimals"),
        ("RTX4090=0", "positive"),
        ("RTX4090=-1", "positive"),
        ("RTX4090=1 EUR", "EUR"),
    ],
)
def test_bad_price_flag_names_the_flag(flag: str, words: str) -> None:
    with pytest.raises(StrategyError) as info:
        table(flag)
    err = info.value
    assert err.field == "--price"
    assert err.message.startswith(f"--price {flag!r}")
    assert words in err.message
    assert "--price" in err.render()


def test_bad_flag_hint_points_at_the_fix() -> None:
    with pytest.raises(StrategyError) as info:
        table("RTX4090")
    assert info.value.hint is not None and "--price RTX4090=0.35" in info.value.hint
    with pytest.raises(StrategyError) as info:
        table("RTX409=1")
    assert info.value.hint is not None and "RTX4090" in info.value.hint


def test_a_model_priced_twice_is_refused() -> None:
    with pytest.raises(StrategyError, match="already priced") as info:
        table("A100=1", "a100=1.1")
    assert info.value.field == "--price"


@pytest.mark.parametrize("cpu", ["x", "0", "0.0000001", "1 EUR"])
def test_bad_cpu_price_names_its_flag(cpu: str) -> None:
    with pytest.raises(StrategyError) as info:
        table(cpu=cpu)
    assert info.value.field == "--price-cpu-hour"
    assert info.value.message.startswith("--price-cpu-hour")


# -- scale -----------------------------------------------------------------------------------------


def test_scale_is_gpus_times_model_price_plus_cpus_times_cpu_price() -> None:
    strategy = ScaleStrategy(table("RTX4090=0.35", "A100=1.2", cpu="0.02"))
    request, allocation = gpu_lease(2)
    # 2 × 0.35 + 8 × 0.02 = 0.86, to the micro-unit
    assert strategy.bid(request, allocation, usdc("5")) == Money(860_000, "USDC")
    request, allocation = gpu_lease(1, ("A100",), cpus="1")
    assert strategy.bid(request, allocation, usdc("5")) == Money(1_220_000, "USDC")
    request, allocation = cpu_lease("3")
    assert strategy.bid(request, allocation, usdc("5")) == Money(60_000, "USDC")


def test_scale_prefers_the_most_specific_model_price() -> None:
    strategy = ScaleStrategy(table("A100=1.2", "A100-80GB=1.5"))
    request, allocation = gpu_lease(1, ("A100",))
    assert allocation.gpu is not None and allocation.gpu.model.canonical == "A100-80GB-SXM"
    assert strategy.bid(request, allocation, usdc("5")) == usdc("1.5")


def test_scale_rounds_fractional_cpus_down_to_a_micro() -> None:
    strategy = ScaleStrategy(table(cpu="0.000003"))
    request, allocation = cpu_lease("0.5")  # 1.5 micros
    assert strategy.bid(request, allocation, usdc("1")) == Money(1, "USDC")


def test_scale_without_cpu_price_charges_the_gpus_only() -> None:
    strategy = ScaleStrategy(table("RTX4090=0.35"))
    request, allocation = gpu_lease(3)
    assert strategy.bid(request, allocation, usdc("5")) == Money(1_050_000, "USDC")


def test_scale_does_not_bid_without_a_price(caplog: pytest.LogCaptureFixture) -> None:
    strategy = ScaleStrategy(table("RTX4090=0.35"))
    caplog.set_level(logging.INFO, "pasar.provider.strategy")
    request, allocation = gpu_lease(1, ("A100",))
    assert strategy.bid(request, allocation, usdc("5")) is None
    assert "no price for A100-80GB-SXM" in caplog.text
    request, allocation = cpu_lease()
    assert strategy.bid(request, allocation, usdc("5")) is None
    assert "no price for CPU cores" in caplog.text


def test_scale_does_not_bid_above_max_or_in_another_currency(
    caplog: pytest.LogCaptureFixture,
) -> None:
    strategy = ScaleStrategy(table("RTX4090=0.35"))
    caplog.set_level(logging.INFO, "pasar.provider.strategy")
    request, allocation = gpu_lease(2)
    assert strategy.bid(request, allocation, usdc("0.699999")) is None
    assert "above the order's max" in caplog.text
    assert strategy.bid(request, allocation, usdc("0.7")) == usdc("0.7")
    assert strategy.bid(request, allocation, Money.parse("9 AKT")) is None
    assert "the order pays AKT" in caplog.text


def test_asks_are_the_table() -> None:
    strategy = make_strategy("scale", table("rtx 4090=0.35", cpu="0.02"))
    asks = strategy.asks()
    assert dict(asks.gpu) == {"RTX4090": usdc("0.35")}
    assert asks.cpu_core == usdc("0.02")


# -- rate per score-hour ---------------------------------------------------------------------------


def test_rate_per_score_hour_reproduces_the_table_price() -> None:
    strategy = ScaleStrategy(table("A100-80GB=2", cpu="0.02"))
    gpu = GpuModel.parse("A100-80GB-SXM")
    rate = strategy.rate_per_score_hour(50_000, gpu=gpu, cpus=64)
    assert rate == Money(40, "USDC")
    assert quote(rate, 50_000) == usdc("2")
    # a CPU score: 2 cores × 0.02 = 40_000 micros an hour over 169 GFLOP/s → 236 micros
    rate = strategy.rate_per_score_hour(169, gpu=None, cpus=2)
    assert rate == Money(236, "USDC")
    price = quote(rate, 169)
    assert usdc("0.04") - Money(169, "USDC") < price <= usdc("0.04")


def test_rate_per_score_hour_none_without_a_price_or_score(
    caplog: pytest.LogCaptureFixture,
) -> None:
    strategy = ScaleStrategy(table("RTX4090=0.35"))
    assert strategy.rate_per_score_hour(100, gpu=None, cpus=2) is None
    assert strategy.rate_per_score_hour(100, gpu=GpuModel.parse("L4"), cpus=2) is None
    rtx = GpuModel.parse("RTX4090")
    assert strategy.rate_per_score_hour(0, gpu=rtx, cpus=2) is None
    assert strategy.rate_per_score_hour(350_001, gpu=rtx, cpus=2) is None  # < 1 micro each
    assert "under 1 micro" in caplog.text
    assert strategy.rate_per_score_hour(350_000, gpu=rtx, cpus=2) == Money(1, "USDC")


# -- make_strategy ---------------------------------------------------------------------------------


def test_scale_needs_prices() -> None:
    with pytest.raises(StrategyError, match="needs prices") as info:
        make_strategy("scale", table())
    assert info.value.field == "--strategy"


@pytest.mark.parametrize("spec", ["auction", "Scale", "script:", "script: ", ""])
def test_unknown_strategy(spec: str) -> None:
    with pytest.raises(StrategyError, match="unknown strategy") as info:
        make_strategy(spec, table("L4=1"))
    assert info.value.field == "--strategy"
    assert info.value.hint is not None and "script:PATH" in info.value.hint


def test_script_must_exist_and_be_executable(tmp_path: Path) -> None:
    with pytest.raises(StrategyError, match="not a file"):
        make_strategy(f"script:{tmp_path / 'missing.py'}", table())
    plain = tmp_path / "plain.py"
    plain.write_text("print(1)\n")
    with pytest.raises(StrategyError, match="not executable") as info:
        make_strategy(f"script:{plain}", table())
    assert info.value.hint is not None and "chmod +x" in info.value.hint


def test_script_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path, "print('1')")
    monkeypatch.chdir(tmp_path)
    strategy = make_strategy(f"script:{script.name}", table(), script_timeout_s=2)
    assert isinstance(strategy, ScriptStrategy)
    assert strategy.path == script
    assert strategy.timeout_s == 2
    assert strategy.table is None
    assert strategy.asks().prices() == []


# -- the price script contract ---------------------------------------------------------------------


def write_script(tmp_path: Path, body: str, name: str = "price.py") -> Path:
    """An executable Python script: ``body`` runs after ``import json, sys, pathlib``."""
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\nimport json, sys, pathlib\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def script(tmp_path: Path, body: str, *, timeout_s: float = 5, **kw: Any) -> ScriptStrategy:
    return ScriptStrategy(write_script(tmp_path, body), timeout_s, **kw)


def test_script_price_is_the_bid(tmp_path: Path) -> None:
    request, allocation = gpu_lease(1)
    assert script(tmp_path, "print('0.5')").bid(request, allocation, usdc("1")) == usdc("0.5")
    assert script(tmp_path, "print(' 0.25 USDC ')").bid(request, allocation, usdc("1")) == usdc(
        "0.25"
    )


def test_script_receives_the_request_and_the_matched_gpu(tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    body = f"pathlib.Path({str(seen)!r}).write_text(sys.stdin.read()); print('1.1')"
    strategy = script(tmp_path, body, table=table("A100=1.2", cpu="0.01"))
    request, allocation = gpu_lease(2, ("H100", "A100"), cpus="4")
    assert strategy.bid(request, allocation, usdc("3"), duration_s=7200) == usdc("1.1")
    doc = json.loads(seen.read_text())
    assert doc == {
        "contract": SCRIPT_CONTRACT,
        "currency": "USDC",
        "max_price_per_hour": "3.00",
        "duration_s": 7200,
        "request": {
            "gpu_count": 2,
            "gpu_models": ["H100", "A100"],
            "min_vram_gb": None,
            "cpus": "4",
            "memory_gb": "32",
            "disk_gb": "100",
        },
        "gpu": {
            "model": "A100-80GB-SXM",
            "family": "A100",
            "vram_gb": 80,
            "interface": "SXM",
            "count": 2,
        },
        "cpus": "4",
        "memory_gb": "32",
        "disk_gb": "100",
        "table_price": "2.44",
    }


def test_script_cpu_lease_has_no_gpu(tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    body = f"pathlib.Path({str(seen)!r}).write_text(sys.stdin.read()); print('0.1')"
    request, allocation = cpu_lease("0.5")
    assert script(tmp_path, body).bid(request, allocation, usdc("1")) == usdc("0.1")
    doc = json.loads(seen.read_text())
    assert doc["gpu"] is None
    assert doc["cpus"] == "0.5"
    assert doc["table_price"] is None
    assert doc["duration_s"] is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("sys.stderr.write('not today'); sys.exit(3)", "exited with status 3: not today"),
        ("print('lots of money')", "cannot read its output as a price"),
        ("print('0.1'); print('0.2')", "expected one price"),
        ("pass", "expected one price"),
        ("print('x' * 10000)", "expected one price"),
        ("print('0.5 AKT')", "the order pays USDC"),
        ("print('0')", "not positive"),
        ("print('-0.1')", "not positive"),
        ("print('1.5')", "above the order's max"),
        ("print('0.0000001')", "more than 6 decimals"),
    ],
)
def test_script_failures_mean_no_bid(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, body: str, reason: str
) -> None:
    caplog.set_level(logging.INFO, "pasar.provider.strategy")
    request, allocation = gpu_lease(1)
    assert script(tmp_path, body).bid(request, allocation, usdc("1")) is None
    assert reason in caplog.text


def test_script_past_its_timeout_is_killed_with_its_children(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "pasar.provider.strategy")
    pids = tmp_path / "pids"
    sh = tmp_path / "slow.sh"
    # the shell starts a child that holds stdout open: only killing the group ends it
    sh.write_text(f"#!/bin/sh\nsleep 30 &\necho $! > {pids}\nwait\necho 1\n")
    sh.chmod(0o755)
    strategy = ScriptStrategy(sh, timeout_s=0.5)
    request, allocation = gpu_lease(1)
    start = time.monotonic()
    assert strategy.bid(request, allocation, usdc("1")) is None
    assert time.monotonic() - start < 3
    assert "no answer within 0.5 s" in caplog.text
    child = int(pids.read_text())
    deadline = time.monotonic() + 2
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")


def test_script_that_cannot_start_means_no_bid(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "pasar.provider.strategy")
    bad = tmp_path / "noshebang"
    bad.write_text("print(1)\n")
    bad.chmod(0o755)
    request, allocation = gpu_lease(1)
    assert ScriptStrategy(bad).bid(request, allocation, usdc("1")) is None
    assert "cannot start" in caplog.text


def test_script_timeout_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(StrategyError):
        ScriptStrategy(tmp_path / "x", timeout_s=0)


def test_script_rate_and_asks_come_from_its_table(tmp_path: Path) -> None:
    strategy = script(tmp_path, "print(1)", table=table("L4=0.5"))
    assert strategy.asks().gpu == {"L4": usdc("0.5")}
    rate = strategy.rate_per_score_hour(25_000, gpu=GpuModel.parse("L4"), cpus=Decimal(8))
    assert rate == Money(20, "USDC")


# -- the example script ----------------------------------------------------------------------------


def test_example_script_follows_the_contract() -> None:
    assert os.access(EXAMPLE, os.X_OK)
    request, allocation = gpu_lease(1)
    bare = ScriptStrategy(EXAMPLE)
    assert bare.bid(request, allocation, usdc("1")) == usdc("0.9")  # 10% under max
    priced = ScriptStrategy(EXAMPLE, table=table("RTX4090=0.35"))
    assert priced.bid(request, allocation, usdc("1")) == usdc("0.35")  # the table price
    assert priced.bid(request, allocation, usdc("0.3")) == usdc("0.3")  # capped at max
    assert bare.bid(request, allocation, usdc("1"), duration_s=2 * 86400) is None  # too long
