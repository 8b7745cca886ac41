"""Presets: every shipped network loads, builds its mechanisms, and settles a lease exactly as
computed by hand from its published fees."""

from __future__ import annotations

import pytest

from pasar.core.accounts import RESERVE, TREASURY, LedgerAccount
from pasar.core.ledger import Ledger
from pasar.core.money import Money
from pasar.core.presets import (
    BUILTIN_PRESETS,
    PresetError,
    builtin_preset,
    parse_preset,
    preset_source,
)
from pasar.core.pricing import MECHANISM_NAMES

CLIENT, PROVIDER = "client-a", "provider-b"


def usdc(micros: int) -> Money:
    return Money(micros, "USDC")


@pytest.mark.parametrize("name", BUILTIN_PRESETS)
def test_every_preset_loads_and_builds_its_mechanisms(name: str) -> None:
    preset = builtin_preset(name)
    assert preset.name == name
    assert preset.default_mechanism in preset.allowed_mechanisms
    for mechanism in preset.allowed_mechanisms:
        assert preset.mechanism(mechanism).name == mechanism
    assert preset.fee_schedule().currency == preset.currency
    assert "Sources" in preset_source(name) or name == "pasar"
    assert preset.to_dict()["name"] == name


def test_pasar_allows_every_mechanism_and_defaults_to_book() -> None:
    preset = builtin_preset("pasar")
    assert preset.default_mechanism == "book"
    assert set(preset.allowed_mechanisms) == set(MECHANISM_NAMES)
    assert preset.currency == "USDC"


@pytest.mark.parametrize(
    ("name", "mechanism", "verification"),
    [
        ("akash", "auction", "receipt"),
        ("ionet", "book", "receipt"),
        ("render", "performance", "approve"),
        ("gensyn", "book", "pol"),  # proof of learning (issue 16)
        ("aethir", "tender", "replicate:0.1"),
        ("phala", "stake", "tee"),
    ],
)
def test_network_defaults(name: str, mechanism: str, verification: str) -> None:
    preset = builtin_preset(name)
    assert preset.default_mechanism == mechanism
    assert preset.verification.default == verification


def test_network_specific_facts() -> None:
    akash = builtin_preset("akash")
    assert akash.bid_deposit == Money.parse("0.5 USDC")
    assert akash.audited_attributes
    assert str(akash.fee_schedule("AKT").take_rate) == "1/25"  # 4% on the native token
    ionet = builtin_preset("ionet")
    assert ionet.timing.uptime_block_s == 3600
    assert ionet.timing.capacity_check_interval_s == 3600
    aethir = builtin_preset("aethir")
    assert aethir.timing.heartbeat_interval_s == 60
    assert aethir.timing.capacity_check_interval_s == 900
    render = builtin_preset("render")
    assert render.verification.max_reruns == 3


# One lease for every network: 10 USDC in escrow, 3.6 USDC/h, 1800 heartbeat-verified seconds,
# so the work cost 1.8 USDC. Expected (payout, treasury, reserve, refund) in micro-units,
# computed by hand from each preset's fees:
#   pasar  2% take, 1/4 of fees to reserve: take 36_000 -> reserve 9_000, treasury 27_000
#   akash  20% take on USDC: 360_000
#   ionet  2% take 36_000 + 0.25% provider 4_500 + 0.25% client 4_500 (on top, from escrow)
#   render 5% take: 90_000
#   gensyn, phala: no fees
#   aethir 20% per session: 360_000
HAND_COMPUTED = {
    "pasar": (1_764_000, 27_000, 9_000, 8_200_000),
    "akash": (1_440_000, 360_000, 0, 8_200_000),
    "ionet": (1_759_500, 45_000, 0, 8_195_500),
    "render": (1_710_000, 90_000, 0, 8_200_000),
    "gensyn": (1_800_000, 0, 0, 8_200_000),
    "aethir": (1_440_000, 360_000, 0, 8_200_000),
    "phala": (1_800_000, 0, 0, 8_200_000),
}


