"""Tolerance mode: compare two training states by distance, where bits cannot (issue 16).

Why: a replay is bitwise only in the environment the manifest records — another thread count,
CPU capability or mkldnn rounds differently, and the hashes differ from the first step on. A
verifier on another machine would otherwise send no verdict at all, and a job whose provider's
environment no verifier shares would never be checked. In tolerance mode the verifier replays
the segment in its own environment and compares its state at the segment's end with the
prover's committed checkpoint there (that checkpoint's hash is the committed step hash) by

    distance = max over tensors  ||a - b|| / (||b|| + eps)

over every floating-point tensor of the state (parameters and optimizer state,
:func:`pasar.train.state_hash.state_tensors`), in float64. The threshold it is held to is not
a magic number: ``benchmarks/bench_pol_tolerance.py`` measures the largest distance between
honest runs in different environments over a segment and the cheats' distances, and
:data:`pasar.core.verify.pol.TOLERANCE_THRESHOLD` is a stated multiple of the honest one
(docs/verification.md, "Tolerance mode") — a floor: each verifier raises it for the job at hand
to a multiple of the distance between its own two honest replays in two environments
(:mod:`pasar.train.verifier_replay`, :func:`pasar.core.verify.pol.calibrated_threshold`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

EPS = 1e-12


def distance(replayed: Mapping[str, Any], committed: Mapping[str, Any]) -> float:
    """The largest per-tensor normalized distance ``||a - b|| / (||b|| + eps)`` of
    ``replayed`` from ``committed`` (name -> tensor). A tensor missing on either side or of
    another shape is infinitely far (the states are not the same training)."""
    if set(replayed) != set(committed):
        return float("inf")
    worst = 0.0
    for name in sorted(committed):
        a, b = replayed[name], committed[name]
        if tuple(a.shape) != tuple(b.shape):
            return float("inf")
        a64, b64 = a.double(), b.double()
        gap = float((a64 - b64).norm()) / (float(b64.norm()) + EPS)
        if math.isnan(gap):  # NaN: a state that is not numbers any more
            return float("inf")
        worst = max(worst, gap)
    return worst


__all__ = ["EPS", "distance"]
