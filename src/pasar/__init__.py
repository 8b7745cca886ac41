"""pasar: an open, decentralized GPU/CPU compute market.

Providers sell compute, clients launch jobs and pay only for verified work, verifiers re-check
it, and a market node matches orders and keeps a signed, auditable ledger.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pasar")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
