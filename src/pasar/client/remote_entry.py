"""What a provider runs for an ``@pasar.remote`` job: ``python -m pasar.client.remote_entry``.

In the job's working directory it reads ``pasar_call.pkl``, runs call number ``$PASAR_SHARD``
(0 when unset: a job of one shard), and writes ``pasar_result.pkl`` — the return value, or the
exception with its traceback (see :mod:`pasar.client.payload` for both formats). A ``.map``'s
call file (format 2) holds one *batch* per shard: shard *i* runs every call of batch *i* in this
one process, in order, and writes all their outcomes at once, bound to the call file's sha256
and the batch number, so one sandbox and one Python start serve many calls.

Exit status: 0 the function returned (every call of the batch did); 1 it raised (the result
file says how; for a batch, at least one call raised); 2 no result could
be written (a missing or unreadable call file, another Python version), with the reason on
stderr and, where possible, in the result file too. The provider collects the result file
whatever the exit status.

Only the standard library, cloudpickle and :mod:`pasar.client.payload` are imported, so the
entry starts fast and needs nothing of pasar's network stack inside the sandbox.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pasar.client.payload import (
    BATCH_FORMAT,
    CALL_FILE,
    RESULT_FILE,
    Call,
    PayloadError,
    call_format,
    dump_batch_outcomes,
    dump_error,
    dump_value,
    load_batch,
    load_calls,
)

OK, RAISED, NO_RESULT = 0, 1, 2


def _write(workdir: Path, data: bytes) -> None:
    """Write the result file whole or not at all (a half-written pickle is worse than none)."""
    tmp = workdir / f".{RESULT_FILE}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, workdir / RESULT_FILE)


def _shard() -> int:
    text = os.environ.get("PASAR_SHARD", "0")
    try:
        return int(text)
    except ValueError:
        raise PayloadError(f"PASAR_SHARD is {text!r}, not a shard number") from None


def _call(fn: Callable[..., Any], call: Call) -> tuple[bytes, bool]:
    """One call's outcome file (the value, or the exception and its traceback); True if it
    returned a value that pickled."""
    args, kwargs = call
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt in user code are results too
        tb = exc.__traceback__
        return dump_error(exc, tb.tb_next if tb is not None else None), False
    try:
        return dump_value(value), True
    except Exception as exc:
        print(f"pasar remote: the return value cannot be pickled: {exc}", file=sys.stderr)
        return dump_error(exc, exc.__traceback__), False


def _setup_failed(workdir: Path, exc: Exception) -> int:
    print(f"pasar remote: cannot load the call: {type(exc).__name__}: {exc}", file=sys.stderr)
    with contextlib.suppress(OSError):  # then the message on stderr is all there can be
        error = dump_error(exc, type_name="pasar.RemoteSetupError", include_exception=False)
        _write(workdir, error)
    return NO_RESULT


def run(workdir: Path) -> int:
    """Run this shard's call (or batch) from ``workdir``; returns the exit status (see the
    module doc)."""
    try:
        data = (workdir / CALL_FILE).read_bytes()
        shard = _shard()
        batched = call_format(data) == BATCH_FORMAT
        if batched:
            fn, batch, count = load_batch(data, shard)
        else:
            fn, calls = load_calls(data)
            if not 0 <= shard < len(calls):
                raise PayloadError(f"shard {shard} of a call file holding {len(calls)} call(s)")
    except Exception as exc:  # unreadable, another Python, a module missing on this side…
        return _setup_failed(workdir, exc)
    if batched:
        name = getattr(fn, "__qualname__", repr(fn))
        print(
            f"pasar remote: running {name} on {len(batch)} call(s) (batch {shard} of {count})",
            file=sys.stderr,
        )
        done = [_call(fn, call) for call in batch]
        digest = hashlib.sha256(data).hexdigest()
        _write(workdir, dump_batch_outcomes(digest, shard, [out for out, _ in done]))
        return OK if all(ok for _, ok in done) else RAISED
    # a single call's log is what the function prints, nothing more: a line of ours would cost
    # every call a log append, which its receipt waits for (issue 13)
    outcome, ok = _call(fn, calls[shard])
    _write(workdir, outcome)
    return OK if ok else RAISED


def main() -> int:
    return run(Path.cwd())


if __name__ == "__main__":
    sys.exit(main())
