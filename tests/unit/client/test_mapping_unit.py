"""``.map``'s packing without a market: batch files, the entry running a batch, the refusal of
an outcome file that does not answer its batch, lazy chunking, and the blob limit checked before
any order (httpx.MockTransport plays the market)."""

from __future__ import annotations

import hashlib
import itertools
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pasar.client import mapping
from pasar.client.client import Client
from pasar.client.payload import (
    CALL_FILE,
    RESULT_FILE,
    Call,
    PayloadError,
    SetupFailedError,
    dump_batch,
    dump_batch_outcomes,
    dump_batches,
    dump_function,
    dump_value,
    load_batch,
    load_batch_outcomes,
    load_outcome,
)
from pasar.client.remote import remote
from pasar.client.remote_entry import run as run_entry
from pasar.client.transport import Transport
from pasar.core.errors import PasarError
from pasar.crypto.identity import Identity

URL = "http://market.test"
MARKET_ID = Identity.from_seed(b"m" * 32).account_id


def inverse(x: int) -> float:
    return 1 / x


def calls_of(*xs: int) -> list[Call]:
    return [((x,), {}) for x in xs]


def call_file(*batches: list[Call]) -> bytes:
    return dump_batches(dump_function(inverse), [dump_batch(b) for b in batches])


def test_the_entry_runs_its_whole_batch_in_order_bound_to_the_call_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = call_file(calls_of(1, 2), calls_of(4, 0, 5))
    (tmp_path / CALL_FILE).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    monkeypatch.setenv("PASAR_SHARD", "0")
    assert run_entry(tmp_path) == 0
    raw = load_batch_outcomes((tmp_path / RESULT_FILE).read_bytes(), digest, 0, 2)
    assert [load_outcome(r).value for r in raw] == [1.0, 0.5]
    monkeypatch.setenv("PASAR_SHARD", "1")
    assert run_entry(tmp_path) == 1  # one call raised: the others still have their outcome
    found = [
        load_outcome(r)
        for r in load_batch_outcomes((tmp_path / RESULT_FILE).read_bytes(), digest, 1, 3)
    ]
    assert found[0].value == 0.25 and found[2].value == 0.2
    assert not found[1].ok and isinstance(found[1].exception, ZeroDivisionError)
    monkeypatch.setenv("PASAR_SHARD", "2")
    assert run_entry(tmp_path) == 2  # no such batch: a setup failure, reported, never re-run
    with pytest.raises(SetupFailedError, match="shard 2 of a call file holding 2 batch"):
        load_batch_outcomes((tmp_path / RESULT_FILE).read_bytes(), digest, 2, 1)


def test_a_shard_loads_only_its_own_batch() -> None:
    fn, calls, count = load_batch(call_file(calls_of(1), calls_of(2, 3)), 1)
    assert fn is not None and calls == calls_of(2, 3) and count == 2
    with pytest.raises(PayloadError, match="shard 5"):
        load_batch(call_file(calls_of(1)), 5)


@pytest.mark.parametrize(
    ("call", "batch", "outcomes", "match"),
    [
        ("c" * 64, 0, 2, "another call file"),  # an outcome file of another job
        ("a" * 64, 1, 2, "answers batch 1"),  # of another batch of this job
        ("a" * 64, 0, 1, "holds 1 outcomes for 2 calls"),  # fewer
        ("a" * 64, 0, 3, "holds 3 outcomes for 2 calls"),  # more
    ],
)
def test_an_outcome_file_that_does_not_answer_its_batch_is_refused(
    call: str, batch: int, outcomes: int, match: str
) -> None:
    data = dump_batch_outcomes(call, batch, [dump_value(i) for i in range(outcomes)])
    with pytest.raises(PayloadError, match=match) as err:
        load_batch_outcomes(data, "a" * 64, 0, 2)
    assert not isinstance(err.value, SetupFailedError)  # a failed shard: it is re-launched
    forged = pickle.dumps({"format": 2, "call": "a" * 64, "batch": 0, "outcomes": [1, 2]})
    with pytest.raises(PayloadError, match="not bytes"):
        load_batch_outcomes(forged, "a" * 64, 0, 2)


def test_the_input_is_read_one_job_at_a_time_and_spread_over_the_slots() -> None:
    read: list[int] = []

    def endless() -> Iterator[Call]:
        for i in itertools.count():
            read.append(i)
            yield ((i,), {})

    jobs = mapping.batches(endless(), 4, dump_batch, 1 << 20)
    first = next(jobs)
    assert [len(b.calls) for b in first] == [mapping.MAX_CALLS_PER_BATCH] * 4
    assert len(read) <= 4 * mapping.MAX_CALLS_PER_BATCH + 1  # not the whole (endless) input
    assert next(jobs)[0].start == 4 * mapping.MAX_CALLS_PER_BATCH
    short = list(mapping.batches(iter(calls_of(*range(10))), 4, dump_batch, 1 << 20))
    assert [[b.start for b in job] for job in short] == [[0, 3, 6, 9]]
    assert [c for b in short[0] for c in b.calls] == calls_of(*range(10))


def test_a_batch_over_the_byte_cap_is_halved_and_a_call_over_the_limit_refused() -> None:
    big: list[Call] = [((bytes([i]) * 1000,), {}) for i in range(8)]  # distinct: pickle shares none
    (job,) = mapping.batches(iter(big), 1, dump_batch, 3000)
    assert [len(b.calls) for b in job] == [2, 2, 2, 2]
    assert [b.start for b in job] == [0, 2, 4, 6]
    assert [len(p) for p in mapping.packed(iter([job]), 5000)] == [2, 2]
    with pytest.raises(PasarError, match="over the market's blob limit of 100 bytes") as err:
        list(mapping.packed(iter([job]), 100))
    assert err.value.code == "too_large"


def client_with(limit: int, seen: list[str]) -> Client:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/v1/healthz":
            body: dict[str, Any] = {
                "ok": True,
                "market": MARKET_ID,
                "preset": "pasar",
                "version": "0",
                "devnet": True,
                "max_blob_bytes": limit,
            }
            return httpx.Response(200, json=body)
        return httpx.Response(500, json={"error": {"code": "unexpected", "message": "no"}})

    http = httpx.Client(transport=httpx.MockTransport(answer), base_url=URL)
    return Client(transport=Transport(URL, http=http), identity=Identity.generate())


def test_a_function_over_the_blob_limit_fails_before_any_order(tmp_path: Path) -> None:
    weights = b"w" * 50_000

    def heavy(x: int) -> int:
        return x + len(weights)

    seen: list[str] = []
    fn = remote(client=client_with(10_000, seen))(heavy)
    with pytest.raises(PasarError, match="blob limit of 10000 bytes") as err:
        fn.map(range(3))
    assert err.value.code == "too_large" and err.value.field == "function"
    assert seen == ["GET /v1/healthz"]  # no quote, no upload, no order: nothing escrowed
    assert fn.map([]) == [] and seen == ["GET /v1/healthz"]  # empty: nothing asked at all
