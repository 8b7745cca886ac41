"""The SDK's sealer thread (issue 12 §2) never dies with a traceback: a client closing under
its long poll (``pasar launch`` without ``--wait`` exits at once) is an expected end."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pasar.client.calls import Call
from pasar.client.sealed import Sealer
from pasar.crypto.sealing import new_data_key


def test_a_closed_client_under_a_long_poll_ends_the_sealer_quietly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    escaped: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    entered = threading.Event()
    release = threading.Event()

    def perform(call: Call[Any]) -> Any:
        entered.set()
        release.wait(5)
        raise RuntimeError("Cannot send a request, as the client has been closed.")

    sealer = Sealer(perform, "o-1", new_data_key(), poll_s=0.1).start()
    assert entered.wait(5)
    sealer.stop()  # what Client.close() does before closing the transport
    release.set()
    sealer.thread.join(5)
    assert not sealer.thread.is_alive()
    assert escaped == []


def test_an_unexpected_error_is_logged_and_retried_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    escaped: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    calls: list[int] = []

    def perform(call: Call[Any]) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("connection reset")
        return {"next": 1, "order": {"status": "done", "leases": []}}

    sealer = Sealer(perform, "o-1", new_data_key(), poll_s=0.1).start()
    sealer.thread.join(10)
    assert not sealer.thread.is_alive() and len(calls) == 2  # retried, then the order ended
    assert escaped == []
