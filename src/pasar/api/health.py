"""``GET /v1/healthz``: which market this is (the key that signs its answers) and its mode."""

from __future__ import annotations

from pasar.api.base import WireModel


class Health(WireModel):
    """The market's identity and mode. ``role`` says whether this node takes writes
    (``writer``) or waits to take over (``standby``); a market too old to say was its only
    writer. ``max_blob_bytes`` is None from a market too old to say (a provider then learns the
    limit from a 413)."""

    ok: bool
    role: str = "writer"  # a str, not a Literal: a client must not refuse a role added later
    version: str
    market: str
    preset: str
    devnet: bool
    max_blob_bytes: int | None = None
