"""A provider that is not root (the common case on someone's workstation): its jobs, cold or
from its warm pool (issue 13), run in bubblewrap sandboxes as the provider's own user, so the
sandbox alone keeps them from the provider's keys and home. These run a real provider agent as
``nobody`` against a real market and attack from inside the job.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attacklib import PROVIDER_ARGS, Party, assert_money_safe, ended, started_as

from pasar.doctor import Status, check_bubblewrap
from pasar.provider.runtime.sandbox import SANDBOX_UID

USER = "nobody"
_bwrap = check_bubblewrap()


def _can_run_as_user() -> str | None:
    """Why this machine cannot run the provider as ``nobody`` (None: it can)."""
    if os.geteuid() != 0:
        return "the tests run unprivileged: they cannot start a process as another user"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"no {USER!r} user"
    if _bwrap.status is not Status.OK:
        return f"bubblewrap cannot sandbox: {_bwrap.detail}"
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import pasar"], user=USER, capture_output=True, cwd="/"
        )
    except PermissionError:
        probe = None
    if probe is None or probe.returncode != 0:
        return f"{USER} cannot run this Python ({sys.executable}: a folder above it is private)"
    return None


pytestmark = pytest.mark.skipif(_can_run_as_user() is not None, reason=str(_can_run_as_user()))

# what the job tries: the provider's key and home (the job's own uid is the provider's here)
ATTACK = """
echo "uid $(id -u)"
for f in "$PROVIDER_HOME"/keys/* "$PROVIDER_HOME"/bench.json; do
  if cat "$f" >/dev/null 2>&1; then echo "READ $f"; fi
done
ls "$PROVIDER_HOME" >/dev/null 2>&1 && echo "LISTED home"
echo done
"""


@pytest.fixture
def provider_home() -> Iterator[Path]:
    """A home ``nobody`` can reach (pytest's own temporary folders are root's alone)."""
    root = Path(tempfile.mkdtemp(prefix="pasar-unprivileged-"))
    root.chmod(0o755)
    try:
        yield root / "provider"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("mode", ["cold", "warm"])
def test_an_unprivileged_providers_job_cannot_reach_its_keys(
    market_server: Any, spawn_provider: Any, provider_home: Path, mode: str
) -> None:
    os.environ["PASAR_TRACE"] = "1"  # the lease timeline says cold or warm
    try:
        pool = ("--warm-pool", "0") if mode == "cold" else ()
        provider = spawn_provider(
            market_server.url, provider_home, *PROVIDER_ARGS, *pool, user=USER
        )
    finally:
        del os.environ["PASAR_TRACE"]
    if mode == "warm":
        deadline = time.monotonic() + 60
        while "warm sandboxes ready" not in provider.output():
            assert time.monotonic() < deadline, provider.output()[-4000:]
            time.sleep(0.05)
    assert (provider_home / "keys").is_dir()  # the agent wrote its key there, as nobody
    alice = Party(market_server)
    alice.fund()
    order_id = alice.launch(run=ATTACK, envs={"PROVIDER_HOME": str(provider_home)})
    order = alice.wait(order_id, ended, timeout=120)
    (lease,) = order["leases"]
    logs = alice.logs(lease["lease_id"])
    assert lease["receipt"]["exit_code"] == 0, logs
    assert f"uid {SANDBOX_UID}" in logs and "done" in logs, logs  # its namespace's uid
    assert "READ" not in logs and "LISTED" not in logs, logs
    assert started_as(provider, lease["lease_id"]) == mode
    assert_money_safe(market_server.url)
