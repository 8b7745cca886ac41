"""``/v1/blobs/{sha256}``: upload and download content-addressed files.

A blob is only ever stored under the SHA-256 of its bytes, so nobody can put anything at an
address but the one true content, and whoever later names that address (in a signed order or
receipt) gets exactly those bytes. Uploads are still **signed** (the request signature of
:mod:`pasar.crypto.request_auth`): the market records who stored what, so the uploader may read
it back and storage can be accounted per account. Downloads are for the parties of an order
that names the blob (:mod:`pasar.market.access`); so is ``HEAD`` (is it stored? how big?):
to anyone else a blob does not exist.

The bodies are streamed to and from disk, never held whole in memory; the
size limit is the limits middleware's (``max_blob_bytes``) and the store's.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from pasar.core.errors import PasarError
from pasar.market.access import check_blob_reader
from pasar.market.auth import Reader, Signer
from pasar.market.blobs import BlobStore, check_hash
from pasar.market.logging import log_event

router = APIRouter(tags=["blobs"])

_IMMUTABLE = "public, max-age=31536000, immutable"  # an address never changes its content
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


class BlobInfo(BaseModel):
    """A stored blob."""

    sha256: str
    size: int
    created: bool


def _store(request: Request) -> BlobStore:
    store = request.app.state.blobs
    assert isinstance(store, BlobStore)
    return store


def _headers(sha256: str, size: int | None = None) -> dict[str, str]:
    headers = {"etag": f'"{sha256}"', "cache-control": _IMMUTABLE}
    if size is not None:
        headers["content-length"] = str(size)
    return headers


@router.put(
    "/v1/blobs/{sha256}",
    status_code=201,
    summary="Upload a blob (201 created, 200 already present)",
    responses={200: {"model": BlobInfo, "description": "Already present"}},
    openapi_extra={"requestBody": {"required": True, "content": _BINARY}},
)
async def put_blob(sha256: str, request: Request, response: Response, uploader: Signer) -> BlobInfo:
    """Store the raw request body under its SHA-256, which must equal ``sha256``."""
    store = _store(request)
    check_hash(sha256)  # before reading a byte of the body
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit():
        store.check_quota(uploader, int(announced), sha256)  # before reading a byte either
    try:
        created = await store.aput(sha256, request.stream())
    except ClientDisconnect:
        raise PasarError(
            "the client disconnected during the upload; nothing was stored",
            code="client_disconnected",
            status=400,
        ) from None
    size = store.size(sha256)
    if announced is None or not announced.isdigit():  # streamed without a length: check now
        try:
            store.check_quota(uploader, size, sha256)
        except PasarError:
            if created and not store.owners(sha256):
                store.path(sha256).unlink(missing_ok=True)
            raise
    store.add_owner(sha256, uploader)
    if created:
        log_event("blob.stored", sha256=sha256, size=size)
    response.status_code = 201 if created else 200
    return BlobInfo(sha256=sha256, size=size, created=created)


@router.get(
    "/v1/blobs/{sha256}",
    summary="Download a blob",
    response_class=FileResponse,
    responses={200: {"content": _BINARY, "description": "The blob's bytes"}},
)
async def get_blob(sha256: str, request: Request, reader: Reader) -> FileResponse:
    """Stream the blob's bytes to a party of an order that names it (404 ``blob_not_found``
    if it is not stored; 401/403 for anyone else: see :mod:`pasar.market.access`)."""
    store = _store(request)
    path = store.path(sha256)
    _check_reader(request, store, sha256, reader)
    return FileResponse(path, media_type="application/octet-stream", headers=_headers(sha256))


def _check_reader(request: Request, store: BlobStore, sha256: str, reader: str | None) -> None:
    if reader is not None and reader in store.owners(sha256):
        return
    service = getattr(request.app.state, "service", None)
    if service is None:  # the bare HTTP shell (tests): no orders, so uploaders only
        check_blob_reader(None, sha256, reader)
    else:
        with service.lock:
            check_blob_reader(service.state, sha256, reader, service.private.orders_naming(sha256))


@router.head("/v1/blobs/{sha256}", summary="Whether a blob is stored for you, and its size")
async def head_blob(sha256: str, request: Request, reader: Reader) -> Response:
    """200 with ``Content-Length`` if stored *and the signed reader may read it* (it uploaded
    it, or is a party of an order naming it), else 404: lets a client skip a re-upload of its
    own file. Anyone else is told nothing — not even that the content exists, or hashing a
    guessed file would tell whether someone stored it."""
    store = _store(request)
    size = store.size(sha256)
    try:
        _check_reader(request, store, sha256, reader)
    except PasarError:
        raise PasarError(
            f"no blob {sha256[:12]}… is stored for this reader",
            code="blob_not_found",
            status=404,
            hint="upload it (PUT /v1/blobs/{sha256}, signed)",
        ) from None
    return Response(media_type="application/octet-stream", headers=_headers(sha256, size))
