# ruff: noqa: F811  (the fixtures client and providers come from test_sdk)
"""``.map`` against a real market process, with provider doubles that run the real entry
(:func:`test_sdk.run_command`) — and hostile ones that rewrite its outcome file: fewer outcomes
than the batch, or the outcomes of another batch. Each refused file is a failed shard, re-launched
alone; no result is ever assigned to the wrong element, and the ledger stays conserved."""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_quote import assert_conserved
from test_sdk import check_positive, client, providers, run_command  # noqa: F401 (fixtures)

from pasar.client import mapping
from pasar.client.client import Client
from pasar.client.payload import RESULT_FILE
from pasar.client.remote import remote
from pasar.core.errors import PasarError

if TYPE_CHECKING:
    from conftest import MarketProcess

Execute = Callable[[Path, dict[str, Any]], tuple[int, str]]


def rewrite(change: Callable[[dict[str, Any]], None]) -> Execute:
    """Run the shard honestly, then ``change`` its outcome envelope before it is uploaded."""

    def execute(workdir: Path, lease: dict[str, Any]) -> tuple[int, str]:
        code, printed = run_command(workdir, lease)
        envelope = pickle.loads((workdir / RESULT_FILE).read_bytes())
        change(envelope)
        (workdir / RESULT_FILE).write_bytes(pickle.dumps(envelope, protocol=4))
        return code, printed

    return execute


def drop_last(envelope: dict[str, Any]) -> None:
    envelope["outcomes"] = envelope["outcomes"][:-1]


def no_result(workdir: Path, lease: dict[str, Any]) -> tuple[int, str]:
    """Runs, then loses the result file (a crash after the run): the shard has no outcome."""
    code, printed = run_command(workdir, lease)
    (workdir / RESULT_FILE).unlink()
    return code, printed


def other_batch(workdir: Path, lease: dict[str, Any]) -> tuple[int, str]:
    """Answers with the outcomes of the next batch of the same job (a real, signed run)."""
    shifted = {**lease, "shard": (int(lease["shard"]) + 1) % int(lease["shards"])}
    return run_command(workdir, shifted)


def once(hostile: Execute) -> Execute:
    """``hostile`` for the first lease this provider serves, honest afterwards."""
    served: list[str] = []

    def execute(workdir: Path, lease: dict[str, Any]) -> tuple[int, str]:
        served.append(lease["lease_id"])
        return (hostile if len(served) == 1 else run_command)(workdir, lease)

    return execute


def repeat(n: int, text: str) -> str:
    return n * text


def test_map_packs_calls_into_shards_in_order_with_exceptions_in_place(
    market_server: MarketProcess, client: Client, providers: Any
) -> None:
    providers(run_command, n=2)
    fn = remote(client=client)(check_positive)
    xs = list(range(-2, 23))
    found = fn.map(xs, return_exceptions=True)
    assert found[2:] == [x * 10 for x in xs[2:]]
    assert [type(e) for e in found[:2]] == [ValueError, ValueError]
    assert "-2 is negative" in str(found[0]) and "-1 is negative" in str(found[1])
    assert ".map element #1" in "\n".join(getattr(found[1], "__notes__", []))
    (order,) = client.jobs()
    assert 1 < order["spec"]["shards"] < len(xs)  # batches of calls, spread over providers
    with pytest.raises(ValueError, match="-2 is negative"):
        fn.map(xs)
    assert fn.map([], []) == [] and len(client.jobs()) == 2  # empty: no order
    assert remote(client=client)(repeat).map([1, 2, 3], iter("ab")) == ["a", "bb"]  # zip
    pairs = iter([(1, "x"), (3, "yz")])  # starmap: each element is one call's arguments
    assert remote(client=client)(repeat).starmap(pairs) == ["x", "yzyzyz"]
    assert remote(client=client)(repeat).starmap([]) == []
    assert client.balance()["escrow"] == "0.00 USDC"
    assert_conserved(market_server.url)


def test_imap_streams_an_endless_input_and_stops_launching_when_closed(
    market_server: MarketProcess,
    client: Client,
    providers: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mapping, "MAX_CALLS_PER_BATCH", 2)
    (prov,) = providers(run_command)
    fn = remote(client=client)(check_positive)
    read: list[int] = []

    def endless() -> Any:
        for i in itertools.count():
            read.append(i)
            yield i

    results = fn.imap(endless())
    assert [next(results) for _ in range(5)] == [0, 10, 20, 30, 40]
    results.close()
    prov._stop.set()  # the double gives up on a lease cancelled under it (an agent drops it)
    prov._thread.join(10)
    prov.errors.clear()
    launched = len(client.jobs())
    # 5 results need at most 3 jobs of >= 2 calls; the window launches JOBS_IN_FLIGHT ahead
    assert launched <= 3 + mapping.JOBS_IN_FLIGHT
    assert len(read) <= launched * mapping.MAX_SHARDS_PER_JOB * 2 + 1  # a job's worth a launch
    assert all(o["status"] in ("done", "cancelled") for o in client.jobs())
    assert_conserved(market_server.url)


@pytest.mark.parametrize(
    "hostile", [rewrite(drop_last), other_batch, no_result], ids=["fewer", "other", "none"]
)
def test_a_refused_outcome_file_relaunches_only_its_shard(
    market_server: MarketProcess, client: Client, providers: Any, hostile: Execute
) -> None:
    providers(once(hostile))
    providers(run_command)
    fn = remote(client=client)(check_positive)
    assert fn.map(range(12)) == [x * 10 for x in range(12)]
    relaunch, first = sorted(o["spec"]["shards"] for o in client.jobs())
    assert first > 1 and relaunch == 1  # the other shards' outcomes were kept
    assert client.balance()["escrow"] == "0.00 USDC"
    assert_conserved(market_server.url)


def test_a_shard_that_never_answers_its_batch_fails_naming_its_indexes(
    market_server: MarketProcess, client: Client, providers: Any
) -> None:
    providers(rewrite(drop_last))
    fn = remote(client=client)(check_positive)
    with pytest.raises(PasarError) as err:
        fn.map([1])
    assert err.value.code == "remote_shard_failed"
    assert "#0..0" in err.value.message and "holds 0 outcomes for 1 calls" in err.value.message
    assert len(client.jobs()) == mapping.RELAUNCHES + 1
    found = fn.map([1, 2], return_exceptions=True)
    assert all(isinstance(f, PasarError) and f.code == "remote_shard_failed" for f in found)
    assert_conserved(market_server.url)


def nap(x: int) -> int:
    import time

    time.sleep(3)
    return x


def test_a_map_that_times_out_cancels_its_jobs_and_refunds_them(
    market_server: MarketProcess, client: Client, providers: Any
) -> None:
    (prov,) = providers(run_command)
    with pytest.raises(PasarError) as err:
        remote(client=client)(nap).map([1, 2], timeout=0.5)
    assert err.value.code == "wait_timeout"
    prov._stop.set()  # the double gives up on a lease cancelled under it (an agent drops it)
    prov._thread.join(10)
    prov.errors.clear()
    assert [o["status"] for o in client.jobs()] == ["cancelled"]
    assert client.balance()["escrow"] == "0.00 USDC"
    assert_conserved(market_server.url)
