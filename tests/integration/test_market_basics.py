"""The market's HTTP shell: health, error shape, blobs, limits, signed requests, signals.

Most tests talk to a real ``pasar market serve`` process (see conftest.py). The signed-request
tests mount a test-only router on :func:`pasar.market.app.create_app` in-process instead, so
that production code carries no test routes and the clock can be fixed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
from fastapi import APIRouter, FastAPI

from pasar.crypto.envelope import VerifiedEnvelope, sign, wall_clock_ms
from pasar.crypto.identity import Identity, load_identity
from pasar.crypto.request_auth import authorization
from pasar.market.app import create_app
from pasar.market.auth import SignedEnvelope
from pasar.market.config import MarketConfig

if TYPE_CHECKING:
    from conftest import MarketProcess

NOW_MS = 1_800_000_000_000
MARKET = Identity.from_seed(b"M" * 32)
MARKET_ID = MARKET.account_id
ALICE = Identity.from_seed(b"A" * 32)


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert the one error shape with this status and code; return the error object."""
    assert response.status_code == status, response.text
    doc = response.json()
    assert set(doc) == {"error"}, doc
    assert doc["error"]["code"] == code, doc
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]
    assert "Traceback" not in response.text
    return dict(doc["error"])


def blob_files(home: Path) -> list[Path]:
    return [p for p in (home / "blobs").rglob("*") if p.is_file()]


# --------------------------------------------------------------------------- live server


def test_healthz_names_the_market(module_market: MarketProcess) -> None:
    response = httpx.get(f"{module_market.url}/v1/healthz")
    assert response.status_code == 200
    doc = response.json()
    market_key = load_identity("market", module_market.home)
    assert doc["ok"] is True
    assert doc["market"] == market_key.account_id
    assert doc["preset"] == "pasar"
    assert doc["devnet"] is True
    assert doc["max_blob_bytes"] == 256 * 1024 * 1024  # providers check outputs against it
    assert isinstance(doc["version"], str)
    key_file = module_market.home / "keys" / "market.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_listens_on_loopback_and_prints_one_line(module_market: MarketProcess) -> None:
    assert module_market.url.startswith("http://127.0.0.1:")
    assert module_market.stdout().splitlines() == [f"pasar market listening on {module_market.url}"]


def test_unknown_route_and_wrong_method_use_the_error_shape(module_market: MarketProcess) -> None:
    error_of(httpx.get(f"{module_market.url}/v1/no-such-thing"), 404, "not_found")
    err = error_of(httpx.post(f"{module_market.url}/v1/healthz"), 405, "method_not_allowed")
    assert "GET" in err["hint"]


def test_heights_and_cursors_past_64_bits_are_a_400_not_a_500(
    module_market: MarketProcess,
) -> None:
    """The store keeps 64-bit integers: a larger height or cursor is bad input, said so."""
    huge = str(2**64)
    for path in (
        f"/v1/chain/blocks/{huge}",
        f"/v1/chain/blocks?from={huge}",
        f"/v1/chain/txs?after={huge}",
    ):
        r = httpx.get(module_market.url + path, timeout=10)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]["code"] == "invalid_request", r.text
        assert "less than or equal" in r.text, r.text


def test_openapi_and_docs_are_served(module_market: MarketProcess) -> None:
    schema = httpx.get(f"{module_market.url}/openapi.json").json()
    assert schema["info"]["title"] == "pasar market"
    assert "/v1/healthz" in schema["paths"]
    assert "/v1/blobs/{sha256}" in schema["paths"]
    assert "422" not in orjson.dumps(schema["paths"]).decode()
    assert httpx.get(f"{module_market.url}/docs").status_code == 200


def signed(url: str, method: str, path: str, who: Identity = ALICE) -> dict[str, str]:
    """The request-signature header (pasar.crypto.request_auth) for one request."""
    market = httpx.get(f"{url}/v1/healthz").json()["market"]
    header = authorization(who, market=market, method=method, target=path, now_ms=wall_clock_ms())
    return {"authorization": header}


def test_blob_round_trip(module_market: MarketProcess) -> None:
    data = os.urandom(300_000)
    sha = hashlib.sha256(data).hexdigest()
    url = f"{module_market.url}/v1/blobs/{sha}"

    error_of(httpx.get(url), 404, "blob_not_found")
    assert httpx.head(url).status_code == 404

    path = f"/v1/blobs/{sha}"
    error_of(httpx.put(url, content=data), 401, "unauthenticated")  # uploads are signed
    created = httpx.put(url, content=data, headers=signed(module_market.url, "PUT", path))
    assert created.status_code == 201, created.text
    assert created.json() == {"sha256": sha, "size": len(data), "created": True}
    again = httpx.put(url, content=data, headers=signed(module_market.url, "PUT", path))
    assert again.status_code == 200
    assert again.json()["created"] is False

    error_of(httpx.get(url), 401, "unauthenticated")  # reading needs a party's signature
    bob = Identity.from_seed(b"B" * 32)
    error_of(httpx.get(url, headers=signed(module_market.url, "GET", path, bob)), 403, "forbidden")
    got = httpx.get(url, headers=signed(module_market.url, "GET", path))  # the uploader
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["etag"] == f'"{sha}"'
    head = httpx.head(url, headers=signed(module_market.url, "HEAD", path))  # the uploader
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(data)
    # to anyone else the blob does not exist: hashing a guessed file must not tell
    assert httpx.head(url).status_code == 404
    assert httpx.head(url, headers=signed(module_market.url, "HEAD", path, bob)).status_code == 404
    assert (module_market.home / "blobs" / sha[:2] / sha).read_bytes() == data


