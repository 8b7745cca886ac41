"""Liveness challenges: losing a dead provider in seconds, without ever losing a live one.

Why: a lease whose provider was SIGKILLed used to be declared lost only once
``grace_intervals`` heartbeat intervals had passed unanswered (15-20 s with the default
preset), and the client waited that long for its result. The market sees a dead provider
much sooner: its feed's long-poll connection drops, or a heartbeat comes late. Neither proves
anything (long-poll connections drop normally; a heartbeat may be delayed in transit), so each
is only a *suspicion*, and the market turns it into a question with a short deadline:

1. ``liveness.challenge`` (market-signed, ``{provider, reason}``): the market records its
   suspicion and the reason it had (its own observation, like ``match``'s ``offline``); the
   provider must answer by ``at + challenge_deadline_ms`` (the preset's timing). The event is
   pushed on the provider's feed, which a live agent is polling or reopening at that moment.
2. ``liveness.answer`` (provider-signed, ``{challenge_id}``): before the deadline, the
   challenge is answered and nothing else happens.
3. ``lease.lost`` with ``challenge_id`` (market-signed), for each lease the provider was
   running when the deadline passed unanswered: the lease ends paid for the time its
   heartbeats verified up to the challenge (never past it), its shard is re-queued on what
   is left of the escrow, and the reason is written on the lease and the order.

Every step is a transaction in the log, so ``pasar audit`` reaches the same decision: the
missed deadline is checked against the stamps of the challenge and of the ``lease.lost``, and
an answer, had there been one, is in the log too. A live provider always keeps its leases:
whatever made the market suspicious, it answers within the deadline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pasar.core.market_records import Applied, LeaseRecord, LivenessProbe, Tx, fail

if TYPE_CHECKING:
    from pasar.core.state import MarketState

MAX_REASON_CHARS = 300


def challenge_id_of(provider: str, at_ms: int) -> str:
    """A challenge's id: its provider and its stamp (one open challenge per provider)."""
    return f"{provider}.live-{at_ms}"


def deadline_ms(state: MarketState) -> int:
    """The preset's challenge deadline; 0 when the network has no liveness challenges."""
    return state.preset.timing.challenge_deadline_ms


def on_liveness_challenge(state: MarketState, tx: Tx) -> Applied:
    allowed = deadline_ms(state)
    if allowed <= 0:
        raise fail(
            f"the {state.preset.name} network has no liveness challenges",
            code="challenges_off",
            status=409,
            hint="timing.challenge_deadline_ms > 0 turns them on",
        )
    reason = tx.body.get("reason")
    if not isinstance(reason, str) or not 0 < len(reason.strip()) <= MAX_REASON_CHARS:
        raise fail(
            f"reason must say what made the market suspicious, in 1 to {MAX_REASON_CHARS} "
            "characters",
            code="invalid_challenge",
            field="reason",
        )
    provider_id = tx.body.get("provider")
    if not isinstance(provider_id, str) or provider_id not in state.providers:
        raise fail("provider must be a registered provider", code="not_found", status=404,
                   field="provider")  # fmt: skip
    provider = state.providers[provider_id]
    if not provider.running:
        raise fail(
            f"provider {provider_id} runs no lease: there is nothing to lose",
            code="nothing_running",
            status=409,
            field="provider",
        )
    if provider.probe is not None and provider.probe.open(tx.at):
        raise fail(
            f"provider {provider_id} already has an open liveness challenge",
            code="already_challenged",
            status=409,
        )
    probe = LivenessProbe(
        id=challenge_id_of(provider_id, tx.at),
        at=tx.at,
        deadline=tx.at + allowed,
        reason=reason.strip(),
    )
    state._provider(provider_id).probe = probe
    return Applied(
        tx.type,
        {
            "challenge_id": probe.id,
            "provider": provider_id,
            "deadline_ms": probe.deadline,
            "reason": probe.reason,
        },
        providers={provider_id},
    )


def on_liveness_answer(state: MarketState, tx: Tx) -> Applied:
    """Only the challenged provider answers (the challenge is on its record: 404 for anyone
    else), only its current challenge, once, and only before the deadline."""
    challenge_id = tx.body.get("challenge_id")
    if not isinstance(challenge_id, str):
        raise fail("challenge_id must be a string", code="invalid_answer", field="challenge_id")
    record = state.providers.get(tx.signer)
    probe = record.probe if record is not None else None
    if probe is None or probe.id != challenge_id:
        raise fail(
            f"no liveness challenge {challenge_id!r} of this account",
            code="not_found",
            status=404,
            field="challenge_id",
        )
    if probe.answered_at is not None:
        raise fail(f"challenge {challenge_id} was already answered", code="already_answered",
                   status=409)  # fmt: skip
    if tx.at > probe.deadline:
        raise fail(
            f"challenge {challenge_id} closed at {probe.deadline} (ms)",
            code="too_late",
            status=409,
        )
    state._provider(tx.signer).probe = LivenessProbe(
        id=probe.id, at=probe.at, deadline=probe.deadline, reason=probe.reason, answered_at=tx.at
    )
    return Applied(tx.type, {"challenge_id": probe.id, "provider": tx.signer, "answered": True})


def missed_probe(
    state: MarketState, lease: LeaseRecord, challenge_id: object, now_ms: int
) -> LivenessProbe:
    """The challenge ``lease``'s provider missed, which ends the lease: 409 unless it is the
    provider's current challenge, unanswered past its deadline, and the lease started before
    that deadline (a lease begun later was not covered by the question)."""
    probe = state.providers[lease.provider].probe
    if probe is None or probe.id != challenge_id:
        raise fail(
            f"{challenge_id!r} is not the current liveness challenge of the lease's provider",
            code="not_found",
            status=404,
            field="challenge_id",
        )
    if not probe.missed(now_ms):
        raise fail(
            f"challenge {probe.id} was answered or is still open",
            code="too_early",
            status=409,
        )
    if lease.started_at > probe.deadline:
        raise fail(f"lease {lease.id} started after challenge {probe.id} closed",
                   code="too_early", status=409)  # fmt: skip
    return probe


def leases_lost_to(state: MarketState, now_ms: int) -> list[tuple[str, str]]:
    """``(lease_id, challenge_id)`` for each running lease whose provider missed its challenge
    by ``now_ms``: what the engine declares lost (a read; the handler checks again)."""
    out: list[tuple[str, str]] = []
    for provider in state.providers.values():
        if provider.running and provider.probe is not None:
            out.extend((x, provider.probe.id) for x in _lost_to(state, provider.id, now_ms))
    return out


def _lost_to(state: MarketState, provider_id: str, now_ms: int) -> list[str]:
    """The running leases of ``provider_id`` that its missed challenge ends."""
    record = state.providers[provider_id]
    probe = record.probe
    if probe is None or not probe.missed(now_ms):
        return []
    return [x for x in sorted(record.running) if state.leases[x].started_at <= probe.deadline]


def challengeable(state: MarketState, provider_id: str, now_ms: int) -> bool:
    """Whether a ``liveness.challenge`` of ``provider_id`` is worth sending now: it runs a
    lease, has no open challenge, and no missed one whose leases are still to be lost."""
    record = state.providers.get(provider_id)
    return (
        deadline_ms(state) > 0
        and record is not None
        and bool(record.running)
        and (record.probe is None or not record.probe.open(now_ms))
        and not _lost_to(state, provider_id, now_ms)
    )
