"""What a provider agent says to its market: the calls of :mod:`pasar.client.calls`, performed
with the provider's key (every read and every write signed), plus streaming blob transfers.

The requests themselves — paths, parameters, bodies (:mod:`pasar.api.txs` models) and the
models their answers parse into — are described once in :mod:`pasar.client.calls`, for the
client SDK and the provider alike; this class only knows whose key signs them.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from pasar.api import txs
from pasar.api.accounts import Balance
from pasar.api.feed import FeedPage
from pasar.api.health import Health
from pasar.api.leases import Challenge, LeaseView, LogAppended
from pasar.api.offers import ProviderInfo
from pasar.api.orders import OrderView, PublicOrderView
from pasar.api.receipts import FileEntry
from pasar.api.stake import StakeView
from pasar.api.txs import TxAnswer
from pasar.client import calls
from pasar.client.calls import Call
from pasar.client.transport import Transport
from pasar.core.errors import PasarError
from pasar.crypto.identity import Identity

BLOB_CHUNK = 1 << 20
T = TypeVar("T")


class MarketAPI:
    """A provider's signed view of one market."""

    def __init__(
        self, url: str, identity: Identity, *, timeout_s: float = 60.0, home: Path | None = None
    ) -> None:
        self.url = url
        self.identity = identity
        self.id = identity.account_id
        # reads are signed; an https market is trusted as ``home``'s config says (its pin)
        self.http = Transport(url, timeout_s=timeout_s, identity=identity, home=home)

    def close(self) -> None:
        self.http.close()

    def perform(self, call: Call[T]) -> T:
        return self.http.perform(call, self.identity)

    # -- reads ------------------------------------------------------------------------------------

    def health(self) -> Health:
        return self.perform(calls.health())

    def me(self) -> ProviderInfo:
        return self.perform(calls.provider(self.id))

    def stake_view(self) -> StakeView:
        return self.perform(calls.provider_stake(self.id))

    def feed(self, after: int, timeout_s: float) -> FeedPage:
        return self.perform(calls.feed(self.id, after, timeout_s))

    def order(self, order_id: str) -> OrderView | PublicOrderView:
        return self.perform(calls.order_view(order_id))

    def lease(self, lease_id: str) -> LeaseView:
        return self.perform(calls.lease(lease_id))

    def challenge(self, lease_id: str) -> Challenge:
        return self.perform(calls.challenge(lease_id))

    def account(self) -> Balance:
        return self.perform(calls.account(self.id))

    # -- writes -----------------------------------------------------------------------------------

    def register(self, body: txs.ProviderRegister) -> TxAnswer:
        return self.perform(calls.register(body))

    def stake(self, amount: str) -> TxAnswer:
        return self.perform(calls.stake(amount))

    def bid(self, order_id: str, price: str | None) -> TxAnswer:
        return self.perform(calls.bid(order_id, price))

    def heartbeat(
        self, lease_id: str, interval: int, challenge: str, usage: dict[str, int]
    ) -> TxAnswer:
        return self.perform(calls.heartbeat(lease_id, interval, challenge, usage))

    def append_logs(self, lease_id: str, offset: int, data: str) -> LogAppended:
        return self.perform(calls.append_logs(lease_id, offset, data))

    def receipt(self, body: txs.Receipt, attachments: dict[str, bytes] | None = None) -> TxAnswer:
        return self.perform(calls.receipt(body, attachments))

    def release(self, lease_id: str) -> TxAnswer:
        return self.perform(calls.release(lease_id))

    def capacity_challenge(self, challenge_id: str) -> dict[str, Any]:
        found = self.perform(calls.capacity_challenge(challenge_id))
        return dict(found) if isinstance(found, dict) else {}

    def liveness_answer(self, challenge_id: str) -> TxAnswer:
        return self.perform(calls.liveness_answer(challenge_id))

    def capacity_answer(self, challenge_id: str, sha256: str) -> TxAnswer:
        return self.perform(calls.capacity_answer(challenge_id, sha256))

    # -- blobs ------------------------------------------------------------------------------------

    def put_blob(self, path: Path, *, part_bytes: int | None = None) -> FileEntry:
        """Upload a regular file as content-addressed blobs; returns its receipt entry's
        ``{sha256, size}`` and, when the file is larger than ``part_bytes`` (the market's blob
        limit), ``parts``: the sha256 of each consecutive slice, each uploaded as its own blob.

        The file is opened without following a symlink and without blocking (a FIFO opened
        for reading would otherwise wait forever for a writer), then checked on the open
        descriptor, so a job cannot swap in a FIFO or a link between a check and the upload:
        anything but a regular file is refused (``not_regular_file``). Hashing and uploading
        read the same descriptor, so the hashes are of exactly the bytes sent."""
        with _open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            step = size if not part_bytes or size <= part_bytes else part_bytes
            whole = hashlib.sha256()
            parts: list[str] = []
            for start in range(0, max(size, 1), max(step, 1)):
                length = min(step, size - start)
                digest = hashlib.sha256()
                for chunk in _slice(f, start, length):
                    digest.update(chunk)
                    whole.update(chunk)
                sha = digest.hexdigest()
                self.http.request(
                    "PUT",
                    f"/v1/blobs/{sha}",
                    content=_slice(f, start, length),
                    headers={"content-length": str(length)},
                )
                parts.append(sha)
        if len(parts) > 1:
            return FileEntry(path=path.name, sha256=whole.hexdigest(), size=size, parts=parts)
        return FileEntry(path=path.name, sha256=whole.hexdigest(), size=size)

    @staticmethod
    def small_output(path: Path, limit: int) -> tuple[FileEntry, bytes] | None:
        """A regular file of at most ``limit`` bytes read whole, to attach to the receipt
        (:mod:`pasar.api.attachments`) instead of uploading it: its entry and its bytes; None
        when it is larger (then it is uploaded: :meth:`put_blob`). Opened and checked as
        :meth:`put_blob` opens and checks a file."""
        with _open_regular(path) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            return None
        entry = FileEntry(path=path.name, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        return entry, data

    def get_blob(self, sha256: str, dest: Path) -> str:
        """Stream a blob to disk (never whole in memory), hashing as it arrives; returns the
        digest of what came. Only bytes that match ``sha256`` are put at ``dest``; anything
        else is deleted, and the caller reports the mismatch."""
        got, _size, tmp = self.http.download(f"/v1/blobs/{sha256}", dest)
        if got == sha256:
            os.replace(tmp, dest)
        else:
            tmp.unlink(missing_ok=True)
        return got


def _open_regular(path: Path) -> IO[bytes]:
    """``path`` opened for reading if it is a regular file: not following a symlink, not
    blocking on a FIFO, checked on the open descriptor (no swap between check and read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise PasarError(
            f"cannot open output {path.name!r}: {exc.strerror}", code="not_regular_file"
        ) from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise PasarError(f"{path.name!r} is not a regular file", code="not_regular_file")
    return f


def _slice(f: IO[bytes], start: int, length: int) -> Iterator[bytes]:
    """``length`` bytes of ``f`` from ``start``, a chunk at a time."""
    f.seek(start)
    left = length
    while left > 0 and (chunk := f.read(min(BLOB_CHUNK, left))):
        left -= len(chunk)
        yield chunk
