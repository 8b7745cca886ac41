"""The market API as data: each request described once, for the clients and the provider agent.

:class:`Client`, :class:`AsyncClient` and the provider's
:class:`~pasar.provider.market_api.MarketAPI` perform the same :class:`Call` values, each with
one transport method (:meth:`~pasar.client.transport.Transport.perform`): bodies are
:mod:`pasar.api.txs` models, and answers parse into :mod:`pasar.api` models where the caller
reads them. Rather than write every path, parameter and loop twice, the requests are plain
:class:`Call` values and the multi-request procedures (waiting for an order to end, following
logs) are generators that *yield* calls and receive their answers (the sans-I/O style of h11
and httpx's auth flows). Each caller only knows how to perform one call — blocking or awaited
— and drives the same generators, so the sync and async clients behave the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from pasar.api.base import JSONObject, parse
from pasar.api.status import FINAL_LEASE as _FINAL_LEASE
from pasar.api.status import TERMINAL_ORDER, awaiting_approval
from pasar.core.errors import PasarError

if TYPE_CHECKING:
    # The wire models load where a call is built, not with this module: `pasar balance` and
    # `pasar status` need one answer model, not the ~80 transaction bodies and views
    # (issue 14.10). Each function below imports what it builds or parses.
    import httpx

    from pasar.api import txs
    from pasar.api.accounts import Balance
    from pasar.api.checks import CheckView, DisputeView, VerifierInfo
    from pasar.api.dashboard import LoginChallenge
    from pasar.api.feed import FeedPage
    from pasar.api.health import Health
    from pasar.api.leases import Challenge, LeaseView, LogAppended
    from pasar.api.offers import ProviderInfo
    from pasar.api.orders import OrderView, PublicOrderView
    from pasar.api.quote import QuoteResponse
    from pasar.api.stake import StakeView
    from pasar.api.txs import TxAnswer, TxBody

TERMINAL: frozenset[str] = frozenset(TERMINAL_ORDER)
FINAL_LEASE: frozenset[str] = frozenset(_FINAL_LEASE)  # lost and released leases are re-queued
POLL_S = 25.0  # one long poll; the market caps it at 30 s
SLACK_S = 10.0  # added to a long poll's HTTP timeout, so the server answers first

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Param = str | int | float  # a query parameter's value


def _json(response: httpx.Response) -> Any:
    return response.json()


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    """Parse the answer as ``model`` (a 502 ``bad_response`` if it is not one)."""

    def parse_answer(response: httpx.Response) -> M:
        return parse(model, response.json())

    return parse_answer


def _models(model: type[M]) -> Callable[[httpx.Response], list[M]]:
    """Parse the answer as a list of ``model``."""

    def parse_answers(response: httpx.Response) -> list[M]:
        return [parse(model, item) for item in response.json()]

    return parse_answers


def _answer(response: httpx.Response) -> TxAnswer:
    from pasar.api.txs import TxAnswer

    return parse(TxAnswer, response.json())


@dataclass(frozen=True)
class Call(Generic[T]):
    """One HTTP request to the market: a GET with ``params``, a signed POST of ``body``, or an
    unsigned POST of ``json`` (a public query); ``parse`` turns the answer into what the caller
    gets."""

    method: str
    path: str
    params: Mapping[str, Param] = field(default_factory=dict)
    body: TxBody | None = None  # POSTed as a signed envelope
    json: JSONObject | None = None  # POSTed as it is (a public query, not a transaction)
    timeout_s: float | None = None  # None: the transport's default
    parse: Callable[[httpx.Response], T] = _json
    signed: bool = False  # a read of private data: signed by the client's key
    # small blobs the body names, sent beside its envelope (:mod:`pasar.api.attachments`)
    attachments: Mapping[str, bytes] | None = None


def _post(path: str, body: TxBody) -> Call[TxAnswer]:
    return Call("POST", path, body=body, parse=_answer)


@dataclass(frozen=True)
class LogChunk:
    """Bytes of a lease's log from some offset, and where the next read starts."""

    text: str
    next_offset: int
    lease_status: str


@dataclass(frozen=True)
class Emit:
    """A step of a procedure that hands text to the caller (a log chunk) instead of a call."""

    text: str


# -- single requests -------------------------------------------------------------------------------


