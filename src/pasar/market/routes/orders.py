"""Orders: quote, create from a signed job spec, read, list, cancel, explain, bid, wait."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from pasar.api.orders import (
    AuctionView,
    Explain,
    ExplainRow,
    OrderList,
    OrderView,
    OrderWait,
    PublicOrderView,
)
from pasar.api.quote import QuoteRequest, QuoteResponse
from pasar.api.receipts import file_entries
from pasar.api.status import TERMINAL_ORDER, order_status
from pasar.api.txs import TxAnswer
from pasar.core.errors import PasarError
from pasar.core.market_records import Applied, OrderRecord
from pasar.core.private_part import is_tolerant
from pasar.core.quotes import quote_order, uncapped_spec
from pasar.core.spec import JobSpec
from pasar.core.state import MarketState
from pasar.crypto.canonical import INT_MAX  # the database stores 64-bit integers
from pasar.crypto.envelope import VerifiedEnvelope
from pasar.crypto.hashing import is_sha256_hex
from pasar.market.access import View, check_order_party, is_operator, order_view_for
from pasar.market.attachments import store_attachments
from pasar.market.auth import Reader, SignedBody, Signer, signed_envelope, verified_with_attachments
from pasar.market.blobs import small_blobs
from pasar.market.engine import Offline
from pasar.market.openapi import signs
from pasar.market.private_parts import Revealed
from pasar.market.routes.common import check_typed, service_of, submit_typed, tx_answer
from pasar.market.routes.leases import lease_view, require_blobs, require_owned
from pasar.market.service import MarketService, Pending
from pasar.market.thread_hop import ThreadHop

router = APIRouter(tags=["orders"])
Signed = Annotated[VerifiedEnvelope, Depends(signed_envelope)]
MAX_WAIT_S = 30.0
#: what ``wait?status_only=true`` sleeps through: no order's or lease's status changes with them
NO_STATUS_CHANGE = frozenset({"heartbeat", "logs", "liveness.challenge", "liveness.answer"})
#: The orders' durable commits: one thread, so that every order applied while a commit is under
#: way shares the next one (group commit), and the event loop never waits for a disk.
_COMMITS = ThreadHop(1, "pasar-order-commits")
#: Storing an order's attachments (a disk sync per request) off the event loop.
_BLOB_WRITES = ThreadHop(8, "pasar-order-blobs")


def order_view(
    service: MarketService, record: OrderRecord, view: View = "full"
) -> OrderView | PublicOrderView:
    """The order as its parties see it (``full``), or as an invited bidder does (``public``:
    the requirements a bid needs, nothing of the command, environment, inputs or leases)."""
    if view == "public":
        return public_order_view(service.state, record)
    return full_order_view(service, record)


def full_order_view(service: MarketService, record: OrderRecord) -> OrderView:
    """The whole order: the chain's public part with the private part the market keeps."""
    state = service.state
    escrow = state.held_for(record)
    return OrderView(
        order_id=record.id,
        client=record.client,
        status=order_status(record.status),
        mechanism=record.mechanism,
        takes_bids=state.mechanism_of(record).takes_bids,
        spec=service.private.spec_of(record),
        private=record.private,
        created_at=record.created_at,
        deadline=record.deadline,
        unfilled=record.unfilled,
        escrow=escrow.to_json(),
        leases=[lease_view(state, state.leases[x]) for x in record.leases],
        note=record.note,
        inputs=file_entries(service.private.inputs_of(record)),
        auction=auction_view(record),
        **({"steps": list(record.steps)} if record.steps else {}),
    )


def auction_view(record: OrderRecord) -> AuctionView | None:
    """The open auction window (who is invited, how many answered), if the order has one."""
    window = record.window
    if window is None:
        return None
    return AuctionView(
        opened_at=window.opened_at,
        deadline=window.deadline,
        invited=sorted(window.invited),
        answered=len(window.bids),
    )


def public_order_view(state: MarketState, record: OrderRecord) -> PublicOrderView:
    return PublicOrderView(
        order_id=record.id,
        client=record.client,
        status=order_status(record.status),
        mechanism=record.mechanism,
        takes_bids=state.mechanism_of(record).takes_bids,
        spec=record.spec.public_dict(),
        created_at=record.created_at,
        deadline=record.deadline,
        unfilled=record.unfilled,
        auction=auction_view(record),
    )


