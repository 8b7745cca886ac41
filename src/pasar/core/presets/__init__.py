"""Network presets: the rules of one network as data (mechanism, fees, stake, timings, checks).

A preset is a TOML file in this folder, with its sources in comments. :func:`parse_preset` is
pure (text in, :class:`Preset` out) so a market can also load an operator's own file;
:func:`builtin_preset` reads the files shipped with pasar. Every key is known: a misspelt key
is an error naming it, because a fee silently read as zero is lost money.

Layout of a preset file::

    name = "akash"
    description = "..."
    currency = "USDC"                 # what orders escrow and the devnet faucet mints
    [pricing]
    default = "auction"               # used when a job spec names no `pricing`
    allowed = ["auction"]             # what a spec may ask for
    [pricing.auction]                 # parameters, one table per mechanism (optional)
    second_price = false
    [fees.USDC]                       # one schedule per accepted currency (core/fees.py)
    take_rate = "20%"
    [stake]                           # minimum stake to bid (core/stake.py)
    kind = "none"
    [timing]
    heartbeat_interval_s = 30
    grace_intervals = 3
    auction_window_ms = 2000
    capacity_check_interval_s = 0     # 0 = no capacity challenges
    uptime_block_s = 0                # 0 = bill per heartbeat-verified second, no blocks
    unbonding_s = 0                   # unstaked money stays slashable this long
    [verification]
    default = "receipt"
    checkers = 3                      # 2N+1 majority size for disputes
    slash_reward_rate = "1/2"         # share of a slash paid to whoever proved the fraud
    approve_window_s = 0              # Render: client approves results; 0 = no approval step
    max_reruns = 0                    # Render: free re-runs on another node before giving up
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from importlib import resources
from typing import Any

from pasar.core.errors import PasarError
from pasar.core.fees import FeeSchedule, FeeTable
from pasar.core.money import Money, parse_rate
from pasar.core.pricing import MECHANISM_NAMES, build_mechanism
from pasar.core.pricing.base import Mechanism
from pasar.core.reputation import ReputationWeights
from pasar.core.spec import normalize_verification
from pasar.core.stake import StakeRule, stake_rule_from_mapping, stake_rule_to_mapping
from pasar.core.verify import VerificationPolicy, build_policy

BUILTIN_PRESETS: tuple[str, ...] = (
    "pasar",
    "akash",
    "ionet",
    "render",
    "gensyn",
    "aethir",
    "phala",
)
DEFAULT_PRESET = "pasar"


class PresetError(PasarError):
    """A preset file that is malformed, names unknown keys, or an order asking for a mechanism
    the network does not allow."""


def _fail(message: str, field: str, hint: str | None = None) -> PresetError:
    return PresetError(message, code="invalid_preset", field=field, hint=hint)


def _table(data: Mapping[str, Any], key: str, where: str, known: set[str]) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise _fail(f"{where} must be a table", where)
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise _fail(
            f"unknown key {unknown[0]!r} in [{where}]",
            f"{where}.{unknown[0]}",
            "known keys: " + ", ".join(sorted(known)),
        )
    return dict(value)


def _int(data: Mapping[str, Any], key: str, where: str, default: int, minimum: int = 0) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(f"{where}.{key} must be a whole number >= {minimum}, got {value!r}",
                    f"{where}.{key}")  # fmt: skip
    return value


@dataclass(frozen=True)
class Timing:
    """The network's clocks: heartbeats (proof of time-lock), auctions, capacity checks."""

    heartbeat_interval_s: int = 30
    grace_intervals: int = 3
    auction_window_ms: int = 2000
    capacity_check_interval_s: int = 0
    uptime_block_s: int = 0
    unbonding_s: int = 0  # how long unstaked money stays slashable before it can be withdrawn
    # liveness challenges (core/liveness_handlers.py): how long a suspected provider has to
    # answer; 0 turns them off (a lease is then lost only after ``grace_intervals``)
    challenge_deadline_ms: int = 0

    _KEYS = frozenset(
        {
            "challenge_deadline_ms",
            "heartbeat_interval_s",
            "grace_intervals",
            "auction_window_ms",
            "capacity_check_interval_s",
            "uptime_block_s",
            "unbonding_s",
        }
    )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Timing:
        t = _table(data, "timing", "timing", set(cls._KEYS))
        return cls(
            heartbeat_interval_s=_int(t, "heartbeat_interval_s", "timing", 30, 1),
            grace_intervals=_int(t, "grace_intervals", "timing", 3, 1),
            auction_window_ms=_int(t, "auction_window_ms", "timing", 2000, 1),
            capacity_check_interval_s=_int(t, "capacity_check_interval_s", "timing", 0),
            uptime_block_s=_int(t, "uptime_block_s", "timing", 0),
            unbonding_s=_int(t, "unbonding_s", "timing", 0),
            challenge_deadline_ms=_int(t, "challenge_deadline_ms", "timing", 0),
        )


