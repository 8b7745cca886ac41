"""Issue 13: the agent starts a lease from the view its feed's ``match`` carried, and its
executor answers the first heartbeat with the challenge that came with it — two reads fewer
on a remote call's path. Without a view (an older market, a page over its limits) the agent
reads the lease, as before; a carried challenge that is refused is followed by a read of the
interval's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from pasar.api.feed import FeedEvent
from pasar.api.leases import Challenge, LeaseView
from pasar.api.txs import TxAnswer
from pasar.core.errors import PasarError
from pasar.provider import agent as agent_module
from pasar.provider.agent import Agent, AgentConfig
from pasar.provider.executor import LeaseExecutor
from pasar.provider.lease_job import LeaseJob

SPEC = {"run": "true", "max_duration": 60, "max_price_per_hour": "1 USDC"}


def challenge(lease_id: str, interval: int = 0, signature: str = "ab") -> Challenge:
    return Challenge(
        lease_id=lease_id, interval=interval, challenge=signature, interval_s=30, next_at_ms=0
    )


def view(lease_id: str, provider: str, **extra: Any) -> LeaseView:
    return LeaseView(
        lease_id=lease_id,
        order_id=lease_id.rsplit("-", 1)[0],
        provider=provider,
        client="pa1client",
        shard=0,
        status="running",
        price_per_hour="0.10 USDC",
        started_at=0,
        spec=SPEC,
        **extra,
    )


class Started:
    """Stands in for the executor: records the job it was given, runs nothing."""

    jobs: ClassVar[list[LeaseJob]] = []

    def __init__(self, api: Any, runtime: Any, job: LeaseJob, **kwargs: Any) -> None:
        self.job = job
        Started.jobs.append(job)

    def run(self) -> None:
        pass


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Agent:
    Started.jobs = []
    monkeypatch.setattr(agent_module, "LeaseExecutor", Started)
    found = Agent(AgentConfig(market="http://127.0.0.1:9", home=tmp_path, runtime="process"))
    found._maybe_bid = lambda order_id: None  # type: ignore[method-assign]
    return found


def test_a_match_with_our_view_starts_the_lease_without_reading_it(agent: Agent) -> None:
    me = agent.identity.account_id
    read: list[str] = []
    agent.api.lease = read.append  # type: ignore[assignment,method-assign]
    carried = view("o-1-0", me, challenge=challenge("o-1-0"))
    event = FeedEvent(
        seq=1,
        type="match",
        order_id="o-1",
        leases=["o-1-0", "o-1-1"],
        assigned={"o-1-0": me, "o-1-1": "pa1other"},  # the other lease: not ours, not read
        views={"o-1-0": carried},
        takes_bids=False,
    )
    agent.handle(event)
    assert read == []
    (job,) = Started.jobs
    assert job.lease_id == "o-1-0" and job.challenge == carried.challenge


@pytest.mark.parametrize(
    "views",
    [
        None,  # an older market, or a page over its limits
        {"o-2-0": view("o-9-0", "me")},  # a view of another lease under this one's id
    ],
)
def test_a_match_without_a_usable_view_reads_the_lease(
    agent: Agent, views: dict[str, LeaseView] | None
) -> None:
    me = agent.identity.account_id
    read: list[str] = []

    def lease(lease_id: str) -> LeaseView:
        read.append(lease_id)
        return view(lease_id, me)

    agent.api.lease = lease  # type: ignore[method-assign]
    event = FeedEvent(
        seq=1, type="match", order_id="o-2", leases=["o-2-0"], assigned={"o-2-0": me}, views=views
    )
    agent.handle(event)
    assert read == ["o-2-0"]
    (job,) = Started.jobs
    assert job.lease_id == "o-2-0" and job.challenge is None  # asked for when beating


def test_a_challenge_for_another_lease_is_not_taken_with_the_view() -> None:
    job = LeaseJob.from_view(view("o-3-0", "me", challenge=challenge("o-4-0")))
    assert job.challenge is None


class BeatAPI:
    """Answers challenge reads with interval ``asked``'s; refuses heartbeats it is told to."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.refuse = refuse
        self.said: list[str] = []

    def challenge(self, lease_id: str) -> Challenge:
        self.said.append("ask")
        if self.said.count("ask") > 1:
            raise PasarError("over", code="not_running", status=409)
        return challenge(lease_id, 1, "fresh")

    def heartbeat(self, lease_id: str, interval: int, signature: str, usage: Any) -> TxAnswer:
        self.said.append(f"beat {interval} {signature}")
        if signature in self.refuse:
            raise PasarError("late", code="late_heartbeat", status=409)
        return TxAnswer(ok=True, type="heartbeat")


def beats(tmp_path: Path, carried: Challenge | None, api: BeatAPI) -> list[str]:
    from pasar.core.spec import JobSpec

    job = LeaseJob(
        lease_id="o-5-0",
        order_id="o-5",
        shard=0,
        shards=1,
        spec=JobSpec.from_dict(SPEC),
        inputs=(),
        challenge=carried,
    )
    executor = LeaseExecutor(
        api,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        job,
        workroot=tmp_path,
        allow_network=False,
    )
    executor._heartbeats()  # until the (fake) market says the lease is over
    return api.said


def test_the_first_heartbeat_answers_the_carried_challenge_without_asking(tmp_path: Path) -> None:
    said = beats(tmp_path, challenge("o-5-0", 0, "carried"), BeatAPI())
    assert said == ["beat 0 carried", "ask", "beat 1 fresh", "ask"]


def test_without_a_carried_challenge_the_first_is_asked_for(tmp_path: Path) -> None:
    assert beats(tmp_path, None, BeatAPI()) == ["ask", "beat 1 fresh", "ask"]


def test_a_refused_carried_challenge_is_followed_by_the_intervals_own(tmp_path: Path) -> None:
    """A view handled late (past interval 1): interval 0's answer is refused; the executor
    asks for the interval now and answers it."""
    said = beats(tmp_path, challenge("o-5-0", 0, "stale"), BeatAPI(refuse=frozenset({"stale"})))
    assert said == ["beat 0 stale", "ask", "beat 1 fresh", "ask"]
