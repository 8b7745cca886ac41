"""The files an ``@pasar.remote`` job carries: the call going out, the outcome coming back.

``pasar_call.pkl`` (the job's one input) and ``pasar_result.pkl`` (its one output) are each a
small *envelope* pickled with the standard library (protocol 4, only dicts, strings, ints and
bytes), holding a ``cloudpickle`` body. The envelope is readable by any Python 3, so a provider
running another Python minor version can say so in plain words instead of failing inside
cloudpickle, whose by-value functions only load on the minor version that made them.

- call: ``{"format": 1, "python": "3.11", "body": cloudpickle((fn, [(args, kwargs), ...]))}``,
  one ``(args, kwargs)`` per shard; shard *i* runs ``fn(*args_i, **kwargs_i)``.
- batched call (a ``.map``): ``{"format": 2, "python": "3.11", "body": cloudpickle(fn),
  "batches": [cloudpickle([(args, kwargs), ...]), ...]}``; shard *i* runs every call of batch
  *i*, in order, in one process.
- batched outcome: ``{"format": 2, "call": sha256 of the call file, "batch": i,
  "outcomes": [outcome, ...]}``, one outcome (below, as bytes) per call of batch *i*.
- outcome: ``{"format": 1, "ok": True, "value": cloudpickle(value)}`` or
  ``{"format": 1, "ok": False, "type": "module.Name", "message": str, "traceback": str,
  "exception": cloudpickle(exc) or None}``.

**Trust.** Loading an outcome runs code chosen by whoever wrote the file — the provider. Decoding
a remote function's result trusts the provider as much as running a program it built would.
Files fetched with ``Job.result`` are only checked against their hashes and never unpickled.

Only the standard library and cloudpickle are imported here: the provider side
(:mod:`pasar.client.remote_entry`) loads this module inside the sandbox.
"""

from __future__ import annotations

import pickle
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import cloudpickle

CALL_FILE = "pasar_call.pkl"
RESULT_FILE = "pasar_result.pkl"
FORMAT = 1
ENVELOPE_PROTOCOL = 4
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"

Call = tuple[tuple[Any, ...], dict[str, Any]]


class PayloadError(Exception):
    """A call or outcome file that cannot be read: damaged, another format, another Python."""


class SetupFailedError(PayloadError):
    """The runner could not load the call at all (another Python, a module missing there): the
    same call would fail the same way anywhere, so it is reported, not re-run."""


def _envelope(data: bytes, what: str, formats: tuple[int, ...] = (1,)) -> dict[str, Any]:
    try:
        env = pickle.loads(data)
    except Exception as exc:  # any damage to the bytes shows up as some exception here
        raise PayloadError(f"the {what} file is damaged: {type(exc).__name__}: {exc}") from None
    if not isinstance(env, dict) or env.get("format") not in formats:
        found = env.get("format") if isinstance(env, dict) else type(env).__name__
        wanted = " or ".join(map(str, formats))
        raise PayloadError(f"the {what} file has format {found!r}; this reads {wanted}")
    return env


def _same_python(env: dict[str, Any]) -> None:
    if env.get("python") != PYTHON:
        raise PayloadError(
            f"the function was pickled by Python {env.get('python')} and this provider runs "
            f"Python {PYTHON}; cloudpickle needs the same minor version on both sides"
        )


def dump_calls(fn: Callable[..., Any], calls: list[Call]) -> bytes:
    """The call file for ``fn`` over ``calls`` (one per shard)."""
    body = cloudpickle.dumps((fn, calls))
    return pickle.dumps(
        {"format": FORMAT, "python": PYTHON, "body": body}, protocol=ENVELOPE_PROTOCOL
    )


def load_calls(data: bytes) -> tuple[Callable[..., Any], list[Call]]:
    """The function and its calls; refuses a file made by another Python minor version."""
    env = _envelope(data, "call")
    _same_python(env)
    fn, calls = cloudpickle.loads(env["body"])
    return fn, calls


def dump_value(value: object) -> bytes:
    return pickle.dumps(
        {"format": FORMAT, "ok": True, "value": cloudpickle.dumps(value)},
        protocol=ENVELOPE_PROTOCOL,
    )


def dump_error(
    exc: BaseException,
    tb: TracebackType | None = None,
    *,
    type_name: str | None = None,
    include_exception: bool = True,
) -> bytes:
    """The outcome of a call that raised: its type, message, formatted remote traceback (from
    ``tb``, so the runner's own frames can be left out) and, if it pickles, the exception
    (left out with ``include_exception=False``: the runner's own failures are reported as
    text, not re-raised as if the function had raised them)."""
    pickled: bytes | None = None
    if include_exception:
        try:
            pickled = cloudpickle.dumps(exc)
        except Exception:  # an exception holding a socket, a lock…: its text still travels
            pickled = None
    cls = type(exc)
    return pickle.dumps(
        {
            "format": FORMAT,
            "ok": False,
            "type": type_name or f"{cls.__module__}.{cls.__qualname__}",
            "message": str(exc),
            "traceback": "".join(traceback.format_exception(cls, exc, tb)),
            "exception": pickled,
        },
        protocol=ENVELOPE_PROTOCOL,
    )


