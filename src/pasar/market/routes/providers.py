"""Providers: register, stake, list as offers (the offer query language), and the push feed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Mapping
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request

from pasar.api.feed import FeedEvent, FeedPage
from pasar.api.offers import Offer, OfferList, ProviderInfo
from pasar.api.stake import BidDepositView, SlashView, StakeView, UnbondingView
from pasar.api.txs import TxAnswer
from pasar.core import bid_deposits
from pasar.core.errors import PasarError
from pasar.core.market_records import ProviderRecord
from pasar.core.query import apply as apply_query
from pasar.core.resources import normalize_gpu_name
from pasar.core.slash_log import slashed_total
from pasar.core.stake import required_stake
from pasar.core.state import MarketState
from pasar.crypto.canonical import INT_MAX  # the database stores 64-bit integers
from pasar.crypto.envelope import VerifiedEnvelope
from pasar.crypto.identity import parse_account_id
from pasar.market.access import check_own_account
from pasar.market.auth import Reader, Signer, signed_envelope
from pasar.market.openapi import signs
from pasar.market.routes import feed_views
from pasar.market.routes.common import service_of, submit_typed

_T = TypeVar("_T")

router = APIRouter(tags=["providers"])
Signed = Annotated[VerifiedEnvelope, Depends(signed_envelope)]
MAX_WAIT_S = 30.0


@router.post(
    "/v1/providers",
    summary="Register a provider, or update its inventory and asks",
    response_model_exclude_unset=True,
    openapi_extra=signs("provider.register"),
)
def register(request: Request, envelope: Signed) -> TxAnswer:
    return submit_typed(request, envelope, "provider.register")


@router.post(
    "/v1/stakes",
    summary="Lock stake (from the spendable balance)",
    response_model_exclude_unset=True,
    openapi_extra=signs("stake"),
)
def stake(request: Request, envelope: Signed) -> TxAnswer:
    return submit_typed(request, envelope, "stake")


@router.post(
    "/v1/unstakes",
    summary="Start unbonding stake (slashable until the cooldown ends)",
    response_model_exclude_unset=True,
    openapi_extra=signs("unstake"),
)
def unstake(request: Request, envelope: Signed) -> TxAnswer:
    """Refused (409 ``stake_in_use``) while the stake backs running leases; the amount is
    withdrawable after the preset's ``unbonding_s`` with ``POST /v1/unstakes/withdraw``."""
    return submit_typed(request, envelope, "unstake")


@router.post(
    "/v1/unstakes/withdraw",
    summary="Withdraw stake whose unbonding has ended",
    response_model_exclude_unset=True,
    openapi_extra=signs("unbonded.withdraw"),
)
def withdraw_unbonded(request: Request, envelope: Signed) -> TxAnswer:
    return submit_typed(request, envelope, "unbonded.withdraw")


def offer_rows(
    state: MarketState, provider: ProviderRecord, *, online: bool
) -> list[dict[str, Any]]:
    """One offer per GPU model a provider has free (or one CPU offer): what ``pasar offers``
    filters with the query language. Prices are exact Decimals of the provider's asks.
    ``online``: the provider takes work and the market heard from it within the grace."""
    free = provider.free()
    base = {
        "online": online,
        "provider": provider.id,
        "cpus": free.cpus,
        "memory": free.memory_gb,
        "disk": free.disk_gb,
        "reliability": Decimal(provider.reputation.score.numerator)
        / Decimal(provider.reputation.score.denominator),
        "reputation": Decimal(provider.reputation.score.numerator)
        / Decimal(provider.reputation.score.denominator),
        "score": provider.score,
        "region": provider.region,
        "limits": provider.attributes.get("limits"),  # per job (cgroup) or per process
        "stake": state.stake_of(provider.id),
        "rentable": True,
        "verified": False,
        "capacity": provider.capacity.describe(),
    }
    rows: list[dict[str, Any]] = []
    counts: dict[Any, int] = {}
    for model in free.devices():
        counts[model] = counts.get(model, 0) + 1
    for model, count in counts.items():
        unit = provider.asks.unit_for(model)
        rows.append(
            {
                **base,
                "gpu_name": model.canonical,
                "num_gpus": count,
                "gpu_ram": model.vram_gb,
                "total_gpu_ram": model.vram_gb * count,
                "dph": None if unit is None else unit * count,
                "dph_per_gpu": unit,
                "interface": [model.interface.value.lower()] if model.interface else [],
                "rentable": unit is not None,
            }
        )
    if not rows:
        cpu = provider.asks.cpu_core
        dph = None if cpu is None else cpu.scale(int(free.cpus * 1000), 1000)
        rows.append(
            {
                **base,
                "gpu_name": None,
                "num_gpus": 0,
                "gpu_ram": 0,
                "dph": dph,
                "rentable": dph is not None,
            }
        )
    return rows


