"""``tee.attest`` and ``verification: tee`` in the state machine (pure): only the market records
attestations, only for a fresh nonce it signed; ``tee`` orders match only attested providers
whose measurements the spec pins, and are refused, nothing escrowed, where none is attested."""

from __future__ import annotations

from typing import Any

import pytest
from test_state import (
    ALICE,
    MARKET,
    P1,
    P2,
    SPEC,
    T0,
    conserved,
    make_state,
    market,
    register,
    send,
)

from pasar.core.accounts import LedgerAccount
from pasar.core.errors import PasarError
from pasar.core.private_part import order_fields
from pasar.core.state import MarketState
from pasar.core.tee import MAX_ATTESTATION_MS, NONCE_TTL_MS, nonce_message

MRTD = "91eb2b44d141d4ec" * 6
OTHER = "00" * 48
HOUR = 3600 * 1000


def attest_body(provider: str, issued: int, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "tee.attest",
        "provider": provider,
        "tee": "TDX",
        "tcb_status": "UpToDate",
        "advisories": [],
        "measurements": {"mrtd": MRTD, **{f"rtmr{i}": OTHER for i in range(4)}},
        "quote_sha256": "ab" * 32,
        "expires_at": issued + 30 * 24 * HOUR,
        "nonce": MARKET.sign(nonce_message(provider, issued)).hex(),
        "nonce_issued_at": issued,
    }
    body.update(over)
    return body


def attest(state: MarketState, provider: str, at: int, **over: Any) -> dict[str, Any]:
    return market(state, at, **attest_body(provider, at - 1000, **over))


def tee_market() -> MarketState:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpu_ask="0.05")  # the cheapest, never attested
    register(s, P2, cpu_ask="0.10")
    return s


TEE_SPEC = {**SPEC, "verification": "tee"}


def test_a_tee_order_matches_only_the_attested_provider() -> None:
    s = tee_market()
    attest(s, P2, T0 + 10)
    assert s.attestations[P2].tee == "TDX"
    order_id = send(s, ALICE, T0 + 20, type="order.create", **order_fields(TEE_SPEC))["order_id"]
    leases = market(s, T0 + 30, type="match", order_id=order_id, seed=1)["leases"]
    assert [s.leases[x].provider for x in leases] == [P2]  # P1 is cheaper but not attested
    assert "no TEE attestation" in s.orders[order_id].reasons[P1]
    conserved(s)


def test_a_receipt_order_still_takes_everyone() -> None:
    s = tee_market()
    order_id = send(s, ALICE, T0 + 20, type="order.create", **order_fields(SPEC))["order_id"]
    leases = market(s, T0 + 30, type="match", order_id=order_id, seed=1)["leases"]
    assert [s.leases[x].provider for x in leases] == [P1]


def test_without_an_attested_provider_a_tee_order_is_refused_and_nothing_escrowed() -> None:
    s = tee_market()
    with pytest.raises(PasarError) as err:
        send(s, ALICE, T0 + 20, type="order.create", **order_fields(TEE_SPEC))
    assert err.value.code == "tee_unavailable"
    assert "no provider on this market has a valid TEE attestation" in err.value.message
    assert s.orders == {}
    assert s.ledger.balance(LedgerAccount.client(ALICE), "USDC").micros == 10_000_000
    conserved(s)


def test_a_pinned_measurement_that_does_not_match_excludes_with_the_reason() -> None:
    s = tee_market()
    attest(s, P2, T0 + 10)
    pinned = {**TEE_SPEC, "tee": {"mrtd": [OTHER]}}
    with pytest.raises(PasarError) as err:  # nobody has it: refused at creation
        send(s, ALICE, T0 + 20, type="order.create", **order_fields(pinned))
    assert err.value.field == "spec.tee"
    ok = {**TEE_SPEC, "tee": {"mrtd": [MRTD, OTHER]}}
    order_id = send(s, ALICE, T0 + 20, type="order.create", **order_fields(ok))["order_id"]
    assert s.candidates(s.orders[order_id])[0][0].id == P2
    # pinned to an SGX measurement: a TDX provider has none
    sgx = {**TEE_SPEC, "tee": {"mrenclave": ["cd" * 32]}}
    with pytest.raises(PasarError):
        send(s, ALICE, T0 + 21, type="order.create", **order_fields(sgx))


def test_an_expired_attestation_no_longer_counts() -> None:
    s = tee_market()
    attest(s, P2, T0 + 10, expires_at=T0 + HOUR)
    order_id = send(s, ALICE, T0 + 20, type="order.create", **order_fields(TEE_SPEC))["order_id"]
    s.now = T0 + 2 * HOUR  # as the next transaction would see it
    _, reasons = s.candidates(s.orders[order_id])
    assert "expired" in reasons[P2]
    attest(s, P1, T0 + 30, expires_at=T0 + 10**12)
    assert s.attestations[P1].expires_at == T0 + 30 + MAX_ATTESTATION_MS  # capped


def test_only_the_market_records_attestations() -> None:
    s = tee_market()
    with pytest.raises(PasarError) as err:
        send(s, P2, T0 + 10, **attest_body(P2, T0))
    assert err.value.code == "wrong_signer"
    assert s.attestations == {}


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"nonce": MARKET.sign(nonce_message(P1, T0)).hex()}, "tee_wrong_nonce"),  # P1's nonce
        ({"nonce_issued_at": T0 - NONCE_TTL_MS - 1}, "tee_wrong_nonce"),  # stale
        ({"tee": "SEV"}, "tee_unknown_type"),
        ({"measurements": {"mrenclave": OTHER}}, "invalid_attestation"),
        ({"expires_at": T0}, "collateral_expired"),
        ({"quote_sha256": "nothex"}, "invalid_attestation"),
    ],
)
def test_bad_attestations_are_refused_and_change_nothing(over: dict[str, Any], code: str) -> None:
    s = tee_market()
    body = attest_body(P2, T0, **over)
    with pytest.raises(PasarError) as err:
        market(s, T0 + 10, **body)
    assert err.value.code == code
    assert s.attestations == {}


def test_an_attestation_for_an_unregistered_provider_is_refused() -> None:
    s = tee_market()
    with pytest.raises(PasarError) as err:
        attest(s, "prov-9", T0 + 10)
    assert err.value.code == "not_registered"


def test_the_phala_preset_refuses_tee_by_default_but_takes_receipt() -> None:
    s = make_state("phala")
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    with pytest.raises(PasarError) as err:
        send(s, ALICE, T0 + 1, type="order.create", **order_fields(SPEC))  # phala's default is tee
    assert err.value.code == "tee_unavailable"
    receipt = {**SPEC, "verification": "receipt"}
    assert send(s, ALICE, T0 + 2, type="order.create", **order_fields(receipt))["order_id"]
    conserved(s)
