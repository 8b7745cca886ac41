"""Capacity proofs: the sizing, deadline and bookkeeping of the market's matmul challenges.

A provider's ``score`` (GFLOP/s) is what performance pricing charges by, so the market holds
every provider to it (io.net's proof-of-work, Aethir's proof-of-capacity): on registration,
and then every ``capacity_check_interval_s`` of the preset while the provider is idle, it
sends a seeded challenge sized so that only the claimed rate answers before the deadline.

**The work** (:mod:`pasar.capacity.proof` computes and checks it; this module is pure
arithmetic). From the seed: ``W``, an ``n × 2n`` matrix of integers in ``[0, MODULUS)``, and
``steps`` window offsets ``s_i``. With ``A_i = W[:, s_i : s_i + n]`` the provider computes
``X_0 = W[:, :n]``, ``X_{i+1} = X_i · A_i mod MODULUS`` and uploads ``X_steps`` (one byte an
entry). Every entry stays an integer below ``2^24`` (``n · 31² < 2^24`` for ``n ≤ N_MAX``), so
float32 BLAS and GPU products are *exact* and every honest machine gets the same bytes. Why
a chain of products over windows of one wide matrix, not one big product: the work is
``2n³`` a step while generating the inputs and sending the answer cost ``O(n²)`` once, so
the answer is small (``n²`` bytes) and the fixed costs do not blur the timing; the windows
are different matrices, so no repeated squaring shortens the chain. Why ``MODULUS = 32``:
reducing is a mask (``& 31``), not a division, which keeps the per-step overhead to a few
nanoseconds an entry.

**The check** (Freivalds): for random ``r`` (``CHECK_VECTORS`` columns), ``X_steps · r`` must
equal ``W_0 · (A_0 · (… (A_{steps-1} · r)))`` mod 32: ``steps`` matrix-vector products,
``O(steps · n²)`` against the provider's ``O(steps · n³)``. A wrong answer passes one vector
with probability at most 1/2 (ℤ/32 is not a field; generic garbage passes one with 1/32), so
16 vectors leave at most 2⁻¹⁶.

**The deadline**: ``SLACK`` × the claimed time of the chain, plus its per-step overhead (the
reductions: ``STEP_OVERHEAD_PS_PER_ENTRY``), what generating the inputs and uploading the
answer may take (``SETUP_NS_PER_ENTRY`` an entry) and a fixed ``FIXED_SLACK_MS``. The
overheads are not multiplied by the slack: they do not depend on the FLOP rate, so a cheater
gets them too. An honest provider slowed
down to ``1/SLACK`` of its idle speed still answers; one claiming 4× its speed needs 4× the
claimed time and misses (the chain is long enough, ``TARGET_MS``, that the fixed allowances
do not cover the difference). A late or wrong answer is a *miss*; after ``MAX_MISSES`` in a
row (the first is retried at once) the provider is excluded until it passes a later
challenge (``RETRY_BACKOFF_MS`` apart).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CHECK_VECTORS",
    "MAX_MISSES",
    "MODULUS",
    "N_MAX",
    "N_MIN",
    "CapacityChallenge",
    "CapacityPlan",
    "CapacityStatus",
    "challenge_due",
    "exclusion_reason",
    "plan",
]

MODULUS = 32  # a power of two: reducing is a mask
N_MIN = 256
N_MAX = 8192  # n · 31² < 2^24 up to 17,000; 8192 keeps the answer at 64 MiB, W at 512 MiB
STEPS_MAX = 256  # bounds the market's check (steps matrix-vector products)
TARGET_MS = 6_000  # how long the whole chain takes at the claimed rate
STEP_MS = 400  # one step at the claimed rate (sets n, up to N_MAX)
SLACK_NUM, SLACK_DEN = 5, 2  # the deadline allows 2.5× the claimed time
STEP_OVERHEAD_PS_PER_ENTRY = 3_000  # the reduction (four passes over memory) of one step, per entry
SETUP_NS_PER_ENTRY = 40  # generating W and hashing/uploading the answer, per entry of X
FIXED_SLACK_MS = 2_000  # HTTP round trips, process scheduling, the feed's delivery
CHECK_VECTORS = 16
MAX_MISSES = 2  # the first miss is retried at once; the second excludes
RETRY_BACKOFF_MS = 60_000  # an excluded provider is challenged again this long after its miss

CapacityState = Literal["unchecked", "passed", "failing"]
Verdict = Literal["passed", "failed", "late"]
VERDICTS: frozenset[str] = frozenset({"passed", "failed", "late"})


@dataclass(frozen=True)
class CapacityPlan:
    """What a challenge for one claimed score asks: ``steps`` products of ``n × n``, due
    ``deadline_ms`` after it is issued (``claimed_ms``: how long the claimed rate needs)."""

    n: int
    steps: int
    claimed_ms: int
    deadline_ms: int

    @property
    def flop(self) -> int:
        return 2 * self.n**3 * self.steps


def icbrt(x: int) -> int:
    """The integer cube root (the largest ``r`` with ``r³ ≤ x``): no floats in core."""
    if x <= 0:
        return 0
    r = 1 << ((x.bit_length() + 2) // 3)
    while True:  # Newton from above: decreases until it settles
        nxt = (2 * r + x // (r * r)) // 3
        if nxt >= r:
            break
        r = nxt
    while r**3 > x:
        r -= 1
    while (r + 1) ** 3 <= x:
        r += 1
    return r


def plan(score: int) -> CapacityPlan:
    """The challenge for a provider claiming ``score`` GFLOP/s (``score >= 1``).

    ``n`` makes one step take :data:`STEP_MS` at the claimed rate (so a CPU gets a matrix it
    can hold, a GPU one large enough to keep it busy, capped at :data:`N_MAX`), ``steps``
    makes the chain take :data:`TARGET_MS`. Times are in integer milliseconds: ``score``
    GFLOP/s is ``score · 10⁶`` FLOP a millisecond."""
    if score < 1:
        raise ValueError("a capacity challenge needs a claimed score of at least 1 GFLOP/s")
    per_ms = score * 1_000_000
    n = max(N_MIN, min(N_MAX, icbrt(per_ms * STEP_MS // 2)))
    step_flop = 2 * n**3
    steps = max(1, min(STEPS_MAX, -(-TARGET_MS * per_ms // step_flop)))
    claimed_ms = -(-step_flop * steps // per_ms)
    overhead_ms = -(-steps * n * n * STEP_OVERHEAD_PS_PER_ENTRY // 1_000_000_000)
    setup_ms = -(-n * n * SETUP_NS_PER_ENTRY // 1_000_000)
    deadline_ms = claimed_ms * SLACK_NUM // SLACK_DEN + overhead_ms + setup_ms + FIXED_SLACK_MS
    return CapacityPlan(n=n, steps=steps, claimed_ms=claimed_ms, deadline_ms=deadline_ms)


@dataclass(frozen=True)
class CapacityStatus:
    """A provider's standing with the capacity proofs (replaced whole on each change).

    ``unchecked``: no verdict yet for the current claim (takes work: an honest new provider
    must not wait for its proof); ``passed``: the last verdict passed at ``since``;
    ``failing``: ``MAX_MISSES`` misses in a row since ``since`` (``reason`` says which): no new
    leases until a challenge passes. ``misses`` counts consecutive misses, ``open`` is the
    challenge awaiting its verdict, ``last_challenge_at`` when the last one was issued."""

    state: CapacityState = "unchecked"
    since: int = 0
    reason: str = ""
    misses: int = 0
    open: str | None = None
    last_challenge_at: int | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"state": self.state, "misses": self.misses}
        if self.since:
            out["since"] = self.since
        if self.reason:
            out["reason"] = self.reason
        if self.open is not None:
            out["open"] = self.open
        return out

    def describe(self) -> str:
        """One line for offers and ``pasar offers``: ``passed``, ``unchecked``, ``failing: …``."""
        return f"failing: {self.reason}" if self.state == "failing" else self.state

    def for_new_claim(self) -> CapacityStatus:
        """The status after the provider registers a different score or inventory: the old
        verdict does not vouch for the new claim (a new challenge follows), but a failing
        provider stays excluded until a challenge passes."""
        if self.state == "failing":
            return CapacityStatus("failing", self.since, self.reason, 0, None, None)
        return CapacityStatus()


@dataclass(frozen=True)
class CapacityChallenge:
    """One challenge, from issue to verdict (replaced whole on each change)."""

    id: str
    provider: str
    seed: int
    n: int
    steps: int
    score: int
    issued_at: int
    deadline: int
    answer: str | None = None  # the sha256 of the uploaded X_steps
    answered_at: int | None = None
    verdict: str | None = None  # passed | failed | late
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "challenge_id": self.id,
            "provider": self.provider,
            "seed": self.seed,
            "n": self.n,
            "steps": self.steps,
            "modulus": MODULUS,
            "issued_at": self.issued_at,
            "deadline": self.deadline,
        }


def exclusion_reason(status: CapacityStatus) -> str | None:
    """Why a provider gets no new lease because of its capacity proofs, or None."""
    if status.state != "failing":
        return None
    return f"failed its capacity proof ({status.reason}); excluded until it passes one"


def challenge_due(
    status: CapacityStatus,
    *,
    score: int,
    idle: bool,
    now_ms: int,
    interval_s: int,
) -> bool:
    """Whether the market should challenge a provider now (the engine's policy, pure).

    Nothing is claimed by a score of 0, so nothing is challenged; a provider with a challenge
    open waits for its verdict; otherwise: a claim never challenged, a retry after one miss, an
    excluded provider every :data:`RETRY_BACKOFF_MS`, and a passed one every ``interval_s``
    (0: never again) — each only while the provider runs no lease, since its leases' load
    would make an honest provider look slow."""
    if score < 1 or status.open is not None or not idle:
        return False
    last = status.last_challenge_at
    if last is None:
        return True
    if status.state == "failing":
        return now_ms - last >= RETRY_BACKOFF_MS
    if status.misses > 0:
        return True
    if status.state == "passed":
        return interval_s > 0 and now_ms - last >= interval_s * 1000
    return False
