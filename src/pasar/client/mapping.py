"""``.map`` and ``.imap`` of a remote function: many calls per shard, a bounded window of jobs.

One job per call would pay a sandbox, a Python start, an order and a receipt for each element
(issue 13: 9.5 calls/s). Here the calls are packed into *batches*: a job's call file holds the
function once and one pickled batch per shard (:func:`pasar.client.payload.dump_batches`);
shard *i* runs batch *i* in one process and writes its outcomes, bound to the call file's
sha256 and to *i*, as its one output. Inputs and outputs stay ordinary content-addressed job
files, so verification, sealing and the market's own re-runs apply unchanged.

**Sizing.** The quote says how many leases the market would place now
(:func:`shards_per_job`); a job gets :data:`SHARDS_PER_SLOT` shard(s) per free provider, with
up to :data:`MAX_CALLS_PER_BATCH` calls (and :data:`MAX_BATCH_BYTES` of pickled arguments) per
shard, and up to :data:`JOBS_IN_FLIGHT` jobs run at once, so each slot has a next shard
waiting. A short input is spread evenly over the shards.

**Streaming.** The input is read lazily, one job's worth at a time, and at most
:data:`JOBS_IN_FLIGHT` jobs' arguments are held; results are yielded in input order as each job
ends, so a generator of 10⁶ items streams with bounded memory.

**Failures.** A call that raised is an outcome like a value (returned in place with
``return_exceptions``, otherwise raised for the first failing index). A shard that failed as a
whole (no result, a result for another job or batch, the wrong number of outcomes) is
re-launched alone, keeping every other shard's outcomes, at most :data:`RELAUNCHES` times;
then its calls fail with ``remote_shard_failed`` naming their indexes.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pasar.client import calls as api
from pasar.client.client import Client, Job
from pasar.client.payload import (
    CALL_FILE,
    RESULT_FILE,
    Call,
    Outcome,
    PayloadError,
    SetupFailedError,
    dump_batches,
    load_batch_outcomes,
    load_outcome,
)
from pasar.client.progress import MapProgress
from pasar.core.errors import PasarError
from pasar.core.spec import JobSpec

MAX_CALLS_PER_BATCH = 1000  # one shard's calls: enough to amortize a start, few enough to spread
MAX_BATCH_BYTES = 8 << 20  # one shard's pickled arguments
MAX_SHARDS_PER_JOB = 16  # what one quote asks about; also bounds one call file
# shards of a job per free provider the quote shows: 2 halved the rate of tiny calls (the
# second shard waits for the next clearing and a second sandbox start), so 1; the window of
# JOBS_IN_FLIGHT jobs already queues the next shards
SHARDS_PER_SLOT = 1
JOBS_IN_FLIGHT = 3  # jobs launched and not yet collected: each slot has a next shard waiting
RELAUNCHES = 2  # times a failed shard's calls are launched again, alone
DEFAULT_BLOB_LIMIT = 256 << 20  # a market too old to say its limit (healthz) had this one
ENVELOPE_SLACK = 4096  # the call file's envelope around the function and the batches
LOG_TAIL_CHARS = 2000


@dataclass(frozen=True)
class Batch:
    """Calls ``start``… of the input, in order, and their pickle (what one shard runs)."""

    start: int
    calls: list[Call]
    data: bytes


@dataclass(frozen=True)
class Failure:
    """A call with no outcome: its shard failed as a whole (``error``), or it had one that
    cannot be decoded here."""

    error: PasarError


Result = Outcome | Failure


class StoppedError(Exception):
    """The caller stopped reading (an error, a ``break``): jobs not yet launched are not."""


def blob_limit(client: Client) -> int:
    """The market's limit on one stored file (``/v1/healthz``), which a call file must fit."""
    health = client._call(api.health())
    return health.max_blob_bytes or DEFAULT_BLOB_LIMIT


def shards_per_job(client: Client, spec: JobSpec) -> int:
    """How many shards a job gets: :data:`SHARDS_PER_SLOT` per lease the market would place
    now for a ``spec`` job (the quote's awards for a job of :data:`MAX_SHARDS_PER_JOB` shards;
    one slot if it awards none: bids decide, or nobody is free, and the job then waits for a
    provider like any order). A clearing places one lease per provider, so the quote counts
    free providers; a provider with room for more runs the next shard at once."""
    probe = JobSpec.build(**{**spec.to_dict(), "shards": MAX_SHARDS_PER_JOB})
    quote = client.quote(probe)
    placed = sum(award.leases for award in quote.awards)
    return max(1, min(MAX_SHARDS_PER_JOB, placed * SHARDS_PER_SLOT))


def too_large(what: str, size: int, limit: int, hint: str) -> PasarError:
    return PasarError(
        f"{what} pickles to {size} bytes, over the market's blob limit of {limit} bytes",
        code="too_large",
        status=413,
        field="function" if what.startswith("the function") else "arguments",
        hint=hint,
    )


