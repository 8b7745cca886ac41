"""The SDK without a market: httpx.MockTransport plays the market's HTTP API.

Covers where the market address comes from, how errors come back, that a tampered output is
refused (never written where the caller looks), how log offsets advance, the input naming rule,
the @remote payload round trip and re-raising, and that both clients have the same methods.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import pasar
from pasar.client import calls as api
from pasar.client.aio import AsyncClient, AsyncJob
from pasar.client.client import Client, Job
from pasar.client.config import client_identity, market_url
from pasar.client.inputs import collect_inputs, load_job
from pasar.client.payload import (
    CALL_FILE,
    RESULT_FILE,
    PayloadError,
    dump_calls,
    dump_error,
    load_calls,
    load_outcome,
)
from pasar.client.remote import RemoteError, RemoteFunction, remote, value_of
from pasar.client.remote_entry import run as run_entry
from pasar.client.transport import AsyncTransport, Transport
from pasar.core.errors import PasarError
from pasar.core.private_part import PrivatePart
from pasar.core.spec import JobSpec
from pasar.crypto.identity import Identity
from pasar.crypto.merkle import root_of_files

URL = "http://market.test"
SPEC = {
    "run": "python make.py",
    "outputs": ["out.txt"],
    "max_price_per_hour": "1 USDC",
    "max_duration": "1h",
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


Handler = Callable[[httpx.Request], httpx.Response]


MARKET_ID = Identity.from_seed(b"m" * 32).account_id


def with_health(handler: Handler) -> Handler:
    """The market's ``/v1/healthz`` (its id: what signatures name), then the test's handler."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/healthz":
            return httpx.Response(200, json={"ok": True, "market": MARKET_ID, "preset": "pasar"})
        return handler(request)

    return answer


def client_for(handler: Handler) -> Client:
    http = httpx.Client(transport=httpx.MockTransport(with_health(handler)), base_url=URL)
    return Client(transport=Transport(URL, http=http), identity=Identity.generate())


def async_client_for(handler: Handler) -> AsyncClient:
    transport = httpx.MockTransport(with_health(handler))
    http = httpx.AsyncClient(transport=transport, base_url=URL)
    return AsyncClient(transport=AsyncTransport(URL, http=http), identity=Identity.generate())


def error(status: int, code: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": code, **extra}})


# -- the market address and the key ----------------------------------------------------------------


def test_market_url_argument_then_env_then_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PASAR_HOME", str(tmp_path))
    monkeypatch.delenv("PASAR_MARKET", raising=False)
    (tmp_path / "config.toml").write_text('market = "http://from-config:1/"\n')
    assert market_url() == "http://from-config:1"
    monkeypatch.setenv("PASAR_MARKET", "http://from-env:2")
    assert market_url() == "http://from-env:2"
    assert market_url("https://from-arg:3") == "https://from-arg:3"
    assert Client("http://from-arg:4").url == "http://from-arg:4"


def test_no_market_anywhere_is_an_error_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PASAR_HOME", str(tmp_path))
    monkeypatch.delenv("PASAR_MARKET", raising=False)
    with pytest.raises(PasarError) as err:
        Client()
    assert err.value.code == "no_market"
    assert "pasar devnet up" in (err.value.hint or "")
    assert "PASAR_MARKET" in (err.value.hint or "")
    (tmp_path / "config.toml").write_text("market = 3\n")
    with pytest.raises(PasarError) as err:
        market_url()
    assert err.value.code == "invalid_config"
    (tmp_path / "config.toml").write_text("market = [\n")
    with pytest.raises(PasarError) as err:
        market_url()
    assert err.value.code == "invalid_config"
    with pytest.raises(PasarError) as err:
        market_url("localhost:8420")
    assert err.value.code == "invalid_market_url"


def test_the_client_key_is_created_once_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pasar.client"):
        first = client_identity(home=tmp_path)
    assert "created client key 'default'" in caplog.text
    path = tmp_path / "keys" / "default.key"
    assert path.stat().st_mode & 0o777 == 0o600
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pasar.client"):
        assert client_identity(home=tmp_path) == first
    assert caplog.text == ""


def test_reads_do_not_create_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PASAR_HOME", str(tmp_path))
    http = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"models": []})),
        base_url=URL,
    )
    client = Client(transport=Transport(URL, http=http))
    assert client.gpus() == []
    assert not (tmp_path / "keys").exists()


