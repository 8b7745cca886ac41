"""Verifying the real sample quotes offline: at a time their collateral is valid they verify
with the status and advisories dcap-qvl reports; tampered, outdated, expired or unknown-type
quotes are refused with a clear error."""

from __future__ import annotations

import pytest
from tee_samples import sample

from pasar.core.errors import PasarError
from pasar.tee.verify import collateral_expiry, tee_type, verify_quote


def test_tdx_sample_verifies_up_to_date_with_its_measurements() -> None:
    quote, collateral, at = sample("tdx_quote")
    verdict = verify_quote(quote, collateral, at)
    assert verdict.tee == "TDX"
    assert verdict.tcb_status == "UpToDate"
    assert verdict.advisories == ()
    assert set(verdict.measurements) == {"mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"}
    assert verdict.measurements["mrtd"].startswith("91eb2b44d141d4ec")
    assert len(bytes.fromhex(verdict.report_data)) == 64
    assert verdict.collateral_expires_at > at


def test_sgx_sample_verifies_with_advisories() -> None:
    quote, collateral, at = sample("sgx_quote")
    verdict = verify_quote(quote, collateral, at)
    assert verdict.tee == "SGX"
    assert verdict.tcb_status == "ConfigurationAndSWHardeningNeeded"
    assert verdict.advisories == ("INTEL-SA-00289", "INTEL-SA-00615")
    assert set(verdict.measurements) == {"mrenclave", "mrsigner"}


def test_a_flipped_byte_is_refused() -> None:
    quote, collateral, at = sample("tdx_quote")
    tampered = bytearray(quote)
    tampered[200] ^= 0x01
    with pytest.raises(PasarError) as err:
        verify_quote(bytes(tampered), collateral, at)
    assert err.value.code == "quote_invalid"
    assert "signature" in err.value.message


def test_outdated_tcb_is_refused() -> None:
    quote, collateral, at = sample("tdx_quote_outdated")
    with pytest.raises(PasarError) as err:
        verify_quote(quote, collateral, at)
    assert err.value.code == "tcb_out_of_date"


def test_a_status_outside_the_accepted_set_is_refused() -> None:
    quote, collateral, at = sample("sgx_quote")  # verifies, but not UpToDate
    with pytest.raises(PasarError) as err:
        verify_quote(quote, collateral, at, accept=frozenset({"UpToDate"}))
    assert err.value.code == "tcb_out_of_date"
    assert "INTEL-SA-00289" in err.value.message


def test_expired_collateral_is_never_accepted() -> None:
    quote, collateral, _ = sample("tdx_quote")
    after = collateral_expiry(collateral) + 1
    with pytest.raises(PasarError) as err:
        verify_quote(quote, collateral, after)
    assert err.value.code == "collateral_expired"
    today = 1_764_900_000  # December 2025: every sample's collateral is long expired
    with pytest.raises(PasarError) as err:
        verify_quote(quote, collateral, today)
    assert err.value.code == "collateral_expired"


def test_before_the_collateral_was_issued_is_refused() -> None:
    quote, collateral, at = sample("tdx_quote")
    with pytest.raises(PasarError):
        verify_quote(quote, collateral, at - 400 * 86400)


def test_unknown_tee_type_is_named() -> None:
    quote, collateral, at = sample("tdx_quote")
    sev = bytearray(quote)
    sev[4:8] = (0x02).to_bytes(4, "little")
    with pytest.raises(PasarError) as err:
        verify_quote(bytes(sev), collateral, at)
    assert err.value.code == "tee_unknown_type"
    assert "0x02" in err.value.message
    with pytest.raises(PasarError, match="shorter"):
        tee_type(b"\x04\x00")


def test_collateral_that_is_not_json_is_refused() -> None:
    quote, _, at = sample("tdx_quote")
    with pytest.raises(PasarError) as err:
        verify_quote(quote, "{not json", at)
    assert err.value.code == "collateral_invalid"
    assert err.value.field == "collateral"


def test_without_dcap_qvl_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    quote, collateral, at = sample("tdx_quote")
    monkeypatch.setitem(sys.modules, "dcap_qvl", None)  # an import of it now fails
    with pytest.raises(PasarError) as err:
        verify_quote(quote, collateral, at)
    assert err.value.code == "tee_unavailable"
    assert "pasar[tee]" in (err.value.hint or "")