def get_order(order_id: str) -> Call[Any]:
    return Call("GET", f"/v1/orders/{order_id}", signed=True)


def wait_order(
    order_id: str, after: int, timeout_s: float, *, status_only: bool = False
) -> Call[Any]:
    """The order once something happens to it after feed position ``after`` (or the timeout);
    ``status_only``: not for a heartbeat or log lines, only for a change of a status."""
    params: dict[str, Param] = {"after": after, "timeout": timeout_s}
    if status_only:
        params["status_only"] = "true"
    return Call(
        "GET",
        f"/v1/orders/{order_id}/wait",
        params,
        timeout_s=timeout_s + SLACK_S,
        signed=True,
    )


def list_orders(client: str, status: str | None, limit: int) -> Call[Any]:
    params: dict[str, Param] = {"client": client, "limit": limit}
    if status is not None:
        params["status"] = status
    return Call("GET", "/v1/orders", params, signed=True)


def create_order(
    fields: Mapping[str, Any], ttl_s: int | None, attachments: Mapping[str, bytes] | None = None
) -> Call[TxAnswer]:
    """The order of ``fields`` (:func:`pasar.core.private_part.order_fields`: the spec's public
    part, the commitment to its private part, a blob the client uploads first or attaches)."""
    from pasar.api import txs

    body = txs.OrderCreate.model_validate(dict(fields))
    if ttl_s is not None:
        body.ttl_s = ttl_s
    return Call("POST", "/v1/orders", body=body, parse=_answer, attachments=attachments)


def quote(spec: Mapping[str, Any], client: str | None) -> Call[QuoteResponse]:
    """The market's quote for an order of ``spec`` (``client``: who would send it)."""
    from pasar.api.quote import QuoteResponse

    payload: JSONObject = {"spec": dict(spec)}  # the body of a QuoteRequest
    if client is not None:
        payload["client"] = client
    return Call("POST", "/v1/orders/quote", json=payload, parse=_model(QuoteResponse))


def cancel_order(order_id: str) -> Call[TxAnswer]:
    from pasar.api import txs

    return _post(f"/v1/orders/{order_id}/cancel", txs.OrderCancel(order_id=order_id))


def approve(order_id: str, shard: int | None = None) -> Call[TxAnswer]:
    """Approve one shard's held result, or every held one (``shard`` None)."""
    from pasar.api import txs

    body = txs.ResultApprove(order_id=order_id)
    if shard is not None:
        body.shard = shard
    return _post(f"/v1/orders/{order_id}/approve", body)


def reject(order_id: str, shard: int, reason: str) -> Call[TxAnswer]:
    """Reject one shard's held result: it is re-run free on another provider."""
    from pasar.api import txs

    body = txs.ResultReject(order_id=order_id, shard=shard, reason=reason)
    return _post(f"/v1/orders/{order_id}/reject", body)


def explain(order_id: str) -> Call[Any]:
    return Call("GET", f"/v1/orders/{order_id}/explain", signed=True)


def offers(query: str, order: str | None, limit: int, include_offline: bool = False) -> Call[Any]:
    params: dict[str, Param] = {"q": query, "limit": limit}
    if order:
        params["order"] = order
    if include_offline:
        params["include_offline"] = "true"
    return Call("GET", "/v1/providers", params)


def stats() -> Call[Any]:
    return Call("GET", "/v1/stats")


def dashboard_challenge() -> Call[LoginChallenge]:
    """A challenge to sign in to the market's dashboard with (``pasar dashboard login``)."""
    from pasar.api.dashboard import LoginChallenge

    return Call("GET", "/ui/login/challenge", parse=_model(LoginChallenge))


def account(account_id: str) -> Call[Balance]:
    from pasar.api.accounts import Balance

    return Call("GET", f"/v1/accounts/{account_id}", parse=_model(Balance))


def faucet(amount: str) -> Call[TxAnswer]:
    from pasar.api import txs

    return _post("/v1/faucet", txs.Faucet(amount=amount))


def _log_chunk(offset: int) -> Callable[[httpx.Response], LogChunk]:
    def parse(response: httpx.Response) -> LogChunk:
        size = response.headers.get("x-log-size")
        try:
            next_offset = int(size) if size is not None else -1
        except ValueError:
            next_offset = -1
        if next_offset < offset:
            raise PasarError(
                f"the market's log answer has no valid X-Log-Size header ({size!r})",
                code="bad_response",
                status=502,
            )
        return LogChunk(response.text, next_offset, response.headers.get("x-lease-status", ""))

    return parse