def _record(state: MarketState, order_id: str) -> OrderRecord:
    record = state.orders.get(order_id)
    if record is None:
        raise PasarError(
            f"no order {order_id!r}",
            code="not_found",
            status=404,
            field="order_id",
            hint="order ids look like o-0123456789abcdef",
        )
    return record


@router.post(
    "/v1/orders/quote",
    summary="What an order for a spec would escrow, whom it would match, at what price",
    response_model=QuoteResponse,
)
def quote(request: Request, body: QuoteRequest, reader: Reader) -> QuoteResponse:
    """The market's own preview of an order (nothing is escrowed or stored): the spec checks,
    escrow, screening and clearing an order runs, with every loser's reason. Public, like the
    offers it reveals; a signed request quotes for its signer (its own provider is left out)."""
    service = service_of(request)
    # a spec without a price cap is quoted uncapped: the client sets its cap from the prices
    data = uncapped_spec(body.spec, service.state.preset.currency)
    spec = JobSpec.from_public(data)  # parsed before the lock is taken
    # liveness asked only about the providers the clearing examines, as the engine does
    offline = Offline(service.liveness.online)
    with service.lock:
        quoted = quote_order(service.state, spec, client=reader or body.client, offline=offline)
    return QuoteResponse.of(quoted)


@router.post(
    "/v1/orders",
    summary="Create an order from a signed job spec (escrows the max)",
    response_model=TxAnswer,
    response_model_exclude_unset=True,
    openapi_extra=signs("order.create", attachments=True),
)
async def create(request: Request, raw: SignedBody) -> Response:
    """The body carries the spec's public part and the sha256 of its private part, a blob the
    signer uploaded (:mod:`pasar.core.private_part`). The private part is read and checked
    here — it must complete the public part to a valid spec, and every input it names must be
    uploaded by the signer — so an order the providers could not run is refused at once."""
    return Response(await create_order(request, raw), media_type="application/json")


async def create_order(request: Request, raw: bytes) -> bytes:
    """The whole of ``POST /v1/orders`` after the body is read: the JSON answer, sent only once
    the order is durable. Shared by the route and :mod:`pasar.market.order_fast_path`.

    The busiest write of the API, so its path is lean: it runs on the event loop (parse,
    signature, private part, apply and the match on arrival: CPU, and reads of small blobs
    the page cache holds), except what waits for a disk — storing the attachments and the
    group commit — each in a thread of its own pool. A worker thread per order cost more than
    the work it moved: every order paid the thread's wake-up, and the GIL passed back and forth
    between the loop and the worker at each of its blocking calls (``benchmarks/bench_api.py``
    rose by about a third without them). The answer is validated once and written as FastAPI
    would write the ``response_model``, not validated a second time."""
    envelope, attached = verified_with_attachments(request, raw)
    service = service_of(request)
    if attached:
        blobs = request.app.state.blobs
        await _BLOB_WRITES.run(store_attachments, blobs, attached, envelope.signer)
    private = _private_part_of(request, envelope)
    check_typed(envelope, "order.create")
    pending = service.apply(envelope, private=private)
    # shielded: a client that goes away does not stop its order's commit and announcement
    answer = tx_answer(await asyncio.shield(_durable(service, pending)))
    # the feed's cursor once the order (and its match on arrival) was published: the client's
    # first wait long-polls from here instead of first reading the order to learn it
    answer.next = service.notifier.head
    return answer.model_dump_json(exclude_unset=True, by_alias=True).encode()


async def _durable(service: MarketService, pending: Pending) -> Applied:
    """Make ``pending`` durable — on the loop when the commit is quick and nobody else's is
    under way, else waiting in the commit thread — then announce it (unless a commit made
    meanwhile already carried it: then only announce)."""
    # one more turn of the loop before committing (this shielded task itself started a turn
    # after the order applied): orders whose requests were read meanwhile apply first, and the
    # first commit carries them all (group commit on the loop: ~9% more orders a second in
    # benchmarks/bench_api.py, and less CPU per order, than committing at once)
    await asyncio.sleep(0)
    if not service.make_durable_at_once(pending.ticket):
        await _COMMITS.run(service.make_durable, pending.ticket)
    return service.announce(pending)


