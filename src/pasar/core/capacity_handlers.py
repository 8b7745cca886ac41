"""Handlers of the capacity-proof transactions (:mod:`pasar.core.capacity` says why).

- ``capacity.challenge`` (market-signed ``{provider, seed}``): the size and deadline are
  derived here from the provider's registered score, so the log cannot disagree with them;
- ``capacity.answer`` (provider-signed ``{challenge_id, sha256}``): the sha256 of the uploaded
  answer, before the deadline, once, for the signer's own open challenge;
- ``capacity.verdict`` (market-signed ``{challenge_id, result, reason}``): the market ran the
  check (heavy: numpy, in the market service, never in core) and signs what it found;
  ``late`` only after the deadline with no answer, ``passed``/``failed`` only for an answer.

Each checks everything before it changes anything, and changes records through the state's
journalled helpers, so a refusal leaves the state as it was.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

from pasar.core.capacity import (
    MAX_MISSES,
    VERDICTS,
    CapacityChallenge,
    CapacityStatus,
    plan,
)
from pasar.core.market_records import Applied, Tx, fail, not_found

if TYPE_CHECKING:
    from pasar.core.state import MarketState

_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_REASON = 500
SEED_MAX = (1 << 63) - 1


def _challenge(state: MarketState, challenge_id: object) -> CapacityChallenge:
    if not isinstance(challenge_id, str):
        raise fail("challenge_id must be a string", code="invalid_tx", field="challenge_id")
    found = state.capacity_challenges.get(challenge_id)
    if found is None:
        raise not_found("challenge", challenge_id)
    return found


def on_challenge(state: MarketState, tx: Tx) -> Applied:
    provider_id = tx.body.get("provider")
    seed = tx.body.get("seed")
    if not isinstance(provider_id, str) or provider_id not in state.providers:
        raise fail(
            f"no registered provider {provider_id!r}",
            code="not_found",
            status=404,
            field="provider",
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise fail("seed must be a whole number in [0, 2^63)", code="invalid_tx", field="seed")
    provider = state.providers[provider_id]
    if provider.capacity.open is not None:
        raise fail(
            f"provider {provider_id} already has challenge {provider.capacity.open} open",
            code="conflict",
            status=409,
            field="provider",
        )
    if provider.score < 1:
        raise fail(
            "a provider that claims no score has nothing to prove",
            code="invalid_tx",
            field="provider",
        )
    sized = plan(provider.score)
    challenge = CapacityChallenge(
        id=f"cap-{tx.digest[:16]}",
        provider=provider_id,
        seed=seed,
        n=sized.n,
        steps=sized.steps,
        score=provider.score,
        issued_at=tx.at,
        deadline=tx.at + sized.deadline_ms,
    )
    if challenge.id in state.capacity_challenges:  # pragma: no cover - a digest collision
        raise fail("duplicate challenge", code="conflict", status=409)
    record = state._provider(provider_id)
    state._put(state.capacity_challenges, challenge.id, challenge)
    record.capacity = dataclasses.replace(
        record.capacity, open=challenge.id, last_challenge_at=tx.at
    )
    return Applied(tx.type, challenge.to_json(), providers={provider_id})


def on_answer(state: MarketState, tx: Tx) -> Applied:
    challenge = _challenge(state, tx.body.get("challenge_id"))
    sha256 = tx.body.get("sha256")
    if challenge.provider != tx.signer:
        raise fail(
            "this challenge was sent to another provider",
            code="forbidden",
            status=403,
            field="challenge_id",
        )
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise fail(
            "sha256 must be 64 lower-case hex digits",
            code="invalid_tx",
            field="sha256",
            hint="upload the answer with PUT /v1/blobs/{sha256} first",
        )
    if challenge.answer is not None or challenge.verdict is not None:
        raise fail(
            f"challenge {challenge.id} was already answered",
            code="already_answered",
            status=409,
            field="challenge_id",
        )
    if tx.at > challenge.deadline:
        raise fail(
            f"challenge {challenge.id} was due at {challenge.deadline} (market ms), "
            f"{tx.at - challenge.deadline} ms ago",
            code="challenge_late",
            status=409,
            field="challenge_id",
            hint="the market records it as late; the next challenge follows",
        )
    updated = dataclasses.replace(challenge, answer=sha256, answered_at=tx.at)
    state._put(state.capacity_challenges, challenge.id, updated)
    return Applied(
        tx.type,
        {"challenge_id": challenge.id, "provider": challenge.provider, "sha256": sha256},
    )


def on_verdict(state: MarketState, tx: Tx) -> Applied:
    challenge = _challenge(state, tx.body.get("challenge_id"))
    result = tx.body.get("result")
    reason = tx.body.get("reason", "")
    if not isinstance(result, str) or result not in VERDICTS:
        raise fail(f"result must be one of {sorted(VERDICTS)}", code="invalid_tx", field="result")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise fail(
            f"reason must be a string of at most {MAX_REASON} characters",
            code="invalid_tx",
            field="reason",
        )
    if challenge.verdict is not None:
        raise fail(
            f"challenge {challenge.id} already has a verdict",
            code="conflict",
            status=409,
            field="challenge_id",
        )
    if result == "late" and (challenge.answer is not None or tx.at <= challenge.deadline):
        raise fail(
            "late only for a challenge past its deadline without an answer",
            code="conflict",
            status=409,
            field="result",
        )
    if result != "late" and challenge.answer is None:
        raise fail(
            f"{result} only for an answered challenge", code="conflict", status=409, field="result"
        )
    state._put(
        state.capacity_challenges,
        challenge.id,
        dataclasses.replace(challenge, verdict=result, reason=reason),
    )
    status = _after_verdict(state, challenge, result, reason, tx.at)
    return Applied(
        tx.type,
        {
            "challenge_id": challenge.id,
            "provider": challenge.provider,
            "result": result,
            "capacity": status,
        },
        providers={challenge.provider},
    )


def _after_verdict(
    state: MarketState, challenge: CapacityChallenge, result: str, reason: str, at: int
) -> str:
    """Update the provider's status; a verdict on a challenge its current claim no longer
    awaits (it registered another score since) is recorded on the challenge only."""
    provider = state.providers.get(challenge.provider)
    if provider is None or provider.capacity.open != challenge.id:
        return "stale"
    record = state._provider(challenge.provider)
    old = record.capacity
    new: CapacityStatus
    if result == "passed":
        new = CapacityStatus("passed", at, "", 0, None, old.last_challenge_at)
    else:
        misses = old.misses + 1
        why = reason or result
        if misses >= MAX_MISSES or old.state == "failing":
            since = old.since if old.state == "failing" else at
            new = CapacityStatus("failing", since, why, misses, None, old.last_challenge_at)
        else:
            new = dataclasses.replace(old, misses=misses, reason=why, open=None)
    record.capacity = new
    was_excluded = old.state == "failing"
    if was_excluded != (new.state == "failing"):
        state._reindex(challenge.provider)
    return new.describe()