def read_logs(
    lease_id: str, offset: int, follow: bool, timeout_s: float = POLL_S
) -> Call[LogChunk]:
    params: dict[str, Param] = {"offset": offset}
    if follow:
        params |= {"follow": "true", "timeout": timeout_s}
    return Call(
        "GET",
        f"/v1/leases/{lease_id}/logs",
        params,
        timeout_s=timeout_s + SLACK_S if follow else None,
        parse=_log_chunk(offset),
        signed=True,
    )


# -- a provider's requests (reads are signed by the provider's transport) -------------------------


def health() -> Call[Health]:
    from pasar.api.health import Health

    return Call("GET", "/v1/healthz", parse=_model(Health))


def provider(provider_id: str) -> Call[ProviderInfo]:
    from pasar.api.offers import ProviderInfo

    return Call("GET", f"/v1/providers/{provider_id}", parse=_model(ProviderInfo))


def provider_stake(provider_id: str) -> Call[StakeView]:
    """A provider's stake, unbonding, slashes and bid deposits (its own: a signed read)."""
    from pasar.api.stake import StakeView

    return Call("GET", f"/v1/providers/{provider_id}/stake", parse=_model(StakeView), signed=True)


def feed(provider_id: str, after: int, timeout_s: float) -> Call[FeedPage]:
    from pasar.api.feed import FeedPage

    return Call(
        "GET",
        f"/v1/providers/{provider_id}/feed",
        {"after": after, "timeout": timeout_s},
        timeout_s=timeout_s + SLACK_S,
        parse=_model(FeedPage),
    )


def order_view(order_id: str) -> Call[OrderView | PublicOrderView]:
    """The order as this reader may see it (an invited bidder: the public view)."""
    from pasar.api.orders import OrderView, PublicOrderView

    def parse_view(response: httpx.Response) -> OrderView | PublicOrderView:
        data = response.json()
        if isinstance(data, Mapping) and "escrow" in data:
            return parse(OrderView, data)
        return parse(PublicOrderView, data)

    return Call("GET", f"/v1/orders/{order_id}", parse=parse_view, signed=True)


def lease(lease_id: str) -> Call[LeaseView]:
    from pasar.api.leases import LeaseView

    return Call("GET", f"/v1/leases/{lease_id}", parse=_model(LeaseView), signed=True)


def challenge(lease_id: str) -> Call[Challenge]:
    from pasar.api.leases import Challenge

    return Call("GET", f"/v1/leases/{lease_id}/challenge", parse=_model(Challenge), signed=True)


def register(body: txs.ProviderRegister) -> Call[TxAnswer]:
    return _post("/v1/providers", body)


def stake(amount: str) -> Call[TxAnswer]:
    from pasar.api import txs

    return _post("/v1/stakes", txs.Stake(amount=amount))


def bid(order_id: str, price: str | None) -> Call[TxAnswer]:
    from pasar.api import txs

    return _post(f"/v1/orders/{order_id}/bids", txs.Bid(order_id=order_id, price=price))


def heartbeat(
    lease_id: str, interval: int, challenge: str, usage: dict[str, int]
) -> Call[TxAnswer]:
    from pasar.api import txs

    body = txs.Heartbeat(lease_id=lease_id, interval=interval, challenge=challenge, usage=usage)
    return _post("/v1/heartbeats", body)


def append_logs(lease_id: str, offset: int, data: str) -> Call[LogAppended]:
    from pasar.api import txs
    from pasar.api.leases import LogAppended

    body = txs.Logs(lease_id=lease_id, offset=offset, data=data)
    return Call("POST", f"/v1/leases/{lease_id}/logs", body=body, parse=_model(LogAppended))


def receipt(body: txs.Receipt, attachments: Mapping[str, bytes] | None = None) -> Call[TxAnswer]:
    """A lease's receipt, with its small outputs attached (:mod:`pasar.api.attachments`)."""
    return Call("POST", "/v1/receipts", body=body, parse=_answer, attachments=attachments)


def capacity_challenge(challenge_id: str) -> Call[Any]:
    return Call("GET", f"/v1/capacity/{challenge_id}")


