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


def test_a_match_is_read_for_a_bid_only_when_a_window_may_have_reopened(tmp_path: Path) -> None:
    """A match without a reopened window (``takes_bids: false``) costs no read of the order;
    one that says nothing (an older market) or reopened one is read, as before."""
    from pasar.api.feed import FeedEvent

    agent = Agent(AgentConfig(market="http://127.0.0.1:9", home=tmp_path, runtime="process"))
    read: list[str] = []
    agent._maybe_bid = read.append  # type: ignore[method-assign]
    for said in (False, None, True):
        event = FeedEvent(seq=1, type="match", order_id=f"o-{said}", leases=[], takes_bids=said)
        agent.handle(event)
    assert read == ["o-None", "o-True"]