@pytest.mark.parametrize("name", BUILTIN_PRESETS)
def test_settle_the_same_lease_under_every_preset(name: str) -> None:
    preset = builtin_preset(name)
    ledger = Ledger()
    ledger.mint(CLIENT, usdc(10_000_000))
    ledger.escrow_order(CLIENT, "order-1", usdc(10_000_000))
    ledger.escrow_to_lease("order-1", "lease-1")
    settlement = ledger.settle(
        "lease-1",
        client=CLIENT,
        provider=PROVIDER,
        billed_ms=1_800_000,
        price_per_hour=usdc(3_600_000),
        fees=preset.fee_schedule(),
    )
    payout, treasury, reserve, refund = HAND_COMPUTED[name]
    assert settlement.provider_payout == usdc(payout)
    assert settlement.treasury == usdc(treasury)
    assert settlement.reserve == usdc(reserve)
    assert settlement.refund == usdc(refund)
    assert ledger.balance(LedgerAccount.earnings(PROVIDER), "USDC") == usdc(payout)
    assert ledger.balance(TREASURY, "USDC") == usdc(treasury)
    assert ledger.balance(RESERVE, "USDC") == usdc(reserve)
    assert ledger.balance(LedgerAccount.client(CLIENT), "USDC") == usdc(refund)
    # conservation: everything minted is still somewhere
    assert payout + treasury + reserve + refund == 10_000_000
    assert ledger.circulating("USDC") == usdc(10_000_000)


def test_akash_native_token_take_is_4_percent() -> None:
    fees = builtin_preset("akash").fee_schedule("AKT")
    charges = fees.charges(Money(10_000_000, "AKT"), Money(1_800_000, "AKT"))
    assert charges.take_fee == Money(72_000, "AKT")
    assert charges.provider_payout == Money(1_728_000, "AKT")


def test_mechanism_not_allowed_names_the_alternatives() -> None:
    with pytest.raises(PresetError) as err:
        builtin_preset("akash").mechanism("book")
    assert err.value.code == "mechanism_not_allowed"
    assert err.value.field == "pricing"
    assert "auction" in (err.value.hint or "")


def test_unknown_preset_suggests_the_nearest() -> None:
    with pytest.raises(PresetError) as err:
        builtin_preset("akahs")
    assert "akash" in (err.value.hint or "")


MINIMAL = """
name = "mini"
currency = "USDC"
[pricing]
default = "book"
[fees.USDC]
take_rate = "1%"
"""


def test_minimal_preset_gets_documented_defaults() -> None:
    preset = parse_preset(MINIMAL)
    assert preset.allowed_mechanisms == ("book",)
    assert preset.timing.heartbeat_interval_s == 30
    assert preset.verification.default == "receipt"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (MINIMAL + "\nfoo = 1\n", "foo"),
        (MINIMAL.replace('take_rate = "1%"', "take_rate = 0.01"), "take_rate"),
        (MINIMAL + "[timing]\nheartbeat_intervl_s = 3\n", "timing.heartbeat_intervl_s"),
        (MINIMAL.replace('default = "book"', 'default = "bazaar"'), "pricing.default"),
        (MINIMAL + "[verification]\ncheckers = 2\n", "verification.checkers"),
        (MINIMAL + '[verification]\ndefault = "replicat:0.1"\n', "verification.default"),
        (MINIMAL.replace("[fees.USDC]", "[fees.AKT]"), "fees.USDC"),
        (MINIMAL + "[pricing.auction]\nsecond_price = true\n", None),
        (MINIMAL + "[pricing.auction]\nsecond_prize = true\n", "second_prize"),
    ],
)
def test_bad_presets_name_the_field(text: str, field: str | None) -> None:
    if field is None:  # a valid table for a mechanism that is not allowed is harmless
        parse_preset(text)
        return
    with pytest.raises(Exception) as err:
        parse_preset(text)
    assert getattr(err.value, "field", None) == field, err.value


def test_not_toml_is_a_preset_error() -> None:
    with pytest.raises(PresetError):
        parse_preset("name = [")