def capacity_answer(challenge_id: str, sha256: str) -> Call[TxAnswer]:
    from pasar.api import txs

    return _post(
        f"/v1/capacity/{challenge_id}/answer",
        txs.CapacityAnswer(challenge_id=challenge_id, sha256=sha256),
    )


def liveness_answer(challenge_id: str) -> Call[TxAnswer]:
    """A provider answers the market's liveness challenge (it is alive)."""
    from pasar.api import txs

    return _post(
        f"/v1/liveness/{challenge_id}/answer", txs.LivenessAnswer(challenge_id=challenge_id)
    )


def tee_nonce(provider_id: str) -> Call[txs.TeeNonce]:
    """A fresh nonce the provider's TEE quote must bind (:mod:`pasar.market.routes.tee`)."""
    from pasar.api import txs

    return Call("GET", f"/v1/providers/{provider_id}/attestation/nonce", parse=_model(txs.TeeNonce))


def tee_present(body: txs.TeePresent) -> Call[Any]:
    """Present a quote; the answer is the recorded attestation (a 422 when refused)."""
    return Call("POST", f"/v1/providers/{body.provider}/attestation", body=body)


def tee_attestation(provider_id: str) -> Call[Any]:
    return Call("GET", f"/v1/providers/{provider_id}/attestation")


def cluster_exec(order_id: str, step: int, command: str) -> Call[TxAnswer]:
    """Run one more command (the sha256 of its uploaded blob) on a running cluster's head."""
    from pasar.api import txs

    body = txs.ClusterExec(order_id=order_id, step=step, command=command)
    return _post(f"/v1/orders/{order_id}/steps", body)


def release(lease_id: str) -> Call[TxAnswer]:
    from pasar.api import txs

    return _post(f"/v1/leases/{lease_id}/release", txs.LeaseRelease(lease_id=lease_id))


def accept_lease(lease_id: str, key: str) -> Call[TxAnswer]:
    """A sealed job's provider announces its lease key (docs/privacy.md §2)."""
    from pasar.api import txs

    return _post(f"/v1/leases/{lease_id}/accept", txs.LeaseAccept(lease_id=lease_id, key=key))


def seal_key(lease_id: str, recipient: str, sealed_key: str) -> Call[TxAnswer]:
    """A sealed job's client posts its data key sealed to one party of a lease."""
    from pasar.api import txs

    body = txs.KeySeal(lease_id=lease_id, recipient=recipient, sealed_key=sealed_key)
    return _post(f"/v1/leases/{lease_id}/keys", body)


def verifier_register(operator: str | None) -> Call[TxAnswer]:
    from pasar.api import txs

    body = txs.VerifierRegister() if operator is None else txs.VerifierRegister(operator=operator)
    return _post("/v1/verifiers", body)


def verifier(verifier_id: str) -> Call[VerifierInfo]:
    from pasar.api.checks import VerifierInfo

    return Call("GET", f"/v1/verifiers/{verifier_id}", parse=_model(VerifierInfo))


def check(check_id: str) -> Call[CheckView]:
    from pasar.api.checks import CheckView

    return Call("GET", f"/v1/checks/{check_id}", parse=_model(CheckView), signed=True)


def open_challenge(lease_id: str, claim: str, bond: str) -> Call[TxAnswer]:
    from pasar.api import txs

    return _post("/v1/challenges", txs.ChallengeOpen(lease_id=lease_id, claim=claim, bond=bond))


def verdict(body: txs.CheckVerdict) -> Call[TxAnswer]:
    return _post(f"/v1/checks/{body.check_id}/verdict", body)


def open_dispute(body: txs.DisputeOpen) -> Call[TxAnswer]:
    """A pol verifier disputes the lease its check found a mismatch in."""
    return _post("/v1/disputes", body)


def answer_dispute(body: txs.DisputeAnswer) -> Call[TxAnswer]:
    """The prover's or the verifier's hash at the step a dispute's round asks."""
    return _post(f"/v1/disputes/{body.dispute_id}/answer", body)


def trace_dispute(body: txs.DisputeTrace) -> Call[TxAnswer]:
    """The prover's, the verifier's or the referee's operator trace of the narrowed step."""
    return _post(f"/v1/disputes/{body.dispute_id}/trace", body)