def test_blob_upload_without_content_length_is_streamed(module_market: MarketProcess) -> None:
    chunks = [os.urandom(50_000) for _ in range(5)]
    sha = hashlib.sha256(b"".join(chunks)).hexdigest()
    path = f"/v1/blobs/{sha}"
    response = httpx.put(
        f"{module_market.url}{path}",
        content=iter(chunks),
        headers=signed(module_market.url, "PUT", path),
    )
    assert response.status_code == 201, response.text
    assert response.json()["size"] == 250_000


def test_wrong_hash_is_refused_and_nothing_is_stored(market_server: MarketProcess) -> None:
    claimed = hashlib.sha256(b"what I said").hexdigest()
    path = f"/v1/blobs/{claimed}"
    response = httpx.put(
        f"{market_server.url}{path}",
        content=b"what I sent",
        headers=signed(market_server.url, "PUT", path),
    )
    err = error_of(response, 400, "hash_mismatch")
    assert err["field"] == "sha256"
    assert blob_files(market_server.home) == []
    error_of(httpx.get(f"{market_server.url}/v1/blobs/{claimed}"), 404, "blob_not_found")


@pytest.mark.parametrize("bad", ["abc", "A" * 64, "g" * 64, "0" * 65])
def test_invalid_blob_hash_is_a_400_with_hint(module_market: MarketProcess, bad: str) -> None:
    path = f"/v1/blobs/{bad}"
    response = httpx.put(
        f"{module_market.url}{path}", content=b"x", headers=signed(module_market.url, "PUT", path)
    )
    err = error_of(response, 400, "invalid_hash")
    assert err["hint"]
    error_of(httpx.get(f"{module_market.url}/v1/blobs/{bad}"), 400, "invalid_hash")


def test_oversized_json_body_is_a_413(module_market: MarketProcess) -> None:
    body = b"[" + b"0," * (600 * 1024) + b"0]"  # > 1 MiB, announced by Content-Length
    response = httpx.post(
        f"{module_market.url}/v1/healthz",
        content=body,
        headers={"content-type": "application/json"},
    )
    error_of(response, 413, "too_large")


def test_requests_are_logged_as_json_lines(module_market: MarketProcess) -> None:
    httpx.get(f"{module_market.url}/v1/healthz?probe=log")
    lines = [e for e in module_market.log() if e.get("event") == "request"]
    assert any(e["path"] == "/v1/healthz" and e["status"] == 200 for e in lines)
    assert all({"method", "path", "status", "ms"} <= set(e) for e in lines)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_with_exit_0(market_server: MarketProcess, sig: int) -> None:
    assert httpx.get(f"{market_server.url}/v1/healthz").status_code == 200
    assert market_server.stop(sig) == 0
    stderr = market_server.stderr_path.read_text()
    assert "Traceback" not in stderr
    assert any(e.get("event") == "market.stopped" for e in market_server.log())


def test_restart_keeps_the_market_key(market_server: MarketProcess) -> None:
    first = httpx.get(f"{market_server.url}/v1/healthz").json()["market"]
    again = market_server.restart()
    assert not market_server.running
    assert httpx.get(f"{again.url}/v1/healthz").json()["market"] == first


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pasar", "market", "serve", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )


def test_unknown_preset_exits_2_with_a_hint(tmp_path: Path) -> None:
    result = _cli(tmp_path, "--preset", "akashh", "--port", "0")
    assert result.returncode == 2
    assert "unknown preset" in result.stderr
    assert "did you mean 'akash'" in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_port_in_use_exits_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = _cli(tmp_path, "--port", str(taken.getsockname()[1]))
    assert result.returncode == 2, result.stderr
    assert "could not start" in result.stderr
    assert "Traceback" not in result.stderr


def test_serves_on_an_inherited_listening_socket(tmp_path: Path) -> None:
    """``--listen-fd`` (pasar devnet's): a request sent before the market listens waits in the
    socket's backlog and is answered once it does."""
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pasar", "market", "serve", "--home", str(tmp_path),
         "--port", str(port), "--devnet", "--listen-fd", str(sock.fileno())],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        pass_fds=(sock.fileno(),),
        env={**os.environ, "PASAR_HOME": str(tmp_path)},
    )  # fmt: skip
    sock.close()
    try:
        early = httpx.get(f"http://127.0.0.1:{port}/v1/healthz", timeout=60)  # before it listens
        assert early.status_code == 200 and early.json()["devnet"] is True
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line == f"pasar market listening on http://127.0.0.1:{port}\n"
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_a_listen_fd_that_is_no_listening_socket_exits_2(tmp_path: Path) -> None:
    with (tmp_path / "f").open("w") as file, socket.socket() as idle:
        for fd in (file.fileno(), idle.fileno()):
            result = subprocess.run(
                [sys.executable, "-m", "pasar", "market", "serve", "--home", str(tmp_path),
                 "--port", "0", "--listen-fd", str(fd)],
                capture_output=True, text=True, timeout=60, check=False, pass_fds=(fd,),
                env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
            )  # fmt: skip
            assert result.returncode == 2, result.stderr
            assert f"--listen-fd {fd}: not" in result.stderr
            assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- signed requests


