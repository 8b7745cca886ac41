"""`make demo`'s script runs to the end on this machine and shows each part working."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "foundation_demo.py"


def test_foundation_demo_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PASAR_HOME": str(tmp_path), "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, str(DEMO)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "mode -rw-------" in out
    assert "tampered escrow refused: bad_signature" in out
    assert "proof for frame-2.txt: True" in out
    assert "same proof for another file: False" in out
    assert "Traceback" not in out + proc.stderr
