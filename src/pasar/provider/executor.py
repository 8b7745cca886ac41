"""Runs one lease from start to receipt: inputs, the job in its runtime, heartbeats, logs,
outputs, the signed receipt.

Everything a job can get wrong ends in a receipt with a clear reason — a missing command, a
missing output, an input whose hash does not match — and never takes the agent down: the lease
is settled by the market's rules (heartbeat-verified seconds) whatever the job did.

What cannot become a result — an output name no receipt can carry (``a\\b``), an output that is
not a regular file (a FIFO would hang the upload forever), an output over the market's blob
limit, inputs that cannot be laid out (``a`` and ``a/b``) — ends in a *failure receipt*
(:mod:`pasar.core.receipts`) with the reason and whose fault it is; so does any error of the
executor itself (``internal_error``). Never silence: a lease that simply stops is marked lost,
and the provider unpaid and off the market, for a fault that may well be the job's.

Threads, per lease: the job's runtime (a process tree), a heartbeat thread answering the
market's challenge once per interval from the moment the lease starts, and this executor's own
thread pumping output to the market in batches. :meth:`cancel` (the client cancelled; the lease
is already settled) and :meth:`release` (the agent is draining) stop the job early.

What the lease tells the market while it runs (heartbeats, the log) is
:mod:`pasar.provider.lease_reporting`; how its outputs reach the market (uploaded, attached or
sealed) and what a receipt says of missing ones is :mod:`pasar.provider.lease_outputs`. This
module keeps the thin methods over them that a verifier's re-run overrides.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nacl.public import PrivateKey

from pasar.api.receipts import Failure, FileEntry, Usage
from pasar.api.txs import Receipt, TxAnswer
from pasar.client import calls
from pasar.cluster.network import join_gang_network, leave_gang_network, on_one_machine
from pasar.cluster.ray_nodes import bootstrap_script
from pasar.cluster.steps import STEPS_DIR, step_file
from pasar.core.errors import PasarError
from pasar.core.receipts import FAILURE_FAULTS, MAX_DETAIL_CHARS
from pasar.crypto.envelope import wall_clock_ms
from pasar.crypto.merkle import check_path, path_conflict, root_of_files
from pasar.crypto.sealing import lease_keypair, open_key
from pasar.provider.cheat import (
    LAZY_WALL_S,
    drop_output,
    fill_missing,
    garble_outputs,
)
from pasar.provider.file_mounts import mounts_of, stage_mounts
from pasar.provider.job_environment import job_environment
from pasar.provider.job_outputs import collect_outputs
from pasar.provider.lease_failure import LeaseFailedError
from pasar.provider.lease_job import (
    RUN_FILE,
    SETUP_FILE,
    GpuResolver,
    LeaseJob,
    job_command,
    limits_for,
    no_gpus,
)
from pasar.provider.lease_outputs import (
    missing_failure,
    missing_note,
    only_optional,
    upload_outputs,
)
from pasar.provider.lease_reporting import LOG_FLUSH_S, Heartbeats, LeaseLog, pump_logs
from pasar.provider.market_api import MarketAPI
from pasar.provider.pip_cache import PipCache
from pasar.provider.pip_step import install_pip
from pasar.provider.runtime.base import Limits, Outcome, Runtime, enforcement
from pasar.provider.runtime.warm import WarmPool, WarmSandbox, WarmSandboxBrokenError, runs_inline
from pasar.provider.sealed import (
    KEY_WAIT_S,
    clear_sealed_workroot,
    fetch_sealed_input,
    open_private_part,
)
from pasar.provider.timeline import Timeline

log = logging.getLogger("pasar.provider.executor")

RAY_FILE = ".pasar-ray.sh"  # cluster: ray: the node's Ray start, then run on the head
# exit codes the executor itself reports when the job could not even start
EXIT_INPUT_FAILED = 125


#: the exit code a gang node reports when its head ended before its job started (as killed)
NEVER_STARTED = 137


class LeaseExecutor:
    """One lease, run on its own thread by :meth:`run`."""

    def __init__(
        self,
        api: MarketAPI,
        runtime: Runtime,
        job: LeaseJob,
        *,
        workroot: Path,
        allow_network: bool,
        allow_cluster: bool = False,
        on_done: Callable[[LeaseExecutor], None] | None = None,
        max_blob_bytes: int | None = None,
        gpus: GpuResolver = no_gpus,
        cheat: str | None = None,
        pool: WarmPool | None = None,
        seen_at: float | None = None,
        pip: PipCache | None = None,
    ) -> None:
        self.timeline = Timeline(job.lease_id, seen_at)  # from the feed's match, if seen there
        self.timeline.mark("lease")
        self.api = api
        self.pool = pool  # warm sandboxes (sandbox runtime, ``--warm-pool`` > 0), else None
        self.pip = pip  # the agent's pip cache, for a spec with ``pip:``
        self._held = contextlib.ExitStack()  # the pip install this lease holds, until it ends
        self._warm: WarmSandbox | None = None  # taken for this lease, until its job starts
        self._taking: Callable[[], WarmSandbox | None] | None = None  # a take under way
        self._took: Limits | None = None  # the limits of the warm sandbox taken, if one was
        self.cheat = cheat  # a cheat kind for this lease (devnet tests only: provider.cheat)
        self.runtime = runtime
        self.gpus = gpus
        self.job = job
        self.workdir = workroot / job.lease_id
        self.allow_network = allow_network
        self.allow_cluster = allow_cluster  # a gang on this machine gets a network of its own
        self.on_done = on_done
        self.max_blob_bytes = max_blob_bytes  # the market's limit on one output file (healthz)
        self._stop_reason: str | None = None  # "cancel" | "release" | "gang"
        self._stopped = threading.Event()
        self._handle: Any = None
        self._log = LeaseLog(api, job.lease_id)
        self._attached: dict[str, bytes] = {}  # small outputs, sent with the receipt
        self.outcome: Outcome | None = None
        self.receipt: TxAnswer | None = None
        self.started_at = wall_clock_ms()
        self.data_key: bytes | None = None  # a sealed job's, once its client sealed it to us
        self._beats = Heartbeats(
            api,
            job.lease_id,
            carried=job.challenge,
            started_at_ms=self.started_at,
            stopped=self._stopped,
            on_over=self._beats_over,
        )

    # -- control from the agent -------------------------------------------------------------------

    def cancel(self) -> None:
        """The lease ended at the market (client cancel, or lost): stop, send nothing more."""
        self._stop("cancel")

    def end_with_gang(self) -> None:
        """The head node of this multi-node job ended: stop this node's job, then report it
        like any other end (outputs, a receipt with ``kill_reason: gang``), so this node is
        paid for its own verified time."""
        self._stop("gang")

    def add_step(self, step: int, command_sha: str) -> None:
        """Hand a cluster's step to the head's step runner (:mod:`pasar.cluster.steps`): the
        command's blob, checked against its sha256, renamed whole into the steps folder."""
        folder = self.workdir / STEPS_DIR
        folder.mkdir(exist_ok=True)
        partial = folder / f".{step_file(step)}.part"
        try:
            got = self.api.get_blob(command_sha, partial)
        except PasarError as exc:
            log.warning("lease %s: step %d: %s", self.job.lease_id, step, exc.message)
            return
        if got != command_sha:
            partial.unlink(missing_ok=True)
            log.warning("lease %s: step %d does not match its sha256", self.job.lease_id, step)
            return
        os.replace(partial, folder / step_file(step))

    def release(self) -> None:
        """Hand the lease back (draining): stop the job and tell the market."""
        self._stop("release")

    def _stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stopped.set()
        handle = self._handle
        if handle is not None:
            handle.kill("gang" if reason == "gang" else "cancel")

    # -- the lease --------------------------------------------------------------------------------

    def run(self) -> None:
        beats = threading.Thread(target=self._heartbeats, name=f"beat-{self.job.lease_id}")
        beats.daemon = True
        beats.start()
        try:
            self._run()
        except LeaseFailedError as failure:
            self._fail(failure.reason, failure.detail)
        except PasarError as exc:
            log.warning("lease %s: %s", self.job.lease_id, exc.message)
            self._fail("internal_error", exc.message)
        except Exception as exc:  # a bug here must not take the agent down with it
            log.exception("lease %s failed in the executor", self.job.lease_id)
            self._fail("internal_error", f"the provider's executor failed: {type(exc).__name__}")
        finally:
            self._stopped.set()
            if self._taking is not None:  # a take still out when the lease failed
                self._warm = self._warm or self._taking()
            if self._warm is not None:  # taken, but the job never started: it serves no other
                self._warm.discard()
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._held.close()  # its pip install may be evicted again
            if self.job.shard == 0 and self._gang_network():  # the head: the gang is over
                leave_gang_network(self.job.order_id)
            if self._took is not None and self.pool is not None:
                self.pool.finished(self._took)  # its replacement may start: the lease is over
            if self.on_done is not None:
                self.on_done(self)

    def _run(self) -> None:
        log.info(
            "won lease %s (order %s, shard %d of %d)",
            self.job.lease_id,
            self.job.order_id,
            self.job.shard,
            self.job.shards,
        )
        if self.job.sealed and not self._unseal():
            self._after_stop()  # stopped while waiting for the key
            return
        limits = self._limits()
        # a warm sandbox is taken while the inputs come (a take may wait for one starting)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._taking = self._take_warm_meanwhile(limits)
        problem = self._fetch_inputs()
        self.timeline.mark("inputs")
        self._adopt_warm(self._taking)
        self._taking = None
        if problem is not None:
            self._append_log(f"pasar: {problem}\n")
            self._finish(EXIT_INPUT_FAILED, None, note=problem, outputs=[])
            return
        stage_mounts(limits.mounts)
        self._write_scripts()
        env = job_environment(self.job, self.cheat)
        if self.cheat == "skip":  # sign made-up outputs without running anything
            self._cheat_fill()
            outputs, _missing = self._upload_outputs()
            self._finish(0, None, note=None, outputs=outputs)
            return
        if self.cheat == "lazy":  # a cheaper computation: the job's budget cut short
            limits = dataclasses.replace(limits, wall_seconds=min(limits.wall_seconds, LAZY_WALL_S))
        if self._stop_reason == "gang":  # the head ended before this node's job started
            why = "the head node's run ended before this node's job started"
            self._finish(NEVER_STARTED, "gang", note=why, outputs=[])
            return
        if self._stopped.is_set():
            self._after_stop()
            return
        self._handle = self._start(env, limits)
        self.timeline.mark("started")
        if self._stopped.is_set():  # stopped while starting
            self._handle.kill("gang" if self._stop_reason == "gang" else "cancel")
        # the job's last lines go to the market while its outputs are uploaded
        self._log.send_later(
            pump_logs(self._handle.lines(timeout_s=LOG_FLUSH_S), self._append_log), self._append_log
        )
        self.outcome = outcome = self._handle.ended()  # its cgroup is removed meanwhile
        self.timeline.mark("exited")
        if self._stop_reason is not None and self._stop_reason != "gang":
            self._after_stop()
            return
        if self.cheat == "lazy":  # claim it finished, with whatever it wrote
            self._cheat_fill()
            outcome = dataclasses.replace(outcome, exit_code=0, kill_reason=None)
        elif self.cheat == "garble":
            garble_outputs(self.workdir, [o.path for o in self.job.spec.outputs])
        elif self.cheat == "drop":
            drop_output(self.workdir, [o.path for o in self.job.spec.outputs])
        outputs, missing = self._upload_outputs()
        self.timeline.mark("outputs")
        note = self._missing_note(missing)
        failure = None
        if outcome.exit_code == 0 and outcome.kill_reason is None:
            failure = missing_failure(missing, self.job.spec.outputs)
        self._finish(
            outcome.exit_code,
            outcome.kill_reason,
            note=note,
            outputs=outputs,
            outcome=outcome,
            failure=failure,
        )

    def _limits(self) -> Limits:
        """The job's limits, with the GPUs the market allocated to the lease and the pip
        install its spec asked for (installed now: :func:`~pasar.provider.pip_step.install_pip`)."""
        grants = self.gpus([device.model_dump() for device in self.job.devices])
        if grants:
            log.info(
                "lease %s: GPUs %s",
                self.job.lease_id,
                ", ".join(f"{g.index} ({g.uuid}) at {g.node}" for g in grants),
            )
        limits = limits_for(self.job.spec, allow_network=self.allow_network, gpus=grants)
        if self.job.spec.cluster == "ray" and enforcement(self.runtime).startswith("cgroup"):
            limits = dataclasses.replace(limits, address_limit=False)  # the cgroup bounds it
        if self._gang_network():
            limits = dataclasses.replace(limits, netns=join_gang_network(self.job.order_id))
        site = install_pip(self.job.spec, self.pip, self._held, self._append_log)
        if site is not None:  # a warm sandbox never serves it (_take_warm): no bind there
            self.timeline.mark("pip")
            limits = dataclasses.replace(limits, pip_site=site)
        mounts = mounts_of(self.job.spec, self.workdir)
        if mounts:  # bound as the sandbox starts: a warm sandbox never serves them either
            limits = dataclasses.replace(limits, mounts=mounts)
        return limits

    def _gang_network(self) -> bool:
        """Whether this node joins its gang's private network on this machine: a multi-node
        job, every node on this machine, and a provider that offers it (``--allow-cluster``)."""
        addresses = [node.address for node in self.job.nodes]
        return self.allow_cluster and self.job.spec.num_nodes > 1 and on_one_machine(addresses)

    def _take_warm_meanwhile(self, limits: Limits) -> Callable[[], WarmSandbox | None]:
        """Take a warm sandbox on a thread of its own while the inputs come; the returned
        function waits for it. When every input came with the lease's view (an
        ``@pasar.remote`` call's), there is nothing to overlap: the take is made here, and
        the thread's start (milliseconds on a busy machine) saved."""
        taken: list[WarmSandbox | None] = [None]
        if self.pool is None:
            return lambda: None
        if all(item.sha256 in self.job.inline for item in self.job.inputs):
            warm = self._take_warm(limits)
            if warm is not None:
                self._took = limits
                self._claim_early(warm)
            return lambda: warm

        def take() -> None:
            taken[0] = self._take_warm(limits)
            if taken[0] is not None:
                self._took = limits

        taker = threading.Thread(target=take, name=f"take-{self.job.lease_id}", daemon=True)
        taker.start()

        def result() -> WarmSandbox | None:
            taker.join()
            return taken[0]

        return result

    def _claim_early(self, warm: WarmSandbox) -> None:
        """A sandbox taken before any input was written: its folder becomes the lease's
        (still empty) workdir at once, and the inputs are written straight into it. If that
        fails, :meth:`_adopt_warm` moves them in later, as for a sandbox taken meanwhile."""
        try:
            self.workdir.rmdir()
            warm.claim(self.workdir)
        except OSError:
            self.workdir.mkdir(parents=True, exist_ok=True)

    def _adopt_warm(self, taking: Callable[[], WarmSandbox | None]) -> None:
        """Make the warm sandbox taken for this lease (if any) hold its workdir: its own
        folder, bound at ``/work`` when it started, gets the inputs fetched meanwhile and is
        renamed to the lease's workdir (the bind mount follows it). If that fails, the
        sandbox is discarded and the lease runs cold where its inputs already are. A sandbox
        claimed before the inputs (:meth:`_claim_early`) holds them already."""
        warm = taking()
        if warm is not None and warm.workdir == self.workdir:
            self._warm = warm
        elif warm is not None:
            moved: list[str] = []
            try:
                for entry in sorted(os.listdir(self.workdir)):
                    os.rename(self.workdir / entry, warm.workdir / entry)
                    moved.append(entry)
                self.workdir.rmdir()
                warm.claim(self.workdir)
                self._warm = warm
            except OSError as exc:
                log.warning("lease %s: cannot use a warm sandbox: %s", self.job.lease_id, exc)
                self.workdir.mkdir(parents=True, exist_ok=True)
                for entry in moved:  # back where the cold job will look
                    os.rename(warm.workdir / entry, self.workdir / entry)
                warm.discard()
        self.timeline.mark("workdir (warm)" if self._warm is not None else "workdir")

    def _take_warm(self, limits: Limits) -> WarmSandbox | None:
        """A warm sandbox for this lease, or None to run it cold: there is no pool, or the
        lease is one a warm sandbox does not serve — a sealed job (its workdir is a tmpfs of
        its own), an image, a pip install or absolute file_mounts (bound as the sandbox
        starts), a cheat (devnet tests)."""
        spec = self.job.spec
        if self.pool is None or self.job.sealed or spec.image is not None or self.cheat:
            return None
        if limits.pip_site is not None or limits.mounts:
            return None
        if limits.netns is not None:  # a gang's network is joined as bwrap starts
            return None
        return self.pool.take(limits)

    def _start(self, env: dict[str, str], limits: Limits) -> Any:
        """The job's handle: in the warm sandbox taken for it, or cold (none was taken, or
        the one taken turned out broken before any of the job ran)."""
        spec = self.job.spec
        command = job_command(spec)
        if spec.cluster == "ray":  # the node's part of a Ray cluster, then run on the head
            script = bootstrap_script(
                self.job.shard,
                max(1, len(self.job.nodes)),
                limits,
                setup_file=SETUP_FILE if spec.setup else None,
                run_file=RUN_FILE,
            )
            (self.workdir / RAY_FILE).write_text(script)
            command = f"exec sh {RAY_FILE}"
        warm, self._warm = self._warm, None
        if warm is not None:
            try:
                return warm.start(
                    command,
                    env,
                    limits,
                    inline=runs_inline(spec.run, spec.setup, {**spec.envs, **(spec.secrets or {})}),
                )
            except WarmSandboxBrokenError as exc:
                log.warning(
                    "lease %s: warm sandbox unusable, running cold: %s", self.job.lease_id, exc
                )
        return self.runtime.start(self.workdir, command, env, limits, image=spec.image)

    # -- a sealed job ------------------------------------------------------------------------------

    def _scratch(self, name: str) -> Path:
        """A file beside the workdir (never in it: the job must not see ciphertext)."""
        return self.workdir.parent / f".{self.job.lease_id}.{name}"

    def _key_source(self) -> tuple[Callable[[], str | None], PrivateKey]:
        """A provider announces a fresh key for the lease (``lease.accept``) and then looks for
        the data key its client sealed to it."""
        private, public = lease_keypair()
        self.api.perform(calls.accept_lease(self.job.lease_id, public))
        me = self.api.id
        return (lambda: self.api.lease(self.job.lease_id).sealed_keys.get(me)), private

    def _unseal(self) -> bool:
        """Wait for the data key, then open the private part: the whole spec and the input
        manifest. False if the lease was stopped meanwhile; a key that never comes, or data
        that does not open, fails the lease (the job's fault: no other provider would do
        better)."""
        poll, private = self._key_source()
        wait_s = min(KEY_WAIT_S, self.job.spec.max_duration)
        deadline = time.monotonic() + wait_s
        while (sealed := poll()) is None:
            if self._stopped.wait(1.0):
                return False
            if time.monotonic() > deadline:
                raise LeaseFailedError(
                    "client_key_missing",
                    f"the client did not seal the job's data key to this lease within {wait_s} s",
                )
        try:
            key = open_key(sealed, private)
            part = open_private_part(self.api, self.job.private, key, self._scratch("private"))
            spec = part.job_spec(self.job.spec.public_dict(), source=f"lease {self.job.lease_id}")
        except PasarError as exc:
            raise LeaseFailedError("sealed_data_invalid", exc.message) from None
        inputs = tuple(FileEntry.model_validate(item) for item in part.inputs)
        self.job = dataclasses.replace(self.job, spec=spec, inputs=inputs)
        self.data_key = key
        return True

    def _cheat_fill(self) -> None:
        fill_missing(self.workdir, [o.path for o in self.job.spec.outputs], self.job.lease_id)

    def _after_stop(self) -> None:
        self._log.wait_sent()
        if self._stop_reason == "release":
            try:
                self.api.release(self.job.lease_id)
            except PasarError as exc:
                log.warning("releasing %s: %s", self.job.lease_id, exc.message)

    def _fetch_inputs(self) -> str | None:
        """Stream every input to disk and check its hash; the reason it failed, or None.

        Inputs that cannot all be laid out (``a`` and ``a/b``) raise :class:`LeaseFailedError`
        (``input_conflict``) before anything is fetched: the market refuses such manifests at
        order time, and this keeps an older market's order from walking through the fleet."""
        paths = [item.path for item in self.job.inputs]
        conflict = path_conflict(paths)
        if conflict is not None:
            raise LeaseFailedError(
                "input_conflict", f"input {conflict[1]!r} lies inside input file {conflict[0]!r}"
            )
        for item in self.job.inputs:
            path, sha = item.path, item.sha256
            try:
                check_path(path)
                if self.data_key is not None:
                    (self.workdir / path).parent.mkdir(parents=True, exist_ok=True)
                    sealed = fetch_sealed_input(
                        self.api, item, self.workdir / path, self.data_key, self._scratch("in")
                    )
                    if sealed is not None:
                        return sealed
                    continue
                got = self._inline(item.sha256, self.workdir / path)
                if got != sha:  # not inline (or not what the manifest says): fetched
                    got = self.api.get_blob(sha, self.workdir / path)
            except PasarError as exc:
                return f"input {path!r} could not be fetched: {exc.message}"
            except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
                raise LeaseFailedError(
                    "input_conflict", f"input {path!r} cannot be placed: {exc.strerror}"
                ) from None
            if got != sha:
                return f"input {path!r} does not match its sha256 {sha[:12]}…"
        return None

    def _inline(self, sha256: str, dest: Path) -> str | None:
        """Write an input that came with the lease's view (``inline_inputs``) if its bytes
        hash to ``sha256``; the digest of what was written, or None (nothing came)."""
        data = self.job.inline.get(sha256)
        if data is None or hashlib.sha256(data).hexdigest() != sha256:
            return None
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")  # as a download
        try:
            with open(part, "xb") as f:
                f.write(data)
            os.replace(part, dest)
        finally:
            part.unlink(missing_ok=True)
        return sha256

    def _write_scripts(self) -> None:
        spec = self.job.spec
        if spec.setup:
            (self.workdir / SETUP_FILE).write_text("set -e\n" + spec.setup + "\n")
        (self.workdir / RUN_FILE).write_text(spec.run + "\n")

    # -- reporting (pasar.provider.lease_reporting): hooks a verifier's re-run overrides ---------

    def _heartbeats(self) -> None:
        """Answer the market's challenge once per interval until the lease is over here."""
        self._beats.run()

    def _beats_over(self) -> None:
        """The market says the lease is over (its heartbeat was refused with 409): stop."""
        if self._stop_reason is None:
            self.cancel()

    def _append_log(self, text: str) -> None:
        self._log.append(text, self.data_key)

    # -- outputs (pasar.provider.lease_outputs) and the receipt ---------------------------------

    def _upload_outputs(self) -> tuple[list[FileEntry], list[str]]:
        """Upload every declared output (a directory: every file under it); list the missing.

        Every file is checked before the first byte is sent (:meth:`_collect_outputs`), so a
        bad output fails the lease with its reason rather than half-way through an upload."""
        collected, missing = self._collect_outputs()
        outputs, attached = upload_outputs(
            self.api,
            collected,
            data_key=self.data_key,
            max_blob_bytes=self.max_blob_bytes,
            scratch=self._scratch("out"),
        )
        self._attached.update(attached)
        return outputs, missing

    def _collect_outputs(self) -> tuple[dict[str, tuple[Path, int]], list[str]]:
        """The job's output files and the declared ones missing (:func:`collect_outputs`)."""
        declared = (o.path for o in self.job.spec.outputs)
        return collect_outputs(self.workdir, declared, self.max_blob_bytes)

    def _missing_note(self, missing: list[str]) -> str | None:
        """The receipt's note naming the missing outputs, also written to the job's log."""
        declared = self.job.spec.outputs
        note = missing_note(missing, declared)
        if note is not None:
            warning = "warning: " if only_optional(missing, declared) else ""
            self._append_log(f"pasar: {warning}{note}\n")
        return note

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
        body = Receipt(
            lease_id=self.job.lease_id,
            exit_code=exit_code,
            outputs=outputs,
            root=root_of_files((o.path, o.sha256) for o in outputs),
            started_at=outcome.started_at if outcome else self.started_at,
            ended_at=outcome.ended_at if outcome else wall_clock_ms(),
            usage=_usage(outcome),
        )
        if kill_reason is not None:
            body.kill_reason = kill_reason
        if note is not None:
            body.note = note
        if failure is not None:
            body.failure = failure
            self._append_log(f"pasar: lease failed: {failure.reason}: {failure.detail}\n")
        if self.job.sealed:  # what the client checks after decrypting, and verifiers compare
            body.plain_root = root_of_files((o.path, o.plain_sha256 or "") for o in outputs)
        self._log.wait_sent()  # the log is whole before the lease ends
        self._beats.wait_first()
        self.receipt = self.api.receipt(body, self._attached)
        self.timeline.mark("receipt")
        self.timeline.log()
        log.info("%s", ended_line(self.job.lease_id, exit_code, kill_reason, outcome, self.receipt))

    def _fail(self, reason: str, detail: str) -> None:
        """End the lease with a signed failure receipt: the provider is paid for its verified
        seconds, and the market knows whose fault it was (a job's fault is not re-queued and
        costs the provider nothing). Nothing is sent for a lease already over — cancelled,
        released, or settled by a receipt that did go through."""
        if self._stop_reason is not None or self.receipt is not None:
            return
        if self._handle is not None and self.outcome is None:
            self._handle.kill("cancel")  # the executor failed while the job was running
        self._append_log(f"pasar: lease failed: {reason}: {detail}\n")
        outcome = self.outcome
        body = Receipt(
            lease_id=self.job.lease_id,
            exit_code=outcome.exit_code if outcome is not None else EXIT_INPUT_FAILED,
            outputs=[],
            root=root_of_files([]),
            started_at=outcome.started_at if outcome else self.started_at,
            ended_at=outcome.ended_at if outcome else wall_clock_ms(),
            usage=_usage(outcome),
            failure=Failure(
                reason=reason, fault=FAILURE_FAULTS[reason], detail=detail[:MAX_DETAIL_CHARS]
            ),
        )
        self._beats.wait_first()
        try:
            self.receipt = self.api.receipt(body)
        except PasarError as exc:
            log.warning("failure receipt for %s: %s", self.job.lease_id, exc.message)


