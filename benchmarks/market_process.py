"""Start a real ``pasar market serve`` for a benchmark, and stop it afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

LISTENING_PREFIX = "pasar market listening on "


@contextmanager
def market(
    *extra: str,
    home: Path | None = None,
    command: Sequence[str] | None = None,
    start_timeout_s: float = 30,
) -> Iterator[str]:
    """A devnet market on a free loopback port; yields its URL.

    ``home`` is the market's home (default: a temporary one), e.g. one whose log a benchmark
    wrote beforehand; ``command`` replaces ``python -m pasar market serve`` (it gets the same
    ``--home/--port/--devnet`` arguments and must print the same "listening" line).
    """
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pasar-bench-")))
        home = home or tmp / "market"
        out = tmp / "stdout"
        env = {**os.environ, "PASAR_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        argv = [*(command or (sys.executable, "-m", "pasar", "market", "serve"))]
        with out.open("wb") as stdout:
            proc = subprocess.Popen(
                [*argv, "--home", str(home), "--port", "0", "--devnet", *extra],
                stdout=stdout,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        try:
            deadline = time.monotonic() + start_timeout_s
            url = None
            while url is None:
                for line in out.read_text().splitlines():
                    if line.startswith(LISTENING_PREFIX):
                        url = line[len(LISTENING_PREFIX) :].strip()
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the market did not start")
                time.sleep(0.05)
            yield url
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