def _offer(row: Mapping[str, object]) -> Offer:
    """An offer row (exact Decimals and Money) as its wire model: quantities and prices as
    text; a CPU offer's missing GPU fields stay missing."""
    out: dict[str, object] = {}
    for key, value in row.items():
        if isinstance(value, Decimal):
            out[key] = str(value.normalize()) if value == value.to_integral() else str(value)
        elif hasattr(value, "to_json"):
            out[key] = value.to_json()
        else:
            out[key] = value
    return Offer.model_validate(out)


@router.get(
    "/v1/providers",
    summary="Offers, filtered by the offer query language",
    response_model_exclude_unset=True,  # a CPU offer has no GPU-only fields
)
def offers(
    request: Request,
    q: Annotated[str, Query(max_length=4096, description="e.g. gpu=A100:2 dph<1.5")] = "",
    order: Annotated[str | None, Query(max_length=200, description="e.g. dph,score-")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    include_offline: Annotated[
        bool,
        Query(description="also list providers that are draining, full or silent (operators)"),
    ] = False,
) -> OfferList:
    """Offers of providers that take work now. A provider that drains (or is full) says so by
    registering ``available: false``; one that died without a word is left out once its feed
    has been silent for the heartbeat grace. Either would only be awarded leases it then loses,
    so a renter should not be shown them; ``include_offline`` lists them with ``online: false``.
    A provider failing its capacity proofs is left out the same way (its offers' ``capacity``
    says why).
    """
    service = service_of(request)
    offline = service.offline_providers()
    with service.lock:
        state = service.state
        rows = [
            row
            for p in state.providers.values()
            if include_offline
            or (p.available and p.id not in offline and p.capacity.state != "failing")
            for row in offer_rows(state, p, online=p.available and p.id not in offline)
        ]
    found = apply_query(rows, q, order, limit, normalize=normalize_gpu_name)
    return OfferList(offers=[_offer(r) for r in found], count=len(found))


@router.get(
    "/v1/providers/{provider_id}", summary="One provider", response_model_exclude_unset=True
)
def provider(request: Request, provider_id: str) -> ProviderInfo:
    account = parse_account_id(provider_id, field="provider_id")
    service = service_of(request)
    with service.lock:
        record = service.state.providers.get(account)
        if record is None:
            raise PasarError(f"no provider {account}", code="not_found", status=404)
        online = record.available and service.liveness.online(account)
        return ProviderInfo(
            provider=account,
            inventory=record.inventory.describe_gpus(),
            free=record.free().describe_gpus(),
            cpus=str(record.inventory.cpus),
            memory_gb=str(record.inventory.memory_gb),
            score=record.score,
            region=record.region,
            reputation=str(record.reputation.score),
            running=sorted(record.running),
            available=record.available,
            online=online,
            offers=[_offer(r) for r in offer_rows(service.state, record, online=online)],
            stake=service.state.stake_of(account).to_json(),
            capacity=record.capacity.to_json(),
        )


@router.get(
    "/v1/providers/{provider_id}/stake",
    summary="A provider's stake, unbonding, slashes and bid deposits (its own)",
    response_model_exclude_unset=True,
)
def stake_view(request: Request, provider_id: str, reader: Reader) -> StakeView:
    """Bonded stake and what the stake rule requires of it, stake unbonding (with when it is
    free), every slash and why, and the bid deposits held. The provider's own (signed):
    deposits name the orders it bid on, and sealed bids stay sealed."""
    account = parse_account_id(provider_id, field="provider_id")
    service = service_of(request)
    state = service.state
    check_own_account(state, account, reader)
    currency = service.preset.currency
    with service.lock:
        record = state.providers.get(account)
        need = None if record is None else required_stake(state.preset.stake_rule, record.inventory)
        entries = state.slashes.get(account, [])
        return StakeView(
            provider=account,
            currency=currency,
            stake=state.stake_of(account).to_json(),
            required=None if need is None else need.to_json(),
            unbonding=[
                UnbondingView(amount=m.to_json(), release_at=at)
                for at, m in state.ledger.unbonding(account, currency)
            ],
            slashed=slashed_total(entries, currency).to_json(),
            slashes=[SlashView.model_validate(e.to_json()) for e in entries],
            bid_deposits=[
                BidDepositView(order_id=o, amount=m.to_json())
                for o, m in bid_deposits.held_by(state, account)
            ],
        )


async def _wait_unless_hung_up(request: Request, waiting: Awaitable[_T]) -> _T | None:
    """``waiting``'s result, or None as soon as the client hangs up: a SIGKILLed provider's
    kernel closes its connection, and the market should know then, not when the poll times
    out (see :mod:`pasar.market.liveness`)."""
    wait_task = asyncio.ensure_future(waiting)
    hang_up = asyncio.ensure_future(_hung_up(request))
    try:
        await asyncio.wait({wait_task, hang_up}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hang_up.cancel()
    if wait_task.done():
        return wait_task.result()
    wait_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await wait_task
    return None


async def _hung_up(request: Request) -> None:
    """Returns once the ASGI server reports the client gone (a GET's body is empty, so every
    other message is the end of that body)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.get(
    "/v1/providers/{provider_id}/feed",
    summary="Long-poll for orders and leases",
    response_model_exclude_unset=True,
)
async def feed(
    request: Request,
    provider_id: str,
    reader: Signer,
    after: Annotated[int, Query(ge=0, le=INT_MAX)] = 0,
    timeout: Annotated[float, Query(ge=0, le=MAX_WAIT_S)] = 25.0,
) -> FeedPage:
    """Events for this provider after ``after`` (its last seen ``seq``), waiting up to
    ``timeout`` seconds for the first one. Push, not polling: the request returns as soon as the
    market publishes something for this provider. A ``match`` carries the ``views`` of the
    leases it gave this provider (:mod:`pasar.market.routes.feed_views`)."""
    account = parse_account_id(provider_id, field="provider_id")
    if reader != account:
        raise PasarError(
            "a provider's feed is its own: sign the request with its key",
            code="forbidden",
            status=403,
            hint="pasar provider start follows its feed itself",
        )
    service = service_of(request)
    notifier = service.notifier
    if after > notifier.head:  # the market restarted: its feed numbering began again
        after = 0
    async with service.waiters.slot(reader):
        # remember only registered providers (a dict lookup: no need to block the loop)
        if account not in service.state.providers:
            events = await notifier.wait(after, timeout_s=timeout, provider=account)
        else:
            # an open poll is a sign of life; its end is one only if the provider is still there
            with service.liveness.polling(account) as poll:
                waited = await _wait_unless_hung_up(
                    request, notifier.wait(after, timeout_s=timeout, provider=account)
                )
                poll.dropped = waited is None
            # hung up: nobody is listening, and the liveness now suspects the provider
            events = waited or []
            if waited is not None and not await request.is_disconnected():
                service.liveness.heard(account)
    head = events[-1].seq if events else max(after, 0)
    page = [FeedEvent.model_validate(e.to_dict()) for e in events]
    won = feed_views.won_leases(events, account)  # its own poll (checked above): its new leases
    if won:
        await feed_views.add_views_async(service, request.app.state.blobs, account, page, won)
    return FeedPage(events=page, next=head)
