"""The agents' side of a dispute's operator phase (pasar.verifier.trace.Tracer), with a fake
market and executor: who traces (the prover and the verifier once narrowed, only the named
referee once pinned), once per dispute and phase, and the prover with the cheat it ran the
lease with — so its trace is what it actually computed. The real thing runs end to end in
tests/integration/test_pol_market.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pasar.verifier import trace

PROVER, VERIFIER, REFEREE, OTHER = "pa1prover", "pa1verifier", "pa1referee", "pa1other"
VIEW = SimpleNamespace(provider=PROVER, verifier=VERIFIER, referee=REFEREE, step=34,
                       check_id="o-1-0.check-0", lease_id="o-1-0")  # fmt: skip


class Market:
    """Answers GET /v1/disputes/{id} and the check; records every trace sent."""

    def __init__(self, status: str) -> None:
        self.status = status
        self.sent: list[Any] = []

    def perform(self, call: Any) -> Any:
        if call.method == "GET" and "/disputes/" in call.path:
            return SimpleNamespace(**vars(VIEW), status=self.status)
        if call.method == "GET":
            return SimpleNamespace(check_id=VIEW.check_id)
        self.sent.append(call.body)
        return None


@pytest.fixture
def executors(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []

    class Fake:
        def __init__(self, api: Any, runtime: Any, check: Any, **kw: Any) -> None:
            made.append(kw)
            self.kw = kw

        def run(self) -> None:
            self.kw["on_trace"]({"operators": [["aten.add_.Tensor", "ab" * 32]], "hash": "cd" * 32})

    monkeypatch.setattr(trace, "TraceExecutor", Fake)
    return made


def _settled(tracer: trace.Tracer) -> trace.Tracer:
    for thread in tracer.threads:
        thread.join()
    return tracer


def _tracer(market: Market, account: str) -> trace.Tracer:
    return trace.Tracer(market, runtime=None, workroot=lambda: None, account=account,  # type: ignore[arg-type]
                        cheat=lambda lease: "pol:perturb")  # fmt: skip


@pytest.mark.parametrize("account", [PROVER, VERIFIER])
def test_both_parties_trace_the_narrowed_step_once(account: str, executors: list[Any]) -> None:
    market = Market("narrowed")
    tracer = _tracer(market, account)
    event = {"dispute_id": "d-1", "status": "narrowed", "step": 34}
    tracer.on_event(event)
    tracer.on_event(event)  # the feed and the answer to its own move: traced once
    _settled(tracer)
    (body,) = market.sent
    assert (body.dispute_id, body.step, body.hash) == ("d-1", 34, "cd" * 32)
    assert body.operators == [["aten.add_.Tensor", "ab" * 32]]
    # the prover re-runs with the cheat it ran the lease with; the verifier with none
    assert [kw["cheat"] for kw in executors] == ["pol:perturb" if account == PROVER else None]


def test_only_the_named_referee_traces_a_pinned_step(executors: list[Any]) -> None:
    pinned = {"dispute_id": "d-1", "status": "pinned", "step": 34, "referee": REFEREE}
    for account in (PROVER, VERIFIER, OTHER):
        market = Market("pinned")
        tracer = _tracer(market, account)
        tracer.on_event(pinned)
        assert _settled(tracer).threads == [] and market.sent == []
    market = Market("pinned")
    tracer = _tracer(market, REFEREE)
    tracer.on_event(pinned)
    _settled(tracer)
    assert len(market.sent) == 1
    assert [kw["cheat"] for kw in executors] == [None]


def test_a_stranger_or_another_phase_traces_nothing(executors: list[Any]) -> None:
    market = Market("narrowed")
    tracer = _tracer(market, OTHER)  # not a party
    tracer.on_event({"dispute_id": "d-1", "status": "narrowed", "step": 34})
    _settled(tracer)  # it looked the dispute up: not its own
    prover = _tracer(market, PROVER)
    for status in ("open", "prover_lost", None):
        prover.on_event({"dispute_id": "d-1", "status": status})
    assert _settled(prover).threads == []
    assert market.sent == [] and executors == []
