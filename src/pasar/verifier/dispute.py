"""Both sides of a pol dispute, answered automatically (issue 16; the market's side is
:mod:`pasar.core.dispute_handlers`).

* The **verifier** whose replay found a step that differs opens the dispute over that segment
  (:func:`opening`): the prover's step root and hashes (from its ``step_hashes.json``), its own
  replayed hashes of the segment and their root, and the four proofs the market checks.
* Each round's question reaches both parties on their feeds (the answer's ``asked_step``);
  :class:`DisputeAnswerer` answers once per step with the hash this side committed and its
  Merkle proof: the verifier from its replay, the **provider** from the step hashes it
  committed in its receipt (fetched back from the market by their sha256: it need keep
  nothing). An answer is forced by the committed root: a cheating prover cannot answer
  anything but what it committed, which is how the bisection pins its step.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pasar.api.txs import DisputeAnswer, DisputeOpen
from pasar.client import calls
from pasar.core.errors import PasarError
from pasar.crypto.merkle import MerkleTree, root_of_hashes

log = logging.getLogger("pasar.dispute")

HASHES = "step_hashes.json"  # pasar.train.harness.HASHES (a unit test checks they agree)


@dataclass(frozen=True)
class Side:
    """What one side committed: its hashes, the step of the first one and their tree."""

    hashes: tuple[str, ...]
    first_step: int = 0

    @property
    def tree(self) -> MerkleTree:
        return MerkleTree.from_hashes(self.hashes)

    @property
    def root(self) -> str:
        return root_of_hashes(self.hashes)

    def answer(self, dispute_id: str, step: int) -> DisputeAnswer:
        i = step - self.first_step
        return DisputeAnswer(dispute_id=dispute_id, step=step, hash=self.hashes[i],
                             proof=self.tree.proof(i).to_dict())  # fmt: skip


def opening(
    check_id: str, prover: list[str], start: int, replayed: list[str]
) -> tuple[DisputeOpen, Side]:
    """The ``dispute.open`` over steps ``start .. start+len(replayed)-1`` (``replayed[0]`` is
    the agreed start state), and the verifier's side for the rounds to come."""
    mine = Side(tuple(replayed), first_step=start)
    theirs = Side(tuple(prover))
    end = start + len(replayed) - 1
    body = DisputeOpen(
        check_id=check_id,
        start=start,
        end=end,
        prover_root=theirs.root,
        verifier_root=mine.root,
        start_hash=replayed[0],
        end_hash=replayed[-1],
        prover_end_hash=prover[end],
        proofs={
            "prover_start": theirs.tree.proof(start).to_dict(),
            "verifier_start": mine.tree.proof(0).to_dict(),
            "prover_end": theirs.tree.proof(end).to_dict(),
            "verifier_end": mine.tree.proof(end - start).to_dict(),
        },
    )
    return body, mine


class DisputeAnswerer:
    """Answers the rounds of the disputes this party is in (see the module doc).

    ``load`` finds a side it does not hold yet from a feed event (the provider's: its
    committed step hashes, by lease); the verifier adds its side when it opens a dispute."""

    def __init__(
        self, api: Any, load: Callable[[dict[str, Any]], Side | None] | None = None
    ) -> None:
        self.api = api
        self.load = load
        self.sides: dict[str, Side] = {}
        self.answered: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def add(self, dispute_id: str, side: Side) -> None:
        with self._lock:
            self.sides[dispute_id] = side

    def on_event(self, event: dict[str, Any]) -> None:
        """A dispute transaction's result (a feed event or the answer to our own)."""
        dispute_id, step = event.get("dispute_id"), event.get("asked_step")
        if not isinstance(dispute_id, str) or not isinstance(step, int):
            return
        if event.get("status") != "open":
            return
        with self._lock:
            side = self.sides.get(dispute_id)
        if side is None and self.load is not None:
            side = self.load(event)
            if side is not None:
                self.add(dispute_id, side)
        if side is None:  # not ours, or ours before :meth:`add` (its caller answers then)
            return
        with self._lock:
            if (dispute_id, step) in self.answered:
                return
            self.answered.add((dispute_id, step))
        try:
            answer = self.api.perform(calls.answer_dispute(side.answer(dispute_id, step)))
        except PasarError as exc:
            log.warning("dispute %s, step %s: %s", dispute_id, step, exc.message)
            return
        log.info("dispute %s: answered step %s", dispute_id, step)
        self.on_event(answer.model_dump())  # the next round may be ours to answer at once


def provider_side(api: Any, provider: str) -> Callable[[dict[str, Any]], Side | None]:
    """The prover's loader: its committed step hashes, fetched back by their sha256 from its
    own receipt (a dispute names the lease)."""

    def load(event: dict[str, Any]) -> Side | None:
        lease_id = event.get("lease_id")
        if not isinstance(lease_id, str):
            return None
        try:
            view = api.lease(lease_id)
            if view.provider != provider:
                return None
            outputs = (view.receipt or {}).get("outputs") or []
            entry = next(o for o in outputs if PurePosixPath(o["path"]).name == HASHES)
            with tempfile.TemporaryDirectory() as tmp:
                dest = Path(tmp) / HASHES
                if api.get_blob(entry["sha256"], dest) != entry["sha256"]:
                    raise PasarError(f"{HASHES} could not be fetched intact", code="fetch_failed")
                hashes = json.loads(dest.read_text())["hashes"]
        except (PasarError, StopIteration, KeyError, ValueError) as exc:
            log.warning("dispute over lease %s: cannot load the committed hashes: %s",
                        lease_id, exc)  # fmt: skip
            return None
        return Side(tuple(hashes))

    return load
