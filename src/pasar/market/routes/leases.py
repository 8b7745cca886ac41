"""Leases: read, heartbeat challenges and answers, receipts, and logs (append and follow)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse

from pasar.api.attachments import INLINE_BYTES
from pasar.api.bills import Bill
from pasar.api.leases import Challenge, GpuDeviceView, LeaseView, LogAppended, NodeView
from pasar.api.receipts import file_entries
from pasar.api.status import lease_status
from pasar.api.txs import TxAnswer
from pasar.core.account_handlers import NODE_ADDRESS
from pasar.core.errors import PasarError
from pasar.core.market_records import LeaseRecord, OrderRecord
from pasar.core.nonces import nonce_reused
from pasar.core.state import MarketState
from pasar.core.tx_parsing import output_parts
from pasar.crypto.canonical import INT_MAX  # the database stores 64-bit integers
from pasar.crypto.envelope import VerifiedEnvelope
from pasar.crypto.hashing import is_sha256_hex, sha256_hex
from pasar.market.access import check_lease_party
from pasar.market.auth import Reader, SignedBody, Signer, signed_envelope, verified_envelope
from pasar.market.blobs import BlobStore, small_blobs
from pasar.market.openapi import signs
from pasar.market.routes.common import service_of, submit_typed
from pasar.market.service import MarketService

router = APIRouter(tags=["leases"])
Signed = Annotated[VerifiedEnvelope, Depends(signed_envelope)]
MAX_LOG_CHUNK = 256 * 1024
MAX_LOG_BYTES = 64 * 1024 * 1024
MAX_LOG_READ = 1 << 20  # one answer carries at most this much; the reader asks again
MAX_FOLLOW_S = 30.0


def lease_view(state: MarketState, lease: LeaseRecord) -> LeaseView:
    """The lease as its parties see it: allocation, bill once settled, the receipt as signed."""
    charges = lease.charges
    record = state.orders[lease.order_id]
    # only a held lease has a deadline on the wire (every other lease keeps its shape)
    held = {"held_until": lease.held_until} if lease.status == "held" else {}
    # only a sealed job's lease has a key exchange to show
    sealed: dict[str, Any] = (
        {"box_key": lease.box_key, "sealed_keys": dict(lease.sealed_keys)}
        if record.spec.privacy == "sealed"
        else {}
    )
    return LeaseView(
        lease_id=lease.id,
        order_id=lease.order_id,
        provider=lease.provider,
        client=lease.client,
        shard=lease.shard,
        shards=record.spec.shards,
        status=lease_status(lease.status),
        price_per_hour=lease.price_per_hour.to_json(),
        started_at=lease.started_at,
        ended_at=lease.ended_at,
        verified_intervals=len(lease.beats),
        billed_seconds=lease.billed_seconds,
        billed_ms=lease.billed_ms,
        gpus=None if lease.allocation.gpu is None else str(lease.allocation.gpu),
        # the physical GPUs the lease holds, so the agent runs the job on exactly these
        devices=[GpuDeviceView(index=d.index, uuid=d.uuid) for d in lease.allocation.devices],
        cpus=str(lease.allocation.cpus),
        receipt=lease.receipt,
        bill=None if charges is None else Bill.of(charges, lease.rerun_escrow),
        **held,
        checks=list(lease.checks),
        **sealed,
        # only a lease that ended without a receipt saying why (lost) has a note on the wire
        **({"note": lease.note} if lease.note is not None else {}),
        # only a lease of a spec with resources.alternatives says which it got
        **({"alternative": lease.alternative} if lease.alternative is not None else {}),
    )


def _lease(state: MarketState, lease_id: str) -> LeaseRecord:
    lease = state.leases.get(lease_id)
    if lease is None:
        raise PasarError(f"no lease {lease_id!r}", code="not_found", status=404, field="lease_id")
    return lease


@router.get(
    "/v1/leases/{lease_id}",
    summary="One lease, with its bill once settled",
    response_model_exclude_unset=True,
)
def get_lease(request: Request, lease_id: str, reader: Reader) -> LeaseView:
    """The lease view with its order's job spec (what its provider runs)."""
    return party_view(service_of(request), request.app.state.blobs, lease_id, reader)