def _private_part_of(request: Request, envelope: VerifiedEnvelope) -> Revealed | None:
    body = envelope.body
    sha = body.get("private")
    if not is_sha256_hex(sha) or not isinstance(body.get("spec"), dict):
        return None  # the state machine reports the shape error with its field
    blobs = request.app.state.blobs
    if body["spec"].get("privacy") == "sealed":  # ciphertext: the market checks who owns it
        named = [sha, *(x for x in body.get("blobs", []) if is_sha256_hex(x))]
        require_blobs(request, [{"sha256": x} for x in named], "blobs")
        for i, named_sha in enumerate(named):
            where = "body.private" if i == 0 else "body.blobs"
            require_owned(blobs, named_sha, envelope.signer, where)
        return None
    present = blobs.exists(sha)
    if present:  # a missing one: read_private_part says so
        require_owned(blobs, sha, envelope.signer, "body.private")
    revealed = service_of(request).private.recent.reveal(
        blobs, sha, body["spec"], source="private.spec", present=present
    )
    part = revealed.part
    tolerant = is_tolerant(revealed.spec)
    if tolerant != body.get("tolerant", False):
        raise PasarError(
            f"tolerant must say whether the private part's spec has compare rules ({tolerant})",
            code="invalid_tx",
            status=422,
            field="body.tolerant",
        )
    items = list(part.inputs)
    require_blobs(request, items, "private.inputs")
    for i, item in enumerate(items):
        require_owned(blobs, str(item["sha256"]), envelope.signer, f"private.inputs[{i}]")
    return revealed


