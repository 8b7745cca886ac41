"""The transport against a stopping market (issue 14.6), with httpx's MockTransport: a read is
retried after ``Retry-After`` (through the restart's refused connections) within its budget,
then one sentence; a write is never retried (it may have been applied); other 503s are not
``market_stopping``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pasar.client import transport as transport_mod
from pasar.client.transport import Transport
from pasar.core.errors import PasarError

URL = "http://market.test:8420"
STOPPING = {"error": {"code": "market_stopping", "message": "stopping", "hint": "later"}}


def _transport(answers: list[Any], seen: list[str]) -> Transport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if answer == "refused":
            raise httpx.ConnectError("connection refused", request=request)
        if answer == "stopping":
            return httpx.Response(503, json=STOPPING, headers={"retry-after": "1"})
        return httpx.Response(200, json=answer)

    http = httpx.Client(base_url=URL, transport=httpx.MockTransport(handle))
    return Transport(URL, http=http)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    clock = [0.0]

    def sleep(s: float) -> None:
        slept.append(s)
        clock[0] += s

    monkeypatch.setattr(transport_mod.time, "sleep", sleep)
    monkeypatch.setattr(transport_mod.time, "monotonic", lambda: clock[0])
    return slept


def test_a_read_rides_through_a_stop_and_a_restart(no_sleep: list[float]) -> None:
    seen: list[str] = []
    api = _transport(["stopping", "refused", "refused", {"ok": True}], seen)
    assert api.get("/v1/orders/o-1/wait") == {"ok": True}
    assert seen == ["GET"] * 4
    assert no_sleep[0] == 1.0  # the market's Retry-After


def test_a_read_gives_up_after_its_budget_with_one_sentence(no_sleep: list[float]) -> None:
    seen: list[str] = []
    api = _transport(["stopping", "refused"], seen)
    api.stopping_wait_s = 5.0
    with pytest.raises(PasarError) as caught:
        api.get("/v1/orders/o-1/wait")
    err = caught.value
    assert err.code == "market_stopping" and err.status == 503
    assert err.message == (
        f"the market at {URL} is stopping (restart or upgrade); try again in 1 s"
    )
    assert err.hint is None and "{" not in str(err)
    assert sum(no_sleep) <= 5.0


def test_a_write_is_not_retried(no_sleep: list[float]) -> None:
    seen: list[str] = []
    api = _transport(["stopping"], seen)
    with pytest.raises(PasarError) as caught:
        api.request("POST", "/v1/orders", json={})
    assert caught.value.code == "market_stopping"
    assert seen == ["POST"] and no_sleep == []


def test_an_unreachable_market_is_not_waited_for_without_a_stop(no_sleep: list[float]) -> None:
    seen: list[str] = []
    api = _transport(["refused"], seen)
    with pytest.raises(PasarError) as caught:
        api.get("/v1/healthz")
    assert caught.value.code == "unreachable"
    assert seen == ["GET"] and no_sleep == []


def test_zero_budget_answers_at_once(no_sleep: list[float]) -> None:
    seen: list[str] = []
    api = _transport(["stopping"], seen)
    api.stopping_wait_s = 0
    with pytest.raises(PasarError):
        api.get("/v1/healthz")
    assert seen == ["GET"]
