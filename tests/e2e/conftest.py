"""The integration fixtures (real markets, real sandboxed providers), shared with the CLI tests.

``tests/integration/conftest.py`` is loaded by path under its own module name (the test folders
are not packages, and pytest keeps each folder's ``conftest`` to that folder), and its fixtures
are re-exported here: ``market_server``, ``spawn_market``, ``module_market``, ``spawn_provider``.

``cli_network`` adds one market and one sandboxed provider shared by a whole test module, for
tests that each run several jobs through the CLI.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_NAME = "pasar_integration_conftest"
_PATH = Path(__file__).resolve().parents[1] / "integration" / "conftest.py"


def _load() -> Any:
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


_integration = _load()
MarketLauncher = _integration.MarketLauncher
MarketProcess = _integration.MarketProcess
ProviderLauncher = _integration.ProviderLauncher
ProviderProcess = _integration.ProviderProcess
market_server = _integration.market_server
spawn_market = _integration.spawn_market
module_market = _integration.module_market
spawn_provider = _integration.spawn_provider


@dataclass
class CliNetwork:
    """A devnet market and one provider (``--price-cpu-hour 0.05``) for a test module."""

    market: MarketProcess
    provider: ProviderProcess


@pytest.fixture(scope="module")
def cli_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliNetwork]:
    root = tmp_path_factory.mktemp("cli-network")
    markets = MarketLauncher()
    providers = ProviderLauncher()
    try:
        market = markets.start(root / "market")
        provider = providers.start(
            market.url, root / "provider", "--price-cpu-hour", "0.05", "--grace", "5"
        )
        yield CliNetwork(market, provider)
    finally:
        providers.stop_all()
        markets.stop_all()
