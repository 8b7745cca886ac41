"""The one HTTP transport of the SDK and CLI: JSON in, JSON out, errors as PasarError.

Everything that talks to a market goes through :class:`Transport` (or its async twin,
:class:`AsyncTransport`, which has the same methods as coroutines), so tests can swap in
httpx's ``MockTransport`` and every caller gets the market's error shape back as the same
:class:`~pasar.core.errors.PasarError` the market raised — code, field and hint intact.

A market that is stopping (a restart, an upgrade) answers reads 503 ``market_stopping`` with
``Retry-After``: a GET is retried after that delay, through the restart's unreachable moment,
for up to :data:`STOPPING_WAIT_S`; then the caller gets one sentence saying so.

Blob downloads stream to disk while being hashed (:meth:`Transport.download`), so a large
output is never held whole in memory and its digest costs no second read.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import httpx

from pasar.api.attachments import ATTACHMENTS, encode_attachments
from pasar.core.errors import ErrorDetail, PasarError
from pasar.crypto.envelope import sign, wall_clock_ms
from pasar.crypto.identity import Identity, pasar_home
from pasar.crypto.request_auth import authorization
from pasar.crypto.tls import (
    ISSUE_PATH,
    client_context,
    client_key_and_csr_key,
    load_client_cert,
    save_client_cert,
)

if TYPE_CHECKING:
    from pasar.client.calls import Call

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 30.0
CHUNK_BYTES = 1 << 20
STOPPING_WAIT_S = 30.0  # how long a read waits for a stopping market to come back
UNREACHABLE_RETRY_S = 0.5  # between tries while a stopped market restarts


def _error_from(response: httpx.Response) -> PasarError:
    try:
        data = response.json()
        err = data["error"]
        details = [
            ErrorDetail(
                code=str(d.get("code", "invalid")),
                message=str(d.get("message", "")),
                field=d.get("field"),
                hint=d.get("hint"),
                line=d.get("line"),
            )
            for d in err.get("details", [])
            if isinstance(d, dict)
        ]
        if err.get("code") == "market_stopping":
            return _stopping(response)
        return PasarError(
            str(err.get("message", "")),
            code=str(err.get("code", "error")),
            field=err.get("field"),
            hint=err.get("hint"),
            details=details,
            status=response.status_code,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return _foreign_answer(response)


def _stopping(response: httpx.Response) -> PasarError:
    """The market's 503 ``market_stopping`` as the one sentence a person reads when the
    retries give up; ``retry_after_s`` is the market's ``Retry-After``."""
    try:
        retry_after = max(1, int(response.headers.get("retry-after", "2")))
    except ValueError:
        retry_after = 2
    base = f"{response.request.url.scheme}://{response.request.url.netloc.decode()}"
    error = PasarError(
        f"the market at {base} is stopping (restart or upgrade); try again in {retry_after} s",
        code="market_stopping",
        status=503,
    )
    error.retry_after_s = retry_after  # type: ignore[attr-defined]
    return error


class _StoppingRetries:
    """When to try a read again while the market stops and restarts (see the module doc)."""

    def __init__(self, method: str, budget_s: float) -> None:
        self.method = method.upper()
        self.budget_s = budget_s
        self.deadline: float | None = None
        self.stopping: PasarError | None = None

    def pause(self, error: PasarError) -> float:
        """Seconds to sleep before the next try; raises the error to give up."""
        if self.method != "GET" or self.budget_s <= 0:
            raise error
        if error.code == "market_stopping":
            self.stopping = error
            delay = float(getattr(error, "retry_after_s", 2))
        elif error.code == "unreachable" and self.stopping is not None:
            delay = UNREACHABLE_RETRY_S  # the socket is closed while the market restarts
        else:
            raise error
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.budget_s
        if now + delay > self.deadline:
            assert self.stopping is not None
            raise self.stopping from None
        return delay


def _foreign_answer(response: httpx.Response) -> PasarError:
    """An error that is not pasar's JSON shape: most likely the URL names another server (a
    web page, a proxy's error), so say that in one sentence instead of echoing its HTML."""
    kind = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
    base = f"{response.request.url.scheme}://{response.request.url.netloc.decode()}"
    return PasarError(
        f"the server at {base} answered {response.status_code} with {kind}, not a pasar "
        "market's error: is this the market's address?",
        code="bad_response",
        field="market",
        hint="check the URL (--market, PASAR_MARKET); `curl URL/v1/healthz` shows a "
        "market's version",
        status=response.status_code,
    )


