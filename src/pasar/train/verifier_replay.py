"""The harness's side of a pol check: replay the segments a verifier names, in the job's own
script, and report what came out (issue 16; the verifier's side is :mod:`pasar.verifier.pol`).

Why inside the job's script: only the script knows how to build the model, the optimizer and
the data (``build(seed)``), so the verifier runs the job's own command in its sandbox with
:data:`~pasar.train.harness.REPLAY_ENV` set, and :func:`pasar.train.train` lands here instead of
training. The verifier has put the prover's manifest and checkpoints where the job writes them.

First the environment: a replay is bitwise only in the environment the manifest records. A
verifier whose fingerprint differs replays in **tolerance mode** (:data:`MODE_ENV`: ``auto``,
the default, or ``tolerance`` asked by the spec): each segment from its start checkpoint in
this environment, and its end state compared with the prover's checkpoint at the segment's end
by a normalized distance (:mod:`pasar.train.tolerance`); the hashes of the checkpoints it
loads (start, end, last) are still exact — loading is bitwise everywhere — so they are still
held to the committed leaves. Where the spec allows bitwise replays only (``bitwise``), it
replays nothing and reports the difference (it cannot reproduce the run: never a reason to
slash). Otherwise each segment (:func:`replay_segments`) and the hash of the last checkpoint
(the trained model the client takes away). The report (:data:`REPORT`) is the verifier's to
judge; nothing here decides.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pasar.core.errors import PasarError
from pasar.train.environment import configure_torch, fingerprint
from pasar.train.harness import (
    HASHES,
    MANIFEST,
    Setup,
    _step,
    checkpoint_hash,
    derive_seed,
    load_checkpoint,
    replay_segments,
    update_norm,
)
from pasar.train.state_hash import state_hash, state_tensors
from pasar.train.tolerance import distance

REPORT = "pol_replay.json"
#: set by a pol verifier: ``auto`` (tolerance mode when this environment differs from the
#: manifest's), ``tolerance`` (always) or ``bitwise`` (never: report the difference)
MODE_ENV = "PASAR_POL_MODE"
MODES = ("auto", "tolerance", "bitwise")


def environment_differences(committed: dict[str, Any], mine: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint entries that differ: ``{key: [committed, mine]}``."""
    keys = sorted(set(committed) | set(mine))
    return {k: [committed.get(k), mine.get(k)] for k in keys if committed.get(k) != mine.get(k)}


def parse_segments(text: str) -> list[tuple[int, int]]:
    try:
        value = json.loads(text)
        segments = [(int(a), int(b)) for a, b in value]
    except (ValueError, TypeError) as exc:
        raise PasarError(
            f"the segments to replay are not a JSON list of [start, end]: {exc}",
            code="invalid_segment",
            field="PASAR_POL_REPLAY",
        ) from None
    return segments


def replay_for_verifier(build: Callable[[int], Setup], out: str | Path, segments: str) -> None:
    """Write the replay report of ``segments`` (JSON ``[[start, end], ...]``) into ``out``."""
    folder = Path(out)
    report: dict[str, Any] = {}
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        configure_torch()
        differs = environment_differences(dict(manifest.get("environment") or {}), fingerprint())
        report["environment"] = {"matches": not differs, "differs": differs}
        mode = os.environ.get(MODE_ENV) or "auto"
        if mode == "tolerance" or (differs and mode == "auto"):
            report["mode"] = "tolerance"
            done_t = tolerance_segments(build, folder, parse_segments(segments))
            report["segments"] = [asdict(s) for s in done_t]
            report["final_hash"] = checkpoint_hash(build, folder, int(manifest["steps"]))
        elif not differs:
            report["mode"] = "bitwise"
            committed = json.loads((folder / HASHES).read_text())["hashes"]
            done = replay_segments(build, folder, parse_segments(segments), committed=committed)
            report["segments"] = [asdict(s) for s in done]
            report["final_hash"] = checkpoint_hash(build, folder, int(manifest["steps"]))
    except PasarError as exc:
        report["error"] = {"code": exc.code, "message": exc.message}
    except (OSError, ValueError) as exc:  # no manifest, or one that is not JSON
        report["error"] = {"code": "bad_manifest", "message": f"{type(exc).__name__}: {exc}"}
    (folder / REPORT).write_text(json.dumps(report))


@dataclass(frozen=True)
class ToleranceReplay:
    """One segment replayed in tolerance mode: the state hashes of its start and end
    checkpoints as loaded (exact: the verifier holds them to the committed leaves), the
    normalized distance of the replayed end state from the end checkpoint, and the update norm
    between the two checkpoints (the committed norm, up to rounding)."""

    start: int
    end: int
    start_hash: str
    end_hash: str
    distance: float
    norm: float


def tolerance_segments(
    build: Callable[[int], Setup], out: str | Path, segments: list[tuple[int, int]]
) -> list[ToleranceReplay]:
    """Replay each ``(start, end)`` from its start checkpoint in this environment and measure
    how far its end state is from the prover's checkpoint at ``end`` (see the module doc)."""
    import torch

    folder = Path(out)
    manifest = json.loads((folder / MANIFEST).read_text())
    steps = int(manifest["steps"])
    for start, end in segments:
        if not 0 <= start < end <= steps:
            raise PasarError(
                f"no such segment {start}..{end} of a {steps}-step run",
                code="invalid_segment",
                field="segment",
            )
    configure_torch()
    seed = int(manifest["seed"])
    torch.manual_seed(derive_seed(seed, "init", 0))
    setup = build(seed)
    done = []
    for start, end in segments:
        load_checkpoint(folder, start, setup)
        start_hash = state_hash(setup.model, setup.optimizer, start, setup.scheduler)
        before = {k: v.detach().clone() for k, v in setup.model.state_dict().items()}
        for step in range(start + 1, end + 1):
            _step(setup, seed, step)
        replayed = state_tensors(setup.model, setup.optimizer)
        load_checkpoint(folder, end, setup)
        end_hash = state_hash(setup.model, setup.optimizer, end, setup.scheduler)
        gap = distance(replayed, state_tensors(setup.model, setup.optimizer))
        norm = update_norm(before, setup.model.state_dict())
        done.append(ToleranceReplay(start, end, start_hash, end_hash, gap, norm))
    return done
