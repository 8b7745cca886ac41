"""The market's HTTP shell in-process: error shapes, limits, logs, OpenAPI, config, build_app."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from pasar.core.errors import PasarError
from pasar.crypto.envelope import wall_clock_ms
from pasar.crypto.identity import Identity
from pasar.crypto.request_auth import authorization
from pasar.market.app import create_app
from pasar.market.config import MarketConfig
from pasar.market.errors import dotted
from pasar.market.limits import BodyLimitMiddleware
from pasar.market.logging import JsonFormatter, configure_logging, log_event
from pasar.market.serve import build_app, listening_url

Message = dict[str, Any]
UPLOADER = Identity.from_seed(b"u" * 32)


def _router() -> APIRouter:
    router = APIRouter()

    @router.get("/v1/test/count")
    async def count(n: int) -> dict[str, int]:
        return {"n": n}

    @router.get("/v1/test/refuse")
    async def refuse() -> None:
        raise PasarError("no", code="nope", field="x", hint="do not", status=409)

    @router.get("/v1/test/crash")
    async def crash() -> None:
        raise RuntimeError("secret internals")

    return router


def call(app: FastAPI, method: str, url: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://market") as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(go())


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    config = MarketConfig.build(home=tmp_path, max_body_bytes=100, max_blob_bytes=1000)
    return create_app(config, market_identity=Identity.generate(), routers=[_router()])


def test_validation_errors_use_the_one_shape(app: FastAPI) -> None:
    response = call(app, "GET", "/v1/test/count?n=many")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["field"] == "query.n"
    assert error["details"][0]["field"] == "query.n"
    assert "detail" not in response.json()
    missing = call(app, "GET", "/v1/test/count").json()["error"]
    assert missing["field"] == "query.n"


def test_pasar_errors_keep_their_status_and_fields(app: FastAPI) -> None:
    response = call(app, "GET", "/v1/test/refuse")
    assert response.status_code == 409
    assert response.json() == {
        "error": {"code": "nope", "message": "no", "field": "x", "hint": "do not"}
    }


def test_a_bug_is_a_500_without_internals(app: FastAPI, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="pasar.market.errors"):
        response = call(app, "GET", "/v1/test/crash")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal"
    assert "secret" not in response.text and "Traceback" not in response.text
    logged = [r for r in caplog.records if r.name == "pasar.market.errors"]
    assert logged and logged[0].exc_info is not None
    assert getattr(logged[0], "fields", {})["incident"] in error["message"]


def _signed_put(app: FastAPI, data: bytes) -> httpx.Response:
    """A blob upload signed as pasar.crypto.request_auth says (uploads are signed)."""
    path = f"/v1/blobs/{hashlib.sha256(data).hexdigest()}"
    market = app.state.market_identity.account_id
    header = authorization(
        UPLOADER, market=market, method="PUT", target=path, now_ms=wall_clock_ms()
    )
    return call(app, "PUT", path, content=data, headers={"authorization": header})


def test_blob_uploads_get_the_larger_limit(app: FastAPI) -> None:
    data = b"x" * 500  # over the JSON limit (100), under the blob limit (1000)
    assert _signed_put(app, data).status_code == 201
    too_big = b"y" * 1001
    response = _signed_put(app, too_big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    response = call(app, "POST", "/v1/test/count", content=data)
    assert response.status_code == 413


# --------------------------------------------------------------------------- the middleware alone


async def _drive(
    middleware: BodyLimitMiddleware, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
) -> list[Message]:
    scope = {"type": "http", "method": "POST", "path": "/v1/x", "headers": headers}
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware(scope, receive, send)  # type: ignore[arg-type]
    return sent


async def _reading_app(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _status_and_body(sent: list[Message]) -> tuple[int, dict[str, Any]]:
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(sent[0]["status"]), json.loads(body) if body else {}


@pytest.mark.parametrize(
    ("headers", "chunks", "status", "code"),
    [
        ([(b"content-length", b"10")], [b"x" * 10], 204, None),
        ([(b"content-length", b"11")], [b"x" * 11], 413, "too_large"),
        ([], [b"x" * 6, b"x" * 6], 413, "too_large"),  # no length: counted while read
        ([], [b"x" * 5, b"x" * 5], 204, None),
        ([(b"content-length", b"ten")], [b""], 400, "bad_request"),
    ],
)
def test_body_limit_middleware(
    headers: list[tuple[bytes, bytes]], chunks: list[bytes], status: int, code: str | None
) -> None:
    middleware = BodyLimitMiddleware(_reading_app, max_body_bytes=10, max_blob_bytes=100)
    got_status, body = _status_and_body(asyncio.run(_drive(middleware, headers, chunks)))
    assert got_status == status
    if code:
        assert body["error"]["code"] == code


def test_limit_is_chosen_by_route() -> None:
    middleware = BodyLimitMiddleware(_reading_app, max_body_bytes=10, max_blob_bytes=100)
    assert middleware.limit_for({"method": "PUT", "path": "/v1/blobs/abc"}) == 100
    assert middleware.limit_for({"method": "POST", "path": "/v1/blobs/abc"}) == 10
    assert middleware.limit_for({"method": "PUT", "path": "/v1/orders"}) == 10


# --------------------------------------------------------------------------- logs


def test_log_event_is_one_json_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pasar.market.events"):
        log_event("order.created", order="o1", amount=5, at=Path("/x"))
    record = caplog.records[-1]
    line = json.loads(JsonFormatter().format(record))
    assert line["event"] == "order.created"
    assert line["order"] == "o1" and line["amount"] == 5 and line["at"] == "/x"
    assert line["level"] == "info" and "ts" in line


def test_configure_logging_is_idempotent() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        configure_logging()
        configure_logging()
        ours = [h for h in root.handlers if h.get_name() == "pasar.market.json"]
        assert len(ours) == 1
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
        root.setLevel(level)


def test_dotted_locations() -> None:
    assert dotted(("body", "order", 0, "gpu")) == "body.order[0].gpu"
    assert dotted(("query", "n")) == "query.n"
    assert dotted(()) == ""


# --------------------------------------------------------------------------- openapi, config, build


def test_openapi_has_one_error_shape(app: FastAPI) -> None:
    schema = call(app, "GET", "/openapi.json").json()
    text = json.dumps(schema)
    assert "HTTPValidationError" not in text
    assert '"422"' not in text
    assert "Error" in schema["components"]["schemas"]
    count = schema["paths"]["/v1/test/count"]["get"]
    assert "requestBody" not in count  # not a signed route
    assert count["responses"]["4XX"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


def test_config_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PASAR_HOME", str(tmp_path / "envhome"))
    config = MarketConfig.build()
    assert config.home == tmp_path / "envhome"
    assert config.db_url == f"sqlite:///{tmp_path / 'envhome' / 'market.db'}"
    assert config.host == "127.0.0.1"
    assert config.port == 8420
    assert not config.devnet
    assert config.max_body_bytes == 1 << 20
    assert config.max_blob_bytes == 256 << 20
    assert config.blobs_dir == tmp_path / "envhome" / "blobs"
    monkeypatch.chdir(tmp_path)
    relative = MarketConfig.build(home="rel", db_url="postgresql+psycopg://db/pasar")
    assert relative.home == tmp_path / "rel"
    assert relative.db_url == "postgresql+psycopg://db/pasar"


def test_build_app_creates_then_reuses_the_market_key(tmp_path: Path) -> None:
    config = MarketConfig.build(home=tmp_path / "home")
    first = build_app(config).state.market_identity
    key_file = tmp_path / "home" / "keys" / "market.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert build_app(config).state.market_identity.account_id == first.account_id


def test_build_app_refuses_an_unknown_preset(tmp_path: Path) -> None:
    with pytest.raises(PasarError) as info:
        build_app(MarketConfig.build(home=tmp_path, preset="nope"))
    assert info.value.code == "unknown_preset"
    assert not (tmp_path / "keys").exists()  # refused before touching anything


def test_listening_url() -> None:
    assert listening_url("127.0.0.1", 8420) == "http://127.0.0.1:8420"
    assert listening_url("::1", 80) == "http://[::1]:80"