def _io_error(base_url: str, exc: httpx.TransportError) -> PasarError:
    """A request that got no answer: a timeout (504) or an unreachable market (503)."""
    if isinstance(exc, httpx.TimeoutException):
        return PasarError(
            f"the market at {base_url} did not answer in time ({type(exc).__name__})",
            code="timeout",
            status=504,
        )
    return PasarError(
        f"cannot reach the market at {base_url}: {exc}",
        code="unreachable",
        status=503,
        hint="check the URL (PASAR_MARKET) and that the market is running"
        + (
            "; if it serves TLS (--tls), its URL starts with https://"
            if base_url.startswith("http://") and isinstance(exc, httpx.RemoteProtocolError)
            else ""
        ),
    )


def tls_for(base_url: str, home: str | os.PathLike[str] | None) -> ssl.SSLContext:
    """How to trust an ``https://`` market (:func:`pasar.crypto.tls.client_context`: a CA,
    a pinned fingerprint, or trust on first use); plain HTTP has nothing to verify, so it gets
    a context that trusts no certificate at all: loading the system's CA bundle for nothing cost
    ~25 ms of every CLI command's start, and an https URL reached by accident fails closed."""
    if not base_url.startswith("https://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, against no CA
    return client_context(base_url, pasar_home(home))


def _envelope(body: dict[str, Any], identity: Identity, market: str) -> dict[str, Any]:
    return sign(body, identity, now_ms=wall_clock_ms(), market=market)


def _posted(call: Call[Any], identity: Identity, market: str) -> dict[str, Any]:
    """The document a described POST sends: the envelope of its body and, beside it, the
    blobs it attaches (:mod:`pasar.api.attachments`)."""
    assert call.body is not None
    document = _envelope(call.body.body(), identity, market)
    if call.attachments:
        document[ATTACHMENTS] = encode_attachments(call.attachments)
    return document


def _market_of(health: Any) -> str:
    market = health.get("market") if isinstance(health, dict) else None
    if not isinstance(market, str):
        raise PasarError(
            "the market's /v1/healthz does not name the market", code="bad_response", status=502
        )
    return market


def _signed(request: httpx.Request, identity: Identity, market: str) -> httpx.Request:
    """Add the request signature (:mod:`pasar.crypto.request_auth`) over the exact target."""
    request.headers["authorization"] = authorization(
        identity,
        market=market,
        method=request.method,
        target=request.url.raw_path.decode("ascii"),
        now_ms=wall_clock_ms(),
    )
    return request


class _Download:
    """A blob being written to a temporary file beside ``dest`` while it is hashed.

    The caller decides what the digest must be; until :meth:`keep` the bytes live only under a
    temporary name, so an interrupted or refused download never leaves a file at ``dest``.
    """

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
        self.file: BinaryIO = self.tmp.open("wb")
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.hash.update(chunk)
        self.size += len(chunk)

    def finish(self) -> tuple[str, int]:
        self.file.close()
        return self.hash.hexdigest(), self.size

    def discard(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


def inline_download(data: bytes, dest: Path) -> tuple[str, int, Path]:
    """Bytes that came inline in a view (an order's ``inline_outputs``) written as a download
    is: to a temporary file beside ``dest``, hashed; returns ``(sha256 hex, size, temporary
    path)`` and the caller checks the digest as after :meth:`Transport.download`."""
    part = _Download(dest)
    try:
        part.write(data)
    except BaseException:
        part.discard()
        raise
    sha, size = part.finish()
    return sha, size, part.tmp


class Transport:
    """A market's HTTP API at ``base_url``."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        http: httpx.Client | None = None,
        identity: Identity | None = None,
        home: str | os.PathLike[str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.identity = identity  # who signs this transport's reads (None: public reads only)
        self._home = pasar_home(home)
        self._timeout_s = timeout_s
        self._own_http = http is None  # one this transport may rebuild (with a client cert)
        self._signer = identity  # whose client certificate (mutual TLS) the connection shows
        self._http = http or self._client()
        self._market: str | None = None
        self.stopping_wait_s = STOPPING_WAIT_S  # 0: a stopping market's 503 at once

    def _client(self) -> httpx.Client:
        verify = tls_for(self.base_url, self._home)
        if self.base_url.startswith("https://") and self._signer is not None:
            load_client_cert(verify, self._home, self.base_url, self._signer.account_id)
        return httpx.Client(base_url=self.base_url, timeout=self._timeout_s, verify=verify)

    def close(self) -> None:
        self._http.close()

    def _get_client_cert(self) -> bool:
        """On a market with mutual TLS: ask for a certificate naming this transport's account
        (over its own fresh key), keep it under ``$PASAR_HOME/tls``, and reconnect with it.
        False where this transport cannot (nobody signed, or a client it was given)."""
        signer = self._signer
        if signer is None or not self._own_http:
            return False
        key_pem, public_pem = client_key_and_csr_key()
        body = {"type": "tls.client_cert", "public_key": public_pem}
        request = self._http.build_request(
            "POST", ISSUE_PATH, json=_envelope(body, signer, self.market)
        )
        answer = self._send(request, retry_cert=False).json()
        save_client_cert(
            self._home, self.base_url, signer.account_id, key_pem, answer["certificate"]
        )
        self._http.close()
        self._http = self._client()
        return True

    @property
    def market(self) -> str:
        """The market's account id (from ``/v1/healthz``, asked once): what every signature
        names, so that it is worthless at any other market."""
        if self._market is None:
            health = self._send(self._http.build_request("GET", "/v1/healthz"))
            self._market = _market_of(health.json())
        return self._market

    def build(
        self, method: str, path: str, signer: Identity | None = None, **kwargs: Any
    ) -> httpx.Request:
        """The request as :meth:`request` would send it, signed (tools may send it themselves)."""
        request = self._http.build_request(method, path, **kwargs)
        signer = signer or self.identity
        if signer is not None:
            _signed(request, signer, self.market)
            self._signer = self._signer or signer
        return request

    def _send(
        self, request: httpx.Request, *, stream: bool = False, retry_cert: bool = True
    ) -> httpx.Response:
        try:
            response = self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise _io_error(self.base_url, exc) from None
        if response.status_code >= 400:
            if stream:
                response.read()
                response.close()
            error = _error_from(response)
            if retry_cert and error.code == "client_cert_required" and self._get_client_cert():
                return self._send(request, stream=stream, retry_cert=False)
            raise error
        return response

    def request(
        self, method: str, path: str, *, signer: Identity | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request; signed (:mod:`pasar.crypto.request_auth`) by ``signer``, else by the
        transport's identity if it has one, so the market can tell who reads. A read that
        meets a stopping market is tried again (fresh signature) for ``stopping_wait_s``."""
        retries = _StoppingRetries(method, self.stopping_wait_s)
        while True:
            try:
                return self._send(self.build(method, path, signer, **kwargs))
            except PasarError as error:
                time.sleep(retries.pause(error))

    def get(self, path: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.request("GET", path, params=params or {}, **kwargs).json()

    def post_signed(
        self, path: str, body: dict[str, Any], identity: Identity, **kwargs: Any
    ) -> Any:
        """POST ``body`` as a signed envelope (fresh nonce, the wall clock's ``ts``)."""
        envelope = _envelope(body, identity, self.market)
        self._signer = self._signer or identity
        return self.request("POST", path, json=envelope, **kwargs).json()

    def perform(self, call: Call[T], signer: Identity | None = None) -> T:
        """Perform one described request (:mod:`pasar.client.calls`): a POST is signed as an
        envelope by ``signer``; a read is signed by ``signer`` if the call is private, else by
        the transport's own identity if it has one. Returns what ``call.parse`` makes of it."""
        extra: dict[str, Any] = {} if call.timeout_s is None else {"timeout": call.timeout_s}
        if call.body is not None:
            if signer is None:
                raise ValueError("a POST of a transaction needs a signer")
            envelope = _posted(call, signer, self.market)
            self._signer = self._signer or signer
            response = self.request("POST", call.path, json=envelope, **extra)
        else:
            reader = signer if call.signed else None
            if call.json is not None:  # an unsigned public query POSTed as it is (a quote)
                extra["json"] = call.json
            response = self.request(
                call.method, call.path, signer=reader, params=dict(call.params), **extra
            )
        return call.parse(response)

    def upload(self, path: str, file: Path, *, signer: Identity | None = None) -> httpx.Response:
        """PUT a file's bytes, streamed from disk (signed: uploads count against a quota)."""
        with file.open("rb") as f:
            return self.request("PUT", path, signer=signer, content=_chunks(f), headers=_length(f))

    def download(
        self, path: str | Sequence[str], dest: Path, *, signer: Identity | None = None
    ) -> tuple[str, int, Path]:
        """GET ``path`` (or each of several paths in turn, joined: an output uploaded in parts)
        into a temporary file beside ``dest``, hashing as it streams.

        Returns ``(sha256 hex, size, temporary path)``; the caller checks the digest and then
        renames the temporary file to ``dest`` (or deletes it). Nothing is ever at ``dest``
        unless the caller put it there.
        """
        paths = [path] if isinstance(path, str) else list(path)
        requests = [self.build("GET", p, signer) for p in paths]
        part = _Download(dest)
        try:
            for request in requests:
                response = self._send(request, stream=True)
                try:
                    for chunk in response.iter_bytes(CHUNK_BYTES):
                        part.write(chunk)
                finally:
                    response.close()
        except httpx.TransportError as exc:
            part.discard()
            raise _io_error(self.base_url, exc) from None
        except BaseException:
            part.discard()
            raise
        sha, size = part.finish()
        return sha, size, part.tmp


class AsyncTransport:
    """The same API as :class:`Transport`, as coroutines over ``httpx.AsyncClient``."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        http: httpx.AsyncClient | None = None,
        identity: Identity | None = None,
        home: str | os.PathLike[str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.identity = identity  # who signs this transport's reads (None: public reads only)
        self._home = pasar_home(home)
        self._timeout_s = timeout_s
        self._own_http = http is None  # one this transport may rebuild (with a client cert)
        self._signer = identity  # whose client certificate (mutual TLS) the connection shows
        self._http = http or self._client()
        self._market: str | None = None
        self.stopping_wait_s = STOPPING_WAIT_S  # 0: a stopping market's 503 at once

    def _client(self) -> httpx.AsyncClient:
        """See :meth:`Transport._client` (the pin is checked here, before any request)."""
        verify = tls_for(self.base_url, self._home)
        if self.base_url.startswith("https://") and self._signer is not None:
            load_client_cert(verify, self._home, self.base_url, self._signer.account_id)
        return httpx.AsyncClient(base_url=self.base_url, timeout=self._timeout_s, verify=verify)

    async def _get_client_cert(self) -> bool:
        """See :meth:`Transport._get_client_cert`."""
        signer = self._signer
        if signer is None or not self._own_http:
            return False
        key_pem, public_pem = client_key_and_csr_key()
        body = {"type": "tls.client_cert", "public_key": public_pem}
        envelope = _envelope(body, signer, await self.market())
        request = self._http.build_request("POST", ISSUE_PATH, json=envelope)
        answer = (await self._send(request, retry_cert=False)).json()
        save_client_cert(
            self._home, self.base_url, signer.account_id, key_pem, answer["certificate"]
        )
        await self._http.aclose()
        self._http = self._client()
        return True

    async def aclose(self) -> None:
        await self._http.aclose()

    async def market(self) -> str:
        """See :attr:`Transport.market`."""
        if self._market is None:
            health = await self._send(self._http.build_request("GET", "/v1/healthz"))
            self._market = _market_of(health.json())
        return self._market

    async def build(
        self, method: str, path: str, signer: Identity | None = None, **kwargs: Any
    ) -> httpx.Request:
        request = self._http.build_request(method, path, **kwargs)
        signer = signer or self.identity
        if signer is not None:
            _signed(request, signer, await self.market())
            self._signer = self._signer or signer
        return request

    async def _send(
        self, request: httpx.Request, *, stream: bool = False, retry_cert: bool = True
    ) -> httpx.Response:
        try:
            response = await self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise _io_error(self.base_url, exc) from None
        if response.status_code >= 400:
            if stream:
                await response.aread()
                await response.aclose()
            error = _error_from(response)
            if (
                retry_cert
                and error.code == "client_cert_required"
                and await self._get_client_cert()
            ):
                return await self._send(request, stream=stream, retry_cert=False)
            raise error
        return response

    async def request(
        self, method: str, path: str, *, signer: Identity | None = None, **kwargs: Any
    ) -> httpx.Response:
        """See :meth:`Transport.request`."""
        import asyncio  # only an async client's transport waits this way (not the CLI's)

        retries = _StoppingRetries(method, self.stopping_wait_s)
        while True:
            try:
                return await self._send(await self.build(method, path, signer, **kwargs))
            except PasarError as error:
                await asyncio.sleep(retries.pause(error))

    async def get(self, path: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return (await self.request("GET", path, params=params or {}, **kwargs)).json()

    async def post_signed(
        self, path: str, body: dict[str, Any], identity: Identity, **kwargs: Any
    ) -> Any:
        """POST ``body`` as a signed envelope (fresh nonce, the wall clock's ``ts``)."""
        envelope = _envelope(body, identity, await self.market())
        self._signer = self._signer or identity
        response = await self.request("POST", path, json=envelope, **kwargs)
        return response.json()

    async def perform(self, call: Call[T], signer: Identity | None = None) -> T:
        """:meth:`Transport.perform`, awaited."""
        extra: dict[str, Any] = {} if call.timeout_s is None else {"timeout": call.timeout_s}
        if call.body is not None:
            if signer is None:
                raise ValueError("a POST of a transaction needs a signer")
            envelope = _posted(call, signer, await self.market())
            self._signer = self._signer or signer
            response = await self.request("POST", call.path, json=envelope, **extra)
        else:
            reader = signer if call.signed else None
            if call.json is not None:  # an unsigned public query POSTed as it is (a quote)
                extra["json"] = call.json
            response = await self.request(
                call.method, call.path, signer=reader, params=dict(call.params), **extra
            )
        return call.parse(response)

    async def upload(
        self, path: str, file: Path, *, signer: Identity | None = None
    ) -> httpx.Response:
        """PUT a file's bytes, streamed from disk (reads of one chunk at a time)."""
        with file.open("rb") as f:
            return await self.request(
                "PUT", path, signer=signer, content=_achunks(f), headers=_length(f)
            )

    async def download(
        self, path: str | Sequence[str], dest: Path, *, signer: Identity | None = None
    ) -> tuple[str, int, Path]:
        """See :meth:`Transport.download`."""
        paths = [path] if isinstance(path, str) else list(path)
        requests = [await self.build("GET", p, signer) for p in paths]
        part = _Download(dest)
        try:
            for request in requests:
                response = await self._send(request, stream=True)
                try:
                    async for chunk in response.aiter_bytes(CHUNK_BYTES):
                        part.write(chunk)
                finally:
                    await response.aclose()
        except httpx.TransportError as exc:
            part.discard()
            raise _io_error(self.base_url, exc) from None
        except BaseException:
            part.discard()
            raise
        sha, size = part.finish()
        return sha, size, part.tmp


PROBE_OVER_BYTES = 64 * 1024
"""Uploads larger than this ask the market first (a signed HEAD) whether it already holds the
bytes; smaller ones are PUT at once: sending a call file again costs less than a round trip,
and most small inputs (a pickled call, a private part) are new every time."""


def worth_probing(content: Path | bytes) -> bool:
    """Whether an upload of ``content`` should first ask if the blob is already stored."""
    size = len(content) if isinstance(content, bytes) else content.stat().st_size
    return size > PROBE_OVER_BYTES


def _length(f: BinaryIO) -> dict[str, str]:
    """Announce the size, so a market refuses an over-limit file before a byte is sent."""
    return {"content-length": str(os.fstat(f.fileno()).st_size)}


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(CHUNK_BYTES):
        yield chunk


async def _achunks(f: BinaryIO) -> AsyncIterator[bytes]:
    while chunk := f.read(CHUNK_BYTES):
        yield chunk
