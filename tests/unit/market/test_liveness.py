"""Liveness: who the market heard from within the grace (process memory, a fake clock here)."""

from __future__ import annotations

from pasar.market.liveness import Liveness


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_unseen_is_offline_and_silence_past_the_grace_is_offline() -> None:
    clock = FakeClock()
    live = Liveness(15, clock=clock)
    assert not live.online("p1")  # after a (re)start nobody has been heard yet
    live.heard("p1")
    clock.now += 15
    assert live.online("p1")
    clock.now += 0.5
    assert not live.online("p1")
    assert live.offline(["p1", "p2"]) == {"p1", "p2"}


def test_an_open_poll_keeps_a_provider_online_but_its_end_is_no_sign_of_life() -> None:
    clock = FakeClock()
    live = Liveness(15, clock=clock)
    with live.polling("p1"):
        clock.now += 25  # a long-poll longer than the grace
        assert live.online("p1")
    assert not live.online("p1")  # the route calls heard() only if the client is still there


def test_coming_back_is_reported_once() -> None:
    clock = FakeClock()
    back: list[str] = []
    live = Liveness(15, clock=clock, on_back=back.append)
    live.heard("p1")
    live.heard("p1")
    assert back == ["p1"]
    clock.now += 16
    live.heard("p1")
    assert back == ["p1", "p1"]
