"""``verification: pol`` — proof of learning: a verifier replays sampled segments of a training
run whose every step the prover committed (issue 16; the harness is :mod:`pasar.train`).

Why sampled replay: re-running a whole training job doubles its cost (``replicate``). A run
under the harness commits, in the outputs its signed receipt roots, the manifest (written before
step 1), the hash of the full training state after every step with their Merkle root, a
checkpoint every k steps and the update norm of each k-step segment. Replaying s of its N
segments from their checkpoints costs about s/N of the training, and a prover that faked m
segments escapes only if none of them is sampled: detection = 1 - (1 - m/N)^s (sampling with
replacement; without it, as here, a little higher: :func:`detection`).

The steps, each a transaction the audit replays (they are ``replicate``'s, so the check
handlers carry them out unchanged, :mod:`pasar.core.check_handlers`):

1. **receipt** — a successful receipt holds the lease; its outputs' root commits the manifest,
   the step hashes and their root, the checkpoints and the segment norms.
2. **draw** (market) — the market signs the lease's receipt digest: the **challenge seed** is
   that signature, fixed only once the commitment exists and unknown to the prover before it
   (Ed25519 is deterministic: the market cannot grind it either). Every pol receipt is checked.
3. **check** (verifier) — :func:`sample_segments` turns the seed and the committed norms into
   the segments to replay: (a) the ``top`` segments with the largest update per epoch (where a
   real update concentrates: a prover that perturbs or corrupts a step tends to show up there),
   and (b) ``random`` segments drawn uniformly from the rest — top-Q alone is gameable, since a
   prover that skips steps reports small norms. The verifier replays them from the checkpoints,
   compares every step hash bitwise with its Merkle proof against the committed root, and signs
   ``matches``: true only when every sampled segment matched (:mod:`pasar.verifier.pol`).
4. **verdict** — one agreeing check pays the provider (and the verifier its fee); a mismatch
   calls ``checkers`` (2N+1) verifiers and the majority decides: the provider proven wrong is
   paid nothing, the client's escrow goes back to the order, the provider is slashed per the
   preset and the slash reward goes to the verifier who proved it (money conserved: the
   ledger moves it). A missing manifest or checkpoint is a mismatch (the prover cannot show its
   work: it loses once the checkers say so by their deadline). A verifier whose environment
   differs from the manifest's replays in tolerance mode (below), or, under ``mode=bitwise``,
   sends nothing (never a false slash): the check goes to another verifier at its deadline.

**Tolerance mode.** A bitwise replay needs the manifest's environment; a verifier on another
machine (another CPU capability, threads, mkldnn) would send no verdict, and a job whose
provider's environment no verifier shares would never be checked. So such a verifier replays
in tolerance mode (:mod:`pasar.train.tolerance`): each sampled segment in its own environment,
its end state compared with the prover's committed checkpoint there by the largest per-tensor
normalized distance, held to :data:`TOLERANCE_THRESHOLD` (a stated multiple of the largest
honest cross-environment distance measured by ``benchmarks/bench_pol_tolerance.py``). Its
verdict carries ``mode: tolerance`` and the ``distance`` (decimal text: no floats in signed
data); :func:`check_tolerance_verdict` holds it to the threshold — a mismatch at or below it
is refused (never a slash on a distance an honest run reaches), a match above it too. A
tolerance mismatch goes to the checkers' majority as a bitwise one does, but never to a
step-bisection dispute (step hashes mean nothing across environments: the dispute is
refused). The threshold is calibrated per job: the verifier replays each segment in two
environments of its own and the verdict carries that ``noise`` and the ``threshold`` it gives,
``max(TOLERANCE_THRESHOLD, NOISE_MULTIPLE x noise)`` (:func:`calibrated_threshold`), which
core checks (it cannot check the noise itself: the checkers' majority outvotes a forged one on a
mismatch); above :data:`NOISE_CAP` the verifier abstains. The spec chooses with ``mode=``:
``auto`` (default: tolerance only where the verifier's environment differs), ``tolerance``
(always), ``bitwise`` (never: a verifier in another environment sends nothing, as before).

A check earns ``fee_rate`` (the preset's ``pol_fee_rate``) × the lease's work cost: a replay
of s of N segments is that share of the work. The preset sets ``top`` (Q), ``random`` (r) and
the longest segment ``segment`` (k) a manifest may use; a spec may raise Q and r
(``pol:top=2,random=16``), never lower them, and the policy takes the larger of each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from math import comb
from typing import TYPE_CHECKING

from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.verify.replicate import ReplicatePolicy

if TYPE_CHECKING:
    from pasar.core.presets import Verification

SEED_DOMAIN = b"pasar-pol-challenge\n"
ARGUMENTS = ("top", "random", "mode")
#: ``auto``: a verifier replays bit for bit in the manifest's environment and in tolerance
#: mode in another; ``tolerance``: always in tolerance mode; ``bitwise``: never (a verifier in
#: another environment sends no verdict)
MODES = ("auto", "tolerance", "bitwise")
#: tolerance mode's threshold is this multiple of the largest distance measured between honest
#: runs in different environments over a segment (benchmarks/bench_pol_tolerance.py)
TOLERANCE_MULTIPLE = 10
TOLERANCE_HONEST_MAX = Fraction(27, 10**7)  # 2.7e-6: bench_pol_tolerance.py, rounded up
TOLERANCE_THRESHOLD = TOLERANCE_MULTIPLE * TOLERANCE_HONEST_MAX
#: per job: a tolerance verifier replays each sampled segment in two environments of its own
#: and holds the prover to ``max(policy threshold, NOISE_MULTIPLE x their distance)``
#: (bench_pol_tolerance.py: its two environments are as far apart as either is from the
#: prover's, so 10x keeps the example's margin)
NOISE_MULTIPLE = 10
#: above this measured noise a cheat would hide in it: the verifier abstains (no verdict)
NOISE_CAP = Fraction(1, 100)


def calibrated_threshold(floor: Fraction, noise: Fraction) -> Fraction:
    """The threshold a tolerance verdict measuring ``noise`` is held to: never below the
    policy's ``floor`` (the market-wide one), and ``NOISE_MULTIPLE`` × the noise above it."""
    return max(floor, NOISE_MULTIPLE * noise)