def party_view(
    service: MarketService,
    blobs: BlobStore,
    lease_id: str,
    reader: str | None,
    *,
    inline_budget: int = INLINE_BYTES,
) -> LeaseView:
    """The lease as ``GET /v1/leases/{id}`` answers ``reader`` (404, or 403 unless a party of
    it): the view with its order's job spec and inputs; for its own provider while it runs,
    also its small inputs' bytes (:func:`inline_inputs`, when they are ``inline_budget`` bytes
    or less) and the heartbeat challenge of the interval in progress. The winning provider's
    feed carries the same view with its ``match`` (:mod:`pasar.market.routes.feed_views`).

    The challenge does not weaken the time-lock (:mod:`pasar.core.timelock`): what a provider
    must not have is interval *k*'s challenge before *k* begins, and this is only ever the
    challenge of the interval already in progress — on the feed's ``match``, interval 0, which
    begins at the lease's start, the match's own stamp, before any view of it exists. It is what
    ``GET /v1/leases/{id}/challenge`` answers the provider at that moment, and a heartbeat with it
    passes the same checks (the market's signature over the lease and the interval, arrival
    during that interval or the next, once per interval)."""
    with service.lock:
        lease = _lease(service.state, lease_id)
        check_lease_party(service.state, lease, reader)
        view = lease_view(service.state, lease)
        record = service.state.orders[lease.order_id]
        view.spec = service.private.spec_of(record)
        view.inputs = file_entries(service.private.inputs_of(record))
        view.private = record.private
        if record.order.together:
            view.nodes = gang_of(service.state, record)
            view.cluster_secret = cluster_secret(service, record.id)
    if reader == lease.provider and view.status == "running":  # read off the lock
        if sum(e.size or 0 for e in view.inputs) <= inline_budget:  # None: not inlined
            inline = inline_inputs(blobs, view)
            if inline:  # else unset: not in the answer
                view.inline_inputs = inline
        with contextlib.suppress(PasarError):  # it ended meanwhile: no challenge to answer
            view.challenge = service.challenge(lease_id)
    return view


def inline_inputs(blobs: BlobStore, view: LeaseView) -> dict[str, str]:
    """The lease's inputs' bytes (base64, by sha256) when they are small in all and each one
    blob (no parts) (:func:`~pasar.market.blobs.small_blobs`). Only for the lease's provider,
    who may read every one of them."""
    entries = view.inputs
    if any(e.parts for e in entries):
        return {}
    return small_blobs(blobs, ((e.sha256, e.size) for e in entries))


def gang_of(state: MarketState, record: OrderRecord) -> list[NodeView]:
    """A multi-node order's nodes in rank order: each shard's newest lease (a replaced node's
    successor), with the address its provider registered."""
    newest: dict[int, LeaseRecord] = {}
    for lease_id in record.leases:
        lease = state.leases[lease_id]
        newest[lease.shard] = lease
    nodes = []
    for rank in sorted(newest):
        lease = newest[rank]
        provider = state.providers.get(lease.provider)
        address = provider.attributes.get(NODE_ADDRESS) if provider is not None else None
        nodes.append(
            NodeView(rank=rank, lease_id=lease.id, provider=lease.provider, address=address)
        )
    return nodes


def cluster_secret(service: MarketService, order_id: str) -> str:
    """The secret a multi-node job's nodes share (``PASAR_CLUSTER_SECRET``): a hash of the
    market's own signature over the order id. Ed25519 signs deterministically, so it is the
    same on every read and after a restart, and nobody without the market's key can derive
    it; the market shows it only to the order's parties (this route's check)."""
    signature = service.identity.sign(f"pasar cluster secret\n{order_id}".encode())
    return sha256_hex(signature)


@router.get("/v1/leases/{lease_id}/challenge", summary="The heartbeat challenge for now")
def challenge(request: Request, lease_id: str, reader: Signer) -> Challenge:
    """The challenge of the heartbeat interval in progress, for the lease's parties (its
    provider answers it), as ``GET /v1/leases/{id}`` is: a signed request, so that nobody
    else learns whether a lease exists or runs."""
    service = service_of(request)
    with service.lock:
        check_lease_party(service.state, _lease(service.state, lease_id), reader)
    return service.challenge(lease_id)


@router.post(
    "/v1/heartbeats",
    summary="Answer a heartbeat challenge (proof of time-lock)",
    response_model_exclude_unset=True,
    openapi_extra=signs("heartbeat"),
)
def heartbeat(request: Request, envelope: Signed) -> TxAnswer:
    return submit_typed(request, envelope, "heartbeat")


@router.post(
    "/v1/liveness/{challenge_id}/answer",
    summary="Answer a liveness challenge (the provider is alive)",
    response_model_exclude_unset=True,
    openapi_extra=signs("liveness.answer"),
)
def answer_liveness(request: Request, challenge_id: str, envelope: Signed) -> TxAnswer:
    """The market suspected the provider (its feed dropped, a heartbeat came late) and pushed
    a ``liveness.challenge`` on its feed; answering before the deadline keeps its leases.
    Refused for another provider's challenge (404), twice or after the deadline (409)."""
    return submit_typed(request, envelope, "liveness.answer", challenge_id=challenge_id)


