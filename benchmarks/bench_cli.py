"""How long the CLI takes to start: `pasar --help` and `pasar keys list`, and `pasar status` and
`pasar balance` against a local market this script starts (`pasar market serve --devnet`),
median of N runs in fresh processes. Target (issue 14.10): < 300 ms for --help, status, balance.

Each command runs once unmeasured first, with PYTHONDONTWRITEBYTECODE unset, so that Python's
bytecode cache exists as it does after any install: a shell that sets that variable (some
containers do) would otherwise time the compilation of pasar's sources (~50 ms) with every
start. On a shared machine the wall times swing with its load: ``cpu_ms`` (each command's median
CPU time) moves less, and ``balance_modules``, how many modules ``pasar balance`` loads, not at
all.

Prints one JSON line: {"name": "cli_start", "value": <median ms of --help>, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LISTENING = "pasar market listening on "


def _median_ms(args: list[str], runs: int, env: dict[str, str]) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system) of ``pasar ARGS``, in ms. On a
    busy machine the CPU time is the steadier of the two: waiting for a core is not in it."""
    subprocess.run([sys.executable, "-m", "pasar", *args], env=env, capture_output=True)  # warm
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pasar", *args], env=env, capture_output=True)
        walls.append((time.perf_counter() - start) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    return round(statistics.median(walls), 1), round(statistics.median(cpus), 1)


# `pasar ARGS` in this interpreter, then the number of modules loaded, on stderr
COUNT_MODULES = (
    "import sys\n"
    "from pasar.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "print('MODULES=%d' % sum(m is not None for m in sys.modules.values()), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _modules(args: list[str], env: dict[str, str]) -> int:
    run = subprocess.run(
        [sys.executable, "-c", COUNT_MODULES, *args], env=env, capture_output=True, text=True
    )
    return int(run.stderr.rsplit("MODULES=", 1)[1].split()[0])


@contextmanager
def _market(home: Path) -> Iterator[str]:
    """A devnet market on 127.0.0.1 (port chosen by the OS) until the block ends."""
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
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(LISTENING):
                yield line[len(LISTENING) :].split()[0].strip()
                return
        raise SystemExit("the market did not start")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PASAR_HOME": home}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        bare, _ = _median_ms(["--version"], opts.runs, env)
        help_ms, help_cpu = _median_ms(["--help"], opts.runs, env)
        keys_ms, _ = _median_ms(["keys", "list"], opts.runs, env)
        with _market(Path(home) / "market") as url:
            env["PASAR_MARKET"] = url
            subprocess.run(
                [sys.executable, "-m", "pasar", "faucet", "1 USDC"],
                env=env,
                check=True,
                capture_output=True,
            )
            status_ms, status_cpu = _median_ms(["status"], opts.runs, env)
            balance_ms, balance_cpu = _median_ms(["balance"], opts.runs, env)
            balance_modules = _modules(["balance"], env)
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
                "status_ms": status_ms,
                "balance_ms": balance_ms,
                "cpu_ms": {"help": help_cpu, "status": status_cpu, "balance": balance_cpu},
                "balance_modules": balance_modules,
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