@dataclass(frozen=True)
class PolPolicy(ReplicatePolicy):
    """Replay ``top`` segments per epoch and ``random`` more, from every held pol receipt."""

    rate: Fraction = Fraction(1)  # every pol receipt is checked: the sample is the spot check
    top: int = 1
    random: int = 8
    segment: int = 10
    fee_rate: Fraction = Fraction(1, 10)
    name: str = "pol"
    verdict_by_match: bool = True
    mode: str = "auto"  # MODES: where tolerance verdicts are allowed (see the module doc)
    threshold: Fraction = TOLERANCE_THRESHOLD

    def drawn(self, draw_signature: bytes) -> bool:
        """Every pol receipt is checked; the draw's signature is the challenge seed."""
        return True

    def check_fee(self, cost: Money) -> Money:
        """A replay of a sample of the segments: ``fee_rate`` of what the training cost."""
        return cost.scale(self.fee_rate)

    def sample(self, draw_signature: bytes, norms: Sequence[float], per_epoch: int) -> list[int]:
        """The segments this policy replays for the lease the market drew ``draw_signature``
        for (see :func:`sample_segments`)."""
        return sample_segments(
            challenge_seed(draw_signature), norms, per_epoch=per_epoch, top=self.top,
            random=self.random,
        )  # fmt: skip


def challenge_seed(draw_signature: bytes) -> bytes:
    """The challenge seed: a hash of the market's signature over the receipt."""
    return hashlib.sha256(SEED_DOMAIN + draw_signature).digest()


