"""The report-data binding. The samples are Phala's quotes, made for Phala's own report data:
no key and nonce of ours can match them, so the check is tested (1) with the samples' OWN report
data (it binds nothing of ours: refused) and (2) with report data built for a key and nonce."""

from __future__ import annotations

import pytest
from tee_samples import sample

from pasar.core.errors import PasarError
from pasar.crypto.identity import Identity
from pasar.tee.binding import binds, check_binding, report_data_for
from pasar.tee.verify import verify_quote

KEY = Identity.from_seed(bytes(32)).public_key
NONCE = bytes(range(64))


def test_the_samples_own_report_data_binds_no_key_of_ours() -> None:
    quote, collateral, at = sample("tdx_quote")
    theirs = verify_quote(quote, collateral, at).report_data  # the sample's own report data
    with pytest.raises(PasarError) as err:
        check_binding(theirs, KEY, NONCE)
    assert err.value.code == "tee_wrong_nonce"


@pytest.mark.parametrize("digest", ["sha512", "sha256"])
def test_report_data_for_a_key_and_nonce_binds_them_only(digest: str) -> None:
    data = report_data_for(KEY, NONCE, digest=digest)
    assert len(data) == 64
    assert binds(data, KEY, NONCE)
    check_binding(data.hex(), KEY, NONCE)
    assert not binds(data, KEY, NONCE[:-1] + b"\x00")  # another nonce
    other = Identity.from_seed(b"\x01" * 32).public_key
    assert not binds(data, other, NONCE)  # another provider's key


def test_garbage_report_data_is_refused_not_crashed() -> None:
    with pytest.raises(PasarError):
        check_binding("zz", KEY, NONCE)
    assert not binds(b"short", KEY, NONCE)