def batches(
    calls: Iterator[Call],
    shards: int,
    pickle_batch: Callable[[list[Call]], bytes],
    max_bytes: int,
) -> Iterator[list[Batch]]:
    """The input, lazily, as jobs of at most ``shards`` batches: one job's worth of calls is
    read at a time and spread evenly over its shards (a batch over ``max_bytes`` is halved)."""
    start = 0
    while chunk := list(itertools.islice(calls, shards * MAX_CALLS_PER_BATCH)):
        per = math.ceil(len(chunk) / shards)
        job: list[Batch] = []
        for i in range(0, len(chunk), per):
            job.extend(_sized(start + i, chunk[i : i + per], pickle_batch, max_bytes))
        start += len(chunk)
        while job:  # halved batches may make more than a job's worth of shards
            yield job[:MAX_SHARDS_PER_JOB]
            job = job[MAX_SHARDS_PER_JOB:]


def _sized(
    start: int, calls: list[Call], pickle_batch: Callable[[list[Call]], bytes], max_bytes: int
) -> Iterator[Batch]:
    data = pickle_batch(calls)
    if len(data) <= max_bytes or len(calls) == 1:
        yield Batch(start, calls, data)
        return
    half = len(calls) // 2
    yield from _sized(start, calls[:half], pickle_batch, max_bytes)
    yield from _sized(start + half, calls[half:], pickle_batch, max_bytes)


def packed(jobs: Iterator[list[Batch]], room: int) -> Iterator[list[Batch]]:
    """Each job split so that its call file fits ``room`` bytes (the blob limit, less the
    function); a single batch over it is refused, naming the limit."""
    for job in jobs:
        part: list[Batch] = []
        size = 0
        for batch in job:
            if len(batch.data) > room:
                raise too_large(
                    f"the arguments of call #{batch.start}",
                    len(batch.data),
                    room,
                    "pass large data as a job input file or a URL, not as an argument",
                )
            if part and size + len(batch.data) > room:
                yield part
                part, size = [], 0
            part.append(batch)
            size += len(batch.data)
        if part:
            yield part


