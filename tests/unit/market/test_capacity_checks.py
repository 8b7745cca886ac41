"""The engine's capacity checks: one challenge open at a time, late verdicts after the
deadline, answers checked from the blob store (a right answer passes, a wrong or missing one
fails), and a provider that never answers ends up excluded."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pasar.api.txs import CapacityChallenge, CapacityVerdict
from pasar.capacity.proof import answer_bytes, solve
from pasar.core.presets import builtin_preset
from pasar.crypto.envelope import sign, verify
from pasar.crypto.identity import Identity
from pasar.market.blobs import BlobStore
from pasar.market.capacity_checks import CapacityChecks
from pasar.market.service import MarketService
from pasar.market.store import SqlStore

MARKET = Identity.from_seed(bytes(32))
T0 = 1_800_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def setup(tmp_path: Path, score: int = 1) -> tuple[MarketService, Clock, BlobStore]:
    clock = Clock()
    tmp_path.mkdir(parents=True, exist_ok=True)
    service = MarketService(
        store=SqlStore(f"sqlite:///{tmp_path / 'market.db'}"),
        identity=MARKET,
        preset=builtin_preset("pasar"),
        clock=clock,
        devnet=True,
    )
    return service, clock, BlobStore(tmp_path / "blobs")


def submit(service: MarketService, who: Identity, **body: Any) -> dict[str, Any]:
    now = service.clock()
    envelope = sign(body, who, market=MARKET.account_id, now_ms=now)
    return dict(service.submit(verify(envelope, market=MARKET.account_id, now_ms=now)).result)


def register(service: MarketService, who: Identity, score: int) -> None:
    submit(
        service,
        who,
        type="provider.register",
        inventory={"gpus": [], "cpus": 4, "memory_gb": 8, "disk_gb": 50},
        asks={"cpu_core": "0.01 USDC"},
        score=score,
    )


def test_one_challenge_at_a_time_and_none_without_a_score(tmp_path: Path) -> None:
    service, _clock, blobs = setup(tmp_path)
    checks = CapacityChecks(service)
    a, b, idle = Identity.generate(), Identity.generate(), Identity.generate()
    register(service, a, 10)
    register(service, b, 10)
    register(service, idle, 0)  # claims nothing: nothing to prove
    (first,) = checks.due(blobs, T0)
    assert isinstance(first, CapacityChallenge) and first.provider == a.account_id
    service.submit_market(first)
    assert checks.due(blobs, T0) == []  # b waits until a's challenge has its verdict


def test_a_provider_that_never_answers_is_late_then_retried_then_excluded(
    tmp_path: Path,
) -> None:
    service, clock, blobs = setup(tmp_path)
    checks = CapacityChecks(service)
    silent = Identity.generate()
    register(service, silent, 10)
    for expected in ("unchecked", "failing: no answer within"):
        (challenge,) = checks.due(blobs, clock.now)
        service.submit_market(challenge)
        open_id = service.state.providers[silent.account_id].capacity.open
        assert open_id is not None
        assert checks.due(blobs, clock.now) == []  # not late yet
        clock.now = service.state.capacity_challenges[open_id].deadline + 1
        (verdict,) = checks.due(blobs, clock.now)
        assert isinstance(verdict, CapacityVerdict) and verdict.result == "late"
        result = service.submit_market(verdict).result
        assert str(result["capacity"]).startswith(expected), result
    assert service.state.providers[silent.account_id].capacity.state == "failing"


def _answer(service: MarketService, blobs: BlobStore, who: Identity, data: bytes | None) -> str:
    open_id = service.state.providers[who.account_id].capacity.open
    assert open_id is not None
    sha = hashlib.sha256(data or b"never uploaded").hexdigest()
    if data is not None:
        blobs.put(sha, data)
    submit(service, who, type="capacity.answer", challenge_id=open_id, sha256=sha)
    return open_id


def test_answers_are_checked_from_the_blob_store(tmp_path: Path) -> None:
    for case, expected in (("right", "passed"), ("zeros", "failed"), ("missing", "failed"),
                           ("short", "failed")):  # fmt: skip
        service, clock, blobs = setup(tmp_path / case)
        checks = CapacityChecks(service)
        who = Identity.generate()
        register(service, who, 1)
        (challenge,) = checks.due(blobs, clock.now)
        assert isinstance(challenge, CapacityChallenge) and challenge.provider == who.account_id
        service.submit_market(challenge)
        ch = service.state.capacity_challenges[
            service.state.providers[who.account_id].capacity.open or ""
        ]
        right = answer_bytes(solve(ch.seed, ch.n, ch.steps))
        data = {"right": right, "zeros": bytes(len(right)), "missing": None,
                "short": right[:-1]}[case]  # fmt: skip
        _answer(service, blobs, who, data)
        (verdict,) = checks.due(blobs, clock.now)
        assert isinstance(verdict, CapacityVerdict) and verdict.result == expected, (case, verdict)
        service.submit_market(verdict)
        assert service.state.providers[who.account_id].capacity.state == (
            "passed" if expected == "passed" else "unchecked"  # one miss: a retry is owed
        )