def ended_line(
    lease_id: str,
    exit_code: int,
    kill_reason: str | None,
    outcome: Outcome | None,
    answer: TxAnswer,
) -> str:
    """The provider's one log line for a lease it finished: ``lease L: exited 0 in 3.2 s;
    earned 0.0012 USDC`` (what a person running a provider wants to read, not its requests)."""
    took = "" if outcome is None else f" in {(outcome.ended_at - outcome.started_at) / 1000:.1f} s"
    why = f" ({kill_reason})" if kill_reason else ""
    extra = answer.model_extra or {}
    earned = extra.get("payout")
    paid = f"; earned {earned}" if earned else "; paid once its result is checked"
    return f"lease {lease_id}: exited {exit_code}{why}{took}{paid}"


def _usage(outcome: Outcome | None) -> Usage:
    """What the job consumed (nothing measured when it never ran: an empty object)."""
    if outcome is None:
        return Usage()
    return Usage(cpu_ms=int(outcome.cpu_seconds * 1000), max_rss_bytes=int(outcome.max_rss_bytes))


def workroot_for(home: Path) -> Path:
    """Where job workdirs live: ``<home>/work`` (private to the provider's user)."""
    root = home / "work"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    return root


def clear_workroot(home: Path) -> None:
    """Remove every lease workdir left under ``<home>/work`` (call only before any lease runs).

    A provider killed mid-lease leaves its job's files behind; the market has already settled
    or re-queued that lease, so nothing will ever read them, and they would fill the disk
    one crash at a time."""
    for leftover in workroot_for(home).iterdir():
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    clear_sealed_workroot(home)
