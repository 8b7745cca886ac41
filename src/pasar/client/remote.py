"""``@pasar.remote``: run a Python function on a provider and get its return value back.

>>> @pasar.remote(cpus=2, memory=4, max_price="0.50 USDC")
... def square(x: int) -> int:
...     return x * x
>>> square.remote(7)                 # one job; blocks; returns 49
>>> call = square.spawn(7)           # one job; returns at once; call.get() → 49
>>> square.map(range(10))            # calls packed in batches, one per shard; results in order
>>> square.imap(gen(), return_exceptions=True)  # lazily, as jobs end; exceptions in place
>>> square.local(7)                  # a plain local call, explicitly
>>> square(7)                        # refused: say .remote() or .local()

**How it travels.** The function and its arguments are pickled with cloudpickle into the job's
only input, ``pasar_call.pkl``; the job runs ``python -m pasar.client.remote_entry`` on the
provider (inside its sandbox, with the provider's Python, where pasar must be importable), which
writes the only output, ``pasar_result.pkl``: the return value, or the exception with its
remote traceback. :mod:`pasar.client.payload` has the file formats. The function's own module
travels *by value*, so helpers defined beside it go along; other modules it uses (numpy, torch)
must be installed on the provider. Client and provider must run the same Python minor version.

**Errors.** A remote exception is raised here again as its own type when it can be rebuilt
(``ValueError`` stays ``ValueError``), with the remote traceback attached as a note
(``add_note``); otherwise — and for ``SystemExit``/``KeyboardInterrupt``, which must not stop
this program — as :class:`RemoteError` carrying the type name, message and traceback.
``.map`` raises for the *first failing index* (lowest input position), noting which one, after
its job ended (``return_exceptions=True``: exceptions in place); how a ``.map`` packs, streams
and re-launches is :mod:`pasar.client.mapping` (docs/remote.md). A job no provider took
raises ``not_matched`` with the market's reasons. There is no local fallback anywhere: a
failure is reported, never retried on this machine (a ``.map`` re-launches a failed shard on
the market, see there).

**Trust.** Decoding the result runs code chosen by the provider that wrote it (unpickling): it
trusts the provider as much as running its output would. The result *file* is verified against
the provider's signed receipt before it is read, like every output (``Job.result``).

**Price and time.** ``max_price`` is the most one lease may cost per hour (default
:data:`DEFAULT_MAX_PRICE`), ``max_duration`` how long it may run (default
:data:`DEFAULT_MAX_DURATION`); a ``.map`` escrows one lease's worth per shard of each job
in flight.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import sys
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Generic, Literal, ParamSpec, TypeVar, overload

import cloudpickle

from pasar.client.client import Client, Job
from pasar.client.payload import (
    CALL_FILE,
    RESULT_FILE,
    Outcome,
    dump_batch,
    dump_calls,
    dump_function,
    load_outcome,
)
from pasar.client.progress import MapProgress, OrderProgress
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.spec import JobSpec

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_MAX_PRICE = "0.50 USDC"
DEFAULT_MAX_DURATION = "10m"
RUN = "python -m pasar.client.remote_entry"
LOG_TAIL_CHARS = 2000
# a ``.remote`` call still waiting after this long draws its progress bar (on a terminal): most
# calls end well before, and a bar that flashes for 100 ms is noise
BAR_AFTER_S = 2.0


class RemoteError(PasarError):
    """A remote call failed and its exception could not be rebuilt here (or none ran)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "remote_error",
        remote_type: str = "",
        remote_traceback: str = "",
        order_id: str | None = None,
        index: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, code=code, hint=hint, status=502)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback
        self.order_id = order_id
        self.index = index

    def __str__(self) -> str:
        if not self.remote_traceback:
            return self.message
        return f"{self.message}\n\nremote traceback:\n{self.remote_traceback}"


# -- the default client ---------------------------------------------------------------------------

_default: dict[str, Client] = {}
_default_lock = threading.Lock()


