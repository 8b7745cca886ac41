"""The dashboard's HTTP routes under ``/ui`` (and ``/`` → ``/ui`` for browsers).

Server-rendered HTML (Jinja2 templates shipped in this package), one small CSS and one small
JavaScript file (:data:`STATIC`), no build step. A page with ``?fragment=1`` answers only its
``<main>``: the script re-fetches that every few seconds while the page is open (live refresh
by polling; no long-lived connection per viewer).

Pages are public, as the API's reads are (stats, offers, the chain, a job's public part); only
``/ui/me`` needs a sign-in (:mod:`pasar.market.dashboard.signin`), and shows the signed-in
account its own jobs whole, through the same access rule as ``GET /v1/orders/{id}``.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from pasar.api.dashboard import LoginChallenge
from pasar.api.status import ORDER_STATUSES
from pasar.core.errors import PasarError
from pasar.crypto.canonical import INT_MAX
from pasar.market.auth import request_clock, request_signer
from pasar.market.dashboard import signin, views
from pasar.market.dashboard.samples import SampleRing
from pasar.market.dashboard.svg import bar_chart, clock_text, line_chart
from pasar.market.routes.common import service_of

if TYPE_CHECKING:
    from jinja2 import Environment

#: every page spends from its address's request budget, as the API's public reads do
#: (:mod:`pasar.market.ratelimit`): a page costs more than a JSON read, never less
router = APIRouter(include_in_schema=False, dependencies=[Depends(request_signer)])
REFRESH_S = 5
STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
#: only the page's own files: no inline script, no other origin (the JSON data blocks are inert)
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a login URL carries a signed challenge
    "Cache-Control": "no-store",
}
Page = Annotated[int, Query(ge=1, le=100_000)]


def _when(ms: int | None) -> str:
    import time

    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def _short(account: str | None) -> str:
    if not account:
        return "-"
    return account if len(account) <= 16 else f"{account[:9]}…{account[-4:]}"


def _spec_value(value: object, key: str) -> str:
    """A spec field for people: durations in seconds say so, structures as JSON."""
    import json

    if key.endswith("duration") and isinstance(value, int):
        return f"{value} s"
    if isinstance(value, dict | list | bool) or value is None:
        return json.dumps(value)
    return str(value)


def _percent(ratio: str | float) -> str:
    return f"{float(ratio) * 100:.1f} %"


@functools.cache
def _env() -> Environment:
    """The templates' environment, made by the first page: Jinja2 costs a starting market
    ~50 ms of CPU that an API-only start (a devnet, a benchmark) never needs."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("pasar.market.dashboard", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=_when, short=_short, percent=_percent, clock=clock_text, spec_value=_spec_value
    )
    env.globals.update(line_chart=line_chart, bar_chart=bar_chart, refresh_s=REFRESH_S)
    return env


def _signed_in(request: Request) -> str | None:
    """The account of a valid dashboard cookie, else None (an invalid one reads as none)."""
    token = request.cookies.get(signin.COOKIE)
    if not token:
        return None
    try:
        return signin.token_account(
            request.app.state.market_identity, token, request_clock(request)()
        )
    except PasarError:
        return None


def _render(request: Request, template: str, http_status: int = 200, **context: Any) -> Response:
    fragment = request.query_params.get("fragment") == "1"
    html = (
        _env()
        .get_template(template)
        .render(
            fragment=fragment,
            path=request.url.path,
            account=_signed_in(request),
            market=request.app.state.market_identity.account_id,
            **context,
        )
    )
    return HTMLResponse(html, status_code=http_status, headers=HEADERS)


def _error(request: Request, err: PasarError) -> Response:
    return _render(request, "error.html", http_status=err.status, error=err)


def _ring(request: Request) -> SampleRing:
    ring: SampleRing | None = getattr(request.app.state, "dashboard_samples", None)
    if ring is None:
        ring = request.app.state.dashboard_samples = SampleRing()
    return ring


@router.get("/")
def root() -> RedirectResponse:
    """A browser opening the market's address gets the dashboard (the API lives under /v1)."""
    return RedirectResponse("/ui", status_code=307)


@router.get("/ui")
def network(request: Request) -> Response:
    service = service_of(request)
    return _render(
        request, "network.html", live=True, **views.network_page(service, _ring(request))
    )


@router.get("/ui/prices")
def prices(request: Request) -> Response:
    data = views.prices_page(service_of(request), _ring(request))
    return _render(request, "prices.html", live=True, **data)


@router.get("/ui/providers")
def providers(
    request: Request,
    sort: Annotated[str, Query(max_length=20)] = "provider",
    desc: bool = False,
    page: Page = 1,
) -> Response:
    try:
        data = views.providers_page(service_of(request), sort=sort, descending=desc, page=page)
    except PasarError as err:
        return _error(request, err)
    return _render(request, "providers.html", live=True, **data)


