"""Attacks on real processes: a market on 127.0.0.1, sandboxed provider agents, hostile parties.

Each file in this folder is one family of attacks (issue 9). Every test performs the attack
against real ``pasar market serve`` / ``pasar provider start`` processes, asserts the refusal,
and then asserts that no money moved wrongly: :func:`assert_conserved` (every micro-unit minted
is still somewhere) and :func:`assert_audit_passes` (``pasar audit`` replays the chain).

The integration fixtures are re-used (``market_server``, ``spawn_market``, ``spawn_provider``);
the helpers the tests import live in :mod:`attacklib`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

_NAME = "pasar_integration_conftest"
_PATH = Path(__file__).resolve().parents[1] / "integration" / "conftest.py"


def _load() -> Any:
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module
    spec.loader.exec_module(module)
    return module


_integration = _load()
MarketProcess = _integration.MarketProcess
ProviderProcess = _integration.ProviderProcess
market_server = _integration.market_server
spawn_market = _integration.spawn_market
spawn_provider = _integration.spawn_provider
