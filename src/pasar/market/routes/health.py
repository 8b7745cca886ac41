"""``/v1/healthz``: is this market up, and which one is it (account, preset, devnet)?

``role`` is ``writer`` here; a hot standby answers ``standby`` (see :mod:`pasar.market.standby`),
so a supervisor or load balancer can tell which node takes writes.

Monitoring and the devnet poll it; clients use ``market`` to learn the key that signs leases
and blocks before trusting anything else the market says, and providers read
``max_blob_bytes`` so that an output too large to upload fails its lease with a clear reason
*before* any upload, rather than with an HTTP 413 half-way through one.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from pasar import __version__
from pasar.crypto.identity import Identity
from pasar.market.config import MarketConfig

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The market's identity and mode."""

    ok: bool
    role: str  # "writer"; a standby answers "standby" (pasar.market.standby)
    version: str
    market: str
    preset: str
    devnet: bool
    max_blob_bytes: int


@router.get("/v1/healthz", summary="Liveness and identity of the market")
async def healthz(request: Request) -> Health:
    """Always ``ok: true`` while the process serves requests."""
    config: MarketConfig = request.app.state.config
    identity: Identity = request.app.state.market_identity
    return Health(
        ok=True,
        role=getattr(request.app.state, "role", "writer"),
        version=__version__,
        market=identity.account_id,
        preset=config.preset,
        devnet=config.devnet,
        max_blob_bytes=config.max_blob_bytes,
    )
