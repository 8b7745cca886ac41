"""Proof of time-lock: heartbeat intervals, challenges, and the seconds a lease may bill.

While a lease runs, time is cut into intervals of the preset's ``heartbeat_interval_s``,
counted from the lease's start. For interval *k* the market's challenge is its own Ed25519
signature over :func:`challenge_message` — unpredictable to the provider (it cannot pre-sign
heartbeats for the future) yet checkable by anyone holding the market's public key, so the
challenge needs no transaction of its own and an audit can re-verify every heartbeat.

Billing counts only time covered by valid heartbeats: each answered interval covers
``interval`` seconds, and the total is capped by the lease's wall duration and the job's
``max_duration``. A provider that stops answering for ``grace`` intervals is *lost*.
"""

from __future__ import annotations

from collections.abc import Collection

CHALLENGE_DOMAIN = b"pasar/challenge/v1\n"
MS = 1000


def challenge_message(lease_id: str, interval: int) -> bytes:
    """The bytes the market signs to challenge interval ``interval`` of ``lease_id``."""
    return CHALLENGE_DOMAIN + f"{lease_id}\n{interval}".encode()


def interval_at(started_at_ms: int, now_ms: int, interval_s: int) -> int:
    """The index of the heartbeat interval that ``now_ms`` falls in (0 for the first)."""
    return max(0, (now_ms - started_at_ms) // (interval_s * MS))


def heartbeat_accepted(started_at_ms: int, now_ms: int, interval_s: int, interval: int) -> bool:
    """A heartbeat for ``interval`` counts if it arrives during that interval or the next one
    (an answer sent at the end of an interval may cross the boundary in transit)."""
    current = interval_at(started_at_ms, now_ms, interval_s)
    return interval >= 0 and current - 1 <= interval <= current


def billable_ms(
    beats: Collection[int],
    *,
    started_at_ms: int,
    ended_at_ms: int,
    interval_s: int,
    max_duration_s: int,
    uptime_block_s: int = 0,
) -> int:
    """Milliseconds covered by answered intervals, capped by wall duration and ``max_duration``.

    Milliseconds, not whole seconds: a lease that ran 800 ms with its first heartbeat answered
    is billed 800 ms (it used to bill 0). Both ends are market stamps.

    With ``uptime_block_s`` (io.net's hourly proof of time-lock) time is counted in blocks: a
    whole block the lease lived through pays only if *every* interval in it was answered, and
    nothing otherwise; the last, unfinished block (the job ended in it) pays its answered
    intervals, capped by the wall time.
    """
    wall_ms = max(0, ended_at_ms - started_at_ms)
    if uptime_block_s <= 0:
        return min(len(beats) * interval_s * MS, wall_ms, max_duration_s * MS)
    per_block = max(1, uptime_block_s // interval_s)
    block_ms = per_block * interval_s * MS
    whole_blocks, rest_ms = divmod(wall_ms, block_ms)
    billed = sum(
        block_ms
        for b in range(whole_blocks)
        if all(k in beats for k in range(b * per_block, (b + 1) * per_block))
    )
    first_open = whole_blocks * per_block
    answered = sum(1 for k in beats if first_open <= k < first_open + per_block)
    billed += min(answered * interval_s * MS, rest_ms)
    return min(billed, max_duration_s * MS)


def is_lost(
    beats: Collection[int],
    *,
    started_at_ms: int,
    now_ms: int,
    interval_s: int,
    grace_intervals: int,
) -> bool:
    """True once ``grace_intervals`` whole intervals have passed without a heartbeat.

    The interval in progress does not count (its heartbeat may still come), so a lease whose
    last answered interval is ``h`` is lost when the current interval is past ``h + grace``.
    """
    last = max(beats) if beats else -1
    return interval_at(started_at_ms, now_ms, interval_s) > last + grace_intervals