def default_client() -> Client:
    """One :class:`Client` for every remote function not given its own (built on first use,
    so the market address is resolved only when a job is actually sent)."""
    with _default_lock:
        if "client" not in _default:
            _default["client"] = Client()
        return _default["client"]


# -- building the job -----------------------------------------------------------------------------

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_registry_lock = threading.Lock()


def _job_name(fn: Callable[..., Any]) -> str:
    name = _UNSAFE_NAME.sub("-", getattr(fn, "__name__", "function")).strip("-._")
    return (name or "function")[:63]


def _resources(
    gpu: str | int | Mapping[str, int] | list[str] | None,
    cpus: int | float | str,
    memory: int | float | str,
    disk: int | float | str | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"cpus": cpus, "memory": memory}
    if disk is not None:
        out["disk"] = disk
    if gpu is not None:
        out["accelerators"] = {"count": gpu} if isinstance(gpu, int) else gpu
    return out


def _module_of(fn: Callable[..., Any]) -> ModuleType | None:
    """The function's module if it should travel by value (user code, not ``__main__``,
    which cloudpickle already sends by value)."""
    name = getattr(fn, "__module__", None)
    if not isinstance(name, str) or name == "__main__" or name.startswith("pasar."):
        return None
    return sys.modules.get(name)


def _checked_modules(py_modules: Sequence[ModuleType] | None) -> tuple[ModuleType, ...]:
    """``py_modules`` as given, refused at decoration time unless each is an imported module
    (a name or a path would only fail later, on the provider)."""
    out: list[ModuleType] = []
    for i, module in enumerate(py_modules or ()):
        if not isinstance(module, ModuleType):
            raise PasarError(
                f"py_modules[{i}] is {type(module).__name__!s}, not a module",
                code="bad_py_modules",
                field=f"py_modules[{i}]",
                hint="pass the imported module itself: import helpers; "
                "@pasar.remote(py_modules=[helpers])",
            )
        out.append(module)
    return tuple(out)


@contextmanager
def _by_value(fn: Callable[..., Any], py_modules: Sequence[ModuleType] = ()) -> Iterator[None]:
    """While pickling: ``fn``'s own module (see :func:`_module_of`) and the ``py_modules``
    travel by value, so a local helper module the provider has not installed works there
    (what Ray's ``runtime_env={"py_modules": [...]}`` is for)."""
    own = _module_of(fn)
    modules = [m for m in (own, *py_modules) if m is not None]
    if not modules:
        yield
        return
    # cloudpickle's by-value registry is process-wide: one pickling at a time changes it, and
    # a module the caller registered itself stays registered
    with _registry_lock:
        known = set(cloudpickle.list_registry_pickle_by_value())
        mine = {m.__name__: m for m in modules if m.__name__ not in known}
        for module in mine.values():
            cloudpickle.register_pickle_by_value(module)
        try:
            yield
        finally:
            for module in mine.values():
                cloudpickle.unregister_pickle_by_value(module)


def _pickle_calls(
    fn: Callable[..., Any],
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]],
    py_modules: Sequence[ModuleType] = (),
) -> bytes:
    with _by_value(fn, py_modules):
        return dump_calls(fn, calls)


# -- collecting outcomes --------------------------------------------------------------------------


def _not_matched(job: Job, order: dict[str, Any]) -> PasarError:
    explained = job.explain()
    reasons = [
        f"{p['provider'][:12]}…: {p['reason']}" for p in explained["providers"] if p["reason"]
    ]
    shown = "; ".join(reasons[:5]) or order.get("note") or "no provider fits"
    return PasarError(
        f"no provider took the job ({job.id}): {shown}",
        code="not_matched",
        status=409,
        hint="raise max_price, ask for fewer resources, or check `pasar offers`",
    )


