"""How long the CLI takes to start: `pasar --help` and `pasar keys list` (no market needed),
median of N runs in fresh processes. Target (issue 14.10): < 300 ms.

Prints one JSON line: {"name": "cli_start", "value": <median ms of --help>, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time


def _median_ms(args: list[str], runs: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pasar", *args], env=env, capture_output=True)
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PASAR_HOME": home}
        bare = _median_ms(["--version"], opts.runs, env)
        help_ms = _median_ms(["--help"], opts.runs, env)
        keys_ms = _median_ms(["keys", "list"], opts.runs, env)
        start = time.perf_counter()
        for _ in range(opts.runs):
            subprocess.run([sys.executable, "-c", "pass"], capture_output=True)
        python_ms = round((time.perf_counter() - start) * 1000 / opts.runs, 1)
    print(
        json.dumps(
            {
                "name": "cli_start",
                "value": help_ms,
                "unit": "ms (pasar --help, median)",
                "help_ms": help_ms,
                "version_ms": bare,
                "keys_list_ms": keys_ms,
                "python_ms": python_ms,
                "target_ms": 300,
                "runs": opts.runs,
                "machine": f"{platform.machine()} {os.cpu_count()} cores, "
                f"Python {platform.python_version()}",
            }
        )
    )


if __name__ == "__main__":
    main()
