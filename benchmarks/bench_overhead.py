"""What running through pasar costs: a 5-second CPU-bound command run directly, then through a
one-provider local network (market + provider agent + bubblewrap sandbox), and the sandbox's
start-up time.

The ratio is end-to-end: from the client's signed order to the settled receipt (matching,
sandbox start, heartbeats, log shipping, output upload, settlement all included) over the same
command run directly with ``sh -c``; medians of ``--rounds`` alternating runs of each, since a
shared 2-core machine drifts by more than the overhead being measured. Target from the issue:
ratio <= 1.05.

    python benchmarks/bench_overhead.py [--seconds 5] [--startups 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pasar.client.raw_orders import prepared_order
from pasar.client.transport import Transport
from pasar.crypto.identity import Identity
from pasar.provider.runtime.base import Limits, get_runtime

sys.path.insert(0, str(Path(__file__).parent))
from market_process import market


def loop_command(iterations: int) -> str:
    return f"python3 -c 'x = 0\nfor i in range({iterations}): x += i\nprint(x)'"


def calibrate(seconds: float) -> int:
    """Iterations of a plain Python loop that take about ``seconds`` here, interpreter start-up
    included (two probe sizes separate the per-iteration cost from the start-up)."""
    probe = 2_000_000
    t1 = run_direct(loop_command(probe))
    t2 = run_direct(loop_command(2 * probe))
    per_iteration = max((t2 - t1) / probe, 1e-9)
    startup = max(t1 - probe * per_iteration, 0.0)
    return int(max(seconds - startup, 0.1) / per_iteration)


def run_direct(command: str) -> float:
    t = time.perf_counter()
    subprocess.run(["sh", "-c", command], check=True, capture_output=True)
    return time.perf_counter() - t


def sandbox_startup_ms(runs: int) -> float:
    runtime = get_runtime("sandbox")
    limits = Limits(
        memory_bytes=1 << 30,
        cpu_seconds=60,
        max_processes=64,
        max_file_bytes=1 << 30,
        wall_seconds=30,
    )
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "work"  # made the way the executor makes a lease's workdir
        workdir.mkdir()
        for _ in range(runs):
            t = time.perf_counter()
            outcome = runtime.start(workdir, "true", {}, limits).wait()
            times.append(time.perf_counter() - t)
            assert outcome.exit_code == 0
    return statistics.median(times) * 1000


def run_through_network(
    command: str, seconds: float, rounds: int
) -> tuple[list[float], list[float]]:
    with market() as url, tempfile.TemporaryDirectory(prefix="pasar-bench-p-") as tmp:
        env = {**os.environ, "PASAR_HOME": tmp, "PYTHONUNBUFFERED": "1"}
        out = Path(tmp) / "provider.out"
        with out.open("wb") as stdout:
            provider = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pasar",
                    "provider",
                    "start",
                    "--market",
                    url,
                    "--home",
                    tmp,
                    "--price-cpu-hour",
                    "0.05",
                ],
                stdout=stdout,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        try:
            deadline = time.monotonic() + 60
            while " serving " not in out.read_text():
                if provider.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the provider did not start")
                time.sleep(0.05)
            client = Identity.generate()
            http = Transport(url, identity=client)
            try:
                body = {"type": "faucet", "amount": "10 USDC"}
                http.post_signed("/v1/faucet", body, client)
                spec = {
                    "run": command,
                    "max_price_per_hour": "1 USDC",
                    "max_duration": int(seconds * 10) + 60,
                }
                through: list[float] = []
                direct: list[float] = []
                for _ in range(rounds):  # alternate, so drifting load hits both sides alike
                    through.append(one_job(http, client, spec))
                    direct.append(run_direct(command))
                return through, direct
            finally:
                http.close()
        finally:
            provider.send_signal(signal.SIGTERM)
            provider.wait(30)


def one_job(http: Transport, client: Identity, spec: dict[str, Any]) -> float:
    """Seconds from signing the order to seeing it done (the receipt settled)."""
    t = time.perf_counter()
    order = prepared_order(http, client, spec)  # as Client.launch: the private part, then the order
    order_id = http.post_signed("/v1/orders", order, client)["order_id"]
    after = 0
    while True:
        reply = http.get(f"/v1/orders/{order_id}/wait", {"after": after, "timeout": 10}, timeout=20)
        after = reply["next"]
        if reply["order"]["status"] == "done":
            elapsed = time.perf_counter() - t
            receipt = reply["order"]["leases"][0]["receipt"]
            assert receipt["exit_code"] == 0, receipt
            return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--startups", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    command = loop_command(calibrate(args.seconds))
    through, direct_runs = run_through_network(command, args.seconds, args.rounds)
    network = statistics.median(through)
    direct = statistics.median(direct_runs)
    result: dict[str, Any] = {
        "name": "execution_overhead",
        "value": round(network / direct, 3),
        "unit": "ratio (through pasar / direct)",
        "direct_s": round(direct, 3),
        "through_pasar_s": round(network, 3),
        "rounds": args.rounds,
        "sandbox_startup_ms": round(sandbox_startup_ms(args.startups), 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
