"""The dashboard's pages and page builders, on an in-process market (FastAPI's TestClient):
the numbers are the API's (``/v1/stats``), lists are pages, a job's private parts never reach
a public page, and sign-in refuses forged, expired, replayed and other accounts' tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pasar.api.dashboard import login_message
from pasar.client.client import Client
from pasar.client.transport import Transport
from pasar.crypto.identity import Identity
from pasar.market.config import MarketConfig
from pasar.market.dashboard import signin, views
from pasar.market.dashboard.samples import SampleRing
from pasar.market.serve import build_app

URL = "http://testserver"
SECRET = "hunter2-private-token"
PROVIDER_BODY: dict[str, Any] = {
    "type": "provider.register",
    "inventory": {"gpus": {"A100-80GB": 2}, "cpus": 16, "memory_gb": 64, "disk_gb": 200},
    "asks": {"gpu": {"A100-80GB": "1.50 USDC"}, "cpu_core": "0.05 USDC"},
    "score": 100,
}


def job_spec(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "run": f"echo {SECRET}",
        "envs": {"API_TOKEN": SECRET},
        "max_price_per_hour": "1 USDC",
        "max_duration": "1m",
    }


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A devnet market with one GPU provider and two clients' jobs (one leased)."""
    tmp = tmp_path_factory.mktemp("dash")
    app = build_app(MarketConfig(home=tmp / "m", db_url=f"sqlite:///{tmp / 'm.db'}", devnet=True))
    with TestClient(app, base_url=URL) as http:
        provider = Identity.generate()
        Transport(URL, http=http).post_signed("/v1/providers", PROVIDER_BODY, provider)
        alice = Client(transport=Transport(URL, http=http), identity=Identity.generate())
        bob = Client(transport=Transport(URL, http=http), identity=Identity.generate())
        for who in (alice, bob):
            who.faucet("100 USDC")
        jobs = [alice.launch(job_spec("a1")), alice.launch(job_spec("a2"))]
        bob_job = bob.launch(job_spec("b1"))
        app.state.engine.run_once()  # the matching the engine's loop would do
        app.state.engine.seal()  # and a block
        yield {
            "app": app,
            "http": http,
            "alice": alice,
            "bob": bob,
            "provider": provider,
            "alice_jobs": [j.id for j in jobs],
            "bob_job": bob_job.id,
            "home": tmp / "m",
        }


