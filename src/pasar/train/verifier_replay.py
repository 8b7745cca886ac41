"""The harness's side of a pol check: replay the segments a verifier names, in the job's own
script, and report what came out (issue 16; the verifier's side is :mod:`pasar.verifier.pol`).

Why inside the job's script: only the script knows how to build the model, the optimizer and
the data (``build(seed)``), so the verifier runs the job's own command in its sandbox with
:data:`~pasar.train.harness.REPLAY_ENV` set, and :func:`pasar.train.train` lands here instead of
training. The verifier has put the prover's manifest and checkpoints where the job writes them.

First the environment: a replay is bitwise only in the environment the manifest records, so a
verifier whose fingerprint differs replays nothing and reports the difference (it cannot
reproduce the run: never a reason to slash). Then each segment (:func:`replay_segments`) and
the hash of the last checkpoint (the trained model the client takes away). The
report (:data:`REPORT`) is the verifier's to judge; nothing here decides.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pasar.core.errors import PasarError
from pasar.train.environment import configure_torch, fingerprint
from pasar.train.harness import HASHES, MANIFEST, Setup, checkpoint_hash, replay_segments

REPORT = "pol_replay.json"


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
        if not differs:
            committed = json.loads((folder / HASHES).read_text())["hashes"]
            done = replay_segments(build, folder, parse_segments(segments), committed=committed)
            report["segments"] = [asdict(s) for s in done]
            report["final_hash"] = checkpoint_hash(build, folder, int(manifest["steps"]))
    except PasarError as exc:
        report["error"] = {"code": exc.code, "message": exc.message}
    except (OSError, ValueError) as exc:  # no manifest, or one that is not JSON
        report["error"] = {"code": "bad_manifest", "message": f"{type(exc).__name__}: {exc}"}
    (folder / REPORT).write_text(json.dumps(report))
