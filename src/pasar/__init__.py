"""pasar: an open, decentralized GPU/CPU compute market.

Providers sell compute, clients launch jobs and pay only for verified work, verifiers re-check
it, and a market node matches orders and keeps a signed, auditable ledger.

The SDK's names — :class:`Client`, :class:`AsyncClient`, :func:`remote`, :class:`RemoteError`
— are imported on first use (PEP 562), so ``import pasar`` stays cheap for the CLI and the
agents, which do not need httpx or cloudpickle loaded to start.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("pasar")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from pasar.client.aio import AsyncClient
    from pasar.client.client import Client
    from pasar.client.remote import RemoteError, remote

_LAZY = {
    "Client": "pasar.client.client",
    "AsyncClient": "pasar.client.aio",
    "remote": "pasar.client.remote",
    "RemoteError": "pasar.client.remote",
}

__all__ = ["AsyncClient", "Client", "RemoteError", "__version__", "remote"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pasar' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
