"""Training through the proof-of-learning harness: every step committed, replayable from the
checkpoints (issue 16). The same script runs locally (``python train.py``) and as a job.

A training job is a ``build(seed) -> Setup`` function: the model, optimizer (and scheduler), a
``batches(step, generator)`` function and a ``loss(model, batch)`` function, built the same way
every time. :func:`train` then, in the pinned environment (:mod:`pasar.train.environment`):

0. refuses a step that is not deterministic, naming the first operator whose outputs differ
   on two runs of step 1 (:mod:`pasar.train.determinism`);
1. writes the **manifest** before step 1 (:func:`manifest_of`): the script's hash, the setup's
   configuration, steps T, checkpoint interval k, the seed, the data's Merkle root, the
   environment fingerprint and the hash of the initial state, whose checkpoint (W0) is shipped
   rather than regenerated;
2. runs step t = 1..T with every random draw derived from (seed, t) — torch's generator is
   re-seeded from H(seed, "step", t) and the batch drawn with a generator seeded from
   H(seed, "data", t) — so a replay from any checkpoint draws exactly what the run drew;
3. hashes the whole state after every step (:func:`pasar.train.state_hash.state_hash`),
   keeps a checkpoint every k steps, and commits the Merkle root of the step hashes
   (step 0, the initial state, is leaf 0) — the root goes into the receipt — with the
   update norm of each k-step segment (how far its checkpoints are apart), from which a pol
   verifier picks the segments with the largest update (:mod:`pasar.core.verify.pol`).

:func:`replay` re-runs steps ``start+1 .. end`` from the checkpoint at ``start`` and returns the
hashes it computes, which a verifier compares with the committed ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pasar.core.errors import PasarError
from pasar.crypto.merkle import root_of_hashes
from pasar.train.cheat import Cheat, cheat_from_env
from pasar.train.determinism import check_step, traced_step
from pasar.train.environment import PINNED, configure_torch, fingerprint
from pasar.train.state_hash import state_hash

MANIFEST = "manifest.json"
HASHES = "step_hashes.json"
STEP_ROOT = "step_root.bin"  # pasar.core.disputes.STEP_ROOT (a unit test checks they agree)
LOSSES = "losses.json"
CHECKPOINTS = "checkpoints"
FORMAT = 1
#: set by a pol verifier: the JSON list of segments ``[[start, end], ...]`` to replay
REPLAY_ENV = "PASAR_POL_REPLAY"
#: set by a party to a pol dispute (or its referee): the step to trace operator by operator
TRACE_ENV = "PASAR_POL_TRACE"


@dataclass
class Setup:
    """A training job, as ``build(seed)`` returns it (the same way every time)."""

    model: Any
    optimizer: Any
    batches: Callable[[int, Any], Any]  # (step, torch.Generator) -> a batch
    loss: Callable[[Any, Any], Any]  # (model, batch) -> a scalar tensor
    scheduler: Any = None
    config: Mapping[str, Any] = field(default_factory=dict)  # batch size, lr...: the manifest's
    data_root: str | None = None  # the Merkle root of the data set, if it is files


@dataclass(frozen=True)
class Run:
    """What :func:`train` committed: the manifest, every step's hash, their root, the losses."""

    manifest: dict[str, Any]
    hashes: list[str]
    root: str
    losses: list[float]


def derive_seed(seed: int, purpose: str, step: int) -> int:
    """A 63-bit seed for one purpose at one step: H(seed, purpose, step)."""
    data = f"{seed}:{purpose}:{step}".encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big") & ((1 << 63) - 1)