@router.get("/ui/providers/{provider_id}")
def provider(request: Request, provider_id: str, page: Page = 1) -> Response:
    try:
        data = views.provider_page(service_of(request), provider_id, page)
    except PasarError as err:
        return _error(request, err)
    return _render(request, "provider.html", live=True, **data)


@router.get("/ui/jobs")
def jobs(
    request: Request,
    page: Page = 1,
    status: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    if status is not None and status not in ORDER_STATUSES:
        err = PasarError(
            f"no job status {status!r}",
            code="invalid_query",
            field="status",
            hint="one of " + ", ".join(ORDER_STATUSES),
        )
        return _error(request, err)
    data = views.jobs_page(service_of(request), page=page, status=status)
    return _render(request, "jobs.html", live=True, statuses=ORDER_STATUSES, **data)


@router.get("/ui/jobs/{order_id}")
def job(request: Request, order_id: str) -> Response:
    try:
        data = views.job_page(service_of(request), order_id)
    except PasarError as err:
        return _error(request, err)
    return _render(request, "job.html", live=True, **data)


@router.get("/ui/chain")
def chain(request: Request, page: Page = 1) -> Response:
    return _render(request, "chain.html", live=True, **views.chain_page(service_of(request), page))


@router.get("/ui/chain/{height}")
def block(request: Request, height: int) -> Response:
    if not 0 <= height <= INT_MAX:
        return _error(request, PasarError("no such height", code="not_found", status=404))
    try:
        data = views.block_page(service_of(request), height)
    except PasarError as err:
        return _error(request, err)
    return _render(request, "block.html", live=False, **data)


# -- signing in -----------------------------------------------------------------------------------


def _used(request: Request) -> signin.UsedChallenges:
    used: signin.UsedChallenges | None = getattr(request.app.state, "dashboard_used", None)
    if used is None:
        used = request.app.state.dashboard_used = signin.UsedChallenges()
    return used


@router.get("/ui/login/challenge")
def login_challenge(request: Request) -> LoginChallenge:
    identity = request.app.state.market_identity
    challenge, expires = signin.make_challenge(identity, request_clock(request)())
    return LoginChallenge(challenge=challenge, market=identity.account_id, expires_at=expires)


@router.get("/ui/login")
def login(
    request: Request,
    challenge: Annotated[str | None, Query(max_length=400)] = None,
    account: Annotated[str | None, Query(max_length=80)] = None,
    sig: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """With a signed challenge: sign in (a cookie) and go to /ui/me; without: say how."""
    if challenge is None and account is None and sig is None:
        return _render(request, "login.html", live=False)
    now = request_clock(request)()
    identity = request.app.state.market_identity
    try:
        answer = signin.check_answer(identity, challenge or "", account or "", sig or "", now)
        _used(request).spend(answer, now)
    except PasarError as err:
        return _error(request, err)
    response = RedirectResponse("/ui/me", status_code=303)
    response.set_cookie(
        signin.COOKIE,
        signin.make_token(identity, answer.account, now),
        max_age=signin.TOKEN_TTL_MS // 1000,
        path="/ui",
        httponly=True,
        samesite="lax",  # sent on the top-level navigation from a terminal's link
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/ui/logout")
def logout() -> Response:
    response = RedirectResponse("/ui", status_code=303)
    response.delete_cookie(signin.COOKIE, path="/ui")
    return response


def _account(request: Request) -> str:
    """The signed-in account; a missing, forged or expired cookie is a 401."""
    token = request.cookies.get(signin.COOKIE)
    if not token:
        raise PasarError(
            "sign in to see your own jobs",
            code="unauthenticated",
            status=401,
            field=signin.COOKIE,
            hint="pasar dashboard login",
        )
    return signin.token_account(request.app.state.market_identity, token, request_clock(request)())


@router.get("/ui/me")
def me(request: Request, page: Page = 1) -> Response:
    try:
        account = _account(request)
    except PasarError as err:
        return _error(request, err)
    data = views.jobs_page(service_of(request), page=page, client=account)
    return _render(request, "me.html", live=True, **data)


@router.get("/ui/me/jobs/{order_id}")
def my_job(request: Request, order_id: str) -> Response:
    try:
        account = _account(request)
        logs_dir = request.app.state.config.home / "logs"
        data = views.my_job_page(service_of(request), account, order_id, logs_dir)
    except PasarError as err:
        return _error(request, err)
    return _render(request, "my_job.html", live=True, **data)


@router.get("/ui/static/{name}")
def static(name: str) -> Response:
    media = STATIC.get(name)
    if media is None:
        return Response(status_code=404)
    data = resources.files("pasar.market.dashboard").joinpath("static", name).read_bytes()
    return Response(data, media_type=media, headers={"Cache-Control": "max-age=300"})
