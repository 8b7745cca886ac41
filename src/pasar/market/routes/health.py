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

from pasar import __version__
from pasar.api.health import Health
from pasar.crypto.identity import Identity
from pasar.market.config import MarketConfig

router = APIRouter(tags=["health"])


@router.get("/v1/healthz", summary="Liveness and identity of the market")
async def healthz(request: Request) -> Health:
    """Always ``ok: true`` while the process serves requests."""
    config: MarketConfig = request.app.state.config
    identity: Identity = request.app.state.market_identity
    return health_of(config, identity, getattr(request.app.state, "role", "writer"))


def health_of(config: MarketConfig, identity: Identity, role: str) -> Health:
    """The healthz answer of a node in ``role``: built once here, so that the writer's and the
    standby's (:mod:`pasar.market.standby`) answers cannot drift apart."""
    return Health(
        ok=True,
        role=role,
        version=__version__,
        market=identity.account_id,
        preset=config.preset,
        devnet=config.devnet,
        max_blob_bytes=config.max_blob_bytes,
    )
