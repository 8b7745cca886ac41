"""The agent refuses to start on a runtime this machine cannot provide, and says how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pasar import doctor
from pasar.core.errors import PasarError
from pasar.provider.agent import Agent, AgentConfig


def test_sandbox_without_bubblewrap_refuses_with_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(doctor.shutil, "which", lambda _name: None)
    agent = Agent(AgentConfig(market="http://127.0.0.1:9", home=tmp_path, runtime="sandbox"))
    with pytest.raises(PasarError) as err:
        agent.check_runtime()
    assert err.value.code == "runtime_unavailable"
    assert err.value.field == "--runtime"
    assert "apt-get install bubblewrap" in (err.value.hint or "") + err.value.message


def test_unknown_runtime_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PasarError) as err:
        Agent(AgentConfig(market="http://127.0.0.1:9", home=tmp_path, runtime="vm"))
    assert err.value.code == "unknown_runtime"