@dataclass(frozen=True)
class Verification:
    """Verification defaults: the policy a spec gets when it names none, and dispute rules.

    ``check_fee_rate`` is what a verifier earns per check, as a share of what the checked
    lease's work cost (1: what its provider was paid — a re-run is the same work); an order
    escrows room for its ``checkers`` on top of each lease, and gets back what no check used.
    ``verifier_stake`` is the least a verifier must have staked to be given checks (so a wrong
    verdict has something to slash);
    ``slash_rate`` is the share of the cheat's slashable stake that proven fraud takes;
    ``check_deadline_s`` is how long a verifier has for a check beyond the job's own
    ``max_duration`` before the check goes to another verifier. ``challenge_window_s`` is how
    long after a result settles a staked verifier may challenge it (a whistleblower),
    posting ``whistle_bond``.
    ``pol_top`` (Q), ``pol_random`` (r) and ``pol_segment`` (k) are proof of learning's
    sample: the Q segments of at most k steps with the largest update per epoch and r random
    ones are replayed (a spec may raise Q and r); a pol check earns ``pol_fee_rate`` of the
    lease's work cost (:mod:`pasar.core.verify.pol`).
    """

    default: str = "receipt"
    checkers: int = 3
    slash_reward_rate: Fraction = Fraction(1, 2)
    approve_window_s: int = 0
    max_reruns: int = 0
    check_fee_rate: Fraction = Fraction(1)
    verifier_stake: Money | None = None
    slash_rate: Fraction = Fraction(1, 2)
    check_deadline_s: int = 120
    challenge_window_s: int = 0
    whistle_bond: Money | None = None
    pol_top: int = 1
    pol_random: int = 8
    pol_segment: int = 10
    pol_fee_rate: Fraction = Fraction(1, 10)

    _KEYS = frozenset({"default", "checkers", "slash_reward_rate", "approve_window_s",
                       "max_reruns", "check_fee_rate", "verifier_stake", "slash_rate",
                       "check_deadline_s", "challenge_window_s",
                       "whistle_bond", "pol_top", "pol_random", "pol_segment",
                       "pol_fee_rate"})  # fmt: skip

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], currency: str = "USDC") -> Verification:
        v = _table(data, "verification", "verification", set(cls._KEYS))
        checkers = _int(v, "checkers", "verification", 3, 1)
        if checkers % 2 == 0:
            raise _fail(
                f"verification.checkers must be odd (2N+1 for a majority), got {checkers}",
                "verification.checkers",
            )
        rates = {
            key: parse_rate(v.get(key, default), field=f"verification.{key}")
            for key, default in (
                ("slash_reward_rate", "1/2"),
                ("check_fee_rate", "1"),
                ("slash_rate", "1/2"),
                ("pol_fee_rate", "1/10"),
            )
        }
        for key, rate in rates.items():
            if not 0 <= rate <= 1:
                raise _fail(f"{key} must be in [0, 1]", f"verification.{key}")

        def money(key: str) -> Money | None:
            raw = v.get(key)
            if raw is None:
                return None
            amount = Money.parse(raw, default_currency=currency, field=f"verification.{key}")
            if amount.currency != currency or amount.is_negative():
                raise _fail(f"verification.{key} must be a non-negative amount in {currency}",
                            f"verification.{key}")  # fmt: skip
            return amount

        return cls(
            default=normalize_verification(v.get("default", "receipt"),
                                           field="verification.default"),
            checkers=checkers,
            slash_reward_rate=rates["slash_reward_rate"],
            approve_window_s=_int(v, "approve_window_s", "verification", 0),
            max_reruns=_int(v, "max_reruns", "verification", 0),
            check_fee_rate=rates["check_fee_rate"],
            verifier_stake=money("verifier_stake"),
            slash_rate=rates["slash_rate"],
            check_deadline_s=_int(v, "check_deadline_s", "verification", 120, 1),
            challenge_window_s=_int(v, "challenge_window_s", "verification", 0),
            whistle_bond=money("whistle_bond"),
            pol_top=_int(v, "pol_top", "verification", 1),
            pol_random=_int(v, "pol_random", "verification", 8),
            pol_segment=_int(v, "pol_segment", "verification", 10, 1),
            pol_fee_rate=rates["pol_fee_rate"],
        )  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """One network's rules. Build it with :func:`parse_preset` or :func:`builtin_preset`."""

    name: str
    description: str
    currency: str
    default_mechanism: str
    allowed_mechanisms: tuple[str, ...]
    mechanism_params: Mapping[str, Mapping[str, Any]]
    fees: FeeTable
    stake_rule: StakeRule
    bid_deposit: Money | None
    audited_attributes: bool
    reputation: ReputationWeights
    timing: Timing
    verification: Verification

    def mechanism(self, requested: str | None = None) -> Mechanism:
        """The mechanism for an order: the one its spec asked for, or the network's default."""
        name = requested or self.default_mechanism
        if name not in self.allowed_mechanisms:
            raise PresetError(
                f"the {self.name} network does not offer {name!r} pricing",
                code="mechanism_not_allowed",
                field="pricing",
                hint="allowed here: "
                + ", ".join(self.allowed_mechanisms)
                + " (or leave `pricing` out for the network's default)",
            )
        built = self._mechanisms.get(name)
        if built is None:
            built = build_mechanism(name, self.mechanism_params.get(name, {}), self.stake_rule)
            self._mechanisms[name] = built
        return built

    @cached_property
    def _mechanisms(self) -> dict[str, Mechanism]:
        """Each mechanism built once: the state asks the order's mechanism on every bid, view
        and clearing, and building one parses its preset table (a preset never changes, and a
        mechanism is immutable, so one instance serves every caller)."""
        return {}

    def verification_policy(self, requested: str | None = None) -> VerificationPolicy:
        """The verification policy for an order: the one its spec names, or the network's
        default; one this market cannot carry out yet is refused (422), never ignored."""
        return build_policy(requested or self.verification.default, self.verification)

    def fee_schedule(self, currency: str | None = None) -> FeeSchedule:
        return self.fees.for_currency(currency or self.currency)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (exact: rates as fractions, money as text)."""
        return {
            "name": self.name,
            "description": self.description,
            "currency": self.currency,
            "pricing": {
                "default": self.default_mechanism,
                "allowed": list(self.allowed_mechanisms),
                **{k: dict(v) for k, v in self.mechanism_params.items()},
            },
            "fees": self.fees.to_mapping(),
            "stake": stake_rule_to_mapping(self.stake_rule),
            "bid_deposit": self.bid_deposit.to_json() if self.bid_deposit else None,
            "audited_attributes": self.audited_attributes,
            "reputation": {k: str(v) for k, v in self.reputation.to_mapping().items()},
            "timing": {k: getattr(self.timing, k) for k in sorted(Timing._KEYS)},
            "verification": {
                "default": self.verification.default,
                "checkers": self.verification.checkers,
                "slash_reward_rate": str(self.verification.slash_reward_rate),
                "approve_window_s": self.verification.approve_window_s,
                "max_reruns": self.verification.max_reruns,
                "check_fee_rate": str(self.verification.check_fee_rate),
                "verifier_stake": _money_json(self.verification.verifier_stake),
                "slash_rate": str(self.verification.slash_rate),
                "check_deadline_s": self.verification.check_deadline_s,
                "challenge_window_s": self.verification.challenge_window_s,
                "whistle_bond": _money_json(self.verification.whistle_bond),
                "pol_top": self.verification.pol_top,
                "pol_random": self.verification.pol_random,
                "pol_segment": self.verification.pol_segment,
                "pol_fee_rate": str(self.verification.pol_fee_rate),
            },
        }


def _money_json(amount: Money | None) -> str | None:
    return amount.to_json() if amount is not None else None


_TOP_KEYS = {
    "name", "description", "currency", "pricing", "fees", "stake", "bid_deposit",
    "audited_attributes", "reputation", "timing", "verification",
}  # fmt: skip


def _pricing(data: Mapping[str, Any]) -> tuple[str, tuple[str, ...], dict[str, dict[str, Any]]]:
    p = _table(data, "pricing", "pricing", {"default", "allowed", *MECHANISM_NAMES})
    default = p.get("default")
    if default not in MECHANISM_NAMES:
        raise _fail(
            f"pricing.default must name a mechanism, got {default!r}",
            "pricing.default",
            "one of: " + ", ".join(MECHANISM_NAMES),
        )
    allowed_raw = p.get("allowed", [default])
    if not isinstance(allowed_raw, list) or not allowed_raw:
        raise _fail("pricing.allowed must be a non-empty list", "pricing.allowed")
    for name in allowed_raw:
        if name not in MECHANISM_NAMES:
            raise _fail(f"unknown mechanism {name!r} in pricing.allowed", "pricing.allowed",
                        "one of: " + ", ".join(MECHANISM_NAMES))  # fmt: skip
    if default not in allowed_raw:
        raise _fail("pricing.default must be one of pricing.allowed", "pricing.allowed")
    params = {k: dict(v) for k, v in p.items() if k in MECHANISM_NAMES}
    return default, tuple(allowed_raw), params


def parse_preset(text: str, *, source: str = "<preset>") -> Preset:
    """Read a preset from TOML text; every mechanism it allows is built once to check it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{source}: not valid TOML: {exc}", code="invalid_preset") from exc
    unknown = sorted(k for k in data if k not in _TOP_KEYS)
    if unknown:
        raise _fail(f"{source}: unknown key {unknown[0]!r}", unknown[0],
                    "known keys: " + ", ".join(sorted(_TOP_KEYS)))  # fmt: skip
    name = data.get("name")
    currency = data.get("currency")
    if not isinstance(name, str) or not name:
        raise _fail(f"{source}: a preset needs a name", "name")
    if not isinstance(currency, str):
        raise _fail(f"{source}: a preset needs its settlement currency", "currency")
    Money.zero(currency)  # validates the code
    default, allowed, params = _pricing(data)
    fees = FeeTable.from_mapping(data.get("fees", {}))
    if currency not in fees.currencies:
        raise _fail(
            f"{source}: no fee schedule for the settlement currency {currency}",
            f"fees.{currency}",
            f"add a [fees.{currency}] table (it may be empty)",
        )
    stake_rule = stake_rule_from_mapping(data.get("stake", {"kind": "none"}),
                                         default_currency=currency)  # fmt: skip
    deposit_raw = data.get("bid_deposit")
    deposit = (
        None
        if deposit_raw is None
        else Money.parse(deposit_raw, default_currency=currency, field="bid_deposit")
    )
    audited = data.get("audited_attributes", False)
    if not isinstance(audited, bool):
        raise _fail("audited_attributes must be true or false", "audited_attributes")
    preset = Preset(
        name=name,
        description=str(data.get("description", "")),
        currency=currency,
        default_mechanism=default,
        allowed_mechanisms=allowed,
        mechanism_params=params,
        fees=fees,
        stake_rule=stake_rule,
        bid_deposit=deposit,
        audited_attributes=audited,
        reputation=ReputationWeights.from_mapping(data.get("reputation", {})),
        timing=Timing.from_mapping(data),
        verification=Verification.from_mapping(data, currency),
    )
    for mechanism in sorted({*allowed, *params}):  # fail now, not at the first order
        build_mechanism(mechanism, params.get(mechanism, {}), stake_rule)
    return preset


def builtin_preset(name: str) -> Preset:
    """One of the presets shipped with pasar (:data:`BUILTIN_PRESETS`)."""
    if name not in BUILTIN_PRESETS:
        import difflib

        near = difflib.get_close_matches(name, BUILTIN_PRESETS, n=1)
        raise PresetError(
            f"unknown preset {name!r}",
            code="unknown_preset",
            field="preset",
            hint=(f"did you mean {near[0]!r}? " if near else "")
            + "known presets: "
            + ", ".join(BUILTIN_PRESETS),
        )
    text = resources.files(__package__).joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return parse_preset(text, source=f"{name}.toml")


def preset_source(name: str) -> str:
    """The TOML text of a built-in preset, comments (its sources) included."""
    builtin_preset(name)
    return resources.files(__package__).joinpath(f"{name}.toml").read_text(encoding="utf-8")


__all__ = [
    "BUILTIN_PRESETS",
    "DEFAULT_PRESET",
    "Preset",
    "PresetError",
    "Timing",
    "Verification",
    "builtin_preset",
    "parse_preset",
    "preset_source",
]
