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

**The job's own noise.** How far honest runs drift apart between environments depends on the
job (a deeper model, a larger learning rate, a longer segment drift further), so one
market-wide threshold would slash an honest prover of a chaotic job. In tolerance mode the
replay therefore measures it: it runs the job's own command once more, in a second
environment of this machine that differs from its own the way its own differs from the
manifest's (:func:`second_environment`: the manifest's capability, threads and mkldnn where
they differ and this machine can select them; another CPU capability otherwise), replays the
same segments there, and reports each segment's ``noise`` — the distance between its own two
honest replays (:data:`NOISE_ENV` marks that second run). The verifier turns it into the
job's threshold (:func:`pasar.core.verify.pol.calibrated_threshold`). Tolerance mode
therefore replays each sampled segment twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from pasar.core.errors import PasarError
from pasar.train.environment import (
    CAPABILITY_ENV,
    CHOICES,
    MKLDNN_ENV,
    THREADS_ENV,
    configure_torch,
    fingerprint,
)
from pasar.train.harness import (
    HASHES,
    MANIFEST,
    Setup,
    _step,
    checkpoint_hash,
    load_checkpoint,
    replay_segments,
    seeded_setup,
    segments_manifest,
    update_norm,
)
from pasar.train.state_hash import state_hash, state_tensors
from pasar.train.tolerance import distance

REPORT = "pol_replay.json"
#: set by a pol verifier: ``auto`` (tolerance mode when this environment differs from the
#: manifest's), ``tolerance`` (always) or ``bitwise`` (never: report the difference)
MODE_ENV = "PASAR_POL_MODE"
MODES = ("auto", "tolerance", "bitwise")
#: set on the second, noise-measuring replay: the file of the first replay's end states
NOISE_ENV = "PASAR_POL_NOISE"
ENDS = "pol_replay_ends.pt"  # the first replay's end states (removed after)
NOISE = "pol_noise.json"  # the second replay's noise per segment (removed after)


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
        if os.environ.get(NOISE_ENV):  # the second replay: only the noise (see the doc)
            first = _load_ends(Path(os.environ[NOISE_ENV]))
            done_n = tolerance_segments(build, folder, parse_segments(segments), against=first)
            (folder / NOISE).write_text(json.dumps([s.noise for s in done_n]))
            return
        if mode == "tolerance" or (differs and mode == "auto"):
            report["mode"] = "tolerance"
            ends: dict[str, Any] = {}
            done_t = tolerance_segments(build, folder, parse_segments(segments), keep=ends)
            report["noise"] = measure_noise(folder, segments, ends, manifest)
            noise = report["noise"].get("segments")
            if isinstance(noise, list) and len(noise) == len(done_t):
                done_t = [replace(s, noise=n) for s, n in zip(done_t, noise, strict=True)]
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


def second_environment(committed: dict[str, Any], mine: dict[str, Any]) -> dict[str, str]:
    """The ``PASAR_TRAIN_*`` choices of the noise-measuring replay: this machine's own, with
    the CPU capability, threads and mkldnn set to the manifest's where they differ (the way
    this environment differs from the prover's); where none of those differs (the difference
    is the torch version, the machine...) or none can be selected, another CPU capability."""
    own = {k: os.environ[k] for k in CHOICES if os.environ.get(k)}
    other = dict(own)
    theirs, here = str(committed.get("capability") or ""), str(mine.get("capability") or "")
    if theirs and theirs != here and theirs.lower() in _capabilities():
        other[CAPABILITY_ENV] = theirs.lower()
    threads, mkldnn = committed.get("threads"), committed.get("mkldnn")
    if isinstance(threads, int) and threads != mine.get("threads"):
        other[THREADS_ENV] = str(threads)
    if isinstance(mkldnn, bool) and mkldnn != mine.get("mkldnn"):
        other[MKLDNN_ENV] = "1" if mkldnn else "0"
    if other == own:
        options = [c for c in _capabilities() if c != here.lower()]
        other[CAPABILITY_ENV] = "avx2" if "avx2" in options else (options or ["default"])[0]
    return other


