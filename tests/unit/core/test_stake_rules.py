"""Minimum stake rules: the requirement per rule, the plain-words refusal, preset data."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.orders import ProviderView
from pasar.core.resources import Inventory
from pasar.core.stake import (
    FlatStake,
    NoStake,
    PerGpuStake,
    StakeRule,
    required_stake,
    stake_problem,
    stake_rule_from_mapping,
    stake_rule_to_mapping,
)


def usdc(text: str) -> Money:
    return Money.parse(f"{text} USDC")


def box(gpus: dict[str, int] | None = None) -> Inventory:
    return Inventory.build(gpus=gpus or {}, cpus=16, memory_gb=64, disk_gb=500)


IONET = PerGpuStake(usdc("10"), {"H100": Fraction(4), "a100": Fraction(3)}, Fraction(1))


def test_no_stake_asks_nothing() -> None:
    assert required_stake(NoStake(), box({"H100": 8})) is None
    assert stake_problem(NoStake(), ProviderView("p", box())) is None


def test_flat_stake_is_the_same_for_everyone() -> None:
    rule = FlatStake(usdc("50"))
    assert required_stake(rule, box()) == usdc("50")
    assert required_stake(rule, box({"H100": 8})) == usdc("50")


def test_per_gpu_is_base_times_multiplier_times_count() -> None:
    assert required_stake(IONET, box({"H100": 2})) == usdc("80")  # 10 × 4 × 2
    assert required_stake(IONET, box({"A100": 1})) == usdc("30")  # family name normalised
    assert required_stake(IONET, box({"RTX4090": 3})) == usdc("30")  # default multiplier 1
    # mixed hardware: the sum over devices, 10 × (4 + 4 + 1)
    assert required_stake(IONET, box({"H100": 2, "RTX4090": 1})) == usdc("90")
    assert required_stake(IONET, box()) == usdc("0")


def test_per_gpu_rounds_down_once() -> None:
    rule = PerGpuStake(Money(1, "USDC"), {"L4": Fraction(3, 2)})
    assert required_stake(rule, box({"L4": 1})) == Money(1, "USDC")  # 1.5 micros → 1
    assert required_stake(rule, box({"L4": 3})) == Money(4, "USDC")  # 4.5 micros → 4


def test_minimum_is_a_floor() -> None:
    rule = PerGpuStake(usdc("10"), {}, Fraction(1), usdc("5"))
    assert required_stake(rule, box()) == usdc("5")
    assert required_stake(rule, box({"L4": 2})) == usdc("20")


def test_problem_says_how_far_short() -> None:
    p = ProviderView("p", box({"H100": 1}), stake=usdc("10"))
    assert stake_problem(IONET, p) == "stake 10.00 USDC < required 40.00 USDC"
    assert stake_problem(IONET, ProviderView("q", box({"H100": 1}))) == (
        "no stake (required 40.00 USDC)"
    )
    other = ProviderView("r", box({"H100": 1}), stake=Money.units(100, "PHA"))
    assert stake_problem(IONET, other) == "stake is in PHA, required 40.00 USDC"
    assert stake_problem(IONET, ProviderView("s", box({"H100": 1}), stake=usdc("40"))) is None


def test_a_zero_requirement_is_no_requirement() -> None:
    assert stake_problem(IONET, ProviderView("cpu-only", box())) is None


def test_from_mapping_builds_each_kind() -> None:
    assert stake_rule_from_mapping({"kind": "none"}) == NoStake()
    assert stake_rule_from_mapping({"kind": "flat", "amount": "50 USDC"}) == FlatStake(usdc("50"))
    rule = stake_rule_from_mapping(
        {
            "kind": "per_gpu",
            "base": "10 USDC",
            "multipliers": {"h100": 4, "A100": "3", "RTX4090": "3/2"},
            "default_multiplier": "1",
            "minimum": "5",
        }
    )
    assert isinstance(rule, PerGpuStake)
    assert dict(rule.multipliers) == {"H100": 4, "A100": 3, "RTX4090": Fraction(3, 2)}
    assert rule.minimum == usdc("5")  # a bare number is in the base's currency
    assert required_stake(rule, box({"RTX4090": 2})) == usdc("30")


def test_bare_amounts_need_a_default_currency() -> None:
    rule = stake_rule_from_mapping({"kind": "flat", "amount": "50"}, default_currency="USDC")
    assert rule == FlatStake(usdc("50"))


@pytest.mark.parametrize(
    "rule",
    [
        NoStake(),
        FlatStake(usdc("12.5")),
        IONET,
        PerGpuStake(usdc("1"), {"L4": Fraction(1, 3)}, Fraction(0), usdc("2")),
    ],
)
def test_round_trip(rule: StakeRule) -> None:
    assert stake_rule_from_mapping(stake_rule_to_mapping(rule)) == rule


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "bond"}, "stake.kind"),
        ({}, "stake.kind"),
        ({"kind": "flat"}, "stake.amount"),
        ({"kind": "flat", "amount": 50.0}, "stake.amount"),
        ({"kind": "flat", "amount": "50"}, "stake.amount"),  # no currency
        ({"kind": "flat", "amount": "-5 USDC"}, "stake.amount"),
        ({"kind": "flat", "amount": "5 USDC", "base": "1 USDC"}, "stake.base"),
        ({"kind": "per_gpu", "base": "1 USDC", "multipliers": {"H100": 2.5}}, None),
        ({"kind": "per_gpu", "base": "1 USDC", "multipliers": {"H100": "-1"}}, None),
        ({"kind": "per_gpu", "base": "1 USDC", "multipliers": {"A100-80GB": 2}}, None),
        ({"kind": "per_gpu", "base": "1 USDC", "multipliers": {"Z9000": 2}}, None),
        ({"kind": "per_gpu", "base": "1 USDC", "multipliers": [2]}, "stake.multipliers"),
        ({"kind": "per_gpu", "base": "1 USDC", "minimum": "1 PHA"}, "stake.minimum"),
        ({"kind": "per_gpu", "base": "1 USDC", "default_multiplier": 1.5}, None),
    ],
)
def test_bad_preset_data_names_the_field(data: dict[str, Any], field: str | None) -> None:
    with pytest.raises(PasarError) as info:
        stake_rule_from_mapping(data)
    assert info.value.field is not None and info.value.field.startswith("stake.")
    if field is not None:
        assert info.value.field == field


def test_field_prefix_is_configurable() -> None:
    with pytest.raises(PasarError) as info:
        stake_rule_from_mapping({"kind": "flat"}, field="networks.ionet.stake")
    assert info.value.field == "networks.ionet.stake.amount"


def test_rules_are_hashable() -> None:
    assert len({IONET, IONET, FlatStake(usdc("1")), NoStake()}) == 3


families = st.sampled_from(["H100", "A100", "RTX4090", "L4"])


@given(
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=16),
    st.integers(min_value=1, max_value=8),
    families,
)
def test_homogeneous_per_gpu_is_the_io_net_product(
    base: int, multiplier: int, count: int, family: str
) -> None:
    rule = PerGpuStake(Money(base, "USDC"), {family: Fraction(multiplier)})
    assert required_stake(rule, box({family: count})) == Money(base * multiplier * count, "USDC")


@given(
    st.integers(min_value=1, max_value=10**9),
    st.fractions(min_value=0, max_value=10, max_denominator=100),
    st.integers(min_value=0, max_value=7),
    families,
)
def test_more_gpus_never_need_less_stake(
    base: int, multiplier: Fraction, count: int, family: str
) -> None:
    rule = PerGpuStake(Money(base, "USDC"), {family: multiplier})
    fewer = required_stake(rule, box({family: count} if count else None))
    more = required_stake(rule, box({family: count + 1}))
    assert fewer is not None and more is not None and fewer <= more
