"""The nonces a market remembers: every (signer, nonce) seen within the freshness window.

An envelope is only accepted when its signer's ``ts`` is within ``skew_ms`` of the market's
stamp, and the market's stamps never decrease; so a pair stamped more than two skews ago has a
``ts`` that no future stamp can accept, and forgetting it cannot let a replay in. The window
therefore stays the size of a couple of minutes of traffic instead of growing forever, and a
replay of the log (the audit) forgets the same pairs at the same stamps.
"""

from __future__ import annotations

from collections import deque

from pasar.core.errors import PasarError


def nonce_reused() -> PasarError:
    """The one refusal of a (signer, nonce) pair seen before: 409, sign again."""
    return PasarError(
        "this nonce was already used by this signer",
        code="nonce_reused",
        status=409,
        hint="sign every request with a fresh nonce",
    )


class NonceWindow:
    """(signer, nonce) pairs seen in the last ``2 × skew_ms`` of market stamps."""

    def __init__(self, skew_ms: int) -> None:
        self.skew_ms = skew_ms
        self._seen: set[tuple[str, str]] = set()
        self._order: deque[tuple[int, str, str]] = deque()

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, signer: str, nonce: str, at: int) -> None:
        """Record a pair stamped ``at`` and forget those too old to come back."""
        self._seen.add((signer, nonce))
        self._order.append((at, signer, nonce))
        horizon = at - 2 * self.skew_ms
        while self._order and self._order[0][0] < horizon:
            _, old_signer, old_nonce = self._order.popleft()
            self._seen.discard((old_signer, old_nonce))
