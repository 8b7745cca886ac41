"""The CLI starts without loading what only some commands need (issue 14.10): the market's
store (SQLAlchemy, alembic), numpy (capacity proofs) and the provider agent load when a
command that uses them runs, not for `pasar --help`, `status` or `balance`."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sqlalchemy", "alembic", "numpy", "pasar.market.store", "pasar.provider.agent")


def test_importing_the_cli_loads_none_of_the_heavy_modules() -> None:
    probe = f"import sys, pasar.cli.main; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"pasar.cli.main loads {loaded} at start-up"
