"""Cheating provers, for tests and the benchmark only: a verification scheme is only as good as
the cheaters it catches (issue 16; the provider-side cheats are :mod:`pasar.provider.cheat`).

Each cheat saves work (or corrupts the run) on some steps and still commits the hash of the
state it really reached, so its commitment is well-formed and only a replay of a segment that
holds a cheated step tells:

* ``skip`` — a share of the steps is not computed: the weights are copied forward (the cheater
  even sets the random generator where an honest step would have left it);
* ``skipblock`` — the same share, as one contiguous block (the worst case for random sampling:
  it touches the fewest segments);
* ``subset`` — every step trains on a subset of the data (its batch drawn from 8 batches
  only);
* ``cheap`` — a cheaper model on a share of the steps: only the last layer learns;
* ``perturb`` — one weight nudged by 1e-3 at one step, once.

``KIND[:SHARE]`` (share of steps, default 0.1) from :data:`CHEAT_ENV` or :func:`Cheat.parse`;
which steps is decided by the run's seed (so the benchmark reproduces each run).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace

from pasar.core.errors import PasarError

CHEAT_ENV = "PASAR_POL_CHEAT"
KINDS = ("skip", "skipblock", "subset", "cheap", "perturb")
SUBSET_BATCHES = 8


@dataclass(frozen=True)
class Cheat:
    """Which steps of a ``total``-step run are cheated, and how (see the module doc)."""

    kind: str
    share: float = 0.1
    salt: int = 0
    total: int = 0
    steps: frozenset[int] = field(default=frozenset(), compare=False)

    @classmethod
    def parse(cls, text: str, salt: int = 0) -> Cheat:
        kind, _, share = text.partition(":")
        try:
            value = float(share) if share else 0.1
        except ValueError:
            value = -1.0
        if kind not in KINDS or not 0 < value <= 1:
            raise PasarError(
                f"unknown cheat {text!r}",
                code="invalid_cheat",
                field=CHEAT_ENV,
                hint="one of " + ", ".join(KINDS) + ", optionally :SHARE (0 < SHARE <= 1)",
            )
        return cls(kind, value, salt)

    def for_run(self, total: int) -> Cheat:
        """This cheat on a run of ``total`` steps, its cheated steps drawn from the salt."""
        count = max(1, round(self.share * total))
        chosen: set[int]
        if self.kind == "subset":
            chosen = set(range(1, total + 1))
        elif self.kind == "perturb":
            chosen = {1 + self._draw("perturb", 0) % total}
        elif self.kind == "skipblock":
            first = 1 + self._draw("block", 0) % (total - count + 1)
            chosen = set(range(first, first + count))
        else:
            pool = list(range(1, total + 1))
            chosen = {pool.pop(self._draw("step", n) % len(pool)) for n in range(count)}
        return replace(self, total=total, steps=frozenset(chosen))

    def _draw(self, purpose: str, n: int) -> int:
        data = f"{self.salt}:{self.kind}:{purpose}:{n}".encode()
        return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")

    def kind_at(self, step: int) -> str | None:
        """What is done at ``step`` (a block of skipped steps is skipped steps)."""
        if step not in self.steps:
            return None
        return "skip" if self.kind == "skipblock" else self.kind

    def data_step(self, step: int) -> int:
        """A subset cheater draws every batch from the first few steps' batches."""
        return 1 + step % SUBSET_BATCHES


def cheat_from_env(seed: int) -> Cheat | None:
    text = os.environ.get(CHEAT_ENV)
    return Cheat.parse(text, salt=seed) if text else None
