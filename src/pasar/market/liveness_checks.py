"""The market's side of the liveness challenges: when to suspect a provider, when it is lost.

Called by the engine on each pass (:meth:`pasar.market.engine.Engine.due`), under the
service's lock. What it sends (the rules are :mod:`pasar.core.liveness_handlers`):

- ``lease.lost`` with ``challenge_id`` for each running lease whose provider let its
  challenge's deadline pass unanswered (decided from the state alone, so a restarted market
  carries on from its log);
- ``liveness.challenge`` for each provider that runs a lease, has no challenge pending, and
  is *suspected*: its feed has been closed longer than the reopen window (the connection
  dropped, or the poll ended and no new one came: :meth:`Liveness.suspects`, process memory),
  or a heartbeat is late (one of its leases' current interval ended without the heartbeat the
  executor sends at the interval's start: ledger state). The reason goes into the transaction,
  and from there into the lost lease's note if the challenge is missed.

Why a suspicion is not enough to end a lease: long-poll connections drop normally (proxies,
timeouts, a client between two polls), so a live provider must always get the chance to say
so; a dead one cannot, and its leases are lost ``challenge_deadline_ms`` after the suspicion
instead of ``grace_intervals × heartbeat_interval_s`` after its last heartbeat.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pasar.api.txs import LeaseLost, LivenessChallenge, TxBody
from pasar.core.liveness_handlers import challengeable, deadline_ms, leases_lost_to
from pasar.core.state import MarketState
from pasar.core.timelock import MS
from pasar.market.liveness import REOPEN_WINDOW_S, Liveness


def liveness_due(state: MarketState, liveness: Liveness, now_ms: int) -> list[TxBody]:
    """What to send now (the caller holds the service's lock)."""
    if deadline_ms(state) <= 0:
        return []
    out: list[TxBody] = [
        LeaseLost(lease_id=lease_id, challenge_id=challenge_id)
        for lease_id, challenge_id in leases_lost_to(state, now_ms)
    ]
    candidates = [
        p.id for p in state.providers.values() if p.running and challengeable(state, p.id, now_ms)
    ]
    reasons: dict[str, str] = {}
    for s in liveness.suspects(candidates):
        how = "connection dropped" if s.dropped else "poll ended"
        at = now_ms - round(s.closed_s * MS)
        reasons[s.provider] = (
            f"its feed {how} at {_clock(at)} and was not reopened within {REOPEN_WINDOW_S:g} s"
        )
    for provider in candidates:
        if provider not in reasons:
            late = late_heartbeat(state, provider, now_ms)
            if late is not None:
                reasons[provider] = late
    out.extend(LivenessChallenge(provider=p, reason=r) for p, r in sorted(reasons.items()))
    return out


def late_heartbeat(state: MarketState, provider: str, now_ms: int) -> str | None:
    """Why ``provider`` is suspected by its heartbeats, if it is: the heartbeat of one of its
    leases' intervals is missing once that interval is over (the agent answers each interval
    at its start)."""
    interval_ms = state.preset.timing.heartbeat_interval_s * MS
    for lease_id in sorted(state.providers[provider].running):
        lease = state.leases[lease_id]
        due = max(lease.beats, default=-1) + 1
        due_at = lease.started_at + due * interval_ms
        if now_ms >= due_at + interval_ms:
            return (
                f"its heartbeat for interval {due} of lease {lease_id} is late "
                f"(due {_clock(due_at)})"
            )
    return None


def _clock(ms: int) -> str:
    """A market stamp as people read it in a note: ``09:01:02.345 UTC``."""
    return datetime.fromtimestamp(ms / MS, UTC).strftime("%H:%M:%S.%f")[:-3] + " UTC"