def sample_segments(
    seed: bytes, norms: Sequence[float], *, per_epoch: int, top: int, random: int
) -> list[int]:
    """The indexes (sorted) of the segments to replay out of ``len(norms)``.

    (a) in each epoch (``per_epoch`` consecutive segments), the ``top`` with the largest norm
    (ties by index); (b) ``random`` more, uniformly without replacement from the others, drawn
    with H(seed, i). All of them when the run has no more segments than that."""
    count = len(norms)
    if per_epoch < 1:
        raise PasarError("per_epoch must be at least 1", code="invalid_sample", field="per_epoch")
    picked: set[int] = set()
    for first in range(0, count, per_epoch):
        epoch = range(first, min(first + per_epoch, count))
        ranked = sorted(epoch, key=lambda i: (-float(norms[i]), i))
        picked.update(ranked[:top])
    rest = [i for i in range(count) if i not in picked]
    for n in range(min(random, len(rest))):
        digest = hashlib.sha256(seed + n.to_bytes(8, "big")).digest()
        picked.add(rest.pop(int.from_bytes(digest[:8], "big") % len(rest)))
    return sorted(picked)


def segment_bounds(index: int, every: int, steps: int) -> tuple[int, int]:
    """Segment ``index`` replays steps ``start+1 .. end`` from the checkpoint at ``start``."""
    start = index * every
    return start, min(start + every, steps)