@router.get(
    "/v1/orders",
    summary="List the signer's orders (the operator: anyone's)",
    response_model_exclude_unset=True,  # a lease's spec only in GET /v1/leases/{id}
)
def list_orders(
    request: Request,
    reader: Signer,
    client: Annotated[str | None, Query(max_length=80)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> OrderList:
    service = service_of(request)
    with service.lock:
        state = service.state
        if not is_operator(state, reader):
            if client not in (None, reader):
                raise PasarError(
                    "only the operator lists another account's orders",
                    code="forbidden",
                    status=403,
                    field="client",
                )
            client = reader
        rows: list[OrderView] = []
        for record in reversed(state.orders.values()):  # newest first, stops at the limit
            if len(rows) >= limit:
                break
            if (client is None or record.client == client) and (
                status is None or record.status == status
            ):
                rows.append(full_order_view(service, record))
    return OrderList(orders=rows)


@router.get(
    "/v1/orders/{order_id}",
    summary="One order with its leases (its parties only)",
    response_model_exclude_unset=True,  # a lease's spec only in GET /v1/leases/{id}
)
def get_order(request: Request, order_id: str, reader: Reader) -> OrderView | PublicOrderView:
    service = service_of(request)
    with service.lock:
        record = _record(service.state, order_id)
        return order_view(service, record, order_view_for(service.state, record, reader))


@router.get(
    "/v1/orders/{order_id}/wait",
    summary="Long-poll until the order changes",
    response_model_exclude_unset=True,  # a lease's spec only in GET /v1/leases/{id}
)
async def wait_order(
    request: Request,
    order_id: str,
    reader: Reader,
    *,
    after: Annotated[int, Query(ge=0, le=INT_MAX)] = 0,
    timeout: Annotated[float, Query(ge=0, le=MAX_WAIT_S)] = 25.0,
    status_only: Annotated[
        bool,
        Query(description="wake only when a status changes, not for heartbeats or log lines"),
    ] = False,
) -> OrderWait:
    service = service_of(request)
    with service.lock:
        record = _record(service.state, order_id)
        view = order_view_for(service.state, record, reader)
        ended = order_status(record.status) in TERMINAL_ORDER
    notifier = service.notifier
    if after > notifier.head:
        after = 0
    ignore = NO_STATUS_CHANGE if status_only else frozenset()
    if ended:  # an order that ended changes no more: its view at once, whatever ``after``
        found = notifier.events_after(after, order=order_id)
        events = [e for e in found if e.type not in ignore]
    else:
        async with service.waiters.slot(reader):
            events = await notifier.wait(after, timeout_s=timeout, order=order_id, ignore=ignore)
    with service.lock:
        shown = order_view(service, _record(service.state, order_id), view)
    if isinstance(shown, OrderView) and shown.status == "done" and reader == shown.client:
        inline = small_blobs(request.app.state.blobs, settled_outputs(shown))  # off the lock
        if inline:  # else unset: not in the answer
            shown.inline_outputs = inline
    return OrderWait(order=shown, next=events[-1].seq if events else after)


def settled_outputs(view: OrderView) -> list[tuple[str, int | None]]:
    """``(sha256, size)`` of every output the settled leases' receipts list, each one blob;
    nothing if any comes in parts (the receipts are untrusted JSON: anything odd, nothing)."""
    found: list[tuple[str, int | None]] = []
    for lease in view.leases:
        if lease.status != "settled" or lease.receipt is None:
            continue
        outputs = lease.receipt.get("outputs")
        for item in outputs if isinstance(outputs, list) else ():
            sha, size = (item.get("sha256"), item.get("size")) if isinstance(item, dict) else (0, 0)
            if not is_sha256_hex(sha) or item.get("parts") or type(size) is not int:
                return []
            found.append((str(sha), size))
    return found


@router.post(
    "/v1/orders/{order_id}/cancel",
    summary="Cancel: bill verified seconds, refund rest",
    response_model_exclude_unset=True,
    openapi_extra=signs("order.cancel"),
)
def cancel(request: Request, order_id: str, envelope: Signed) -> TxAnswer:
    return submit_typed(request, envelope, "order.cancel", order_id=order_id)


@router.post(
    "/v1/orders/{order_id}/steps",
    summary="Run one more command on a running cluster's head",
    response_model_exclude_unset=True,
    openapi_extra=signs("cluster.exec"),
)
def cluster_exec(request: Request, order_id: str, envelope: Signed) -> TxAnswer:
    """``pasar cluster exec``: the command is a blob the client uploaded (it stays private:
    the step names its sha256, and only the order's parties may read it)."""
    command = envelope.body.get("command")
    if is_sha256_hex(command):
        require_blobs(request, [{"sha256": command}], "command")
        require_owned(request.app.state.blobs, command, envelope.signer, "command")
    return submit_typed(request, envelope, "cluster.exec", order_id=order_id)


@router.get("/v1/orders/{order_id}/explain", summary="Why each provider did or did not match")
def explain(request: Request, order_id: str, reader: Reader) -> Explain:
    """Each provider: whether it fits now, its price for this order, and the reason recorded
    at the last clearing (or why it cannot take part)."""
    service = service_of(request)
    with service.lock:
        state = service.state
        record = _record(state, order_id)
        check_order_party(state, record, reader)
        candidates, reasons = state.candidates(record, service.offline_providers())
        providers: list[ExplainRow] = []
        for c in candidates:
            providers.append(
                ExplainRow(
                    provider=c.id,
                    fits=True,
                    price_per_hour=None if c.price_per_hour is None else c.price_per_hour.to_json(),
                    won=any(state.leases[x].provider == c.id for x in record.leases),
                    reason=record.reasons.get(c.id),
                    # a spec with resources.alternatives: the one this provider would satisfy
                    **({"alternative": c.alternative} if c.alternative is not None else {}),
                )
            )
        for provider, reason in reasons.items():
            providers.append(
                ExplainRow(
                    provider=provider,
                    fits=False,
                    price_per_hour=None,
                    won=False,
                    reason=record.reasons.get(provider, reason),
                )
            )
        return Explain(
            order_id=record.id,
            status=order_status(record.status),
            mechanism=record.mechanism,
            request=record.order.describe(),
            max_price_per_hour=record.order.max_price_per_hour.to_json(),
            note=record.note,
            providers=providers,
        )


@router.post(
    "/v1/orders/{order_id}/bids",
    summary="A sealed bid (or a decline) in an auction",
    response_model_exclude_unset=True,
    openapi_extra=signs("bid"),
)
def bid(request: Request, order_id: str, envelope: Signed) -> TxAnswer:
    return submit_typed(request, envelope, "bid", order_id=order_id)


@router.post(
    "/v1/orders/{order_id}/approve",
    summary="Approve a held result (verification: approve): its provider is paid",
    response_model_exclude_unset=True,
    openapi_extra=signs("result.approve"),
)
def approve(request: Request, order_id: str, envelope: Signed) -> TxAnswer:
    return submit_typed(request, envelope, "result.approve", order_id=order_id)


@router.post(
    "/v1/orders/{order_id}/reject",
    summary="Reject a held result: not paid, the shard re-run free on another provider",
    response_model_exclude_unset=True,
    openapi_extra=signs("result.reject"),
)
def reject(request: Request, order_id: str, envelope: Signed) -> TxAnswer:
    return submit_typed(request, envelope, "result.reject", order_id=order_id)