# -- errors ----------------------------------------------------------------------------------------


def test_market_errors_come_back_as_pasar_errors_with_code_field_hint() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return error(409, "nonce_reused", field="nonce", hint="sign with a fresh nonce")

    client = client_for(handler)
    with pytest.raises(PasarError) as err:
        client.faucet("1 USDC")
    assert (err.value.status, err.value.code, err.value.field) == (409, "nonce_reused", "nonce")
    assert err.value.hint == "sign with a fresh nonce"

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(PasarError) as err:
        client_for(down).stats()
    assert err.value.code == "unreachable" and err.value.status == 503

    async def async_errors() -> None:
        with pytest.raises(PasarError) as aerr:
            await async_client_for(handler).faucet("1 USDC")
        assert aerr.value.code == "nonce_reused" and aerr.value.hint == "sign with a fresh nonce"
        with pytest.raises(PasarError) as aerr:
            await async_client_for(down).stats()
        assert aerr.value.code == "unreachable"

    asyncio.run(async_errors())


def test_a_non_json_error_is_still_a_pasar_error() -> None:
    client = client_for(lambda r: httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(PasarError) as err:
        client.stats()
    assert err.value.code == "bad_response" and err.value.status == 502


# -- launch ----------------------------------------------------------------------------------------


def test_launch_uploads_missing_inputs_then_signs_the_order(tmp_path: Path) -> None:
    (tmp_path / "make.py").write_text("print('hi')\n")
    (tmp_path / "data").mkdir()
    big = b"1,2\n" * 20_000  # over PROBE_OVER_BYTES: asked about first
    (tmp_path / "data" / "a.csv").write_bytes(big)
    stored = {sha(big)}  # already on the market: HEAD finds it, no PUT
    uploads: dict[str, bytes] = {}
    seen: list[tuple[str, str]] = []
    posted: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        digest = request.url.path.rsplit("/", 1)[-1]
        if request.method == "HEAD":
            return httpx.Response(200 if digest in stored else 404)
        if request.method == "PUT":
            assert sha(request.read()) == digest
            stored.add(digest)
            uploads[digest] = request.read()
            return httpx.Response(201, json={"sha256": digest})
        posted.update(json.loads(request.read()))
        return httpx.Response(200, json={"order_id": "o-1", "escrow": "1.00 USDC"})

    spec = {**SPEC, "inputs": ["make.py", "data"]}
    job = client_for(handler).launch(spec, base_dir=tmp_path, ttl_s=60)
    assert isinstance(job, Job) and job.id == "o-1"
    puts = [p for m, p in seen if m == "PUT"]
    body = posted["body"]
    # the input nobody had yet and the private part the order commits to: small, so they go
    # with the order (attachments, beside the envelope), each under the sha256 of its bytes
    assert puts == [] and not uploads
    attached = {k: base64.b64decode(v) for k, v in posted["attachments"].items()}
    assert set(attached) == {sha((tmp_path / "make.py").read_bytes()), body["private"]}
    assert all(sha(data) == key for key, data in attached.items())
    assert body["type"] == "order.create" and body["ttl_s"] == 60
    assert "inputs" not in body and "run" not in body["spec"]  # the chain carries neither
    private = PrivatePart.parse(attached[body["private"]])
    assert {i["path"] for i in private.inputs} == {"make.py", "data/a.csv"}
    assert private.spec["run"] == SPEC["run"]
    assert posted["sig"] and posted["signer"].startswith("pa1")
    assert seen[-1] == ("POST", "/v1/orders")
    # small uploads skip the probe: a round trip costs more than sending them again
    assert [p for m, p in seen if m == "HEAD"] == [f"/v1/blobs/{sha(big)}"]


def test_launch_takes_inputs_given_as_bytes_without_reading_the_disk(tmp_path: Path) -> None:
    posted: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST", request.url  # nothing uploaded on its own
        posted.update(json.loads(request.read()))
        return httpx.Response(200, json={"order_id": "o-1", "escrow": "1.00 USDC"})

    spec = {**SPEC, "inputs": ["call.pkl"]}
    empty = tmp_path / "nothing-here"  # no call.pkl on disk: the bytes are given
    client_for(handler).launch(spec, base_dir=empty, data={"call.pkl": b"pickled call"})
    attached = {k: base64.b64decode(v) for k, v in posted["attachments"].items()}
    assert attached[sha(b"pickled call")] == b"pickled call"
    private = PrivatePart.parse(attached[posted["body"]["private"]])
    assert private.inputs == ({"path": "call.pkl", "sha256": sha(b"pickled call"), "size": 12},)
    (tmp_path / "call.pkl").write_bytes(b"on disk")
    with pytest.raises(PasarError) as err:  # the same name from a file and from data
        client_for(handler).launch(
            {**SPEC, "inputs": ["call.pkl", "."]}, base_dir=tmp_path, data={"call.pkl": b"x"}
        )
    assert err.value.code == "duplicate_input" and "given as data" in err.value.message


def test_input_names_follow_the_documented_rule(tmp_path: Path) -> None:
    base = tmp_path / "proj"
    (base / "src" / "pkg").mkdir(parents=True)
    (base / "src" / "train.py").write_text("x")
    (base / "src" / "pkg" / "m.py").write_text("y")
    (base / "cfg.yaml").write_text("z")
    spec = JobSpec.build(**SPEC, workdir="src", inputs=["cfg.yaml"])
    names = [i.name for i in collect_inputs(spec, base)]
    assert names == ["train.py", "pkg/m.py", "cfg.yaml"]  # workdir-relative, then base-relative

    (tmp_path / "outside.txt").write_text("o")
    with pytest.raises(PasarError) as err:
        collect_inputs(JobSpec.build(**SPEC, inputs=["../outside.txt"]), base)
    assert err.value.code == "input_outside_base"
    with pytest.raises(PasarError) as err:
        collect_inputs(JobSpec.build(**SPEC, inputs=["missing.txt"]), base)
    assert err.value.code == "input_not_found"
    (base / "train.py").write_text("again")
    with pytest.raises(PasarError) as err:
        collect_inputs(JobSpec.build(**SPEC, workdir="src", inputs=["train.py"]), base)
    assert err.value.code == "duplicate_input"


def test_a_spec_file_is_relative_to_its_own_folder(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(
        'run: python make.py\ninputs: [make.py]\nmax_price_per_hour: "1 USDC"\nmax_duration: 1h\n'
    )
    spec, base = load_job(str(tmp_path / "job.yaml"), None)
    assert base == tmp_path and spec.inputs == ("make.py",)
    with pytest.raises(PasarError) as err:
        load_job(tmp_path / "nope.yaml", None)
    assert err.value.code == "spec_not_found"


# -- results: verified or refused ------------------------------------------------------------------


def done_order(outputs: dict[str, bytes], shards: int = 1, **receipt: Any) -> dict[str, Any]:
    leases = []
    for shard in range(shards):
        if "root" not in receipt:
            receipt["root"] = root_of_files((p, sha(b)) for p, b in outputs.items())
        files = [{"path": p, "sha256": sha(b), "size": len(b)} for p, b in outputs.items()]
        leases.append(
            {
                "lease_id": f"l-{shard}",
                "provider": "pa1provider",
                "shard": shard,
                "status": "settled",
                "receipt": {
                    "outputs": files,
                    "exit_code": 0,
                    **receipt,
                },
            }
        )
    return {
        "order_id": "o-1",
        "status": "done",
        "spec": {"shards": shards, "num_nodes": 1},
        "leases": leases,
        "note": None,
    }


def result_market(order: dict[str, Any], blobs: dict[str, bytes]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/orders/o-1":
            return httpx.Response(200, json=order)
        if path == "/v1/orders/o-1/wait":
            return httpx.Response(200, json={"order": order, "next": 1})
        if path.startswith("/v1/blobs/"):
            data = blobs.get(path.rsplit("/", 1)[-1])
            return httpx.Response(200, content=data) if data else error(404, "blob_not_found")
        return error(404, "not_found")

    return handler


def test_result_downloads_and_verifies_every_output(tmp_path: Path) -> None:
    outputs = {"out.txt": b"hello\n", "sub/model.bin": b"\x00\x01" * 1000}
    order = done_order(outputs)
    blobs = {sha(b): b for b in outputs.values()}
    result = client_for(result_market(order, blobs)).job("o-1").result(tmp_path / "r")
    assert (tmp_path / "r" / "out.txt").read_bytes() == b"hello\n"
    assert (tmp_path / "r" / "sub" / "model.bin").read_bytes() == outputs["sub/model.bin"]
    assert result.ok and result.exit_codes == [0]
    assert sorted(p.name for p in result.files) == ["model.bin", "out.txt"]
    assert not list((tmp_path / "r").rglob(".*part"))


def test_a_tampered_blob_is_refused_and_never_written(tmp_path: Path) -> None:
    order = done_order({"out.txt": b"the truth\n"})
    blobs = {sha(b"the truth\n"): b"a forgery\n"}  # the store serves other bytes at the address
    with pytest.raises(PasarError) as err:
        client_for(result_market(order, blobs)).job("o-1").result(tmp_path / "r")
    assert err.value.code == "output_mismatch"
    assert not (tmp_path / "r" / "out.txt").exists()
    assert list((tmp_path / "r").iterdir()) == []  # no temporary file left either

    async def run_async() -> None:
        job = async_client_for(result_market(order, blobs)).job("o-1")
        with pytest.raises(PasarError) as aerr:
            await job.result(tmp_path / "a")
        assert aerr.value.code == "output_mismatch"

    asyncio.run(run_async())
    assert not (tmp_path / "a" / "out.txt").exists()


def test_read_gives_each_shards_output_in_memory_verified(tmp_path: Path) -> None:
    """A remote call's result: inline bytes that match the receipt need no request; bytes
    that do not are fetched instead, and fetched bytes that do not either are refused."""
    outputs = {"result.pkl": b"the value", "other.txt": b"x"}
    order = done_order(outputs, shards=2)
    asked: list[str] = []

    def counting(handler: Handler) -> Handler:
        def answer(request: httpx.Request) -> httpx.Response:
            asked.append(request.url.path)
            return handler(request)

        return answer

    blobs = {sha(b): b for b in outputs.values()}
    carried = base64.b64encode(b"the value").decode()
    inline = {**order, "inline_outputs": {sha(b"the value"): carried}}
    job = client_for(counting(result_market(order, blobs))).job("o-1")
    read = job.read(inline, "result.pkl")
    assert [(r.shard, data) for r, data in read] == [(0, b"the value"), (1, b"the value")]
    assert not [p for p in asked if p.startswith("/v1/blobs/")]  # all inline
    assert [data for _, data in job.read(order, "missing.txt")] == [None, None]
    lying = {**order, "inline_outputs": {sha(b"the value"): base64.b64encode(b"a lie").decode()}}
    assert job.read(lying, "result.pkl")[0][1] == b"the value"  # fetched, and checked
    forged = {sha(b"the value"): b"a forgery"}
    with pytest.raises(PasarError) as err:
        client_for(result_market(order, forged)).job("o-1").read(lying, "result.pkl")
    assert err.value.code == "output_mismatch"
    assert list(tmp_path.iterdir()) == []  # nothing was written anywhere here

    async def run_async() -> None:
        ajob = async_client_for(result_market(order, forged)).job("o-1")
        assert [d for _, d in await ajob.read(inline, "result.pkl")] == [b"the value"] * 2
        with pytest.raises(PasarError) as aerr:
            await ajob.read(lying, "result.pkl")
        assert aerr.value.code == "output_mismatch"

    asyncio.run(run_async())


def test_a_receipt_whose_outputs_do_not_match_its_root_is_refused(tmp_path: Path) -> None:
    order = done_order({"out.txt": b"x"}, root="00" * 32)
    with pytest.raises(PasarError) as err:
        client_for(result_market(order, {sha(b"x"): b"x"})).job("o-1").result(tmp_path)
    assert err.value.code == "bad_root"
    bad_path = done_order({"../escape": b"x"}, root="00" * 32)
    with pytest.raises(PasarError) as err:
        client_for(result_market(bad_path, {sha(b"x"): b"x"})).job("o-1").result(tmp_path)
    assert err.value.code == "invalid_path"
    assert not (tmp_path.parent / "escape").exists()


def test_shards_go_to_their_own_folders_and_a_missing_shard_is_refused(tmp_path: Path) -> None:
    order = done_order({"out.txt": b"s"}, shards=2)
    client = client_for(result_market(order, {sha(b"s"): b"s"}))
    result = client.job("o-1").result(tmp_path)
    assert [s.dir for s in result.shards] == [tmp_path / "shard-0", tmp_path / "shard-1"]
    assert (tmp_path / "shard-1" / "out.txt").read_bytes() == b"s"
    order["leases"][1]["status"] = "lost"
    with pytest.raises(PasarError) as err:
        client.job("o-1").result(tmp_path / "again")
    assert err.value.code == "missing_shards" and "1" in err.value.message
    # a .map re-launches only what failed: it asks for the shards that did settle
    partial = client.job("o-1").fetch(order, tmp_path / "part", partial=True)
    assert [s.shard for s in partial.shards] == [0]
    assert (tmp_path / "part" / "shard-0" / "out.txt").read_bytes() == b"s"
    # a shard that failed through its job's fault: the error says why there is no result
    order["leases"][1]["status"] = "failed"
    order["leases"][1]["receipt"] = {
        "outputs": [],
        "exit_code": 0,
        "failure": {"reason": "output_too_large", "fault": "job", "detail": "over 65536 bytes"},
    }
    with pytest.raises(PasarError) as err:
        client.job("o-1").result(tmp_path / "again")
    assert err.value.code == "missing_shards"
    assert "shard 1: output_too_large: over 65536 bytes" in err.value.message
    order["status"] = "expired"
    with pytest.raises(PasarError) as err:
        client.job("o-1").result(tmp_path / "again")
    assert err.value.code == "no_result"


# -- waiting and logs ------------------------------------------------------------------------------


def test_wait_long_polls_with_the_markets_cursor() -> None:
    views = iter(["open", "running", "done"])
    afters: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/wait"):
            afters.append(request.url.params["after"])
            status = next(views)
            return httpx.Response(200, json={"order": {"status": status}, "next": 10 * len(afters)})
        return httpx.Response(200, json={"status": "open"})

    order = client_for(handler).job("o-1").wait()
    assert order["status"] == "done"
    assert afters == ["0", "10", "20"]


def test_a_launched_jobs_wait_long_polls_from_the_creations_cursor_at_once() -> None:
    """The order's creation answers the feed's cursor (``next``): the first request of its
    wait is already a long poll from there (no read of the order first); a job made from an
    id alone, or a review, reads it first as before."""
    requests: list[tuple[str, str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/wait"):
            params = request.url.params
            requests.append((params["after"], params["timeout"], params.get("status_only", "")))
            return httpx.Response(200, json={"order": {"status": "done"}, "next": 8})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})

    client = client_for(handler)
    assert Job(client, "o-1", feed_next=7).wait()["status"] == "done"
    assert requests == [("7", "25.0", "true")]
    requests.clear()
    assert client.job("o-1").wait()["status"] == "done"
    assert [after for after, _, _ in requests] == ["0"]  # the no-wait read first
    steps = api.wait_for_end("o-1", None, after=7, review=True)
    assert next(steps).params["timeout"] == 0.0  # a review reads the order first


def test_wait_timeout_says_the_order_goes_on() -> None:
    steps = api.wait_for_end("o-1", 0.0, clock=iter([0.0, 5.0]).__next__)
    next(steps)
    with pytest.raises(PasarError) as err:
        steps.send({"order": {"status": "running"}, "next": 0})
    assert err.value.code == "wait_timeout"


def test_logs_advance_by_x_log_size_and_follow_a_requeued_shard() -> None:
    lease = {"lease_id": "l-a", "shard": 0, "status": "running"}
    order: dict[str, Any] = {"status": "running", "leases": [lease]}
    logs = {"l-a": "one\ntwo\n", "l-b": "again\n"}
    reads: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/orders/o-1":
            return httpx.Response(200, json=order)
        lease_id = path.split("/")[3]
        offset = int(request.url.params["offset"])
        reads.append((lease_id, str(offset)))
        text = logs[lease_id]
        # hand out at most 4 bytes a time, to exercise the offsets
        chunk = text[offset : offset + 4]
        status = "running"
        if not chunk and lease_id == "l-a":
            status = "lost"
            lease["status"] = "lost"
            order["leases"] = [lease, {"lease_id": "l-b", "shard": 0, "status": "running"}]
        elif not chunk:
            status = "settled"
            order["leases"][1]["status"] = "settled"
            order["status"] = "done"
        headers = {"X-Log-Size": str(offset + len(chunk)), "X-Lease-Status": status}
        return httpx.Response(200, text=chunk, headers=headers)

    client = client_for(handler)
    text = "".join(client.job("o-1").logs(follow=True))
    assert text == "one\ntwo\nagain\n"
    assert reads[:3] == [("l-a", "0"), ("l-a", "4"), ("l-a", "8")]
    assert reads[3:] == [("l-b", "0"), ("l-b", "4"), ("l-b", "6")]

    async def gather() -> str:
        chunks = [c async for c in async_client_for(handler).job("o-1").logs()]
        return "".join(chunks)

    assert asyncio.run(gather()) == "again\n"  # without follow: the newest lease's log so far


def test_logs_without_follow_stop_at_the_end_of_what_is_there() -> None:
    order = {"status": "running", "leases": [{"lease_id": "l-a", "shard": 0}]}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/orders/o-1":
            return httpx.Response(200, json=order)
        offset = int(request.url.params["offset"])
        assert "follow" not in request.url.params
        chunk = "abc"[offset:]
        headers = {"X-Log-Size": str(offset + len(chunk)), "X-Lease-Status": "running"}
        return httpx.Response(200, text=chunk, headers=headers)

    assert list(client_for(handler).job("o-1").logs()) == ["abc"]


def test_a_log_answer_without_its_offset_header_is_refused() -> None:
    order = {"status": "running", "leases": [{"lease_id": "l-a", "shard": 0}]}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/orders/o-1":
            return httpx.Response(200, json=order)
        return httpx.Response(200, text="x")

    with pytest.raises(PasarError) as err:
        list(client_for(handler).job("o-1").logs())
    assert err.value.code == "bad_response"


# -- the two clients are the same API --------------------------------------------------------------


def public(cls: type) -> set[str]:
    return {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")}


def test_client_and_async_client_have_the_same_methods() -> None:
    assert public(Client) == public(AsyncClient)
    assert public(Job) == public(AsyncJob)
    for name in public(Job) & {n for n in dir(Job) if callable(getattr(Job, n))}:
        sync_params = inspect.signature(getattr(Job, name)).parameters
        async_params = inspect.signature(getattr(AsyncJob, name)).parameters
        assert list(sync_params) == list(async_params), name
    assert pasar.Client is Client and pasar.AsyncClient is AsyncClient
    assert pasar.remote is remote


# -- @remote: the payload, the entry, re-raising ---------------------------------------------------


def helper(x: int) -> int:
    return x + 1


def divide(a: int, b: int) -> float:
    return a / helper(b - 1)


def test_the_entry_runs_the_shards_call_and_writes_its_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / CALL_FILE).write_bytes(dump_calls(divide, [((6, 3), {}), ((1,), {"b": 0})]))
    monkeypatch.setenv("PASAR_SHARD", "0")
    assert run_entry(tmp_path) == 0
    assert load_outcome((tmp_path / RESULT_FILE).read_bytes()).value == 2.0
    monkeypatch.setenv("PASAR_SHARD", "1")
    assert run_entry(tmp_path) == 1
    outcome = load_outcome((tmp_path / RESULT_FILE).read_bytes())
    assert not outcome.ok and outcome.type_name == "builtins.ZeroDivisionError"
    assert isinstance(outcome.exception, ZeroDivisionError)
    assert "in divide" in outcome.traceback and "remote_entry" not in outcome.traceback
    monkeypatch.setenv("PASAR_SHARD", "2")
    assert run_entry(tmp_path) == 2
    setup = load_outcome((tmp_path / RESULT_FILE).read_bytes())
    assert setup.type_name == "pasar.RemoteSetupError" and "shard 2" in setup.message


def test_a_call_file_from_another_python_is_refused_in_words(tmp_path: Path) -> None:
    import pickle

    data = pickle.dumps({"format": 1, "python": "2.7", "body": b""}, protocol=4)
    with pytest.raises(PayloadError, match=r"Python 2\.7"):
        load_calls(data)
    (tmp_path / CALL_FILE).write_bytes(data)
    assert run_entry(tmp_path) == 2
    assert "same minor version" in load_outcome((tmp_path / RESULT_FILE).read_bytes()).message
    with pytest.raises(PayloadError, match="damaged"):
        load_calls(b"not a pickle")


class UnbuildableError(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickles, but cannot be rebuilt from args
        super().__init__(f"{a}/{b}")


def test_remote_exceptions_are_re_raised_with_the_remote_traceback() -> None:
    job = Job(client_for(lambda r: error(500, "x")), "o-9")
    try:
        divide(1, 0)
    except ZeroDivisionError as exc:
        outcome = load_outcome(dump_error(exc, exc.__traceback__))
    with pytest.raises(ZeroDivisionError) as err:
        value_of(outcome, job, index=3)
    notes = "\n".join(getattr(err.value, "__notes__", []))
    assert "o-9" in notes and ".map element #3" in notes and "in divide" in notes

    try:
        raise UnbuildableError(1, 2)
    except UnbuildableError as exc:
        outcome = load_outcome(dump_error(exc, exc.__traceback__))
    assert outcome.exception is None
    with pytest.raises(RemoteError) as rerr:
        value_of(outcome, job)
    assert rerr.value.remote_type.endswith("UnbuildableError")
    assert "1/2" in str(rerr.value) and "remote traceback" in str(rerr.value)
    assert isinstance(rerr.value, PasarError)


def test_the_decorator_builds_a_checked_spec_and_refuses_ambiguity() -> None:
    @remote(gpu="A100:2", cpus=4, memory=16, max_price="2 USDC", max_duration="30m")
    def train(steps: int) -> int:
        return steps

    assert isinstance(train, RemoteFunction)
    spec = train.spec
    assert spec.run == "python -m pasar.client.remote_entry"
    assert spec.inputs == (CALL_FILE,) and [o.path for o in spec.outputs] == [RESULT_FILE]
    assert spec.resources.accelerators is not None and spec.resources.accelerators.count == 2
    assert spec.max_duration == 1800 and spec.name == "train"
    assert train.local(5) == 5
    with pytest.raises(PasarError) as err:
        train(5)
    assert err.value.code == "ambiguous_call"
    assert train.map([]) == []  # nothing to run: nothing launched (no market needed)
    assert remote(helper).spec.max_price_per_hour.to_json() == "0.50 USDC"
    with pytest.raises(PasarError):
        remote(gpu="A10O")(helper)  # a typo fails at decoration time
    assert train.options(max_duration="2h").spec.max_duration == 7200


def test_the_entry_module_needs_no_network_stack() -> None:
    import subprocess

    code = "import sys, pasar.client.remote_entry; print('httpx' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}
    )
    assert out.stdout.strip() == "False", out.stderr


def exits(code: int) -> None:
    sys.exit(code)


def test_a_remote_sys_exit_or_setup_failure_is_a_remote_error_not_a_local_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = Job(client_for(lambda r: error(500, "x")), "o-9")
    (tmp_path / CALL_FILE).write_bytes(dump_calls(exits, [((3,), {})]))
    monkeypatch.setenv("PASAR_SHARD", "0")
    assert run_entry(tmp_path) == 1
    with pytest.raises(RemoteError) as err:
        value_of(load_outcome((tmp_path / RESULT_FILE).read_bytes()), job)
    assert err.value.remote_type == "builtins.SystemExit"
    (tmp_path / CALL_FILE).write_bytes(b"garbage")
    assert run_entry(tmp_path) == 2
    with pytest.raises(RemoteError) as err:  # the runner's PayloadError is text, not re-raised
        value_of(load_outcome((tmp_path / RESULT_FILE).read_bytes()), job)
    assert err.value.remote_type == "pasar.RemoteSetupError" and "damaged" in err.value.message


# -- pointing at the wrong place (issue 14.9) ------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:8420/v1", "http://127.0.0.1:8420/v1/"])
def test_a_market_url_ending_in_v1_is_refused_with_the_fix(url: str) -> None:
    with pytest.raises(PasarError) as err:
        market_url(url)
    assert err.value.code == "invalid_market_url" and err.value.field == "market"
    assert err.value.hint == "drop the /v1: http://127.0.0.1:8420"


def test_another_server_at_the_url_gets_one_sentence_not_its_html() -> None:
    page = "<!DOCTYPE html><html><body><h1>Error response</h1></body></html>"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text=page, headers={"content-type": "text/html"})

    with pytest.raises(PasarError) as err:
        client_for(handler).balance()
    message = err.value.message
    assert "<html" not in message and "answered 404 with text/html" in message
    assert "is this the market's address?" in message and err.value.field == "market"


def test_launch_uploads_inputs_and_private_part_together_and_no_order_if_one_fails(
    tmp_path: Path,
) -> None:
    """The blobs too large to attach to the order go up several at once; if the market
    refuses one, launch raises its error and sends no order."""
    import contextlib
    import threading

    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_bytes(name.encode() * 30_000)  # 150 kB: over INLINE_BYTES
    spec = {**SPEC, "inputs": ["a.txt", "b.txt", "c.txt"]}
    seen: list[str] = []
    in_flight = [0, 0]  # now, most at once
    lock = threading.Lock()
    gate = threading.Barrier(2, timeout=5)

    def market(refuse: str | None) -> Handler:
        def answer(request: httpx.Request) -> httpx.Response:
            seen.append(f"{request.method} {request.url.path}")
            if request.method == "HEAD":  # not stored yet
                return httpx.Response(404)
            if request.method != "PUT":
                return httpx.Response(200, json={"order_id": "o-1", "escrow": "1.00 USDC"})
            with lock:
                in_flight[0] += 1
                in_flight[1] = max(in_flight[1], in_flight[0])
            with contextlib.suppress(threading.BrokenBarrierError):
                gate.wait()  # two uploads meet here only if they run at the same time
            with lock:
                in_flight[0] -= 1
            if refuse and request.url.path.endswith(refuse):
                return httpx.Response(
                    413, json={"error": {"code": "blob_too_large", "message": "too large"}}
                )
            return httpx.Response(201, json={"sha256": request.url.path.rsplit("/", 1)[1]})

        return answer

    client_for(market(None)).launch(spec, base_dir=tmp_path)
    puts = [s for s in seen if s.startswith("PUT")]
    assert len(puts) == 3 and in_flight[1] >= 2  # three inputs at once (the private part:
    # attached to the order)
    assert seen[-1] == "POST /v1/orders"
    seen.clear()
    gate.reset()
    with pytest.raises(PasarError) as err:
        client_for(market(sha(b"b.txt" * 30_000))).launch(spec, base_dir=tmp_path)
    assert err.value.code == "blob_too_large"
    assert "POST /v1/orders" not in seen  # nothing escrowed for a job whose inputs failed


def test_a_shard_failed_for_the_jobs_own_fault_raises_its_reason() -> None:
    from pasar.client.remote import RemoteError, job_failure_error

    def order(status: str, fault: str) -> dict[str, Any]:
        failure = {"reason": "pip_install_failed", "fault": fault, "detail": "no wheel: x==1"}
        lease = {"shard": 0, "status": status, "receipt": {"failure": failure}}
        return {"order_id": "o-1", "leases": [lease]}

    err = job_failure_error(order("failed", "job"), 0)
    assert isinstance(err, RemoteError) and err.code == "pip_install_failed"
    assert "no wheel: x==1" in str(err) and err.index == 0 and err.order_id == "o-1"
    assert job_failure_error(order("failed", "provider"), 0) is None  # re-queued elsewhere
    assert job_failure_error(order("settled", "job"), 0) is None
    assert job_failure_error({"order_id": "o-1", "leases": []}, 0) is None
