"""Hostile TEE attestations on a real market (``--preset phala``, 127.0.0.1).

No TEE exists on the machine these tests run on, and the sample quotes (Phala's, in
tests/data/tee) bind Phala's report data, not our keys, and carry collateral that expired long
before the market's clock: a real provider here can only be refused. Each refusal is a 4xx with
the one error shape, nothing is recorded, no money moves, and ``pasar audit`` agrees. A tee job
on a market without an attested provider is refused before anything is escrowed, while
``verification: receipt`` still works there.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from attacklib import Party, assert_money_safe

from pasar.core.errors import PasarError

DATA = Path(__file__).resolve().parents[1] / "data" / "tee"
QUOTE = (DATA / "tdx_quote").read_bytes()
COLLATERAL = (DATA / "tdx_quote_collateral.json").read_text()
SPEC: dict[str, Any] = {"run": "true", "resources": {"cpus": 1}, "max_price_per_hour": "1 USDC"}


@pytest.fixture
def phala(spawn_market: Any, tmp_path: Path) -> Any:
    return spawn_market(tmp_path / "phala", "--preset", "phala")


def provider(market: Any) -> Party:
    p = Party(market)
    p.post(
        "/v1/providers",
        type="provider.register",
        inventory={"gpus": [], "cpus": 4, "memory_gb": 8, "disk_gb": 10},
        asks={"cpu_core": "0.05"},
    )
    return p


def nonce(p: Party, of: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = p.get(f"/v1/providers/{of or p.id}/attestation/nonce")
    return answer


def present(p: Party, quote: bytes, issued: dict[str, Any], *, as_: str | None = None) -> Any:
    return p.post(
        f"/v1/providers/{as_ or p.id}/attestation",
        type="tee.present",
        provider=as_ or p.id,
        quote=base64.b64encode(quote).decode(),
        collateral=COLLATERAL,
        nonce=issued["nonce"],
        nonce_issued_at=issued["nonce_issued_at"],
    )


def refused(call: Any) -> PasarError:
    with pytest.raises(PasarError) as err:
        call()
    assert 400 <= err.value.status < 500, err.value.to_dict()
    return err.value


def not_attested(market: Any, provider_id: str) -> None:
    answer = httpx.get(f"{market.url}/v1/providers/{provider_id}/attestation", timeout=10)
    assert answer.status_code == 404, answer.text


def test_hostile_attestations_are_refused_and_nothing_moves(phala: Any) -> None:
    mallory, honest = provider(phala), provider(phala)
    mallory.fund()
    # a nonce issued to another provider
    err = refused(lambda: present(mallory, QUOTE, nonce(mallory, of=honest.id)))
    assert err.code == "tee_wrong_nonce"
    # a forged nonce (not the market's signature)
    forged = {**nonce(mallory), "nonce": "ab" * 64}
    assert refused(lambda: present(mallory, QUOTE, forged)).code == "tee_wrong_nonce"
    # presenting on behalf of another provider
    assert refused(lambda: present(mallory, QUOTE, nonce(honest), as_=honest.id)).status == 403
    # a tampered quote with a fresh nonce
    tampered = bytearray(QUOTE)
    tampered[200] ^= 1
    err = refused(lambda: present(mallory, bytes(tampered), nonce(mallory)))
    assert err.code in {"quote_invalid", "collateral_expired"}
    # the genuine sample: its collateral expired long before the market's clock
    err = refused(lambda: present(mallory, QUOTE, nonce(mallory)))
    assert err.code == "collateral_expired"
    # an unknown TEE type
    sev = bytearray(QUOTE)
    sev[4:8] = (2).to_bytes(4, "little")
    assert refused(lambda: present(mallory, bytes(sev), nonce(mallory))).code == "tee_unknown_type"
    # garbage: not base64, not registered
    bad = {**nonce(mallory)}
    err = refused(
        lambda: mallory.post(
            f"/v1/providers/{mallory.id}/attestation",
            type="tee.present",
            provider=mallory.id,
            quote="%%%",
            collateral=COLLATERAL,
            nonce=bad["nonce"],
            nonce_issued_at=bad["nonce_issued_at"],
        )
    )
    assert err.code == "invalid_quote"
    stranger = Party(phala)
    assert refused(lambda: nonce(stranger)).code == "not_registered"
    for p in (mallory, honest):
        not_attested(phala, p.id)
    assert_money_safe(phala.url)


def test_a_tee_job_without_attested_providers_is_refused_before_any_escrow(phala: Any) -> None:
    provider(phala)
    alice = Party(phala)
    alice.fund()
    before = alice.get(f"/v1/accounts/{alice.id}")
    err = refused(lambda: alice.launch(**SPEC, max_duration="1m", verification="tee"))
    assert err.code == "tee_unavailable"
    assert "no provider on this market has a valid TEE attestation" in err.message
    # phala's default verification is tee: refused alike
    assert refused(lambda: alice.launch(**SPEC, max_duration="1m")).code == "tee_unavailable"
    assert alice.get(f"/v1/accounts/{alice.id}") == before  # nothing escrowed
    # verification: receipt still takes the order on the same market
    assert alice.launch(**SPEC, max_duration="1m", verification="receipt").startswith("o-")
    assert_money_safe(phala.url)