def dispute(dispute_id: str) -> Call[DisputeView]:
    from pasar.api.checks import DisputeView

    return Call("GET", f"/v1/disputes/{dispute_id}", parse=_model(DisputeView))


def lease_disputes(lease_id: str) -> Call[list[DisputeView]]:
    from pasar.api.checks import DisputeView

    return Call("GET", f"/v1/leases/{lease_id}/disputes", parse=_models(DisputeView))


# -- procedures ------------------------------------------------------------------------------------


def wait_for_end(
    order_id: str,
    timeout_s: float | None,
    clock: Callable[[], float] = time.monotonic,
    *,
    review: bool = False,
    watch: Callable[[dict[str, Any]], None] | None = None,
    after: int | None = None,
) -> Generator[Call[Any], Any, dict[str, Any]]:
    """Long-poll the order until it is done, expired or cancelled; returns its last view.
    With ``review``, also stop once every result waits for the client's approval. ``watch``
    sees each view as it comes (a progress bar). ``after``: the feed's cursor the order's
    creation answered (``next``), so the first request already long-polls (a market answers
    a wait on an ended order at once, so no end is missed); without it the order and the
    cursor are read first.

    Raises PasarError ``wait_timeout`` (the order goes on) if ``timeout_s`` passes first.
    """
    deadline = None if timeout_s is None else clock() + timeout_s
    order: dict[str, Any] | None = None
    if after is None or review:
        # a wait that does not wait reads the order AND the feed's cursor in one round trip
        first = yield wait_order(order_id, 0, 0.0)
        order, after = first["order"], int(first["next"])
        if watch is not None:
            watch(order)
    while order is None or (
        order["status"] not in TERMINAL and not (review and awaiting_approval(order))
    ):
        poll = POLL_S
        if deadline is not None:
            left = deadline - clock()
            if left <= 0:
                status = "not over" if order is None else order["status"]
                raise PasarError(
                    f"order {order_id} is still {status} after {timeout_s:g} s",
                    code="wait_timeout",
                    status=504,
                    hint="wait again, or cancel it with job.cancel()",
                )
            poll = min(poll, left)
        # woken by a change of status only: a heartbeat or a job's log lines would cost a round
        # trip (and the wake-up) for a view that says the same
        reply = yield wait_order(order_id, after, poll, status_only=True)
        order, after = reply["order"], int(reply["next"])
        if watch is not None:
            watch(order)
    return order


def latest_lease(order: Mapping[str, Any], shard: int) -> dict[str, Any] | None:
    """The newest lease of ``shard`` (a lost lease is followed by its replacement)."""
    found = [x for x in order.get("leases", []) if x.get("shard") == shard]
    return found[-1] if found else None


def follow_logs(order_id: str, shard: int, follow: bool) -> Generator[Call[Any] | Emit, Any, None]:
    """The log of one shard of an order, chunk by chunk (yielded as :class:`Emit`).

    Without ``follow``: what has been written so far by the shard's newest lease. With it: wait
    for a lease, stream its output as it comes, and when a lease ends without the order ending
    (it was lost and re-queued), go on with the next lease's log from its start. Offsets come
    from the market's ``X-Log-Size``, so a chunk is never repeated or skipped.
    """
    order: dict[str, Any] = yield get_order(order_id)
    after = 0
    lease_id: str | None = None
    offset = 0
    while True:
        lease = latest_lease(order, shard)
        if lease is not None and lease["lease_id"] != lease_id:
            lease_id, offset = lease["lease_id"], 0
        if lease_id is None:
            if not follow or order["status"] in TERMINAL:
                return
            reply = yield wait_order(order_id, after, POLL_S)
            order, after = reply["order"], int(reply["next"])
            continue
        chunk: LogChunk = yield read_logs(lease_id, offset, follow)
        if chunk.text:
            offset = chunk.next_offset
            yield Emit(chunk.text)
            continue
        if not follow:
            return
        if chunk.lease_status == "running":
            continue  # the long poll ran out with nothing new
        # this lease is over and its log read to the end: is there a next one?
        order = yield get_order(order_id)
        newer = latest_lease(order, shard)
        if newer is not None and newer["lease_id"] != lease_id:
            continue
        if order["status"] in TERMINAL or (newer is not None and newer["status"] in FINAL_LEASE):
            return
        reply = yield wait_order(order_id, after, POLL_S)
        order, after = reply["order"], int(reply["next"])
