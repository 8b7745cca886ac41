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


def test_a_feed_closed_past_the_reopen_window_is_suspected_and_a_reopened_one_is_not() -> None:
    clock = FakeClock()
    live = Liveness(15, clock=clock)
    assert live.suspects(["p1"]) == []  # never polled: no drop to observe
    with live.polling("p1") as poll:
        poll.dropped = True  # the client hung up while it waited
    clock.now += 0.5
    assert live.suspects(["p1"], window_s=1.0) == []  # a live agent reopens within the window
    with live.polling("p1"):
        clock.now += 5  # an open poll is never suspect, however long it waits
        assert live.suspects(["p1"], window_s=1.0) == []
    clock.now += 0.9
    assert live.suspects(["p1"], window_s=1.0) == []
    clock.now += 0.2
    (s,) = live.suspects(["p1", "p2"], window_s=1.0)
    assert s.provider == "p1" and not s.dropped and 1.0 < s.closed_s < 1.2
    with live.polling("p1") as poll:
        poll.dropped = True
    clock.now += 3
    (s,) = live.suspects(["p1"], window_s=1.0)
    assert s.dropped
    with live.polling("p1"):
        assert live.suspects(["p1"], window_s=1.0) == []  # it came back: no longer suspect