@router.post(
    "/v1/leases/{lease_id}/release",
    summary="Hand a running lease back (draining)",
    response_model_exclude_unset=True,
    openapi_extra=signs("lease.release"),
)
def release(request: Request, lease_id: str, envelope: Signed) -> TxAnswer:
    """The provider is paid for verified seconds; the shard is re-queued on what is left."""
    return submit_typed(request, envelope, "lease.release", lease_id=lease_id)


@router.post(
    "/v1/leases/{lease_id}/accept",
    summary="A sealed job's provider announces its lease key",
    response_model_exclude_unset=True,
    openapi_extra=signs("lease.accept"),
)
def accept(request: Request, lease_id: str, envelope: Signed) -> TxAnswer:
    """The X25519 public key the client is to seal the job's data key to (docs/privacy.md)."""
    return submit_typed(request, envelope, "lease.accept", lease_id=lease_id)


@router.post(
    "/v1/leases/{lease_id}/keys",
    summary="A sealed job's client seals its data key to a party of the lease",
    response_model_exclude_unset=True,
    openapi_extra=signs("key.seal"),
)
def seal(request: Request, lease_id: str, envelope: Signed) -> TxAnswer:
    """To the lease's provider (under its announced key) or a verifier assigned to check it."""
    return submit_typed(request, envelope, "key.seal", lease_id=lease_id)


@router.post(
    "/v1/receipts",
    summary="Finish a lease: exit code, outputs, Merkle root",
    response_model_exclude_unset=True,
    openapi_extra=signs("receipt", attachments=True),
)
def receipt(request: Request, raw: SignedBody) -> TxAnswer:
    """Every output must already be uploaded as a blob whose content hashes to its name (the
    blob store refuses anything else), so checking presence here checks the content too. A
    small result may come attached to the receipt (:mod:`pasar.api.attachments`): stored
    before that check, as the provider's upload."""
    envelope = verified_envelope(request, raw, attachments=True)
    require_blobs(request, envelope.body.get("outputs", []), "outputs")
    return submit_typed(request, envelope, "receipt")


def require_owned(blobs: BlobStore, sha256: str, signer: str, field: str) -> None:
    """``signer`` must have uploaded ``sha256`` itself: naming a blob makes the order's
    parties its readers, so naming another account's blob (an address seen on the chain, or
    guessed) must not be a way to read it. Re-uploading content already stored costs the
    bytes once more, which proves possession, and makes the signer an owner."""
    if signer not in blobs.owners(sha256):
        raise PasarError(
            f"{field} names a blob this account did not upload",
            code="blob_not_owned",
            status=403,
            field=field,
            hint="upload the file with this account's key first (PUT /v1/blobs/{sha256}; "
            "the SDK and CLI do)",
        )


def require_blobs(request: Request, items: object, field: str) -> None:
    """Every ``{path, sha256}`` in ``items`` must name an uploaded blob (422 otherwise). The
    blob store only keeps content that hashes to its name, so presence proves the content.

    An output uploaded in ``parts`` (it was larger than the blob limit) must have every part
    uploaded, and the parts' sizes must add up to the output's ``size``; the whole file's
    ``sha256`` is checked by the client that joins them (the receipt's root commits to it).
    """
    if not isinstance(items, list):
        return  # the state machine reports the shape error with its field
    blobs: BlobStore = request.app.state.blobs
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        parts = output_parts(item)
        if parts:
            sizes = [_uploaded_size(blobs, field, i, item, sha) for sha in parts]
            if sum(sizes) != item.get("size"):
                raise PasarError(
                    f"the parts of {item.get('path')!r} add up to {sum(sizes)} bytes, not the "
                    f"{item.get('size')} the receipt says",
                    code="parts_mismatch",
                    status=422,
                    field=f"body.{field}[{i}].parts",
                )
            continue
        sha = item.get("sha256")
        if is_sha256_hex(sha):
            _uploaded_size(blobs, field, i, item, sha)


def _uploaded_size(blobs: BlobStore, field: str, i: int, item: dict[str, Any], sha: str) -> int:
    if not blobs.exists(sha):
        raise PasarError(
            f"{field[:-1]} {item.get('path')!r} ({sha[:12]}…) was not uploaded",
            code="missing_blob",
            status=422,
            field=f"body.{field}[{i}]",
            hint="PUT /v1/blobs/{sha256} first",
        )
    return blobs.size(sha)


# -- logs: not ledger state, so kept in files beside the blobs, appended by offset ----------------


