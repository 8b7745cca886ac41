"""Signing in to the market's web dashboard with a client key (``GET /ui/login/challenge``).

The market hands out a challenge it signed itself (so it need not remember it); the client
signs :func:`login_message` of it with its account key and opens
``/ui/login?challenge=…&account=…&sig=…``; the market answers with a short-lived token it signs
itself, kept in an HttpOnly cookie. No password, and no session store: see
:mod:`pasar.market.dashboard.signin`.
"""

from __future__ import annotations

from pasar.api.base import WireModel

#: the prefix of what a client signs to sign in (never valid as an envelope or a block)
LOGIN_DOMAIN = b"pasar/dashboard/login/v1\n"
LOGIN_PATH = "/ui/login"


class LoginChallenge(WireModel):
    """A challenge to sign (:func:`login_message`), valid until ``expires_at`` (unix ms)."""

    challenge: str
    market: str
    expires_at: int


def login_message(challenge: str) -> bytes:
    """The bytes a client signs to sign in with ``challenge``."""
    return LOGIN_DOMAIN + challenge.encode("ascii")