def outcomes(job: Job, timeout: float | None = None) -> list[Outcome]:
    """Wait for ``job``, fetch and verify every shard's result file, decode each (in order).
    A wait longer than :data:`BAR_AFTER_S` shows the job's progress bar on a terminal."""
    with OrderProgress(f"job {job.id}", delay_s=BAR_AFTER_S) as bar:
        order = job.wait(timeout, watch=bar.update)
    if order["status"] == "expired":
        raise _not_matched(job, order)
    if order["status"] == "cancelled":
        raise PasarError(f"the job {job.id} was cancelled", code="cancelled", status=409)
    for index in range(int(order["spec"].get("shards", 1))):
        failed = job_failure_error(order, index)
        if failed is not None:
            raise failed
    found: list[Outcome] = []
    for shard, data in job.read(order, RESULT_FILE):  # the view just waited for: no 2nd trip
        if data is None:
            if shard.ended_because is not None:
                raise stopped_error(job.id, shard.shard, shard.ended_because)
            tail = "".join(job.logs(shard=shard.shard))[-LOG_TAIL_CHARS:]
            raise RemoteError(
                f"shard {shard.shard} of {job.id} ended with exit code {shard.exit_code} "
                f"and no {RESULT_FILE}; the end of its log:\n{tail}",
                code="remote_no_result",
                order_id=job.id,
                index=shard.shard,
                hint="the provider could not run pasar.client.remote_entry; see the log",
            )
        try:
            found.append(load_outcome(data))
        except Exception as exc:  # damaged, or a value whose class this side lacks
            raise RemoteError(
                f"cannot decode the result of shard {shard.shard} of {job.id}: "
                f"{type(exc).__name__}: {exc}",
                code="bad_result",
                order_id=job.id,
                index=shard.shard,
                hint="the returned value must be importable here (same modules, versions)",
            ) from exc
    return found


def job_failure_error(order: Mapping[str, Any], shard: int) -> RemoteError | None:
    """The error for a shard whose last lease ended in a failure receipt of the job's own
    fault (:mod:`pasar.core.receipts`: ``pip_install_failed``, ``missing_outputs``...): its
    reason is the error's code and its detail the message, since any provider would fail it
    the same way (it is not re-run). None when the shard did not end so."""
    from pasar.client.calls import latest_lease

    lease = latest_lease(order, shard)
    failure = (lease or {}).get("receipt", {}) or {}
    failure = failure.get("failure") if isinstance(failure, dict) else None
    if lease is None or lease.get("status") != "failed" or not isinstance(failure, dict):
        return None
    if failure.get("fault") != "job":
        return None
    reason = str(failure.get("reason"))
    return RemoteError(
        f"shard {shard} of {order['order_id']} failed on its provider ({reason}, the job's "
        f"fault): {failure.get('detail', '')}",
        code=reason,
        remote_type=f"pasar.{reason}",
        order_id=str(order["order_id"]),
        index=shard,
        hint=f"see `pasar status {order['order_id']}`; every provider would fail it alike",
    )


def stopped_error(order_id: str, shard: int, why: str) -> RemoteError:
    """A call the provider's sandbox stopped (a timeout, a memory or disk limit) before it
    returned: said as such, not as a provider that could not run it (issue 14.3)."""
    return RemoteError(
        f"shard {shard} of {order_id} was stopped before it returned: {why}",
        code="remote_stopped",
        remote_type="pasar.Stopped",
        order_id=order_id,
        index=shard,
        hint="raise the limit it hit (max_duration=, memory=) with .options(...)",
    )


def value_of(outcome: Outcome, job: Job, index: int | None = None) -> Any:
    """The returned value, or raise the remote exception (see the module's *Errors*)."""
    if outcome.ok:
        return outcome.value
    raise exception_of(outcome, job.id, index)


def exception_of(outcome: Outcome, order_id: str, index: int | None = None) -> Exception:
    """The exception a failed call raises here: its own, noted, or a :class:`RemoteError`."""
    where = f"order {order_id}" + ("" if index is None else f", .map element #{index}")
    exc = outcome.exception
    if isinstance(exc, Exception):  # SystemExit or KeyboardInterrupt must not end this program
        exc.add_note(f"raised remotely ({where}); remote traceback:\n{outcome.traceback}")
        return exc
    return RemoteError(
        f"{outcome.type_name}: {outcome.message} ({where})",
        remote_type=outcome.type_name,
        remote_traceback=outcome.traceback,
        order_id=order_id,
        index=index,
    )


