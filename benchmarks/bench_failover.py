"""How long a market is without a writer when its writer is SIGKILLed and a standby takes over.

A writer and a ``--standby`` node (real ``pasar market serve`` processes, one home, one SQLite
database, or ``--db URL`` for PostgreSQL) are started; ``--txs`` faucets are logged through the
writer (the log the standby must verify and replay); then the writer is SIGKILLed and the
time until the standby acknowledges a write is measured, with the standby's own figure for the
takeover (lock taken → verify → replay → serving). Prints one JSON line.

    python benchmarks/bench_failover.py [--txs 2000] [--db URL]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from pasar.crypto.envelope import sign, wall_clock_ms
from pasar.crypto.identity import Identity

LISTENING_PREFIX = "pasar market listening on "


def start(home: Path, tag: str, *extra: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    out, err = home.parent / f"{tag}.stdout", home.parent / f"{tag}.stderr"
    env = {**os.environ, "PASAR_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    args = ["--home", str(home), "--port", "0", "--devnet", *extra]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pasar", "market", "serve", *args],
            stdout=stdout,
            stderr=stderr,
            env=env,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in out.read_text().splitlines():
            if line.startswith(LISTENING_PREFIX):
                return proc, line[len(LISTENING_PREFIX) :].strip(), err
        if proc.poll() is not None:
            raise RuntimeError(f"{tag} exited: {err.read_text()[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"{tag} did not start")


def faucet(url: str, who: Identity, market: str) -> httpx.Response:
    body = {"type": "faucet", "amount": "1 USDC"}
    envelope = sign(body, who, now_ms=wall_clock_ms(), market=market)
    return httpx.post(f"{url}/v1/faucet", json=envelope, timeout=10)


def run(txs: int, db: str | None) -> dict[str, Any]:
    extra = ("--db", db) if db else ()
    with tempfile.TemporaryDirectory(prefix="pasar-bench-") as tmp:
        home = Path(tmp) / "market"
        writer, writer_url, _ = start(home, "writer", *extra)
        standby, standby_url, standby_err = start(home, "standby", *extra, "--standby")
        try:
            market = httpx.get(f"{writer_url}/v1/healthz").json()["market"]
            who = Identity.generate()
            with httpx.Client() as http:
                for _ in range(txs):
                    envelope = sign(
                        {"type": "faucet", "amount": "1 USDC"},
                        who,
                        now_ms=wall_clock_ms(),
                        market=market,
                    )
                    http.post(f"{writer_url}/v1/faucet", json=envelope).raise_for_status()
            killed = time.monotonic()
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            while faucet(standby_url, who, market).status_code != 200:
                if time.monotonic() - killed > 120:
                    raise RuntimeError("the standby never took over")
                time.sleep(0.02)
            unavailable_s = time.monotonic() - killed
            took_ms = next(
                json.loads(line)["took_ms"]
                for line in standby_err.read_text().splitlines()
                if '"market.takeover"' in line
            )
        finally:
            for proc in (writer, standby):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(15)
    return {
        "name": "failover_no_writer",
        "value": round(unavailable_s, 3),
        "unit": "s",
        "db": "postgresql" if db else "sqlite",
        "log_txs": txs,
        "no_writer_s": round(unavailable_s, 3),
        "takeover_ms": took_ms,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--txs", type=int, default=2000)
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: SQLite in the home)")
    args = parser.parse_args()
    print(json.dumps(run(args.txs, args.db)))


if __name__ == "__main__":
    main()