def _echo_router() -> APIRouter:
    router = APIRouter()

    @router.post("/v1/test/echo")
    async def echo(envelope: SignedEnvelope) -> dict[str, Any]:
        assert isinstance(envelope, VerifiedEnvelope)
        return {"signer": envelope.signer, "body": envelope.body}

    return router


class AsgiClient:
    """A synchronous client for an in-process app (httpx's ASGI transport, no sockets)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://market") as c:
                return await c.request(method, url, **kwargs)

        return asyncio.run(go())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


@pytest.fixture
def signed_client(tmp_path: Path) -> AsgiClient:
    config = MarketConfig.build(home=tmp_path, max_body_bytes=4096)
    app = create_app(
        config,
        market_identity=MARKET,
        routers=[_echo_router()],
        clock=lambda: NOW_MS,
    )
    return AsgiClient(app)


@pytest.fixture
def alice() -> Identity:
    return Identity.from_seed(b"\x01" * 32)


def _post(client: AsgiClient, payload: bytes | dict[str, Any]) -> httpx.Response:
    content = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return client.post(
        "/v1/test/echo", content=content, headers={"content-type": "application/json"}
    )


def test_valid_envelope_reaches_the_route(
    signed_client: AsgiClient, alice: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    envelope = sign({"type": "faucet", "amount": 5}, alice, market=MARKET_ID, now_ms=NOW_MS)
    with caplog.at_level(logging.INFO, logger="pasar.market.access"):
        response = _post(signed_client, envelope)
    assert response.status_code == 200, response.text
    assert response.json() == {"signer": alice.account_id, "body": envelope["body"]}
    logged = [getattr(r, "fields", {}) for r in caplog.records]
    assert any(f.get("signer") == alice.account_id and f.get("status") == 200 for f in logged)


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"not json", b'{"a": NaN}', b'{"body": {}, "body": {}}', b"\xff\xfe"]
)
def test_malformed_json_is_a_400(signed_client: AsgiClient, raw: bytes) -> None:
    error_of(_post(signed_client, raw), 400, "invalid_json")


def test_malformed_envelope_is_a_400(signed_client: AsgiClient, alice: Identity) -> None:
    envelope = sign({"type": "faucet"}, alice, market=MARKET_ID, now_ms=NOW_MS)
    del envelope["sig"]
    err = error_of(_post(signed_client, envelope), 400, "malformed_envelope")
    assert err["field"] == "sig"
    error_of(_post(signed_client, [1, 2]), 400, "malformed_envelope")


def test_bad_signature_is_a_401(signed_client: AsgiClient, alice: Identity) -> None:
    envelope = sign({"type": "faucet", "amount": 5}, alice, market=MARKET_ID, now_ms=NOW_MS)
    envelope["body"]["amount"] = 500
    error_of(_post(signed_client, envelope), 401, "bad_signature")


@pytest.mark.parametrize("skew_ms", [-61_000, 61_000])
def test_stale_timestamp_is_a_401(signed_client: AsgiClient, alice: Identity, skew_ms: int) -> None:
    envelope = sign({"type": "faucet"}, alice, market=MARKET_ID, now_ms=NOW_MS + skew_ms)
    error_of(_post(signed_client, envelope), 401, "stale_timestamp")


def test_signature_covers_parsed_values_not_bytes(
    signed_client: AsgiClient, alice: Identity
) -> None:
    envelope = sign({"type": "faucet", "b": 1, "a": "x"}, alice, market=MARKET_ID, now_ms=NOW_MS)
    reencoded = orjson.dumps(envelope, option=orjson.OPT_INDENT_2)  # other spacing, same values
    assert _post(signed_client, reencoded).status_code == 200


def test_chunked_body_over_the_limit_is_a_413(signed_client: AsgiClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(10):
            yield b" " * 1024

    response = signed_client.post("/v1/test/echo", content=chunks())
    error_of(response, 413, "too_large")


def test_openapi_documents_the_envelope(signed_client: AsgiClient) -> None:
    schema = signed_client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/test/echo"]["post"]
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/Envelope"}
    envelope = schema["components"]["schemas"]["Envelope"]
    assert set(envelope["properties"]) == {"body", "market", "signer", "nonce", "ts", "sig"}
    assert envelope["properties"]["ts"]["type"] == "integer"
    assert {"401", "4XX"} <= set(operation["responses"])
    assert "HTTPValidationError" not in schema["components"]["schemas"]