def train(
    build: Callable[[int], Setup],
    *,
    steps: int,
    checkpoint_every: int,
    seed: int,
    out: str | Path,
    script: str | Path | None = None,
    cheat: Cheat | None = None,
) -> Run:
    """Run ``steps`` steps of ``build(seed)`` under the harness, writing the manifest, the
    checkpoints, the step hashes, the segment norms and the losses into ``out`` (see the
    module doc).

    Run by a pol verifier (``PASAR_POL_REPLAY`` names the segments to replay), it replays them
    instead, writes :data:`pasar.train.verifier_replay.REPORT` into ``out`` and ends the
    process (exit 0): the job script runs unchanged on both sides. ``cheat`` (or
    ``PASAR_POL_CHEAT``) makes this a cheating prover, for tests (:mod:`pasar.train.cheat`)."""
    if os.environ.get(REPLAY_ENV):
        from pasar.train.verifier_replay import replay_for_verifier

        replay_for_verifier(build, out, os.environ[REPLAY_ENV])
        raise SystemExit(0)
    cheat = cheat or cheat_from_env(seed)
    if os.environ.get(TRACE_ENV):
        from pasar.train.operators import trace_for_dispute

        trace_for_dispute(build, out, os.environ[TRACE_ENV], cheat)
        raise SystemExit(0)
    if steps < 1 or checkpoint_every < 1:
        raise PasarError(
            "steps and checkpoint_every must be at least 1",
            code="invalid_training",
            field="steps" if steps < 1 else "checkpoint_every",
        )
    _check_environment()
    configure_torch()
    folder = Path(out)
    check_step(lambda: _first_step_traced(build, seed))  # before anything is written
    (folder / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    import torch

    torch.manual_seed(derive_seed(seed, "init", 0))
    setup = build(seed)
    hashes = [state_hash(setup.model, setup.optimizer, 0, setup.scheduler)]
    _save_checkpoint(folder, 0, setup)
    manifest = manifest_of(
        setup,
        steps=steps,
        checkpoint_every=checkpoint_every,
        seed=seed,
        initial_hash=hashes[0],
        folder=folder,
        script=script,
    )
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    if cheat is not None:
        cheat = cheat.for_run(steps)
    losses: list[float] = []
    norms: list[float] = []
    before = _weights(setup)
    for step in range(1, steps + 1):
        losses.append(_step(setup, seed, step, cheat))
        hashes.append(state_hash(setup.model, setup.optimizer, step, setup.scheduler))
        if step % checkpoint_every == 0 or step == steps:
            _save_checkpoint(folder, step, setup)
            after = _weights(setup)
            norms.append(update_norm(before, after))
            before = after
    root = root_of_hashes(hashes)
    committed = {"root": root, "hashes": hashes, "checkpoint_every": checkpoint_every}
    (folder / HASHES).write_text(json.dumps({**committed, "norms": norms}))
    # the root alone, as 32 raw bytes: the receipt's sha256 of it binds a dispute's claimed
    # step root to this run without the market reading a blob (pasar.core.disputes)
    (folder / STEP_ROOT).write_bytes(bytes.fromhex(root))
    (folder / LOSSES).write_text(json.dumps(losses))
    return Run(manifest, hashes, root, losses)


def replay(build: Callable[[int], Setup], out: str | Path, start: int, end: int) -> list[str]:
    """The hashes of steps ``start+1 .. end``, recomputed from the checkpoint at ``start``
    with the manifest's seed (a verifier compares them with the committed ones)."""
    return replay_segments(build, out, [(start, end)])[0].hashes


@dataclass(frozen=True)
class SegmentReplay:
    """One segment replayed from its start checkpoint: the hash of that checkpoint as loaded,
    the hashes of steps ``first .. end`` (``first`` is ``start + 1`` when every step was
    hashed, ``end`` when only the end was), and the update norm from the start to the replayed
    end (a verifier compares each with what was committed). The end checkpoint is not loaded:
    the replayed end state is the committed one when its hash is, and that checkpoint is
    checked where it starts a sampled segment."""

    start: int
    end: int
    start_hash: str
    first: int
    hashes: list[str]
    norm: float


def segments_manifest(folder: Path, segments: list[tuple[int, int]]) -> dict[str, Any]:
    """The run's manifest, once each ``(start, end)`` is known to be a segment of it."""
    manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
    steps = int(manifest["steps"])
    for start, end in segments:
        if not 0 <= start < end <= steps:
            raise PasarError(
                f"no such segment {start}..{end} of a {steps}-step run",
                code="invalid_segment",
                field="segment",
            )
    return manifest


def seeded_setup(build: Callable[[int], Setup], seed: int) -> Setup:
    """The job's model, optimizer and data, built as training built them (torch configured,
    the init generator seeded), for a replay to load checkpoints into."""
    configure_torch()
    import torch

    torch.manual_seed(derive_seed(seed, "init", 0))
    return build(seed)


def replay_segments(
    build: Callable[[int], Setup],
    out: str | Path,
    segments: list[tuple[int, int]],
    *,
    committed: list[str] | None = None,
) -> list[SegmentReplay]:
    """Replay each ``(start, end)`` from the checkpoints in ``out`` (one build for all).

    Every step is hashed, unless ``committed`` (the committed step hashes) is given: then only
    each segment's end is (hashing is a good share of a small model's step), and a segment
    whose end differs is replayed again hashing every step, to name the first one that
    differs — the cheapest check for an honest run, the exact step for a cheat."""
    folder = Path(out)
    manifest = segments_manifest(folder, segments)
    _check_environment()
    seed = int(manifest["seed"])
    setup = seeded_setup(build, seed)
    done = []
    for start, end in segments:
        replayed = _replay_one(setup, folder, seed, start, end, every_step=committed is None)
        if committed is not None and replayed.hashes[-1] != committed[end]:
            replayed = _replay_one(setup, folder, seed, start, end, every_step=True)
        done.append(replayed)
    return done


def _replay_one(
    setup: Setup, folder: Path, seed: int, start: int, end: int, *, every_step: bool
) -> SegmentReplay:
    load_checkpoint(folder, start, setup)
    start_hash = state_hash(setup.model, setup.optimizer, start, setup.scheduler)
    before = _weights(setup)
    hashes = []
    for step in range(start + 1, end + 1):
        _step(setup, seed, step)
        if every_step or step == end:
            hashes.append(state_hash(setup.model, setup.optimizer, step, setup.scheduler))
    norm = update_norm(before, _weights(setup))
    first = start + 1 if every_step else end
    return SegmentReplay(start, end, start_hash, first, hashes, norm)


def checkpoint_hash(build: Callable[[int], Setup], out: str | Path, step: int) -> str:
    """The state hash of the checkpoint at ``step`` as loaded (the last one is the trained
    model a client takes away: a verifier checks it is the committed final state)."""
    folder = Path(out)
    seed = int(json.loads((folder / MANIFEST).read_text())["seed"])
    configure_torch()
    setup = build(seed)
    load_checkpoint(folder, step, setup)
    return state_hash(setup.model, setup.optimizer, step, setup.scheduler)


def manifest_of(
    setup: Setup,
    *,
    steps: int,
    checkpoint_every: int,
    seed: int,
    initial_hash: str,
    folder: Path,
    script: str | Path | None,
) -> dict[str, Any]:
    """The run's commitments before step 1 (see the module doc)."""
    path = Path(script) if script is not None else Path(sys.argv[0])
    code = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    optimizer = setup.optimizer
    return {
        "format": FORMAT,
        "code_sha256": code,
        "model": type(setup.model).__name__,
        "optimizer": type(optimizer).__name__,
        "optimizer_defaults": _plain(optimizer.defaults),
        "scheduler": None if setup.scheduler is None else type(setup.scheduler).__name__,
        "config": _plain(dict(setup.config)),
        "steps": steps,
        "checkpoint_every": checkpoint_every,
        "seed": seed,
        "data_root": setup.data_root,
        "environment": fingerprint(),
        "initial_state_sha256": initial_hash,
        "initial_checkpoint_sha256": _file_sha256(_checkpoint_path(folder, 0)),
    }


def _step(setup: Setup, seed: int, step: int, cheat: Cheat | None = None) -> float:
    import torch

    torch.manual_seed(derive_seed(seed, "step", step))
    kind = None if cheat is None else cheat.kind_at(step)
    if kind == "skip":  # weights copied forward: no batch, no gradient, no update
        return float("nan")
    data_step = cheat.data_step(step) if cheat is not None and kind == "subset" else step
    generator = torch.Generator().manual_seed(derive_seed(seed, "data", data_step))
    batch = setup.batches(step, generator)
    setup.optimizer.zero_grad(set_to_none=True)
    loss = setup.loss(setup.model, batch)
    loss.backward()
    if kind == "cheap":  # a cheaper model: only the last layer's parameters learn
        for parameter in list(setup.model.parameters())[:-2]:
            parameter.grad = None
    setup.optimizer.step()
    if setup.scheduler is not None:
        setup.scheduler.step()
    if kind == "perturb":  # one weight nudged by 1e-3, once
        with torch.no_grad():
            next(setup.model.parameters()).view(-1)[0] += 1e-3
    return float(loss.detach())


def _first_step_traced(
    build: Callable[[int], Setup], seed: int
) -> tuple[str, list[tuple[str, str]]]:
    """A fresh build's step 1, traced operator by operator, and the state hash after it."""
    import torch

    torch.manual_seed(derive_seed(seed, "init", 0))
    setup = build(seed)
    trace = traced_step(lambda: _step(setup, seed, 1))
    return state_hash(setup.model, setup.optimizer, 1, setup.scheduler), trace


def _weights(setup: Setup) -> dict[str, Any]:
    """The model's floating-point state (a copy), to measure a segment's update."""
    return {k: v.detach().clone() for k, v in setup.model.state_dict().items()}


def update_norm(before: Mapping[str, Any], after: Mapping[str, Any]) -> float:
    """The L2 norm of the update between two model states (float64, by sorted name: the same
    bits wherever the environment is the same, so a verifier recomputes it exactly)."""
    import torch

    total = torch.zeros((), dtype=torch.float64)
    for name in sorted(after):
        a, b = after[name], before[name]
        if a.is_floating_point():
            total += ((a.double() - b.double()) ** 2).sum()
    return float(total.sqrt())


def _checkpoint_path(folder: Path, step: int) -> Path:
    return folder / CHECKPOINTS / f"step-{step:08d}.pt"


def _save_checkpoint(folder: Path, step: int, setup: Setup) -> None:
    import torch

    state = {
        "step": step,
        "rng": torch.get_rng_state(),  # so a loaded checkpoint hashes as the committed step
        "model": setup.model.state_dict(),
        "optimizer": setup.optimizer.state_dict(),
        "scheduler": None if setup.scheduler is None else setup.scheduler.state_dict(),
    }
    torch.save(state, _checkpoint_path(folder, step))


def load_checkpoint(folder: Path, step: int, setup: Setup) -> None:
    """Load a checkpoint a prover wrote: tensors and plain values only (``weights_only``: a
    pickle from an untrusted party must not run code)."""
    import torch

    path = _checkpoint_path(folder, step)
    if not path.is_file():
        raise PasarError(
            f"no checkpoint at step {step}", code="missing_checkpoint", field="checkpoints"
        )
    try:
        state = torch.load(path, weights_only=True)
    except Exception as exc:  # not tensors and plain values (or not a checkpoint at all)
        raise PasarError(
            f"the checkpoint at step {step} cannot be loaded safely: {type(exc).__name__}",
            code="bad_checkpoint",
            field="checkpoints",
            hint="a checkpoint holds tensors and plain values only; anything else is refused",
        ) from None
    try:
        setup.model.load_state_dict(state["model"])
        setup.optimizer.load_state_dict(state["optimizer"])
        if setup.scheduler is not None and state.get("scheduler") is not None:
            setup.scheduler.load_state_dict(state["scheduler"])
        if state.get("rng") is not None:
            torch.set_rng_state(state["rng"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise PasarError(
            f"the checkpoint at step {step} does not fit the model: {type(exc).__name__}",
            code="bad_checkpoint",
            field="checkpoints",
        ) from None


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plain(value: Any) -> Any:
    """JSON-able: numbers, text, lists and mappings as they are, anything else as its repr."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _check_environment() -> None:
    """The pinned variables are in force: torch read them when it loaded (pinned by importing
    pasar.train first, or set by whoever started this process)."""
    import os

    wrong = {k: os.environ.get(k) for k in PINNED if not os.environ.get(k)}
    if wrong:
        raise PasarError(
            f"the determinism environment is not pinned ({', '.join(sorted(wrong))} unset)",
            code="environment_not_pinned",
            hint="import pasar.train before torch (first thing in the training script)",
        )


__all__ = [
    "REPLAY_ENV",
    "Run",
    "SegmentReplay",
    "Setup",
    "checkpoint_hash",
    "derive_seed",
    "load_checkpoint",
    "replay",
    "replay_segments",
    "train",
    "update_norm",
]