class MapRun:
    """One ``.map``: launches jobs of batches, collects each shard's outcomes, re-launches
    shards that failed as a whole. :meth:`results` streams them in input order."""

    def __init__(
        self,
        client: Client,
        spec: JobSpec,
        body: bytes,
        *,
        ttl_s: int | None,
        timeout: float | None,
        progress: MapProgress | None = None,
    ) -> None:
        self.progress = progress or MapProgress("map", show=False)
        self.client = client
        self.spec = spec
        self.body = body
        self.ttl_s = ttl_s
        self.timeout = timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._running: set[str] = set()

    def results(self, jobs: Iterable[list[Batch]]) -> Iterator[tuple[int, Result, str]]:
        """``(input index, result, order id)`` for every call, in input order, with at most
        :data:`JOBS_IN_FLIGHT` jobs launched ahead of the one being read."""
        window: deque[Future[list[tuple[int, Result, str]]]] = deque()
        pool = ThreadPoolExecutor(JOBS_IN_FLIGHT, thread_name_prefix="pasar-map")
        try:
            for job in jobs:
                window.append(pool.submit(self.run, job))
                if len(window) >= JOBS_IN_FLIGHT:
                    yield from window.popleft().result()
            while window:
                yield from window.popleft().result()
        finally:  # the caller stopped early (or it all ended): launch no more, cancel the rest
            self._stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            self._cancel_running()
            pool.shutdown(wait=True)  # each cancelled job's wait ends at once

    def _cancel_running(self) -> None:
        """Cancel the jobs still running when the caller stopped reading (refunds the rest)."""
        with self._lock:
            running = list(self._running)
        for order_id in running:
            with contextlib.suppress(PasarError):  # it ended meanwhile
                self.client.job(order_id).cancel()

    def run(self, job: list[Batch]) -> list[tuple[int, Result, str]]:
        """Every call of ``job``'s batches with its result; failed shards re-launched alone."""
        done: dict[int, tuple[list[Result], str]] = {}  # batch position -> results, order id
        pending = list(range(len(job)))
        why: dict[int, str] = {}
        order_id = ""
        for _ in range(RELAUNCHES + 1):
            if self._stop.is_set():
                raise StoppedError
            order_id, found, failed = self._launch([job[i] for i in pending])
            for k, results in found.items():
                done[pending[k]] = (results, order_id)
            why = {pending[k]: reason for k, reason in failed.items()}
            pending = [pending[k] for k in sorted(failed)]
            if not pending:
                break
        for i in pending:
            batch = job[i]
            indexes = f"{batch.start}..{batch.start + len(batch.calls) - 1}"
            error = PasarError(
                f".map elements #{indexes} got no outcome after {RELAUNCHES + 1} launches; "
                f"the last ({order_id}): {why[i]}",
                code="remote_shard_failed",
                status=502,
                hint="see the job's history with `pasar status`",
            )
            done[i] = ([Failure(error)] * len(batch.calls), order_id)
        out: list[tuple[int, Result, str]] = []
        for i, batch in enumerate(job):
            results, oid = done[i]
            out.extend((batch.start + k, r, oid) for k, r in enumerate(results))
        return out

    def _launch(self, job: list[Batch]) -> tuple[str, dict[int, list[Result]], dict[int, str]]:
        """Launch one job of ``job``'s batches and wait for it: the results of the shards that
        answered, and why each other shard failed (by position in ``job``)."""
        data = dump_batches(self.body, [b.data for b in job])
        digest = hashlib.sha256(data).hexdigest()
        spec = JobSpec.build(**{**self.spec.to_dict(), "shards": len(job)})
        handle = self.client.launch(spec, ttl_s=self.ttl_s, data={CALL_FILE: data})
        self.progress.job_launched(sum(len(b.calls) for b in job))
        with self._lock:
            self._running.add(handle.id)
        if self._stop.is_set():  # stopped while it was being launched: it is not wanted
            with contextlib.suppress(PasarError):
                handle.cancel()
        try:
            order = handle.wait(self.timeout)
        except BaseException:  # wait_timeout, a lost connection: the job is not wanted any more
            with contextlib.suppress(PasarError):
                handle.cancel()
            raise
        finally:
            with self._lock:
                self._running.discard(handle.id)
        ended(handle, order)
        found: dict[int, list[Result]] = {}
        failed: dict[int, str] = {}
        by_shard = {s.shard: (s, out) for s, out in handle.read(order, RESULT_FILE, partial=True)}
        for k, batch in enumerate(job):
            if k not in by_shard:
                failed[k] = _lease_failure(order, k)
                continue
            shard, result = by_shard[k]
            if result is None:
                if shard.ended_because is not None:  # stopped at a limit: it would again
                    from pasar.client.remote import stopped_error

                    raise stopped_error(handle.id, k, shard.ended_because)
                failed[k] = f"exit code {shard.exit_code} and no {RESULT_FILE}: " + _tail(handle, k)
                continue
            try:
                raw = load_batch_outcomes(result, digest, k, len(batch.calls))
            except SetupFailedError as exc:  # the same call fails the same way anywhere
                raise PasarError(
                    f"{exc} ({handle.id}, shard {k})",
                    code="remote_no_result",
                    status=502,
                    hint="the provider could not load the function: same Python minor "
                    "version, and the modules it imports installed there",
                ) from None
            except PayloadError as exc:
                failed[k] = str(exc)
                continue
            found[k] = [_decode(item, handle.id, batch.start + j) for j, item in enumerate(raw)]
        self.progress.job_ended(sum(len(job[k].calls) for k in found), order)
        return handle.id, found, failed


def ended(job: Job, order: dict[str, Any]) -> None:
    """Refuse an order that ended without running (expired unmatched, cancelled)."""
    from pasar.client.remote import _not_matched  # the message the one-call path gives

    if order["status"] == "expired":
        raise _not_matched(job, order)
    if order["status"] == "cancelled":
        raise PasarError(f"the job {job.id} was cancelled", code="cancelled", status=409)


def _decode(item: bytes, order_id: str, index: int) -> Result:
    try:
        return load_outcome(item)
    except Exception as exc:  # damaged, or a value whose class this side lacks
        return Failure(
            PasarError(
                f"cannot decode the result of .map element #{index} ({order_id}): "
                f"{type(exc).__name__}: {exc}",
                code="bad_result",
                status=502,
                hint="the returned value must be importable here (same modules, versions)",
            )
        )


def _lease_failure(order: dict[str, Any], shard: int) -> str:
    """Why ``shard`` has no result, for its re-launch; raised instead when its lease failed
    for the job's own fault (``pip_install_failed``...): a re-launch would fail the same way."""
    from pasar.client.remote import job_failure_error

    error = job_failure_error(order, shard)
    if error is not None:
        raise error
    lease = api.latest_lease(order, shard)
    if lease is None:
        return "it never got a lease"
    failure = (lease.get("receipt") or {}).get("failure")
    if isinstance(failure, dict):
        return f"lease {lease['lease_id']} {lease['status']}: {failure.get('reason')}"
    return f"lease {lease['lease_id']} ended {lease['status']}"


def _tail(job: Job, shard: int) -> str:
    try:
        return "".join(job.logs(shard=shard))[-LOG_TAIL_CHARS:]
    except PasarError as exc:
        return f"(no log: {exc.message})"