@dataclass(frozen=True)
class Outcome:
    """What one remote call did: returned ``value``, or raised (type, message, traceback and,
    when it could be rebuilt here, the ``exception`` itself)."""

    ok: bool
    value: Any = None
    type_name: str = ""
    message: str = ""
    traceback: str = ""
    exception: BaseException | None = None


def load_outcome(data: bytes) -> Outcome:
    """Decode an outcome file. Runs provider-chosen code: see the module's note on trust."""
    env = _envelope(data, "result")
    if env.get("ok") is True:
        return Outcome(True, value=cloudpickle.loads(env["value"]))
    exception: BaseException | None = None
    if env.get("exception") is not None:
        try:
            loaded = cloudpickle.loads(env["exception"])
        except Exception:  # e.g. a class that exists only on the provider: keep the text
            loaded = None
        exception = loaded if isinstance(loaded, BaseException) else None
    return Outcome(
        False,
        type_name=str(env.get("type", "")),
        message=str(env.get("message", "")),
        traceback=str(env.get("traceback", "")),
        exception=exception,
    )


# -- batches: what one shard of a ``.map`` carries ---------------------------------------------

BATCH_FORMAT = 2


def dump_function(fn: Callable[..., Any]) -> bytes:
    """The function's own pickle: made once per ``.map``, shared by all its call files."""
    data: bytes = cloudpickle.dumps(fn)
    return data


def dump_batches(body: bytes, batches: list[bytes]) -> bytes:
    """The call file of a ``.map`` job: the function (``body``, from :func:`dump_function`) and
    one pickled batch per shard (each from :func:`dump_batch`). Each batch stays its own pickle
    so a shard unpickles only its own arguments, and the client knows every batch's size before
    it builds the file."""
    return pickle.dumps(
        {"format": BATCH_FORMAT, "python": PYTHON, "body": body, "batches": batches},
        protocol=ENVELOPE_PROTOCOL,
    )


def dump_batch(calls: list[Call]) -> bytes:
    data: bytes = cloudpickle.dumps(calls)
    return data


def call_format(data: bytes) -> int:
    """The format of a call file: 1 (one call per shard) or 2 (one batch per shard)."""
    env = _envelope(data, "call", (FORMAT, BATCH_FORMAT))
    return int(env["format"])


def load_batch(data: bytes, shard: int) -> tuple[Callable[..., Any], list[Call], int]:
    """The function, the calls of batch ``shard`` and how many batches the file holds."""
    env = _envelope(data, "call", (BATCH_FORMAT,))
    _same_python(env)
    batches = env.get("batches")
    if not isinstance(batches, list) or not 0 <= shard < len(batches):
        count = len(batches) if isinstance(batches, list) else 0
        raise PayloadError(f"shard {shard} of a call file holding {count} batch(es)")
    fn = cloudpickle.loads(env["body"])
    calls = cloudpickle.loads(batches[shard])
    if not isinstance(calls, list):
        raise PayloadError(f"batch {shard} is a {type(calls).__name__}, not a list of calls")
    return fn, calls, len(batches)


def dump_batch_outcomes(call_sha256: str, batch: int, outcomes: list[bytes]) -> bytes:
    """A shard's result file: its batch's outcomes in order (each one :func:`dump_value` or
    :func:`dump_error`), bound to the call file (its sha256) and the batch it answers, so the
    client can refuse outcomes of another job or another batch instead of mis-assigning them."""
    return pickle.dumps(
        {"format": BATCH_FORMAT, "call": call_sha256, "batch": batch, "outcomes": outcomes},
        protocol=ENVELOPE_PROTOCOL,
    )


def load_batch_outcomes(data: bytes, call_sha256: str, batch: int, count: int) -> list[bytes]:
    """Shard ``batch``'s outcomes (each for :func:`load_outcome`), refusing a file made for
    another call file, another batch, or holding other than ``count`` outcomes
    (:class:`PayloadError`; :class:`SetupFailedError` when the runner could not load the call)."""
    env = _envelope(data, "result", (BATCH_FORMAT, FORMAT))
    if env["format"] == FORMAT and env.get("ok") is False:  # the runner could not start
        outcome = load_outcome(data)
        raise SetupFailedError(f"the shard could not run its batch: {outcome.message}")
    if env.get("call") != call_sha256:
        raise PayloadError("the result answers another call file, not this job's")
    if env.get("batch") != batch:
        raise PayloadError(f"the result of shard {batch} answers batch {env.get('batch')!r}")
    found = env.get("outcomes")
    if not isinstance(found, list) or len(found) != count:
        n = len(found) if isinstance(found, list) else type(found).__name__
        raise PayloadError(f"the result of shard {batch} holds {n} outcomes for {count} calls")
    if not all(isinstance(item, bytes) for item in found):
        raise PayloadError(f"the result of shard {batch} holds an outcome that is not bytes")
    return found