def sign_in(http: TestClient, who: Identity) -> str:
    """The dashboard token ``who`` gets by signing a fresh challenge (what the CLI does)."""
    challenge = http.get("/ui/login/challenge").json()["challenge"]
    sig = who.sign(login_message(challenge)).hex()
    answer = http.get(
        "/ui/login",
        params={"challenge": challenge, "account": who.account_id, "sig": sig},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    cookie = answer.cookies.get(signin.COOKIE)
    assert cookie and "httponly" in answer.headers["set-cookie"].lower()
    return cookie


def page(http: TestClient, path: str, token: str | None = None, status: int = 200) -> str:
    cookies = {signin.COOKIE: token} if token else {}
    http.cookies.clear()
    reply = http.get(path, cookies=cookies)
    assert reply.status_code == status, reply.text[:500]
    assert reply.headers["content-type"].startswith("text/html")
    return reply.text


def test_root_redirects_browsers_to_the_dashboard_and_v1_is_unchanged(market: Any) -> None:
    http = market["http"]
    assert http.get("/", follow_redirects=False).headers["location"] == "/ui"
    assert http.get("/v1/stats").json()["providers"] == 1


def test_network_table_is_the_stats_api(market: Any) -> None:
    http = market["http"]
    stats = http.get("/v1/stats").json()
    html = page(http, "/ui")
    for key in ("providers", "gpus", "free_gpus", "h100", "a100", "cpus", "free_cpus"):
        found = re.search(rf'data-stat="{key}">([^<]*)<', html)
        assert found and found.group(1) == str(stats[key]), key
    a100 = next(m for m in stats["models"] if m["model"] == "A100")
    assert a100["min_ask_per_hour"] == "1.50 USDC"
    assert "1.50 USDC" in html and "GPUs" in html
    assert "<svg" in html or "no data yet" in html


def test_prices_page_draws_the_sampled_asks_with_their_numbers(market: Any) -> None:
    service = market["app"].state.service
    ring = SampleRing()
    data = views.prices_page(service, ring)
    assert [price for _, price in data["ask_chart"]["A100"]] == [1.5]
    html = page(market["http"], "/ui/prices")
    assert 'aria-label="median ask (USDC/GPU-h)"' in html and "1.50 USDC/GPU-h" in html


def test_fragment_is_only_the_main_part(market: Any) -> None:
    html = page(market["http"], "/ui?fragment=1")
    assert "<html" not in html and 'data-stat="providers"' in html


def test_every_public_page_hides_private_spec_parts(market: Any) -> None:
    http = market["http"]
    job = market["alice_jobs"][0]
    for path in ("/ui", "/ui/jobs", f"/ui/jobs/{job}", "/ui/providers", "/ui/prices", "/ui/chain"):
        assert SECRET not in page(http, path), path
    html = page(http, f"/ui/jobs/{job}")
    assert job in html and "max_duration" in html


def test_builders_cap_their_lists(market: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    service = market["app"].state.service
    monkeypatch.setattr(views, "PAGE", 2)
    first = views.jobs_page(service, page=1)
    assert len(first["rows"]) == 2 and first["more"]
    second = views.jobs_page(service, page=2)
    assert len(second["rows"]) == 1 and not second["more"]
    assert {r["order_id"] for r in first["rows"] + second["rows"]} == {
        *market["alice_jobs"],
        market["bob_job"],
    }


def test_providers_page_sorts_and_links(market: Any) -> None:
    http = market["http"]
    account = market["provider"].account_id
    html = page(http, "/ui/providers?sort=stake&desc=true")
    assert f'data-provider="{account}"' in html and "1.50 USDC" not in html.split("<table")[0]
    assert page(http, "/ui/providers?sort=bogus", status=400)
    detail = page(http, f"/ui/providers/{account}")
    assert "A100" in detail and "score" in detail
    page(http, "/ui/providers/pa1nope", status=400)


def test_chain_pages_list_blocks_with_their_data(market: Any) -> None:
    http = market["http"]
    service = market["app"].state.service
    head = service.store.head_block()
    assert head is not None
    html = page(http, "/ui/chain")
    assert f'data-height="{head.height}"' in html
    block = page(http, f"/ui/chain/{head.height}")
    assert head.hash in block and 'id="block-data"' in block
    page(http, "/ui/chain/999999", status=404)
    audit = service.verified_at_start  # the market's own check of its log at start
    assert audit is not None
    assert f"{audit.blocks} blocks' signatures and links" in html
    assert f"{audit.txs} transactions' signatures" in html


def test_signed_in_client_sees_its_own_job_whole(market: Any) -> None:
    http = market["http"]
    token = sign_in(http, market["alice"].identity)
    mine = page(http, "/ui/me", token)
    assert all(j in mine for j in market["alice_jobs"]) and market["bob_job"] not in mine
    own = page(http, f"/ui/me/jobs/{market['alice_jobs'][0]}", token)
    assert SECRET in own  # the spec's private part: its own client reads it


def test_sign_in_refuses_forged_expired_replayed_and_foreign_tokens(market: Any) -> None:
    http = market["http"]
    app = market["app"]
    alice, bob = market["alice"].identity, market["bob"].identity
    token = sign_in(http, alice)
    # another client's job, with a valid token of alice: 403, and nothing of it shown
    foreign = page(http, f"/ui/me/jobs/{market['bob_job']}", token, status=403)
    assert SECRET not in foreign
    # a token naming bob, signed by someone other than the market
    now = app.state.clock()
    forged = signin.make_token(Identity.generate(), bob.account_id, now)
    page(http, f"/ui/me/jobs/{market['bob_job']}", forged, status=401)
    # alice's token edited to say bob
    edited = token.replace(alice.account_id, bob.account_id)
    page(http, "/ui/me", edited, status=401)
    # expired: the market's own token, an hour and a bit old
    stale = signin.make_token(app.state.market_identity, alice.account_id, now - 2 * 3_600_000)
    page(http, "/ui/me", stale, status=401)
    # a challenge is good once
    challenge = http.get("/ui/login/challenge").json()["challenge"]
    params = {
        "challenge": challenge,
        "account": alice.account_id,
        "sig": alice.sign(login_message(challenge)).hex(),
    }
    assert http.get("/ui/login", params=params, follow_redirects=False).status_code == 303
    assert http.get("/ui/login", params=params, follow_redirects=False).status_code == 409
    # bob's signature over a challenge, presented as alice's
    challenge = http.get("/ui/login/challenge").json()["challenge"]
    params = {
        "challenge": challenge,
        "account": alice.account_id,
        "sig": bob.sign(login_message(challenge)).hex(),
    }
    assert http.get("/ui/login", params=params, follow_redirects=False).status_code == 401
    # a challenge the market never gave
    fake = challenge.rsplit(".", 1)[0] + "." + "0" * 128
    params["challenge"] = fake
    params["sig"] = alice.sign(login_message(fake)).hex()
    assert http.get("/ui/login", params=params, follow_redirects=False).status_code == 401


def test_expired_challenge_is_refused() -> None:
    market = Identity.generate()
    who = Identity.generate()
    challenge, expires = signin.make_challenge(market, 1_000)
    sig = who.sign(login_message(challenge)).hex()
    assert signin.check_answer(market, challenge, who.account_id, sig, 1_000).account == (
        who.account_id
    )
    with pytest.raises(Exception, match="expired"):
        signin.check_answer(market, challenge, who.account_id, sig, expires + 1)


def test_sample_ring_is_bounded() -> None:
    ring = SampleRing(size=3, every_ms=10)
    from pasar.api.stats import Stats

    stats = Stats(
        providers=0,
        gpus=0,
        free_gpus=0,
        h100=0,
        a100=0,
        cpus=4,
        free_cpus=2,
        gpu_utilization="0",
        cpu_utilization="0.5",
        models=[],
        jobs={},
        leases_running=1,
    )
    for at in range(0, 100, 5):
        if ring.due(at):
            ring.add(at, stats)
    assert [s.at for s in ring.samples()] == [70, 80, 90]


def test_static_files_ship_with_the_package(market: Any) -> None:
    http = market["http"]
    js = http.get("/ui/static/dashboard.js")
    assert js.status_code == 200 and "crypto.subtle.verify" in js.text
    assert http.get("/ui/static/../routes.py").status_code == 404
    assert Path(views.__file__).with_name("templates").joinpath("base.html").exists()


def test_a_hostile_providers_text_is_escaped(market: Any) -> None:
    """A provider names its own region: markup in it is shown as text, never run (and the
    page's CSP would refuse an inline script anyway)."""
    http = market["http"]
    hostile = Identity.generate()
    body = {**PROVIDER_BODY, "region": '<script>alert("x")</script>'}
    Transport(URL, http=http).post_signed("/v1/providers", body, hostile)
    html = page(http, f"/ui/providers/{hostile.account_id}")
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    reply = http.get(f"/ui/providers/{hostile.account_id}")
    assert "script-src" not in reply.headers["content-security-policy"]  # default-src 'self'
    assert "default-src 'self'" in reply.headers["content-security-policy"]


def test_pages_spend_the_addresss_request_budget(tmp_path: Path) -> None:
    """A client hammering the pages is refused (429) like one hammering the API's reads."""
    config = MarketConfig(
        home=tmp_path / "m", db_url=f"sqlite:///{tmp_path / 'm.db'}", devnet=True, rate_per_s=1
    )
    with TestClient(build_app(config), base_url=URL) as http:
        codes = [http.get("/ui/jobs").status_code for _ in range(5)]
    assert codes[0] == 200 and codes[-1] == 429
