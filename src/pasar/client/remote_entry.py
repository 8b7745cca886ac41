"""What a provider runs for an ``@pasar.remote`` job: ``python -m pasar.client.remote_entry``.

In the job's working directory it reads ``pasar_call.pkl``, runs call number ``$PASAR_SHARD``
(0 when unset: a job of one shard), and writes ``pasar_result.pkl`` — the return value, or the
exception with its traceback (see :mod:`pasar.client.payload` for both formats).

Exit status: 0 the function returned; 1 it raised (the result file says how); 2 no result could
be written (a missing or unreadable call file, another Python version), with the reason on
stderr and, where possible, in the result file too. The provider collects the result file
whatever the exit status.

Only the standard library, cloudpickle and :mod:`pasar.client.payload` are imported, so the
entry starts fast and needs nothing of pasar's network stack inside the sandbox.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from pasar.client.payload import (
    CALL_FILE,
    RESULT_FILE,
    PayloadError,
    dump_error,
    dump_value,
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


def run(workdir: Path) -> int:
    """Run this shard's call from ``workdir``; returns the exit status (see the module doc)."""
    try:
        fn, calls = load_calls((workdir / CALL_FILE).read_bytes())
        shard = _shard()
        if not 0 <= shard < len(calls):
            raise PayloadError(f"shard {shard} of a call file holding {len(calls)} call(s)")
    except Exception as exc:  # unreadable, another Python, a module missing on this side…
        print(f"pasar remote: cannot load the call: {type(exc).__name__}: {exc}", file=sys.stderr)
        with contextlib.suppress(OSError):  # then the message on stderr is all there can be
            error = dump_error(exc, type_name="pasar.RemoteSetupError", include_exception=False)
            _write(workdir, error)
        return NO_RESULT
    args, kwargs = calls[shard]
    name = getattr(fn, "__qualname__", repr(fn))
    print(f"pasar remote: running {name} (shard {shard} of {len(calls)})", file=sys.stderr)
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt in user code are results too
        tb = exc.__traceback__
        _write(workdir, dump_error(exc, tb.tb_next if tb is not None else None))
        return RAISED
    try:
        data = dump_value(value)
    except Exception as exc:
        print(f"pasar remote: the return value cannot be pickled: {exc}", file=sys.stderr)
        _write(workdir, dump_error(exc, exc.__traceback__))
        return RAISED
    _write(workdir, data)
    return OK


def main() -> int:
    return run(Path.cwd())


if __name__ == "__main__":
    sys.exit(main())
