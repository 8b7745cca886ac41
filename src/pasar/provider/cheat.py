"""A provider that cheats on purpose: for tests and the demo, never for real markets.

Why it exists: a verification policy is only as good as the cheaters it catches, and the only
way to show that is to run mixed fleets where some honest agents misbehave on a known fraction
of their leases, then compare what the market caught with what was cheated. ``pasar provider
start --cheat KIND:RATE`` (hidden from ``--help``) turns an honest agent into such a cheater;
the agent refuses it unless the market's ``/v1/healthz`` says ``devnet: true``.

The kinds (what a real cheater would do to save work or earn more):

* ``skip`` — do not run the job at all; write made-up outputs (one small file per declared
  output), upload them and sign an ordinary receipt (exit 0) whose root is those outputs'
  Merkle root, so the receipt is well-formed and only a re-run can tell.
* ``garble`` — run the job honestly, then flip bytes of every output before hashing and
  uploading (a faulty GPU, or a provider that corrupts results on purpose).
* ``lazy`` — a cheaper computation: run the job with its wall-clock budget cut to
  :data:`LAZY_WALL_S` seconds, then claim success (exit 0, no kill reason) with whatever
  outputs it wrote by then, declared outputs it did not write filled with cheap made-up
  content. A job shorter than that budget comes out right: laziness that costs nothing is not
  caught, as on a real network.
* ``drop`` — run the job honestly, then delete its first declared output and sign a
  ``missing_outputs`` failure receipt with the rest (a provider that keeps a result it did not
  want to upload, yet is paid its verified seconds); only a re-run shows the job writes it.
* ``pol`` — a training job under the proof-of-learning harness fakes 10% of its steps (the
  weights copied forward, :mod:`pasar.train.cheat`'s ``skip``) and commits what it reached,
  so its receipt is well-formed and only a replay of a sampled segment tells.
  ``pol:perturb`` (or another of the harness's cheats: ``pol:skip``, ``pol:subset``, ...)
  does that one on every lease: ``perturb`` nudges one weight by 1e-3 at one step, once.
* ``slow`` — claim a faster machine than this one: register a benchmark score
  :data:`SLOW_FACTOR` × the measured one. The claim is per provider, not per lease, so every
  lease it runs is run under it (the rate only turns it on: any RATE above 0).

Which leases: per lease, deterministically from the lease id and a local seed
(:meth:`CheatPlan.applies`), so a test reproduces the same choices and, over many leases, the
fraction cheated is RATE. Every lease cheated on is recorded in ``<home>/cheats.jsonl`` (one
JSON object per line), so tests compare "caught" with "cheated".
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

from pasar.core.errors import PasarError

CHEAT_KINDS = ("skip", "garble", "lazy", "drop", "slow", "pol")
#: what a ``pol`` cheater does to a proof-of-learning job (read by its harness: pasar.train.cheat)
POL_CHEAT = {"PASAR_POL_CHEAT": "skip:0.1"}
LAZY_WALL_S = 1  # seconds a lazy lease's job may run before it claims to have finished
SLOW_FACTOR = 4  # how much faster than measured a slow cheater claims to be
GARBLE_BYTES = 64  # bytes flipped at the start of each output (all of a shorter one)
CHEAT_LOG = "cheats.jsonl"
SEED_FILE = "cheat-seed"
_HASH_SPACE = 1 << 64


def _bad(message: str, hint: str) -> PasarError:
    return PasarError(message, code="invalid_cheat", field="--cheat", hint=hint)


@dataclass(frozen=True)
class CheatPlan:
    """``--cheat KIND:RATE`` with the seed that picks the leases."""

    kind: str
    rate: Fraction
    seed: str

    def applies(self, lease_id: str) -> bool:
        """Whether to cheat on ``lease_id``: a hash of the seed and the lease id, read as a
        number in [0, 1), below RATE. Deterministic (tests replay it) and uniform (the
        fraction over many leases is RATE). ``slow`` cheats on every lease once RATE > 0:
        its lie is told when registering, not per lease."""
        if self.rate <= 0:
            return False
        if self.kind == "slow" or self.rate >= 1:
            return True
        digest = hashlib.sha256(f"{self.seed}:{lease_id}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big")
        return draw * self.rate.denominator < self.rate.numerator * _HASH_SPACE

    def claimed_score(self, measured: int) -> int:
        """The benchmark score to register: inflated for ``slow``, honest otherwise."""
        if self.kind == "slow" and self.rate > 0:
            return measured * SLOW_FACTOR
        return measured


#: ``--cheat pol:KIND`` cheats on every lease with one of the harness's cheats (the names of
#: pasar.train.cheat.KINDS, repeated: importing pasar.train pins the thread environment)
POL_KINDS = ("skip", "skipblock", "subset", "cheap", "perturb")


def cheat_environment(kind: str | None) -> dict[str, str]:
    """What a cheat adds to the job's environment (``pol``: its harness fakes steps;
    ``pol:perturb`` and the like: that harness cheat)."""
    if kind == "pol":
        return dict(POL_CHEAT)
    if kind is not None and kind.startswith("pol:"):
        return {"PASAR_POL_CHEAT": kind.removeprefix("pol:")}
    return {}


def parse_cheat(text: str, *, seed: str) -> CheatPlan:
    """``KIND:RATE`` (``garble:0.5``, ``skip:1``, ``lazy:25%``) → a plan, or a PasarError
    naming ``--cheat`` (the CLI's exit 2)."""
    hint = f"--cheat KIND:RATE with KIND one of {', '.join(CHEAT_KINDS)} and RATE in [0, 1]"
    kind, sep, rate_text = text.strip().partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in CHEAT_KINDS:
        raise _bad(f"--cheat {text!r} is not KIND:RATE with a known kind", hint)
    rate_text = rate_text.strip()
    if kind == "pol" and rate_text.lower() in POL_KINDS:  # pol:perturb — on every lease
        return CheatPlan(kind=f"pol:{rate_text.lower()}", rate=Fraction(1), seed=seed)
    percent = rate_text.endswith("%")
    try:
        value = Decimal(rate_text.rstrip("%").strip())
    except InvalidOperation:
        raise _bad(f"--cheat rate {rate_text!r} is not a number", hint) from None
    if not value.is_finite():
        raise _bad(f"--cheat rate {rate_text!r} is not a number", hint)
    rate = Fraction(value) / (100 if percent else 1)
    if not 0 <= rate <= 1:
        raise _bad(f"--cheat rate {rate_text!r} is outside [0, 1]", hint)
    return CheatPlan(kind=kind, rate=rate, seed=seed)


def local_seed(home: Path) -> str:
    """The seed of this provider home (made once, kept in ``<home>/cheat-seed``), so the
    same home cheats on the same leases every run."""
    path = home / SEED_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        seed = secrets.token_hex(16)
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(seed + "\n")
        return seed


def refuse_unless_devnet(devnet: bool) -> None:
    """A cheating agent only ever runs against a development market."""
    if not devnet:
        raise PasarError(
            "--cheat is only for development markets, and this market is not one",
            code="cheat_refused",
            field="--cheat",
            hint="start the market with --devnet (pasar devnet up), or drop --cheat",
        )


class CheatLog:
    """``<home>/cheats.jsonl``: one line per lease cheated on (appended from lease threads)."""

    def __init__(self, home: Path) -> None:
        self.path = home / CHEAT_LOG
        self._lock = threading.Lock()

    def record(self, lease_id: str, kind: str, **detail: Any) -> None:
        line = json.dumps(
            {"lease_id": lease_id, "kind": kind, "at": int(time.time() * 1000), **detail},
            sort_keys=True,
        )
        with self._lock, self.path.open("a") as f:
            f.write(line + "\n")


def read_cheats(home: Path) -> list[dict[str, Any]]:
    """Every lease ``home``'s agent cheated on, oldest first (empty when it never did)."""
    try:
        text = (home / CHEAT_LOG).read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- what each kind does to a lease's workdir ---------------------------------------------------


def made_up_content(lease_id: str, name: str) -> bytes:
    """Cheap content for an output the job never wrote (``skip``, ``lazy``)."""
    return f"pasar cheat: {name} of {lease_id} was never computed\n".encode()


def fill_missing(workdir: Path, outputs: list[str], lease_id: str) -> list[str]:
    """Write made-up content for every declared output missing from ``workdir``; the names
    written. A name that cannot be written (outside the workdir, a parent is a file) is left
    missing: the receipt then says so, as an honest one would."""
    root = workdir.resolve()
    written: list[str] = []
    for name in outputs:
        target = workdir / name
        try:
            if target.exists() or target.is_symlink():
                continue
            if not target.resolve().is_relative_to(root):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(made_up_content(lease_id, name))
        except OSError:
            continue
        written.append(name)
    return written


def drop_output(workdir: Path, outputs: list[str]) -> list[str]:
    """Delete the first declared output that exists (a file or a folder); what was dropped."""
    for name in outputs:
        target = workdir / name
        if target.is_symlink() or not target.exists():
            continue
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
        return [name]
    return []


def garble_outputs(workdir: Path, outputs: list[str]) -> list[str]:
    """Flip the first :data:`GARBLE_BYTES` bytes of every regular file among the declared
    outputs (a directory: every file under it); an empty file gets one byte, so every hash
    changes. The relative paths garbled."""
    garbled: list[str] = []
    for name in outputs:
        target = workdir / name
        if target.is_symlink():
            continue
        if target.is_dir():
            files = sorted(
                Path(folder) / f for folder, _dirs, names in os.walk(target) for f in names
            )
        else:
            files = [target]
        for path in files:
            if path.is_symlink() or not path.is_file():
                continue
            _flip(path)
            garbled.append(path.relative_to(workdir).as_posix())
    return garbled


def _flip(path: Path) -> None:
    with path.open("r+b") as f:
        head = f.read(GARBLE_BYTES)
        f.seek(0)
        f.write(bytes(b ^ 0xFF for b in head) if head else b"\xff")
