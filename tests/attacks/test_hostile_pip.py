"""A hostile client's ``pip:`` requirements: whatever would steer the provider's pip — an
option, an index, a URL, a local path, a direct reference, a marker — is refused by the market
when the order arrives (400 naming ``pip``, with the hint), before any provider sees it, and
no money moves. (The provider-side attacks — a job writing into the shared install, a second
client seeing the first's files, an sdist-only package — are in
tests/integration/test_remote_pip.py, against a real provider.)"""

from __future__ import annotations

from typing import Any

import pytest
from attacklib import FUNDS, Party, assert_money_safe

from money_checks import balances
from pasar.core.errors import PasarError

SMUGGLED = [
    "--extra-index-url https://evil.example/simple",
    "--index-url=https://evil.example/simple",
    "-e git+https://evil.example/repo.git",
    "https://evil.example/pkg-1.0-py3-none-any.whl",
    "/tmp/evil-1.0-py3-none-any.whl",
    "./evil",
    "evil @ https://evil.example/evil.tar.gz",
    'evil; python_version > "3"',
    "evil==1.0 --hash=sha256:00",
]


def test_smuggled_pip_arguments_are_refused_at_the_market(market_server: Any) -> None:
    mallory = Party(market_server)
    mallory.fund()
    before = balances(market_server.url)
    for text in SMUGGLED:
        with pytest.raises(PasarError) as err:
            mallory.launch(run="python -c 'import evil'", pip=["numpy", text])
        assert err.value.status == 400 and err.value.field == "pip", text
        assert "--only-binary" in (err.value.hint or "")
    with pytest.raises(PasarError) as err:  # not a list: a bare string is not split
        mallory.launch(run="true", pip="numpy --extra-index-url https://evil.example")
    assert err.value.status == 400 and err.value.field == "pip"
    assert balances(market_server.url) == before  # nothing escrowed
    assert mallory.get(f"/v1/accounts/{mallory.id}")["balance"] == f"{FUNDS.split()[0]}.00 USDC"
    assert_money_safe(market_server.url)
