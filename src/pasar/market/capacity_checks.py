"""The market's side of the capacity proofs: when to challenge, and checking answers.

Called by the engine on each pass (:meth:`pasar.market.engine.Engine.due`). It decides from
the state alone (no memory of its own, so a restarted market carries on from its log):

- a ``capacity.verdict`` ``late`` for each open challenge past its deadline without an answer;
- a ``capacity.verdict`` ``passed``/``failed`` for each answered one: the answer blob is read
  from the market's blob store and checked with Freivalds' test
  (:func:`pasar.capacity.proof.check`) with vectors drawn now, after the answer is fixed —
  outside the service's lock, since it costs ``O(steps · n²)``;
- a ``capacity.challenge`` for providers :func:`~pasar.core.capacity.challenge_due` picks,
  while fewer than ``max_open`` challenges are open market-wide. Why a limit (1 by default):
  providers sharing a machine (a devnet: N providers on 2 cores) each claim the score they
  measured alone, so challenging them together would make every one of them look slow; one at
  a time, each proves what it measured. A challenge lasts seconds, so one at a time checks a
  few hundred providers per ``capacity_check_interval_s``; a large market raises ``max_open``.
"""

from __future__ import annotations

import logging
import secrets

from pasar.api.txs import CapacityChallenge, CapacityVerdict, TxBody
from pasar.core.capacity import CapacityChallenge as Challenge
from pasar.core.capacity import challenge_due
from pasar.core.errors import PasarError
from pasar.market.blobs import BlobStore
from pasar.market.service import MarketService

log = logging.getLogger("pasar.market.capacity")

DEFAULT_MAX_OPEN = 1


class CapacityChecks:
    """What the engine sends for the capacity proofs on one pass."""

    def __init__(self, service: MarketService, *, max_open: int = DEFAULT_MAX_OPEN) -> None:
        self.service = service
        self.max_open = max_open

    def due(self, blobs: BlobStore | None, now: int) -> list[TxBody]:
        service = self.service
        out: list[TxBody] = []
        answered: list[Challenge] = []  # frozen: safe to read without the lock
        with service.lock:
            state = service.state
            interval = state.preset.timing.capacity_check_interval_s
            open_now = 0
            fresh: list[str] = []
            for provider in state.providers.values():
                status = provider.capacity
                if status.open is not None:
                    open_now += 1
                    ch = state.capacity_challenges[status.open]
                    if ch.verdict is not None:
                        continue
                    if ch.answer is None:
                        if now > ch.deadline:
                            out.append(
                                CapacityVerdict(
                                    challenge_id=ch.id,
                                    result="late",
                                    reason=f"no answer within {ch.deadline - ch.issued_at} ms",
                                )
                            )
                    else:
                        answered.append(ch)
                elif provider.available and challenge_due(
                    status,
                    score=provider.score,
                    idle=not provider.running,
                    now_ms=now,
                    interval_s=interval,
                ):
                    fresh.append(provider.id)
            room = max(0, self.max_open - open_now)
            chosen = [p for p in fresh if service.liveness.online(p)][:room]
        out.extend(CapacityChallenge(provider=p, seed=service.new_seed()) for p in chosen)
        out.extend(self._verdict(blobs, ch) for ch in answered)
        return out

    @staticmethod
    def _verdict(blobs: BlobStore | None, ch: Challenge) -> CapacityVerdict:
        """Check one answer (heavy: no lock held)."""
        challenge_id, seed, n, steps, sha = ch.id, ch.seed, ch.n, ch.steps, ch.answer or ""
        if blobs is None or not blobs.exists(sha):
            why = "the answer blob was not uploaded"
            return CapacityVerdict(challenge_id=challenge_id, result="failed", reason=why)
        if blobs.size(sha) != n * n:
            why = f"the answer has {blobs.size(sha)} bytes, not n² = {n * n}"
            return CapacityVerdict(challenge_id=challenge_id, result="failed", reason=why)
        try:
            with blobs.open(sha) as fh:
                data = fh.read()
        except (OSError, PasarError) as exc:
            log.warning("reading capacity answer %s: %s", sha, exc)
            why = "the answer blob could not be read"
            return CapacityVerdict(challenge_id=challenge_id, result="failed", reason=why)
        from pasar.capacity.proof import check  # numpy: loaded by the first answer, not at start

        problem = check(seed, n, steps, data, check_seed=secrets.randbits(63))
        if problem is None:
            return CapacityVerdict(challenge_id=challenge_id, result="passed")
        return CapacityVerdict(challenge_id=challenge_id, result="failed", reason=problem)
