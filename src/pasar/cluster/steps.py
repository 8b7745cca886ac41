"""``python -m pasar.cluster.steps``: the head's job in a long-running cluster (``pasar cluster
up``): it runs the steps the client sends (``pasar cluster exec``), in order, one at a time,
until the cluster is taken down (issue 15).

Each step arrives as a file the head's provider writes into the job's working directory
(:data:`STEPS_DIR`, ``000001.sh``, ``000002.sh``, … renamed into place whole), and runs as
``sh FILE`` between two lines of the job's log — ``pasar: step N started`` and ``pasar: step N
exited CODE`` — which ``pasar cluster exec`` follows to print the step's output and exit with
its code. With ``cluster: ray`` the runner starts after the Ray cluster is up, so every step
finds it through ``RAY_ADDRESS``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

STEPS_DIR = ".pasar-steps"
POLL_S = 0.2


def step_file(step: int) -> str:
    """The name of step ``step``'s script in :data:`STEPS_DIR`."""
    return f"{step:06d}.sh"


def started(step: int) -> str:
    return f"pasar: step {step} started"


def exited(step: int, code: int) -> str:
    return f"pasar: step {step} exited {code}"


def main() -> int:
    folder = Path(STEPS_DIR)
    step = 1
    print("pasar: the cluster is up; waiting for steps (pasar cluster exec)", flush=True)
    while True:
        script = folder / step_file(step)
        if not script.exists():
            time.sleep(POLL_S)
            continue
        print(started(step), flush=True)
        code = subprocess.call(["sh", str(script)])
        print(exited(step, code), flush=True)
        step += 1


if __name__ == "__main__":
    sys.exit(main())
