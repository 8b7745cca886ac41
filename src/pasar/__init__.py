"""pasar: an open, decentralized GPU/CPU compute market.

Providers sell compute, clients launch jobs and pay only for verified work, verifiers re-check
it, and a market node matches orders and keeps a signed, auditable ledger.

The SDK's names — :class:`Client`, :class:`AsyncClient`, :func:`remote`, :class:`RemoteError`
— are imported on first use (PEP 562), so ``import pasar`` stays cheap for the CLI and the
agents, which do not need httpx or cloudpickle loaded to start.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    __version__: str
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


def _version() -> str:
    """The installed distribution's version. Read on first use: ``importlib.metadata`` scans
    every distribution on ``sys.path`` (tens of ms), which a sandboxed remote call, importing
    ``pasar`` only for its payload module, must not pay."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pasar")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        found = _version()
        globals()["__version__"] = found
        return found
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pasar' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