def _capabilities() -> list[str]:
    """The CPU capabilities this machine can run (``default`` always)."""
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.exists() else set()
    return ["default"] + [c for c, f in (("avx2", "avx2"), ("avx512", "avx512f")) if f in flags]


def measure_noise(
    folder: Path, segments: str, ends: dict[str, Any], manifest: dict[str, Any]
) -> dict[str, Any]:
    """Replay ``segments`` again in :func:`second_environment` (the job's own command, in a
    child process: torch reads the environment when it loads) and return ``{"environment",
    "segments": [noise per segment]}`` or ``{"environment", "error"}``. The child is
    ``sys.executable`` with this process's ``sys.argv`` (a script started with ``python -m``
    runs as its file); where it fails no noise is measured, and the verifier then sends no
    mismatch above the floor (:func:`pasar.verifier.pol.judge_tolerance`)."""
    import torch

    other = second_environment(dict(manifest.get("environment") or {}), fingerprint())
    base = {k: v for k, v in os.environ.items() if k not in CHOICES}
    path = folder / ENDS
    torch.save(ends, path)
    try:
        done = subprocess.run(
            [sys.executable, *sys.argv], capture_output=True, text=True, check=False,
            env={**base, **other, NOISE_ENV: str(path)},
        )  # fmt: skip
        noise_file = folder / NOISE
        if done.returncode != 0 or not noise_file.is_file():
            tail = (done.stderr or done.stdout)[-300:]
            return {"environment": other, "error": f"exit {done.returncode}: {tail}"}
        values = json.loads(noise_file.read_text())
        noise_file.unlink()
        return {"environment": other, "segments": values}
    finally:
        path.unlink(missing_ok=True)


def _load_ends(path: Path) -> dict[str, Any]:
    import torch

    ends: dict[str, Any] = torch.load(path, weights_only=True)
    return ends


@dataclass(frozen=True)
class ToleranceReplay:
    """One segment replayed in tolerance mode: the state hashes of its start and end
    checkpoints as loaded (exact: the verifier holds them to the committed leaves), the
    normalized distance of the replayed end state from the end checkpoint, the update norm
    between the two checkpoints (the committed norm, up to rounding), and the ``noise``: the
    distance between this machine's two honest replays of it (see the module doc)."""

    start: int
    end: int
    start_hash: str
    end_hash: str
    distance: float
    norm: float
    noise: float | None = None


def tolerance_segments(
    build: Callable[[int], Setup],
    out: str | Path,
    segments: list[tuple[int, int]],
    *,
    keep: dict[str, Any] | None = None,
    against: dict[str, Any] | None = None,
) -> list[ToleranceReplay]:
    """Replay each ``(start, end)`` from its start checkpoint in this environment and measure
    how far its end state is from the prover's checkpoint at ``end`` (see the module doc);
    ``keep`` collects the replayed end states (``"start-end"``: tensors), and each segment's
    noise is its distance from ``against``'s (another replay's ``keep``)."""
    folder = Path(out)
    manifest = segments_manifest(folder, segments)
    seed = int(manifest["seed"])
    setup = seeded_setup(build, seed)
    done = []
    for start, end in segments:
        load_checkpoint(folder, start, setup)
        start_hash = state_hash(setup.model, setup.optimizer, start, setup.scheduler)
        before = {k: v.detach().clone() for k, v in setup.model.state_dict().items()}
        for step in range(start + 1, end + 1):
            _step(setup, seed, step)
        replayed = state_tensors(setup.model, setup.optimizer)
        key = f"{start}-{end}"
        if keep is not None:
            keep[key] = replayed
        noise = distance(replayed, against[key]) if against is not None and key in against else None
        load_checkpoint(folder, end, setup)
        end_hash = state_hash(setup.model, setup.optimizer, end, setup.scheduler)
        gap = distance(replayed, state_tensors(setup.model, setup.optimizer))
        norm = update_norm(before, setup.model.state_dict())
        done.append(ToleranceReplay(start, end, start_hash, end_hash, gap, norm, noise))
    return done
