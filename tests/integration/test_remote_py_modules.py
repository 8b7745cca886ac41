"""``@pasar.remote(py_modules=[helper])`` against a real market and a real provider's sandbox:
a helper module from a folder only the client has (not installed on the provider, not on
its path) is imported by the remote function and works there."""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_provider import PRICE, Client, conserved

if TYPE_CHECKING:
    from conftest import MarketProcess

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")

HELPER = "FACTOR = 3\n\ndef scale(x):\n    return FACTOR * x\n"


def test_a_local_helper_module_works_remotely_with_py_modules(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Path
) -> None:
    import pasar

    local = tmp_path / "client_only"
    local.mkdir()
    (local / "pasar_e2e_helper.py").write_text(HELPER)
    sys.path.insert(0, str(local))
    try:
        helper = importlib.import_module("pasar_e2e_helper")
        spawn_provider(market_server.url, tmp_path / "p1", *PRICE)
        client = pasar.Client(market_server.url, home=tmp_path / "client")
        client.faucet("10 USDC")

        def use_helper(x: int) -> int:
            return helper.scale(x) + 1

        shipped = pasar.remote(cpus=1, max_price="0.50 USDC", client=client, py_modules=[helper])
        assert shipped(use_helper).remote(5) == 16
        assert shipped(use_helper).map([1, 2]) == [4, 7]
        # the same function without py_modules refers to a module the provider lacks
        bare = pasar.remote(cpus=1, max_price="0.50 USDC", client=client)(use_helper)
        with pytest.raises(Exception, match="pasar_e2e_helper"):
            bare.remote(5)
    finally:
        sys.path.remove(str(local))
        sys.modules.pop("pasar_e2e_helper", None)
    conserved(Client(market_server), "10 USDC")
