"""Re-running a lease for a check: the provider's executor, minus what only a provider does.

A verifier runs the job exactly as the provider did — same inputs, same runtime, same
environment (``PASAR_LEASE`` is the *checked* lease's id, so a job that prints it prints the
same) — so it reuses :class:`~pasar.provider.executor.LeaseExecutor` and changes only what
differs: there is no heartbeat to answer (the lease is over), logs stay local, outputs are
hashed here rather than uploaded (the root is what is compared), and the end is a signed
*verdict* instead of a receipt. Outputs the spec compares within a tolerance are compared here,
against the provider's files (:func:`pasar.core.compare.numbers_match`), and the verdict says
whether they match.

A re-run that fails for the verifier's own reasons (an input it could not fetch, an error of
its executor) sends nothing: the check expires and goes to another verifier, rather than a
verifier voting against a result it never reproduced.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from nacl.public import PrivateKey

from pasar.api.checks import CheckView
from pasar.api.receipts import Failure, FileEntry
from pasar.api.txs import CheckVerdict
from pasar.client import calls
from pasar.core.compare import numbers_match, parse_rule
from pasar.core.errors import PasarError
from pasar.crypto.hashing import sha256_file
from pasar.crypto.merkle import root_of_files
from pasar.crypto.sealing import decrypt_file, identity_box_key
from pasar.provider.executor import LeaseExecutor
from pasar.provider.lease_job import LeaseJob, spec_in_view, spec_of_alternative
from pasar.provider.market_api import MarketAPI
from pasar.provider.runtime.base import Outcome, Runtime

log = logging.getLogger("pasar.verifier")


def job_of(check: CheckView) -> LeaseJob:
    """The checked lease's job, as its provider ran it (under its alternative, if any)."""
    what = f"check {check.check_id}"
    return LeaseJob(
        lease_id=check.lease_id,
        order_id=check.order_id,
        shard=check.shard,
        shards=check.shards,
        spec=spec_of_alternative(spec_in_view(check.spec, what), check.alternative, what),
        inputs=tuple(check.inputs),
        private=check.private or "",
    )


class CheckExecutor(LeaseExecutor):
    """Re-runs one checked lease and signs the verdict (see the module docstring)."""

    def __init__(
        self, api: MarketAPI, runtime: Runtime, check: CheckView, *, workroot: Path
    ) -> None:
        super().__init__(
            api, runtime, job_of(check), workroot=workroot / "checks", allow_network=False
        )
        self.check = check
        self.verdict_sent = False
        self.workdir = workroot / "checks" / check.check_id

    def _heartbeats(self) -> None:
        """The checked lease is over: there is nothing to answer."""

    def _key_source(self) -> tuple[Callable[[], str | None], PrivateKey]:
        """A sealed job's client seals the data key to this verifier's account key."""
        check_id = self.check.check_id
        return (lambda: self.api.perform(calls.check(check_id)).sealed_key), identity_box_key(
            self.api.identity
        )

    def _append_log(self, text: str) -> None:
        log.debug("check %s: %s", self.check.check_id, text.rstrip())

    def _upload_outputs(self) -> tuple[list[FileEntry], list[str]]:
        collected, missing = self._collect_outputs()
        outputs = [
            FileEntry(path=rel, sha256=sha256_file(path), size=size)
            for rel, (path, size) in sorted(collected.items())
        ]
        return outputs, missing

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
        """The verdict: what the re-run wrote. A ``missing_outputs`` failure is ignored on
        purpose: a provider's claim that the job did not write an output is checked like a
        result (the roots decide), so an honest provider of a job that never writes it agrees
        with the re-run, and one that dropped an output the job did write does not."""
        body = CheckVerdict(
            check_id=self.check.check_id,
            outputs=outputs,
            root=root_of_files((o.path, o.sha256) for o in outputs),
        )
        if self.job.spec.compare:
            body.matches = self._matches(outputs)
        self.api.perform(calls.verdict(body))
        self.verdict_sent = True
        log.info(
            "check %s of lease %s: %s",
            self.check.check_id,
            self.check.lease_id,
            "same result" if body.root == self.check.provider_root else "different result",
        )

    def _fail(self, reason: str, detail: str) -> None:
        log.warning("check %s could not be re-run (%s: %s): no verdict sent",
                    self.check.check_id, reason, detail)  # fmt: skip

    def _matches(self, outputs: list[FileEntry]) -> bool:
        """The same files, each equal — or, where the spec says so, equal within tolerance."""
        mine = {o.path: o for o in outputs}
        theirs = {o.path: o for o in self.check.provider_outputs}
        if mine.keys() != theirs.keys():
            return False
        rules = self.job.spec.compare or {}
        for path, entry in mine.items():
            if entry.sha256 == (theirs[path].plain_sha256 or theirs[path].sha256):
                continue
            rule = next((r for out, r in rules.items() if _covers(out, path)), None)
            if rule is None or not self._within(path, theirs[path].sha256, rule):
                return False
        return True

    def _within(self, path: str, their_sha: str, rule_text: str) -> bool:
        with tempfile.TemporaryDirectory() as tmp:
            theirs = Path(tmp) / "theirs"
            try:
                self.api.get_blob(their_sha, theirs)
                if self.data_key is not None:  # a sealed job's output: decrypt it first
                    sealed = theirs.rename(Path(tmp) / "sealed")
                    decrypt_file(sealed, theirs, self.data_key)
            except PasarError as exc:
                log.warning(
                    "check %s: the provider's %s: %s", self.check.check_id, path, exc.message
                )
                return False
            return numbers_match(
                theirs.read_bytes(), (self.workdir / path).read_bytes(), path, parse_rule(rule_text)
            )


def _covers(declared: str, path: str) -> bool:
    return path == declared or path.startswith(declared.rstrip("/") + "/")
