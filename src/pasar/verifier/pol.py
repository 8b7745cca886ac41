"""A pol check: replay the sampled segments of a committed training run (issue 16).

The market drew the lease (its signature over the receipt is the challenge seed) and gave the
check to this verifier with the sample's sizes (:attr:`CheckView.challenge`). Then:

1. **fetch** the prover's manifest and step hashes (outputs of the lease, each checked against
   its sha256, which the receipt's root commits), pick the segments with the policy's
   :func:`~pasar.core.verify.pol.sample_segments` from the seed and the committed update norms,
   and fetch only the checkpoints they start from;
2. **replay** them by running the job's own command in the sandbox with
   ``PASAR_POL_REPLAY`` set: the harness in the job's script checks the manifest's environment
   against its own and replays (:mod:`pasar.train.verifier_replay`);
3. **judge** (:func:`judge`): the hash of each loaded start checkpoint and every replayed step
   hash equal to the committed leaf, each leaf proven under the committed root with its Merkle
   proof; each segment's update norm (start checkpoint to replayed end) equal to the committed
   one; and the last checkpoint (the model the client takes away) the committed final state;
4. **verdict**: ``matches`` true or false, signed. A manifest, step-hash file or checkpoint the
   prover did not deliver is a mismatch (it cannot show its work).

**Another environment.** Where this verifier's environment differs from the manifest's (or the
spec asks ``pol:mode=tolerance``), the harness replays in tolerance mode
(:mod:`pasar.train.verifier_replay`): the segments' end checkpoints are fetched too, each
replayed end state is compared with the prover's end checkpoint by a normalized distance, and
:func:`judge_tolerance` holds the largest to the job's threshold: the policy's (the
challenge's ``threshold``) raised to ``NOISE_MULTIPLE`` x the noise between this verifier's own
two replays of the segments (the harness runs the second in another environment), no verdict
above ``NOISE_CAP``; the checkpoints' hashes are still held to the committed leaves exactly. The
verdict carries ``mode: tolerance``, the distance, the noise and the threshold, and opens no
dispute (step hashes across
environments cannot be bisected). Under ``pol:mode=bitwise`` such a verifier sends nothing: the
check goes to another verifier at its deadline — never a false slash. This machine's own
choices (``PASAR_TRAIN_CAPABILITY``, ``_THREADS``, ``_MKLDNN``: :mod:`pasar.train.environment`)
are passed to the replay.

A lease whose outputs hold no manifest is not a harness run: the job is re-run whole, as under
``replicate``, and ``matches`` says whether the roots agree (a prover that withheld the
manifest of a job that writes one disagrees with the re-run).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any

from pasar.api.receipts import Failure, FileEntry
from pasar.api.txs import CheckVerdict
from pasar.client import calls
from pasar.core.errors import PasarError
from pasar.core.verify.pol import (
    NOISE_CAP,
    TOLERANCE_THRESHOLD,
    calibrated_threshold,
    decimal_text,
    sample_segments,
    segment_bounds,
    segment_count,
)
from pasar.core.verify.pol import challenge_seed as seed_of
from pasar.crypto.hashing import sha256_file
from pasar.crypto.merkle import MerkleTree, hash_leaf, root_of_files, root_of_hashes, verify_proof
from pasar.crypto.sealing import decrypt_file
from pasar.provider.runtime.base import Outcome
from pasar.verifier.dispute import DisputeAnswerer, opening
from pasar.verifier.rerun import CheckExecutor

log = logging.getLogger("pasar.verifier")

# the harness's names (pasar.train.harness / verifier_replay: importing pasar.train here would
# pin this process's thread environment, so they are repeated; a unit test checks they agree)
MANIFEST = "manifest.json"
HASHES = "step_hashes.json"
REPORT = "pol_replay.json"
REPLAY_ENV = "PASAR_POL_REPLAY"
MODE_ENV = "PASAR_POL_MODE"
#: pasar.train.environment.CHOICES: this machine's own environment, passed to a replay
CHOICES = ("PASAR_TRAIN_CAPABILITY", "PASAR_TRAIN_THREADS", "PASAR_TRAIN_MKLDNN")


def checkpoint_name(step: int) -> str:
    return f"checkpoints/step-{step:08d}.pt"


def find_run(outputs: list[FileEntry]) -> str | None:
    """The folder (``""`` for the top) of the one harness run among a lease's outputs: where a
    ``manifest.json`` is; None when there is none (not a harness run)."""
    folders = sorted(
        str(PurePosixPath(o.path).parent) for o in outputs if PurePosixPath(o.path).name == MANIFEST
    )
    if not folders:
        return None
    return "" if folders[0] == "." else folders[0]


def _in(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


@dataclass(frozen=True)
class Plan:
    """What to replay: the segments' indexes and bounds, from the committed run."""

    every: int
    steps: int
    indexes: list[int]
    bounds: list[tuple[int, int]]


