"""Start a real ``pasar market serve`` for a benchmark, and stop it afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LISTENING_PREFIX = "pasar market listening on "


@contextmanager
def market(*extra: str) -> Iterator[str]:
    """A devnet market on a free loopback port in a temporary home; yields its URL."""
    with tempfile.TemporaryDirectory(prefix="pasar-bench-") as tmp:
        home = Path(tmp) / "market"
        out = Path(tmp) / "stdout"
        env = {**os.environ, "PASAR_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        with out.open("wb") as stdout:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pasar",
                    "market",
                    "serve",
                    "--home",
                    str(home),
                    "--port",
                    "0",
                    "--devnet",
                    *extra,
                ],
                stdout=stdout,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        try:
            deadline = time.monotonic() + 30
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
