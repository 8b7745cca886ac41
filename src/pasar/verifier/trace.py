"""Tracing a disputed step in the sandbox, for either party or the referee (issue 16; the
market's side is :mod:`pasar.core.dispute_trace`, the harness's :mod:`pasar.train.operators`).

Once a dispute is narrowed to step ``t`` (its feed event says ``narrowed``), the prover and the
verifier each trace that step; once it is pinned to an operator (``pinned``, naming a
``referee``), the referee does. All three do it the same way, as a pol check replays a segment
(:class:`~pasar.verifier.pol.PolCheckExecutor`, reused): the job's own command in the sandbox,
with the prover's manifest and the checkpoint before ``t`` fetched back from the market by
their sha256, and ``PASAR_POL_TRACE=t`` set so the job's harness traces instead of training.
The prover runs it with its own cheat (``PASAR_POL_CHEAT``) if it cheated on that lease: its
trace is what it actually computed (the market checks it ends in the state the prover
committed). The trace is sent as ``dispute.trace``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pasar.api.checks import CheckView
from pasar.api.receipts import Failure, FileEntry
from pasar.api.txs import DisputeTrace
from pasar.client import calls
from pasar.core.errors import PasarError
from pasar.provider.runtime.base import Outcome, Runtime
from pasar.verifier.pol import MANIFEST, PolCheckExecutor, checkpoint_name, find_run

log = logging.getLogger("pasar.dispute")

TRACE_ENV = "PASAR_POL_TRACE"  # pasar.train.harness.TRACE_ENV (a unit test checks they agree)
TRACE = "pol_trace.json"  # pasar.train.operators.TRACE


class TraceExecutor(PolCheckExecutor):
    """Runs the job's command once with ``PASAR_POL_TRACE=step`` and hands the trace to
    ``on_trace`` (no verdict: this is a dispute's move, not a check)."""

    def __init__(
        self,
        api: Any,
        runtime: Runtime,
        check: CheckView,
        *,
        workroot: Path,
        step: int,
        on_trace: Callable[[dict[str, Any]], None],
        cheat: str | None = None,
    ) -> None:
        super().__init__(api, runtime, check, workroot=workroot)
        self.workdir = workroot / "traces" / f"{check.check_id}-{step}"
        self.step = step
        self.on_trace = on_trace
        self.cheat = cheat if cheat is not None and cheat.startswith("pol") else None

    def _fetch_inputs(self) -> str | None:
        problem = super(PolCheckExecutor, self)._fetch_inputs()  # the job's own inputs
        if problem is not None:
            return problem
        theirs = {o.path: o for o in self.check.provider_outputs}
        self.run_folder = find_run(list(theirs.values()))
        if self.run_folder is None:
            return "the disputed lease's outputs hold no harness run"
        try:
            manifest = json.loads(self._fetch(theirs, MANIFEST).read_text())
            every = int(manifest["checkpoint_every"])
            self._fetch(theirs, checkpoint_name((self.step - 1) // every * every))
        except (PasarError, ValueError, KeyError, TypeError) as exc:
            return f"cannot fetch the run to trace step {self.step}: {exc}"
        return None

    def _start(self, env: dict[str, str], limits: Any) -> Any:
        return super(PolCheckExecutor, self)._start({**env, TRACE_ENV: str(self.step)}, limits)

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
        path = self.workdir / (self.run_folder or "") / TRACE
        if not path.is_file():
            log.warning("trace of step %s: none written (exit %s, %s)", self.step, exit_code, note)
            return
        report = json.loads(path.read_text())
        if "error" in report:
            log.warning("trace of step %s: %s", self.step, report["error"])
            return
        self.on_trace(report)

    def _fail(self, reason: str, detail: str) -> None:
        log.warning("trace of step %s failed (%s: %s)", self.step, reason, detail)


class Tracer:
    """Traces the disputed step when a dispute event says this party should (see the module
    doc): the prover or the verifier once ``narrowed``, the referee once ``pinned``.

    ``cheat(lease_id)`` is the provider's cheat on that lease, if any (None for a verifier)."""

    def __init__(
        self,
        api: Any,
        runtime: Runtime,
        workroot: Callable[[], Path],
        account: str,
        cheat: Callable[[str], str | None] = lambda _lease: None,
    ) -> None:
        self.api = api
        self.runtime = runtime
        self.workroot = workroot
        self.account = account
        self.cheat = cheat
        self.started: set[tuple[str, str]] = set()
        self.threads: list[threading.Thread] = []  # one per trace (a test joins them)
        self._lock = threading.Lock()

    def on_event(self, event: dict[str, Any]) -> None:
        dispute_id, status = event.get("dispute_id"), event.get("status")
        if not isinstance(dispute_id, str) or status not in ("narrowed", "pinned"):
            return
        if status == "pinned" and event.get("referee") != self.account:
            return
        with self._lock:
            if (dispute_id, str(status)) in self.started:
                return
            self.started.add((dispute_id, str(status)))
        thread = threading.Thread(target=self._trace, args=(dispute_id, str(status)),
                                  name=f"trace-{dispute_id}", daemon=True)  # fmt: skip
        self.threads.append(thread)
        thread.start()

    def _trace(self, dispute_id: str, status: str) -> None:
        try:
            view = self.api.perform(calls.dispute(dispute_id))
            mine = {view.provider, view.verifier} if status == "narrowed" else {view.referee}
            if self.account not in mine or view.step is None or view.status != status:
                return
            check = self.api.perform(calls.check(view.check_id))
        except PasarError as exc:
            log.warning("dispute %s: cannot trace: %s", dispute_id, exc.message)
            return
        step = int(view.step)
        cheat = self.cheat(view.lease_id) if self.account == view.provider else None

        def send(report: dict[str, Any]) -> None:
            body = DisputeTrace(dispute_id=dispute_id, step=step,
                                operators=report["operators"], hash=report["hash"])  # fmt: skip
            try:
                self.api.perform(calls.trace_dispute(body))
            except PasarError as exc:
                log.warning("dispute %s: trace refused: %s", dispute_id, exc.message)
                return
            log.info("dispute %s: traced step %s (%d operators)", dispute_id, step,
                     len(report["operators"]))  # fmt: skip

        executor = TraceExecutor(self.api, self.runtime, check, workroot=self.workroot(),
                                 step=step, on_trace=send, cheat=cheat)  # fmt: skip
        executor.run()