# -- the decorator --------------------------------------------------------------------------------


@dataclass
class RemoteCall(Generic[R]):
    """A spawned remote call: the running job, and ``get()`` for its value."""

    job: Job

    def get(self, timeout: float | None = None) -> R:
        """Block until the job ends; return the value or raise the remote exception."""
        (outcome,) = outcomes(self.job, timeout)
        value: R = value_of(outcome, self.job)
        return value

    def cancel(self) -> dict[str, Any]:
        return self.job.cancel()


class RemoteMethod(Generic[P, R]):
    """``f.remote``: callable (blocking) and with ``.aio`` (awaitable), as Modal's are."""

    def __init__(self, function: RemoteFunction[P, R]) -> None:
        self.function = function

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.function.spawn(*args, **kwargs).get()

    async def aio(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The call in a worker thread: an ``asyncio`` program awaits it while its loop runs
        (the SDK's transport is synchronous; the wait is long polls, so a thread is cheap)."""
        return await asyncio.to_thread(self.__call__, *args, **kwargs)


class RemoteFunction(Generic[P, R]):
    """A function that runs as a pasar job; see the module docstring."""

    def __init__(
        self,
        fn: Callable[P, R],
        spec: JobSpec,
        *,
        client: Client | None = None,
        ttl_s: int | None = None,
        py_modules: Sequence[ModuleType] = (),
    ) -> None:
        self.fn = fn
        self.spec = spec  # the template: one shard; .map sets shards
        self.client = client
        self.ttl_s = ttl_s
        self.py_modules = tuple(py_modules)
        self.__name__ = getattr(fn, "__name__", "remote")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__module__ = getattr(fn, "__module__", __name__)
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<remote function {self.__qualname__}>"

    def __getstate__(self) -> dict[str, Any]:
        # travels inside pickles (a function that calls itself): never with a live client
        return {**self.__dict__, "client": None, "py_modules": ()}

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        raise PasarError(
            f"{self.__qualname__} is a remote function: say where it runs",
            code="ambiguous_call",
            hint=f"{self.__name__}.remote(...) runs it on a provider, "
            f"{self.__name__}.local(...) here",
        )

    def _launch(self, calls: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> Job:
        client = self.client or default_client()
        spec = JobSpec.build(**{**self.spec.to_dict(), "shards": len(calls)})
        call = _pickle_calls(self.fn, calls, self.py_modules)
        return client.launch(spec, ttl_s=self.ttl_s, data={CALL_FILE: call})

    def local(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the function here, in this process (the only way it ever runs locally)."""
        return self.fn(*args, **kwargs)

    def spawn(self, *args: P.args, **kwargs: P.kwargs) -> RemoteCall[R]:
        """Launch the call as a job and return at once; ``.get()`` waits for the value."""
        return RemoteCall(self._launch([(args, dict(kwargs))]))

    @property
    def remote(self) -> RemoteMethod[P, R]:
        """``f.remote(x)``: run the call on a provider and return its value (or raise its
        exception); ``await f.remote.aio(x)`` does the same without blocking an event loop."""
        return RemoteMethod(self)

    @overload
    def imap(
        self,
        *iterables: Iterable[Any],
        return_exceptions: Literal[False] = False,
        timeout: float | None = None,
    ) -> Generator[R, None, None]: ...

    @overload
    def imap(
        self,
        *iterables: Iterable[Any],
        return_exceptions: bool,
        timeout: float | None = None,
    ) -> Generator[R | Exception, None, None]: ...

    def imap(
        self,
        *iterables: Iterable[Any],
        return_exceptions: bool = False,
        timeout: float | None = None,
    ) -> Generator[Any, None, None]:
        """``fn(*xs) for xs in zip(*iterables)``, yielded in input order as jobs end.

        The calls are packed into batches, one per shard, sized by the free capacity the quote
        shows, with a bounded window of jobs in flight; the input is read lazily
        (:mod:`pasar.client.mapping`). A call that raised: its exception in place with
        ``return_exceptions``, otherwise raised (noting its index) when reached, after its job
        ended; jobs not yet read are then cancelled. An empty input launches nothing.
        ``timeout``: seconds each job may take.
        """
        calls: Iterator[tuple[tuple[Any, ...], dict[str, Any]]] = (
            (tuple(xs), {}) for xs in zip(*iterables, strict=False)
        )
        return self._stream(calls, return_exceptions, timeout)

    def starmap(
        self,
        arguments: Iterable[Iterable[Any]],
        *,
        return_exceptions: bool = False,
        timeout: float | None = None,
    ) -> list[Any]:
        """``[fn(*args) for args in arguments]`` (``itertools.starmap``, Modal's and
        multiprocessing's ``starmap``): each element is one call's positional arguments. Packed,
        streamed and ordered as :meth:`imap` is; ``return_exceptions`` and ``timeout`` as in
        :meth:`map`."""
        calls: Iterator[tuple[tuple[Any, ...], dict[str, Any]]] = (
            (tuple(args), {}) for args in arguments
        )
        found = self._stream(calls, return_exceptions, timeout)
        try:
            return list(found)
        finally:
            found.close()

    def _stream(
        self,
        calls: Iterator[tuple[tuple[Any, ...], dict[str, Any]]],
        return_exceptions: bool,
        timeout: float | None,
    ) -> Generator[Any, None, None]:
        """The calls, packed into batch jobs, their results yielded in order (see imap)."""
        from pasar.client import mapping

        first = next(calls, None)
        if first is None:
            return
        client = self.client or default_client()
        limit = mapping.blob_limit(client)
        with _by_value(self.fn, self.py_modules):
            body = dump_function(self.fn)
        room = limit - len(body) - mapping.ENVELOPE_SLACK
        if room <= 0:
            raise mapping.too_large(
                f"the function {self.__qualname__}",
                len(body),
                limit,
                "keep large data out of the function's closure and globals: pass it as a job "
                "input file, or load it inside the function",
            )

        def pickle_batch(batch: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> bytes:
            with _by_value(self.fn, self.py_modules):
                return dump_batch(batch)

        shards = mapping.shards_per_job(client, self.spec)
        progress = MapProgress(f"{self.__qualname__}.map")
        run = mapping.MapRun(
            client, self.spec, body, ttl_s=self.ttl_s, timeout=timeout, progress=progress
        )
        jobs = mapping.batches(
            itertools.chain([first], calls),
            shards,
            pickle_batch,
            min(mapping.MAX_BATCH_BYTES, room),
        )
        with progress:
            for index, result, order_id in run.results(mapping.packed(jobs, room)):
                if isinstance(result, mapping.Failure):
                    if not return_exceptions:
                        raise result.error
                    yield result.error
                elif result.ok:
                    yield result.value
                elif return_exceptions:
                    yield exception_of(result, order_id, index)
                else:
                    raise exception_of(result, order_id, index)

    @overload
    def map(
        self,
        *iterables: Iterable[Any],
        return_exceptions: Literal[False] = False,
        timeout: float | None = None,
    ) -> list[R]: ...

    @overload
    def map(
        self,
        *iterables: Iterable[Any],
        return_exceptions: bool,
        timeout: float | None = None,
    ) -> list[R | Exception]: ...

    def map(
        self,
        *iterables: Iterable[Any],
        return_exceptions: bool = False,
        timeout: float | None = None,
    ) -> list[Any]:
        """``[fn(*xs) for xs in zip(*iterables)]``: :meth:`imap`, collected into a list.

        If an element raised (and not ``return_exceptions``), the exception of the first
        failing element is raised, noting its index. An empty input launches nothing.
        """
        found = self.imap(*iterables, return_exceptions=return_exceptions, timeout=timeout)
        try:
            return list(found)
        finally:
            found.close()

    def options(self, **overrides: Any) -> RemoteFunction[P, R]:
        """The same function with other job fields (``max_duration="1h"``, ``envs={...}``,
        ``pip=[...]``) or other ``py_modules``."""
        modules = self.py_modules
        if "py_modules" in overrides:
            modules = _checked_modules(overrides.pop("py_modules"))
        spec = JobSpec.build(**{**self.spec.to_dict(), **overrides})
        return RemoteFunction(
            self.fn, spec, client=self.client, ttl_s=self.ttl_s, py_modules=modules
        )


@overload
def remote(fn: Callable[P, R], /) -> RemoteFunction[P, R]: ...


@overload
def remote(
    fn: None = None,
    /,
    *,
    gpu: str | int | Mapping[str, int] | list[str] | None = None,
    cpus: int | float | str = 1,
    memory: int | float | str = 1,
    disk: int | float | str | None = None,
    max_price: str | Money = DEFAULT_MAX_PRICE,
    max_duration: str | int = DEFAULT_MAX_DURATION,
    verification: str | None = None,
    pricing: str | None = None,
    envs: Mapping[str, str] | None = None,
    setup: str | None = None,
    image: str | None = None,
    network: bool = False,
    name: str | None = None,
    client: Client | None = None,
    ttl_s: int | None = None,
    py_modules: Sequence[ModuleType] | None = None,
    pip: Sequence[str] | None = None,
) -> Callable[[Callable[P, R]], RemoteFunction[P, R]]: ...


def remote(
    fn: Callable[P, R] | None = None,
    /,
    *,
    gpu: str | int | Mapping[str, int] | list[str] | None = None,
    cpus: int | float | str = 1,
    memory: int | float | str = 1,
    disk: int | float | str | None = None,
    max_price: str | Money = DEFAULT_MAX_PRICE,
    max_duration: str | int = DEFAULT_MAX_DURATION,
    verification: str | None = None,
    pricing: str | None = None,
    envs: Mapping[str, str] | None = None,
    setup: str | None = None,
    image: str | None = None,
    network: bool = False,
    name: str | None = None,
    client: Client | None = None,
    ttl_s: int | None = None,
    py_modules: Sequence[ModuleType] | None = None,
    pip: Sequence[str] | None = None,
) -> RemoteFunction[P, R] | Callable[[Callable[P, R]], RemoteFunction[P, R]]:
    """Make ``fn`` a :class:`RemoteFunction`; usable bare (``@remote``) or with options.

    ``gpu``: ``"A100"``, ``"A100:2"``, ``{"A100": 2, "H100": 2}`` or a count of any model;
    ``cpus``, ``memory`` (GB), ``disk`` (GB): minimums; ``max_price``: per lease and hour;
    ``verification``, ``pricing``, ``envs``, ``setup``, ``image``, ``network``: as in a job
    spec (docs/jobspec.md). The spec is checked now, so a typo fails at decoration time.
    ``client``: the market to use (default: ``Client()`` on first launch).
    ``py_modules``: local modules (or packages) the function uses that the provider lacks;
    their code travels by value inside the call's pickle (Ray's ``py_modules``).
    ``pip``: requirements such as ``"pandas==2.2"`` the provider installs before the call —
    binary wheels only, into a cached install bound read-only into the sandbox and put on its
    ``PYTHONPATH``; options, URLs and paths are refused here (the spec's ``pip:`` field).
    """
    modules = _checked_modules(py_modules)

    def wrap(f: Callable[P, R]) -> RemoteFunction[P, R]:
        fields: dict[str, Any] = {
            "name": name or _job_name(f),
            "run": RUN,
            "resources": _resources(gpu, cpus, memory, disk),
            "inputs": [CALL_FILE],
            "outputs": [RESULT_FILE],
            "max_price_per_hour": max_price.to_json()
            if isinstance(max_price, Money)
            else max_price,
            "max_duration": max_duration,
            "network": network,
            "envs": dict(envs or {}),
        }
        optional = {
            "verification": verification,
            "pricing": pricing,
            "setup": setup,
            "image": image,
            "pip": pip,  # a bare string is refused, naming the field: it is not a list
        }
        fields.update({k: v for k, v in optional.items() if v is not None})
        return RemoteFunction(
            f, JobSpec.build(**fields), client=client, ttl_s=ttl_s, py_modules=modules
        )

    return wrap if fn is None else wrap(fn)