def segment_count(steps: int, every: int) -> int:
    return -(-steps // every)


def detection(faked: int, segments: int, sampled: int) -> float:
    """The chance that ``sampled`` segments drawn without replacement out of ``segments`` hit
    at least one of ``faked``: 1 - C(N-m, s)/C(N, s) (≈ 1 - (1 - m/N)^s, slightly above it)."""
    if faked <= 0:
        return 0.0
    sampled = min(sampled, segments)
    return 1.0 - comb(segments - faked, sampled) / comb(segments, sampled)


def detection_formula(faked: int, segments: int, sampled: int) -> float:
    """The issue's estimate 1 - (1 - m/N)^s (with replacement: a lower bound)."""
    return 1.0 - (1.0 - faked / segments) ** sampled


def parse_argument(argument: str) -> dict[str, int | str]:
    """``top=2,random=16,mode=tolerance`` (any, all or none): Q and r as integers at least 0,
    the mode one of :data:`MODES` (``tolerance`` alone is ``mode=tolerance``)."""
    out: dict[str, int | str] = {}
    for part in filter(None, (p.strip() for p in argument.split(","))):
        key, _, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if key in MODES and not value:
            key, value = "mode", key
        ok = value in MODES if key == "mode" else value.isdigit()
        if key not in ARGUMENTS or key in out or not ok:
            raise PasarError(
                f"verification 'pol:{argument}': expected top=N, random=N and/or "
                f"mode={'|'.join(MODES)}, found {part!r}",
                code="invalid_verification",
                status=422,
                field="spec.verification",
                hint="e.g. pol:top=2,random=16,mode=tolerance (a spec may raise the preset's "
                "numbers)",
            )
        out[key] = value if key == "mode" else int(value)
    return out


@dataclass(frozen=True)
class ToleranceVerdict:
    """A pol verdict's checked tolerance fields (all None but ``mode`` for a bitwise one)."""

    mode: str
    distance: str | None = None
    noise: str | None = None
    threshold: str | None = None


def check_tolerance_verdict(
    policy: PolPolicy,
    matches: object,
    mode: object,
    distance: object,
    *,
    noise: object = None,
    threshold: object = None,
) -> ToleranceVerdict:
    """A pol verdict's ``mode``, ``distance``, ``noise`` and ``threshold``, checked; a
    :class:`PasarError` naming the field otherwise.

    A tolerance verdict needs a policy that allows it and a distance (decimal text, at least
    0) on the side of its threshold that its ``matches`` says: a mismatch at or below it is
    refused — a verifier never slashes on a distance an honest prover in another environment
    reaches — and so is a match above it. The threshold is the policy's, or, where the
    verdict carries the ``noise`` its verifier measured between two replays of its own, the
    calibrated :func:`calibrated_threshold` — the verdict states it and it must be exactly
    that (never below the policy's floor). Core cannot check the noise itself (it replays
    nothing): a noise above :data:`NOISE_CAP` is refused (the verifier should have abstained),
    and below it a forged noise is one verifier's word, which the checkers' majority outvotes
    on a mismatch as it does a forged distance."""
    if mode is None or mode == "bitwise":
        for name, value in (("distance", distance), ("noise", noise), ("threshold", threshold)):
            if value is not None:
                raise _verdict_error(f"a {name} is for a tolerance verdict", name)
        return ToleranceVerdict("bitwise")
    if mode != "tolerance":
        raise _verdict_error("mode must be bitwise or tolerance", "mode")
    if policy.mode == "bitwise":
        raise _verdict_error(
            "this job's spec allows bitwise replays only (pol:mode=bitwise)", "mode"
        )
    value = _fraction(distance)
    if value is None:
        raise _verdict_error(
            "a tolerance verdict needs its distance as decimal text at least 0", "distance"
        )
    limit = policy.threshold
    if noise is not None or threshold is not None:
        measured, stated = _fraction(noise), _fraction(threshold)
        if measured is None:
            raise _verdict_error(
                "a calibrated threshold needs the noise measured, as decimal text at least 0",
                "noise",
            )
        if measured > NOISE_CAP:
            raise _verdict_error(
                f"noise {noise} is above the cap {float(NOISE_CAP):g}: a cheat would hide in "
                "it (a verifier abstains there)",
                "noise",
            )
        limit = calibrated_threshold(policy.threshold, measured)
        if stated != limit:
            raise _verdict_error(
                f"threshold {threshold} is not max(floor {float(policy.threshold):g}, "
                f"{NOISE_MULTIPLE} x noise {noise}) = {decimal_text(limit)}",
                "threshold",
            )
    if matches is False and value <= limit:
        raise _verdict_error(
            f"distance {distance} is within the tolerance threshold {float(limit):g}: "
            "not a mismatch",
            "distance",
        )
    if matches is True and value > limit:
        raise _verdict_error(
            f"distance {distance} is above the tolerance threshold {float(limit):g}: not a match",
            "distance",
        )
    return ToleranceVerdict(
        "tolerance", str(distance), None if noise is None else str(noise),
        None if threshold is None else str(threshold),
    )  # fmt: skip


def decimal_text(value: Fraction) -> str:
    """``value`` as decimal text that parses back to exactly it (a verdict's threshold: no
    floats in signed data); exact for any terminating decimal up to 60 digits."""
    with localcontext() as context:
        context.prec = 60
        text = str((Decimal(value.numerator) / Decimal(value.denominator)).normalize())
    return text


def _fraction(text: object) -> Fraction | None:
    if not isinstance(text, str) or len(text) > 40:
        return None
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        return None
    return value if value >= 0 else None


def _verdict_error(message: str, field: str) -> PasarError:
    return PasarError(
        message,
        code="invalid_verdict",
        status=422,
        field=field,
        hint="a tolerance verdict: mode 'tolerance', distance as decimal text (e.g. '3.1e-06'); "
        "with noise, threshold = max(floor, NOISE_MULTIPLE x noise) as decimal text",
    )


def build_pol(argument: str, rules: Verification) -> PolPolicy:
    """The preset's Q, r and k, with Q and r raised to what the spec asks (never lowered)."""
    asked = parse_argument(argument)
    return PolPolicy(
        checkers=rules.checkers,
        check_fee_rate=rules.check_fee_rate,
        slash_rate=rules.slash_rate,
        top=max(rules.pol_top, int(asked.get("top", 0))),
        random=max(rules.pol_random, int(asked.get("random", 0))),
        segment=rules.pol_segment,
        fee_rate=rules.pol_fee_rate,
        mode=str(asked.get("mode", "auto")),
    )


__all__ = [
    "MODES",
    "NOISE_CAP",
    "NOISE_MULTIPLE",
    "TOLERANCE_THRESHOLD",
    "PolPolicy",
    "ToleranceVerdict",
    "build_pol",
    "calibrated_threshold",
    "challenge_seed",
    "check_tolerance_verdict",
    "decimal_text",
    "detection",
    "detection_formula",
    "sample_segments",
    "segment_bounds",
    "segment_count",
]