def _log_path(request: Request, lease_id: str) -> Path:
    home: Path = request.app.state.config.home
    return home / "logs" / f"{lease_id}.log"


@router.post(
    "/v1/leases/{lease_id}/logs",
    summary="Append a chunk of the job's output",
    openapi_extra=signs("logs"),
)
def append_logs(request: Request, lease_id: str, envelope: Signed) -> LogAppended:
    """Body ``{type: "logs", lease_id, offset, data}``. Appending at an explicit offset makes a
    retried chunk harmless: a chunk whose offset is not the log's current size is refused.

    Logs are not ledger state, but their appends are still signed requests: a nonce is
    accepted once (a captured append cannot be replayed), only the lease's provider writes,
    only while the lease runs, and the size check and the write happen under one lock (two
    appends at the same offset cannot both land).
    """
    body = envelope.body
    if body.get("type") != "logs" or body.get("lease_id") != lease_id:
        raise PasarError(
            "sign a body {type: 'logs', lease_id, offset, data}",
            code="wrong_type",
            field="body.type",
        )
    data, offset = body.get("data"), body.get("offset")
    if not isinstance(data, str) or len(data.encode()) > MAX_LOG_CHUNK:
        raise PasarError(
            f"data must be text of at most {MAX_LOG_CHUNK} bytes",
            code="invalid_logs",
            field="body.data",
        )
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise PasarError("offset must be an integer", code="invalid_logs", field="body.offset")
    service = service_of(request)
    with service.lock:
        lease = _lease(service.state, lease_id)
        if envelope.signer != lease.provider:
            raise PasarError(
                "only the lease's provider writes its logs", code="wrong_signer", status=403
            )
        if lease.status != "running":
            raise PasarError(
                f"lease {lease_id} is {lease.status}: its log is closed",
                code="not_running",
                status=409,
            )
    path = _log_path(request, lease_id)
    chunk = data.encode()
    with service.log_lock:
        if (envelope.signer, envelope.nonce) in service.log_nonces:
            raise nonce_reused()
        path.parent.mkdir(parents=True, exist_ok=True)
        size = path.stat().st_size if path.exists() else 0
        if offset != size:
            raise PasarError(
                f"offset {offset} is not the log's size {size}",
                code="offset_mismatch",
                status=409,
                field="body.offset",
                hint=f"resend from offset {size}",
            )
        if size + len(chunk) > MAX_LOG_BYTES:
            raise PasarError("the log is full", code="log_full", status=413)
        with path.open("ab") as f:
            f.write(chunk)
        service.log_nonces.remember(envelope.signer, envelope.nonce, service.clock())
    service.notifier.publish("logs", {"lease_id": lease_id}, orders={lease.order_id})
    return LogAppended(ok=True, size=size + len(chunk))


def _read_chunk(path: Path, offset: int, size: int) -> bytes:
    """At most :data:`MAX_LOG_READ` bytes from ``offset`` (run in a worker thread)."""
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(min(size - offset, MAX_LOG_READ))


@router.get(
    "/v1/leases/{lease_id}/logs",
    summary="Read the job's output from an offset; follow waits for more",
    response_class=PlainTextResponse,
)
async def read_logs(
    request: Request,
    lease_id: str,
    *,
    reader: Reader,
    offset: Annotated[int, Query(ge=0, le=INT_MAX)] = 0,
    follow: bool = False,
    timeout: Annotated[float, Query(ge=0, le=MAX_FOLLOW_S)] = 25.0,
) -> PlainTextResponse:
    """Returns up to 1 MiB from ``offset``; the ``X-Log-Size`` header is the offset to ask
    next. With ``follow`` the request waits (up to ``timeout``) for new output or the lease's
    end. The read runs off the event loop, a chunk at a time, so a 64 MB log stalls nobody."""
    service = service_of(request)
    with service.lock:
        lease = _lease(service.state, lease_id)
        check_lease_party(service.state, lease, reader)
        order_id = lease.order_id
    path = _log_path(request, lease_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    after = service.notifier.head
    async with service.waiters.slot(reader):
        while True:
            size = path.stat().st_size if path.exists() else 0
            with service.lock:
                running = service.state.leases[lease_id].status == "running"
            if size > offset or not follow or not running or loop.time() >= deadline:
                break
            events = await service.notifier.wait(
                after, timeout_s=deadline - loop.time(), order=order_id
            )
            if events:
                after = events[-1].seq
    data = await anyio.to_thread.run_sync(_read_chunk, path, offset, size) if size > offset else b""
    return PlainTextResponse(
        data.decode(errors="replace"),
        headers={"X-Log-Size": str(offset + len(data)), "X-Lease-Status": lease.status},
    )
