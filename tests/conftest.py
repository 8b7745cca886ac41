"""Settings for the whole suite.

Hypothesis times how long it takes to *generate* examples and fails a test whose generation is
slow; on a 2-core machine shared with real market and provider processes that says nothing about
the code under test, so that health check and the per-example deadline are off everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from pasar.provider.runtime import Limits, RunHandle
from pasar.provider.runtime.sandbox import SandboxRuntime
from pasar.provider.runtime.warm import WarmKey, WarmSandbox

settings.register_profile("pasar", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("pasar")

COLD_START = SandboxRuntime.start


# -- cold and warm sandboxes -----------------------------------------------------------------
# The hardening tests attack both ways a job can start in the sandbox runtime: cold (bwrap and
# a shell started for the job) and warm (a sandbox started ahead of its lease, its zygote told
# to run the job: pasar.provider.runtime.warm). A test module takes both by using the
# ``sandbox_mode`` fixture (``pytestmark = pytest.mark.usefixtures("sandbox_mode")``): in
# "warm", every ``SandboxRuntime.start`` goes through a fresh warm sandbox, exactly as a lease
# taken from the pool does (claim the workdir, then start with the lease's limits).


def start_through_warm(
    self: SandboxRuntime,
    workdir: Path,
    command: str,
    env: Mapping[str, str],
    limits: Limits,
    *,
    image: str | None = None,
) -> RunHandle:
    if image is not None:  # the sandbox refuses images either way
        return COLD_START(self, workdir, command, env, limits, image=image)
    workdir = workdir.resolve()
    sandbox = WarmSandbox(self, WarmKey.of(limits), workdir.parent, ready_timeout_s=60)
    for entry in workdir.iterdir():  # what the test put there, as a lease's inputs
        os.rename(entry, sandbox.workdir / entry.name)
    workdir.rmdir()
    sandbox.claim(workdir)
    return sandbox.start(command, env, limits, inline=False)


@pytest.fixture(params=["cold", "warm"])
def sandbox_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "warm":
        monkeypatch.setattr(SandboxRuntime, "start", start_through_warm)
    return str(request.param)