@dataclass
class Judgement:
    """``matches`` None: cannot reproduce (no verdict sent)."""

    matches: bool | None
    reason: str
    first_bad_step: int | None = None
    segments: list[int] = field(default_factory=list)
    # a step that differs in a segment replayed step by step: ``(start, hashes)``, this
    # verifier's hashes of steps start.. (what it commits to when it opens a dispute)
    disputed: tuple[int, list[str]] | None = None
    mode: str = "bitwise"  # or "tolerance": compared by distance (another environment)
    distance: float | None = None  # tolerance mode: the largest distance measured
    noise: str | None = None  # tolerance mode: the noise between its own two replays (text)
    threshold: Fraction | None = None  # tolerance mode: the threshold it held the job to


def plan(challenge: dict[str, Any], manifest: dict[str, Any], committed: dict[str, Any]) -> Plan:
    """The segments to replay, or a :class:`PasarError` naming what the prover got wrong."""
    steps, every = int(manifest["steps"]), int(manifest["checkpoint_every"])
    hashes, norms = committed["hashes"], committed["norms"]
    if every > int(challenge["segment"]):
        raise _bad(f"the run checkpoints every {every} steps; this market allows at most "
                   f"{challenge['segment']}")  # fmt: skip
    if int(committed.get("checkpoint_every", every)) != every:
        raise _bad("the step hashes and the manifest disagree on the checkpoint interval")
    if len(hashes) != steps + 1 or root_of_hashes(hashes) != committed["root"]:
        raise _bad("the step hashes are not the manifest's steps under the committed root")
    if hashes[0] != manifest.get("initial_state_sha256"):
        raise _bad("the first step hash is not the manifest's initial state")
    count = segment_count(steps, every)
    if len(norms) != count or not all(isinstance(n, int | float) for n in norms):
        raise _bad(f"expected {count} segment norms, found {len(norms)}")
    per_epoch = (manifest.get("config") or {}).get("steps_per_epoch")
    per = max(1, int(per_epoch) // every) if isinstance(per_epoch, int) else count
    indexes = sample_segments(
        seed_of(bytes.fromhex(challenge["seed"])), norms, per_epoch=per,
        top=int(challenge["top"]), random=int(challenge["random"]),
    )  # fmt: skip
    return Plan(every, steps, indexes, [segment_bounds(i, every, steps) for i in indexes])


def _bad(message: str) -> PasarError:
    return PasarError(message, code="pol_mismatch")


def judge(
    committed: dict[str, Any],
    the_plan: Plan,
    report: dict[str, Any],
    threshold: Fraction = TOLERANCE_THRESHOLD,
) -> Judgement:
    """Compare the replay report with the commitment (see the module doc)."""
    if report.get("mode") == "tolerance" and not report.get("error"):
        return judge_tolerance(committed, the_plan, report, threshold)
    environment = report.get("environment") or {}
    if environment.get("matches") is False:
        differs = environment.get("differs")
        return Judgement(None, f"cannot reproduce: this environment differs: {differs}")
    error = report.get("error")
    if error:
        code = error.get("code")
        if code in ("missing_checkpoint", "bad_checkpoint", "bad_manifest", "invalid_segment"):
            return Judgement(False, f"{code}: {error.get('message')}")
        return Judgement(None, f"the replay failed here: {code}: {error.get('message')}")
    replayed = report.get("segments")
    if not isinstance(replayed, list) or len(replayed) != len(the_plan.bounds):
        return Judgement(None, "the replay reported no segments (the job is not a harness run?)")
    hashes, norms = committed["hashes"], committed["norms"]
    root = committed["root"]
    tree = MerkleTree.from_hashes(hashes)

    def proven(step: int, value: str) -> bool:  # the replayed hash is the committed leaf
        return verify_proof(root, hash_leaf(value), tree.proof(step))

    for index, (start, end), got in zip(the_plan.indexes, the_plan.bounds, replayed, strict=True):
        if (got.get("start"), got.get("end")) != (start, end):
            return Judgement(None, "the replay answered other segments than asked")
        first = got.get("first")
        if first not in (start + 1, end) or len(got["hashes"]) != end - first + 1:
            return Judgement(None, "the replay reported a segment of the wrong length")
        checks = [(start, got["start_hash"], "its start checkpoint")]
        checks += [(first + i, h, "the replayed step") for i, h in enumerate(got["hashes"])]
        for step, value, what in checks:
            if not proven(step, value):
                why = f"segment {index} ({start}..{end}): step {step} differs ({what})"
                disputed = None
                if step > start and first == start + 1:
                    disputed = (start, [got["start_hash"], *got["hashes"]])
                return Judgement(False, why, step, the_plan.indexes, disputed)
        if got["norm"] != norms[index]:
            return Judgement(False, f"segment {index}: the committed update norm "
                             f"{norms[index]} is not its checkpoints' {got['norm']}",
                             start, the_plan.indexes)  # fmt: skip
    final = report.get("final_hash")
    if not isinstance(final, str) or not proven(the_plan.steps, final):
        why = f"the last checkpoint (step {the_plan.steps}) is not the committed final state"
        return Judgement(False, why, the_plan.steps, the_plan.indexes)
    n = len(the_plan.indexes)
    return Judgement(True, f"{n} sampled segment(s) replayed bit for bit", None, the_plan.indexes)


def judge_tolerance(
    committed: dict[str, Any], the_plan: Plan, report: dict[str, Any], threshold: Fraction
) -> Judgement:
    """A tolerance-mode report: every loaded checkpoint's hash (each segment's start and end,
    and the last) proven under the committed root exactly; each checkpoint-to-checkpoint update
    norm the committed one up to rounding; and every replayed end within the job's threshold
    of the prover's end checkpoint. A commitment that fails is a bitwise fact (loading is exact
    everywhere); only the distance is tolerance's.

    The job's threshold: ``max(threshold, NOISE_MULTIPLE x noise)``, the noise being the
    largest distance between this verifier's own two honest replays of the segments
    (:func:`~pasar.core.verify.pol.calibrated_threshold`). Above :data:`NOISE_CAP` a cheat
    would hide in the noise: no verdict. Without a noise measured (the second replay failed)
    a distance above ``threshold`` is no verdict either: never a slash on a distance this
    verifier cannot tell from honest drift."""
    hashes, norms, root = committed["hashes"], committed["norms"], committed["root"]
    tree = MerkleTree.from_hashes(hashes)
    replayed = report.get("segments")
    if not isinstance(replayed, list) or len(replayed) != len(the_plan.bounds):
        return Judgement(None, "the replay reported no segments (the job is not a harness run?)")
    noises = [got.get("noise") if isinstance(got, dict) else None for got in replayed]
    numbers = [float(n) for n in noises if isinstance(n, int | float) and math.isfinite(n)]
    measured = bool(numbers) and len(numbers) == len(noises)
    noise_text = repr(max(numbers)) if measured else None
    limit = threshold
    if noise_text is not None:
        if Fraction(noise_text) > NOISE_CAP:
            why = (f"cannot judge: this job's own honest replays in two environments differ "
                   f"by {noise_text} (above the cap {float(NOISE_CAP):g}: a cheat would hide "
                   "in that noise)")  # fmt: skip
            return Judgement(None, why, None, the_plan.indexes, None, "tolerance")
        limit = calibrated_threshold(threshold, Fraction(noise_text))
    worst = 0.0
    for index, (start, end), got in zip(the_plan.indexes, the_plan.bounds, replayed, strict=True):
        if (got.get("start"), got.get("end")) != (start, end):
            return Judgement(None, "the replay answered other segments than asked")
        for step, value in ((start, got.get("start_hash")), (end, got.get("end_hash"))):
            if not isinstance(value, str) or not verify_proof(
                root, hash_leaf(value), tree.proof(step)
            ):
                why = f"segment {index}: the checkpoint at step {step} is not the committed state"
                return Judgement(False, why, step, the_plan.indexes)
        norm, gap = float(got.get("norm", -1)), float(got.get("distance", "inf"))
        if abs(norm - float(norms[index])) > 1e-6 * max(abs(float(norms[index])), 1e-12):
            why = f"segment {index}: the committed update norm {norms[index]} is not {norm}"
            return Judgement(False, why, start, the_plan.indexes)
        worst = max(worst, gap)
        if not gap <= limit:  # NaN included
            why = (
                f"segment {index} ({start}..{end}) replayed in another environment ends "
                f"{gap:.3g} from the committed checkpoint (threshold {float(limit):g}, "
                f"noise {noise_text})"
            )
            if noise_text is None:
                why = f"cannot judge: no noise measured ({report.get('noise')}); {why}"
                return Judgement(None, why, end, the_plan.indexes, None, "tolerance", gap)
            return Judgement(False, why, end, the_plan.indexes, None, "tolerance", gap,
                             noise_text, limit)  # fmt: skip
    final = report.get("final_hash")
    if not isinstance(final, str) or not verify_proof(
        root, hash_leaf(final), tree.proof(the_plan.steps)
    ):
        why = f"the last checkpoint (step {the_plan.steps}) is not the committed final state"
        return Judgement(False, why, the_plan.steps, the_plan.indexes)
    n = len(the_plan.indexes)
    why = (f"{n} sampled segment(s) within {worst:.3g} of threshold {float(limit):g} "
           f"(tolerance mode, another environment; noise {noise_text})")  # fmt: skip
    return Judgement(True, why, None, the_plan.indexes, None, "tolerance", worst,
                     noise_text, limit if noise_text is not None else None)  # fmt: skip


def distance_text(value: float | None) -> str:
    """A distance as the decimal text a verdict signs (no floats in signed data)."""
    number = float(value if value is not None else 0.0)
    return "1e300" if math.isnan(number) else repr(min(number, 1e300))  # inf, NaN: far


class PolCheckExecutor(CheckExecutor):
    """Fetches the commitment and the sampled checkpoints, replays, judges, signs."""

    run_folder: str | None = None
    the_plan: Plan | None = None
    committed: dict[str, Any] | None = None
    refusal: str | None = None  # the prover did not deliver what it committed to
    disputes: DisputeAnswerer | None = None  # the agent's: opens and answers disputes
    abstained: str | None = None  # why no verdict was sent (it could not judge the run)

    def _fetch_inputs(self) -> str | None:
        problem = super()._fetch_inputs()
        if problem is not None:
            return problem
        theirs = {o.path: o for o in self.check.provider_outputs}
        self.run_folder = find_run(list(theirs.values()))
        if self.run_folder is None:  # not a harness run: re-run it whole (see the module doc)
            return None
        challenge = dict(self.check.challenge or {})
        try:
            manifest = json.loads(self._fetch(theirs, MANIFEST).read_text())
            self.committed = json.loads(self._fetch(theirs, HASHES).read_text())
            self.the_plan = plan(challenge, manifest, self.committed)
            steps = {start for start, _end in self.the_plan.bounds} | {self.the_plan.steps}
            if challenge.get("mode", "auto") != "bitwise":  # tolerance compares the ends too
                steps |= {end for _start, end in self.the_plan.bounds}
            for step in sorted(steps):
                self._fetch(theirs, checkpoint_name(step))
        except PasarError as exc:
            self.refusal = exc.message
        except (ValueError, KeyError, TypeError) as exc:
            self.refusal = f"the committed run is malformed: {type(exc).__name__}: {exc}"
        return None

    def _fetch(self, theirs: dict[str, FileEntry], name: str) -> Path:
        path = _in(self.run_folder or "", name)
        entry = theirs.get(path)
        if entry is None:
            raise _bad(f"the prover's outputs have no {path}")
        dest = self.workdir / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        fetched = dest.with_name(dest.name + ".sealed") if self.data_key is not None else dest
        if self.api.get_blob(entry.sha256, fetched) != entry.sha256:
            raise PasarError(f"{path} could not be fetched intact", code="fetch_failed")
        if self.data_key is not None:  # a sealed job's output: its plaintext, checked
            decrypt_file(fetched, dest, self.data_key)
            fetched.unlink()
            if entry.plain_sha256 is not None and sha256_file(dest) != entry.plain_sha256:
                raise _bad(f"{path} does not decrypt to the plaintext the receipt names")
        return dest

    def _start(self, env: dict[str, str], limits: Any) -> Any:
        if self.run_folder is not None:
            bounds = [] if self.the_plan is None else self.the_plan.bounds
            mode = str((self.check.challenge or {}).get("mode") or "auto")
            mine = {k: os.environ[k] for k in CHOICES if os.environ.get(k)}
            env = {**env, **mine, REPLAY_ENV: json.dumps(bounds), MODE_ENV: mode}
        return super()._start(env, limits)

    def _finish(
        self,
        exit_code: int,
        kill_reason: str | None,
        *,
        note: str | None,
        outputs: list[FileEntry],
        outcome: Outcome | None = None,
        failure: Failure | None = None,
    ) -> None:
        if self.run_folder is None:  # a whole re-run: the roots decide
            root = root_of_files((o.path, o.sha256) for o in outputs)
            self._send(outputs, root == self.check.provider_root, "a whole re-run")
            return
        report_path = self.workdir / _in(self.run_folder, REPORT)
        if self.refusal is not None:
            judgement = Judgement(False, self.refusal)
        elif self.the_plan is None or self.committed is None or not report_path.is_file():
            judgement = Judgement(None, f"the job wrote no replay report (exit {exit_code})")
        else:
            report = json.loads(report_path.read_text())
            threshold = (self.check.challenge or {}).get("threshold")
            limit = Fraction(str(threshold)) if threshold else TOLERANCE_THRESHOLD
            judgement = judge(self.committed, self.the_plan, report, limit)
        if judgement.matches is None:  # never a verdict against a run it could not reproduce
            log.warning("check %s: %s: no verdict sent", self.check.check_id, judgement.reason)
            self.abstained = judgement.reason
            return
        mine = []
        if report_path.is_file():
            rel = _in(self.run_folder, REPORT)
            mine = [FileEntry(path=rel, sha256=sha256_file(report_path),
                              size=report_path.stat().st_size)]  # fmt: skip
        self._send(mine, judgement.matches, judgement.reason, judgement)
        # a sealed job's committed files are ciphertext to the market: its provider could not
        # fetch its step hashes back to answer, so the checkers' majority decides it as before
        if judgement.disputed is not None and self.committed is not None and not self.data_key:
            self._dispute(*judgement.disputed)

    def _dispute(self, start: int, replayed: list[str]) -> None:
        """Open a dispute over the segment whose step differs, and answer its first round."""
        assert self.committed is not None
        body, side = opening(self.check.check_id, self.committed["hashes"], start, replayed)
        try:
            answer = self.api.perform(calls.open_dispute(body))
        except PasarError as exc:
            log.warning("check %s: no dispute opened: %s", self.check.check_id, exc.message)
            return
        dispute_id = str(answer.model_dump().get("dispute_id"))
        log.info("check %s: opened %s over steps %s..%s", self.check.check_id, dispute_id,
                 body.start, body.end)  # fmt: skip
        if self.disputes is not None:
            self.disputes.add(dispute_id, side)
            self.disputes.on_event(answer.model_dump())

    def _send(
        self, outputs: list[FileEntry], matches: bool, why: str, judged: Judgement | None = None
    ) -> None:
        tolerance = judged is not None and judged.mode == "tolerance"
        body = CheckVerdict(
            check_id=self.check.check_id,
            outputs=outputs,
            root=root_of_files((o.path, o.sha256) for o in outputs),
            matches=matches,
            mode="tolerance" if tolerance else None,
            distance=distance_text(judged.distance) if tolerance and judged else None,
            noise=judged.noise if tolerance and judged else None,
            threshold=decimal_text(judged.threshold)
            if tolerance and judged and judged.noise is not None and judged.threshold is not None
            else None,
        )
        self.api.perform(calls.verdict(body))
        self.verdict_sent = True
        log.info("check %s of lease %s: %s (%s)", self.check.check_id, self.check.lease_id,
                 "matches" if matches else "MISMATCH", why)  # fmt: skip
