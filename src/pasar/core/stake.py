"""Minimum stake: how much a provider must lock before the market lets it bid.

Why stake at all: a provider that can vanish or cheat at no cost will; a bond that proven
fraud slashes (and that a whistleblower is partly paid from) makes honesty the cheaper
strategy. The surveyed networks differ only in *how much*, so the rule is data a preset picks:

* :class:`NoStake` — anyone may bid (Render, Akash's default: reputation and audits instead).
* :class:`FlatStake` — one amount per provider, whatever it runs (a bid deposit).
* :class:`PerGpuStake` — io.net style: ``base × hardware multiplier × GPU count``, where the
  multiplier is per GPU family (an H100 risks more of the network's orders than an RTX 3060,
  so it bonds more). A provider with several families pays the sum over its devices; an
  optional ``minimum`` is the floor (so a CPU-only provider is not free to misbehave).

What the requirement is computed on: the inventory the caller passes. :func:`stake_problem`
uses :attr:`ProviderView.inventory` (the capacity the provider offers now); a market that
knows the provider's whole registered hardware may call :func:`required_stake` on that instead.

Preset data (TOML, strings and ints only, never floats)::

    [stake]
    kind = "per_gpu"             # or "flat" (then: amount = "50 USDC") or "none"
    base = "10 USDC"
    default_multiplier = "1"
    minimum = "5 USDC"           # optional
    [stake.multipliers]
    H100 = 4
    A100 = "3"
    RTX4090 = "3/2"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Any

from pasar.core.errors import PasarError
from pasar.core.money import Money, parse_rate
from pasar.core.orders import ProviderView
from pasar.core.resources import GpuSelector, Inventory


class StakeError(PasarError):
    """A malformed stake rule in a preset."""


@dataclass(frozen=True)
class NoStake:
    """Anyone may bid."""


@dataclass(frozen=True)
class FlatStake:
    """Every provider locks ``amount``, whatever hardware it has."""

    amount: Money

    def __post_init__(self) -> None:
        if self.amount.is_negative():
            raise StakeError(
                "a stake amount cannot be negative", code="invalid_stake_rule", field="amount"
            )


@dataclass(frozen=True)
class PerGpuStake:
    """io.net style: ``base × multiplier(family)`` summed over the provider's GPUs.

    ``multipliers`` is keyed by GPU family (``"H100"``; any spelling is normalised); a family
    not listed uses ``default_multiplier``. ``minimum`` (optional) is the least anyone locks.
    """

    base: Money
    multipliers: Mapping[str, Fraction] = field(default_factory=dict)
    default_multiplier: Fraction = Fraction(1)
    minimum: Money | None = None

    def __post_init__(self) -> None:
        if self.base.is_negative():
            raise StakeError(
                "a stake base cannot be negative", code="invalid_stake_rule", field="base"
            )
        if self.minimum is not None and (
            self.minimum.currency != self.base.currency or self.minimum.is_negative()
        ):
            raise StakeError(
                f"the stake minimum must be a non-negative amount in {self.base.currency}",
                code="invalid_stake_rule",
                field="minimum",
            )
        normalised: dict[str, Fraction] = {}
        for name, mult in self.multipliers.items():
            normalised[_family(name, f"multipliers.{name}")] = _multiplier(
                mult, f"multipliers.{name}"
            )
        object.__setattr__(self, "multipliers", MappingProxyType(normalised))
        object.__setattr__(
            self, "default_multiplier", _multiplier(self.default_multiplier, "default_multiplier")
        )

    def __hash__(self) -> int:
        return hash(
            (
                self.base,
                tuple(sorted(self.multipliers.items())),
                self.default_multiplier,
                self.minimum,
            )
        )

    def multiplier(self, family: str) -> Fraction:
        return self.multipliers.get(family, self.default_multiplier)


StakeRule = NoStake | FlatStake | PerGpuStake


def _family(name: object, field_: str) -> str:
    selector = GpuSelector.parse(name, field=field_)
    if selector.vram_gb is not None or selector.interface is not None:
        raise StakeError(
            f"stake multipliers are per GPU family, not per variant ({name!r})",
            code="invalid_stake_rule",
            field=field_,
            hint=f"write {selector.family}",
        )
    return selector.family


def _multiplier(value: object, field_: str) -> Fraction:
    rate = parse_rate(value, field=field_)
    if rate < 0:
        raise StakeError(
            f"a stake multiplier cannot be negative, got {rate}",
            code="invalid_stake_rule",
            field=field_,
        )
    return rate


def required_stake(rule: StakeRule, inventory: Inventory) -> Money | None:
    """The least stake a provider with ``inventory`` must hold; None when the rule asks none.

    The per-GPU total is ``base × Σ multiplier`` rounded down once (money.py's rule), so a
    provider is never asked for a micro-unit more than the exact product.
    """
    if isinstance(rule, NoStake):
        return None
    if isinstance(rule, FlatStake):
        return rule.amount
    total = sum((rule.multiplier(m.family) for m in inventory.devices()), Fraction(0))
    need = rule.base.scale(total)
    if rule.minimum is not None and rule.minimum > need:
        return rule.minimum
    return need


def stake_problem(rule: StakeRule, provider: ProviderView) -> str | None:
    """Why ``provider`` may not bid under ``rule``, in plain words, or None if it may."""
    need = required_stake(rule, provider.inventory)
    if need is None or need.micros <= 0:
        return None
    have = provider.stake
    if have is None:
        return f"no stake (required {need})"
    if have.currency != need.currency:
        return f"stake is in {have.currency}, required {need}"
    if have < need:
        return f"stake {have} < required {need}"
    return None


# -- preset data -------------------------------------------------------------------------------

_KEYS: dict[str, frozenset[str]] = {
    "none": frozenset({"kind"}),
    "flat": frozenset({"kind", "amount"}),
    "per_gpu": frozenset({"kind", "base", "multipliers", "default_multiplier", "minimum"}),
}


def stake_rule_from_mapping(
    data: Mapping[str, Any], *, field: str = "stake", default_currency: str | None = None
) -> StakeRule:
    """Build a rule from preset data (see the module docstring). Amounts are strings with a
    currency (or bare numbers when ``default_currency`` is given); multipliers are ints or
    rate strings ("3", "3/2", "150%"). Every error names the offending ``field``."""
    if not isinstance(data, Mapping):
        raise StakeError(
            "a stake rule is a table with a kind", code="invalid_stake_rule", field=field
        )
    kind = data.get("kind")
    if kind not in _KEYS:
        raise StakeError(
            f"unknown stake rule kind {kind!r}",
            code="invalid_stake_rule",
            field=f"{field}.kind",
            hint="one of: " + ", ".join(_KEYS),
        )
    unknown = sorted(str(k) for k in data if k not in _KEYS[kind])
    if unknown:
        raise StakeError(
            f"unknown field(s) for a {kind!r} stake rule: {', '.join(unknown)}",
            code="invalid_stake_rule",
            field=f"{field}.{unknown[0]}",
            hint="known fields: " + ", ".join(sorted(_KEYS[kind])),
        )

    def amount(key: str, currency: str | None = default_currency) -> Money:
        if key not in data:
            raise StakeError(
                f"a {kind!r} stake rule needs {key}",
                code="invalid_stake_rule",
                field=f"{field}.{key}",
            )
        money = Money.parse(data[key], default_currency=currency, field=f"{field}.{key}")
        if money.is_negative():
            raise StakeError(
                f"{key} cannot be negative", code="invalid_stake_rule", field=f"{field}.{key}"
            )
        return money

    if kind == "none":
        return NoStake()
    if kind == "flat":
        return FlatStake(amount("amount"))
    base = amount("base")
    minimum = amount("minimum", base.currency) if "minimum" in data else None
    if minimum is not None and minimum.currency != base.currency:
        raise StakeError(
            f"minimum is in {minimum.currency}, base in {base.currency}",
            code="currency_mismatch",
            field=f"{field}.minimum",
        )
    raw = data.get("multipliers", {})
    if not isinstance(raw, Mapping):
        raise StakeError(
            "multipliers are a table of GPU family → multiplier",
            code="invalid_stake_rule",
            field=f"{field}.multipliers",
        )
    multipliers = {
        _family(k, f"{field}.multipliers.{k}"): _multiplier(v, f"{field}.multipliers.{k}")
        for k, v in raw.items()
    }
    default = _multiplier(data.get("default_multiplier", 1), f"{field}.default_multiplier")
    return PerGpuStake(base, multipliers, default, minimum)


def stake_rule_to_mapping(rule: StakeRule) -> dict[str, Any]:
    """The inverse of :func:`stake_rule_from_mapping`: plain strings, exact."""
    if isinstance(rule, NoStake):
        return {"kind": "none"}
    if isinstance(rule, FlatStake):
        return {"kind": "flat", "amount": str(rule.amount)}
    out: dict[str, Any] = {
        "kind": "per_gpu",
        "base": str(rule.base),
        "default_multiplier": str(rule.default_multiplier),
        "multipliers": {k: str(v) for k, v in sorted(rule.multipliers.items())},
    }
    if rule.minimum is not None:
        out["minimum"] = str(rule.minimum)
    return out
