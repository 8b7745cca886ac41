"""The market's acceptance of a presented quote, on a service whose clock is set to a time
when the sample collateral is valid (the samples are Phala's; tests/data/tee).

The real sample verifies at that time, and is still refused: its report data binds Phala's
data, not this provider's key and this market's nonce. The success path needs a quote made
for our key, which only TEE hardware can make, so there the quote verification is replaced
by a stand-in verdict whose report data binds the key and nonce; everything after it (the
binding check, the market-signed ``tee.attest``, matching) is the real code."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from pasar.core.errors import PasarError
from pasar.core.presets import builtin_preset
from pasar.core.private_part import order_fields
from pasar.core.tee import MAX_ATTESTATION_MS, nonce_message
from pasar.crypto.envelope import sign, verify
from pasar.crypto.identity import Identity
from pasar.market import attestations
from pasar.market.service import MarketService
from pasar.market.store import SqlStore
from pasar.tee.binding import report_data_for
from pasar.tee.verify import Verdict, collateral_issued, verify_quote

MARKET = Identity.from_seed(bytes(32))
DATA = Path(__file__).resolve().parents[2] / "data" / "tee"
QUOTE = (DATA / "tdx_quote").read_bytes()
COLLATERAL = (DATA / "tdx_quote_collateral.json").read_text()
VALID_AT = collateral_issued(COLLATERAL) + 3600  # the collateral is valid then (README)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def service_at(tmp_path: Path, now_ms: int) -> MarketService:
    return MarketService(
        store=SqlStore(f"sqlite:///{tmp_path / 'market.db'}"),
        identity=MARKET,
        preset=builtin_preset("pasar"),
        clock=Clock(now_ms),
        devnet=True,
    )


def submit(service: MarketService, who: Identity, **body: Any) -> dict[str, Any]:
    now = service.clock()
    envelope = sign(body, who, market=MARKET.account_id, now_ms=now)
    return dict(service.submit(verify(envelope, market=MARKET.account_id, now_ms=now)).result)


def registered(service: MarketService) -> Identity:
    who = Identity.generate()
    submit(
        service,
        who,
        type="provider.register",
        inventory={"gpus": [], "cpus": 4, "memory_gb": 8, "disk_gb": 50},
        asks={"cpu_core": "0.01 USDC"},
    )
    return who


def presented(service: MarketService, who: Identity, quote: bytes = QUOTE) -> dict[str, Any]:
    issued = service.clock()
    return {
        "type": "tee.present",
        "provider": who.account_id,
        "quote": base64.b64encode(quote).decode(),
        "collateral": COLLATERAL,
        "nonce": MARKET.sign(nonce_message(who.account_id, issued)).hex(),
        "nonce_issued_at": issued,
    }


def test_a_real_sample_verifies_at_its_time_but_binds_no_key_of_ours(tmp_path: Path) -> None:
    service = service_at(tmp_path, VALID_AT * 1000)
    who = registered(service)
    with pytest.raises(PasarError) as err:
        attestations.accept(service, presented(service, who), who.account_id)
    assert err.value.code == "tee_wrong_nonce"  # verification passed; the binding did not
    assert service.state.attestations == {}


def test_the_same_sample_a_year_later_is_refused_as_expired(tmp_path: Path) -> None:
    service = service_at(tmp_path, (VALID_AT + 365 * 86400) * 1000)
    who = registered(service)
    with pytest.raises(PasarError) as err:
        attestations.accept(service, presented(service, who), who.account_id)
    assert err.value.code == "collateral_expired"


def test_a_quote_binding_our_key_and_nonce_is_recorded_and_matched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = service_at(tmp_path, VALID_AT * 1000)
    who, other = registered(service), registered(service)
    body = presented(service, who)
    real = verify_quote(QUOTE, COLLATERAL, VALID_AT)
    ours = report_data_for(who.public_key, bytes.fromhex(body["nonce"])).hex()

    def stand_in(quote: bytes, collateral: str, at: int) -> Verdict:
        assert at == VALID_AT  # the market's clock, in seconds
        return Verdict(**{**real.__dict__, "report_data": ours, "extra": {}})

    monkeypatch.setattr(attestations, "verify_quote", stand_in)
    applied = attestations.accept(service, body, who.account_id)
    assert applied.type == "tee.attest"
    record = service.state.attestations[who.account_id]
    assert record.measurements == real.measurements and record.tcb_status == "UpToDate"
    # until the collateral's expiry, at most a week: then the provider attests again
    assert record.expires_at == min(
        real.collateral_expires_at * 1000, VALID_AT * 1000 + MAX_ATTESTATION_MS
    )
    # a nonce issued to `who` presented for `other` is refused
    with pytest.raises(PasarError) as err:
        attestations.accept(service, {**body, "provider": other.account_id}, other.account_id)
    assert err.value.code == "tee_wrong_nonce"
    # a tee order now matches the attested provider only
    client = Identity.generate()
    submit(service, client, type="faucet", amount="10 USDC")
    spec = {
        "run": "true",
        "resources": {"cpus": 1},
        "max_price_per_hour": "1 USDC",
        "max_duration": 60,
        "verification": "tee",
        "tee": {"mrtd": [real.measurements["mrtd"]]},
    }
    order_id = submit(service, client, type="order.create", **order_fields(spec))["order_id"]
    record_ = service.state.orders[order_id]
    candidates, reasons = service.state.candidates(record_)
    assert [c.id for c in candidates] == [who.account_id]
    assert "no TEE attestation" in reasons[other.account_id]
    # the log replays to the same attestations (what an audit does)
    assert service.recover() >= 4
    assert service.state.attestations[who.account_id] == record


def test_malformed_bodies_are_refused_with_the_field(tmp_path: Path) -> None:
    service = service_at(tmp_path, VALID_AT * 1000)
    who = registered(service)
    with pytest.raises(PasarError) as err:
        attestations.accept(service, {"type": "tee.present"}, who.account_id)
    assert err.value.code == "invalid_attestation" and err.value.status == 422
    with pytest.raises(PasarError) as err:
        attestations.accept(service, presented(service, Identity.generate()), who.account_id)
    assert err.value.code == "path_mismatch"
