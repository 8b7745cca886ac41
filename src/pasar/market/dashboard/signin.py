"""Stateless sign-in for the dashboard: a market-signed challenge, a client-signed answer, a
market-signed token.

Why this shape: the market must not keep sessions (a restart or a standby taking over would
sign everybody out, and a session table is one more thing to grow without bound), and a client
has no password, only its Ed25519 key. So:

1. ``challenge = "c1.<exp ms>.<nonce>.<market sig>"``: the market signs
   ``CHALLENGE_DOMAIN + "<market>.<exp>.<nonce>"``; it remembers nothing when handing it out.
2. The client signs :func:`pasar.api.dashboard.login_message` of the challenge with its key.
3. The market checks its own signature, the expiry, and the client's signature, and answers
   ``token = "t1.<account>.<exp ms>.<market sig>"`` (signed over
   ``TOKEN_DOMAIN + "<market>.<account>.<exp>"``): whoever presents it is that account until
   ``exp``.

A challenge is good once: :class:`UsedChallenges` remembers the nonces of used challenges
until they expire (``CHALLENGE_TTL_MS``, a bounded set that empties itself), so a URL seen in a
browser history or a log cannot sign someone in again. That is replay protection, not a
session: losing it (a restart) lets a challenge younger than two minutes be used twice, and
nothing else.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass

from pasar.api.dashboard import login_message
from pasar.core.errors import PasarError
from pasar.crypto.identity import Identity, is_account_id, public_key_of, verify_signature

CHALLENGE_DOMAIN = b"pasar/dashboard/challenge/v1\n"
TOKEN_DOMAIN = b"pasar/dashboard/token/v1\n"
CHALLENGE_TTL_MS = 120_000
TOKEN_TTL_MS = 3_600_000
MAX_USED = 10_000  # at most this many challenges used within two minutes are remembered
COOKIE = "pasar_ui"


def _unauthenticated(message: str, field: str) -> PasarError:
    return PasarError(
        message,
        code="unauthenticated",
        status=401,
        field=field,
        hint="sign in again: pasar dashboard login",
    )


def _hex_sig(text: str) -> bytes | None:
    if len(text) != 128:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 19 else None


def make_challenge(market: Identity, now_ms: int) -> tuple[str, int]:
    """A fresh challenge and when it expires (unix ms)."""
    expires = now_ms + CHALLENGE_TTL_MS
    nonce = secrets.token_hex(16)
    signed = f"{market.account_id}.{expires}.{nonce}".encode()
    sig = market.sign(CHALLENGE_DOMAIN + signed).hex()
    return f"c1.{expires}.{nonce}.{sig}", expires


@dataclass(frozen=True)
class Answer:
    """A checked sign-in: the account, and the challenge's nonce and expiry (to spend it)."""

    account: str
    nonce: str
    expires: int


def check_answer(market: Identity, challenge: str, account: str, sig: str, now_ms: int) -> Answer:
    """The account a signed challenge proves, or a 401 naming what is wrong."""
    parts = challenge.split(".")
    if len(parts) != 4 or parts[0] != "c1":
        raise _unauthenticated("not a challenge this market gave out", "challenge")
    _, exp_text, nonce, market_sig = parts
    expires, msig = _int(exp_text), _hex_sig(market_sig)
    signed = f"{market.account_id}.{exp_text}.{nonce}".encode()
    if (
        expires is None
        or msig is None
        or not verify_signature(market.public_key, CHALLENGE_DOMAIN + signed, msig)
    ):
        raise _unauthenticated("the challenge's signature is not this market's", "challenge")
    if now_ms > expires:
        raise _unauthenticated("the challenge expired: ask for a new one", "challenge")
    if not is_account_id(account):
        raise _unauthenticated("account is not an account id (pa1...)", "account")
    client_sig = _hex_sig(sig)
    if client_sig is None or not verify_signature(
        public_key_of(account), login_message(challenge), client_sig
    ):
        raise _unauthenticated("the signature is not the account's over this challenge", "sig")
    return Answer(account, nonce, expires)


class UsedChallenges:
    """Nonces of challenges already used, each until its challenge expires (module doc)."""

    def __init__(self) -> None:
        self._used: OrderedDict[str, int] = OrderedDict()

    def spend(self, answer: Answer, now_ms: int) -> None:
        """Mark the challenge used; 409 if it was, 429 while too many are remembered."""
        while self._used and next(iter(self._used.values())) < now_ms:
            self._used.popitem(last=False)  # oldest first: challenges expire in issue order
        if answer.nonce in self._used:
            raise PasarError(
                "this challenge was used already: each signs in once",
                code="challenge_used",
                status=409,
                field="challenge",
                hint="ask for a new one: pasar dashboard login",
            )
        if len(self._used) >= MAX_USED:
            raise PasarError(
                "too many sign-ins right now", code="rate_limited", status=429, field="challenge"
            )
        self._used[answer.nonce] = answer.expires


def make_token(market: Identity, account: str, now_ms: int) -> str:
    """A token saying ``account`` until ``now_ms + TOKEN_TTL_MS``, signed by the market."""
    expires = now_ms + TOKEN_TTL_MS
    signed = f"{market.account_id}.{account}.{expires}".encode()
    return f"t1.{account}.{expires}.{market.sign(TOKEN_DOMAIN + signed).hex()}"


def token_account(market: Identity, token: str, now_ms: int) -> str:
    """The account a token names, or a 401 (forged, altered, another market's, expired)."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != "t1":
        raise _unauthenticated("not a dashboard token", COOKIE)
    _, account, exp_text, sig_text = parts
    expires, sig = _int(exp_text), _hex_sig(sig_text)
    signed = f"{market.account_id}.{account}.{exp_text}".encode()
    if (
        expires is None
        or sig is None
        or not verify_signature(market.public_key, TOKEN_DOMAIN + signed, sig)
    ):
        raise _unauthenticated("the token's signature is not this market's", COOKIE)
    if now_ms > expires:
        raise _unauthenticated("the sign-in expired", COOKIE)
    return account
