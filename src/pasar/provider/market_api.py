"""What a provider agent says to its market: one method per endpoint, every write signed.

Thin on purpose: the agent and the executor hold the logic; this module only knows paths and
body shapes, so a change of the API touches one file.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pasar.client.transport import Transport
from pasar.core.errors import PasarError
from pasar.crypto.identity import Identity

BLOB_CHUNK = 1 << 20


class MarketAPI:
    """A provider's signed view of one market."""

    def __init__(self, url: str, identity: Identity, *, timeout_s: float = 60.0) -> None:
        self.url = url
        self.identity = identity
        self.id = identity.account_id
        self.http = Transport(url, timeout_s=timeout_s, identity=identity)  # reads are signed

    def close(self) -> None:
        self.http.close()

    def _post(self, path: str, **body: Any) -> Any:
        return self.http.post_signed(path, body, self.identity)

    # -- reads ------------------------------------------------------------------------------------

    def health(self) -> Any:
        return self.http.get("/v1/healthz")

    def me(self) -> Any:
        return self.http.get(f"/v1/providers/{self.id}")

    def feed(self, after: int, timeout_s: float) -> Any:
        return self.http.get(
            f"/v1/providers/{self.id}/feed",
            {"after": after, "timeout": timeout_s},
            timeout=timeout_s + 10,
        )

    def order(self, order_id: str) -> Any:
        return self.http.get(f"/v1/orders/{order_id}")

    def lease(self, lease_id: str) -> Any:
        return self.http.get(f"/v1/leases/{lease_id}")

    def challenge(self, lease_id: str) -> Any:
        return self.http.get(f"/v1/leases/{lease_id}/challenge")

    def account(self) -> Any:
        return self.http.get(f"/v1/accounts/{self.id}")

    # -- writes -----------------------------------------------------------------------------------

    def register(self, **fields: Any) -> Any:
        return self._post("/v1/providers", type="provider.register", **fields)

    def stake(self, amount: str) -> Any:
        return self._post("/v1/stakes", type="stake", amount=amount)

    def bid(self, order_id: str, price: str | None) -> Any:
        return self._post(f"/v1/orders/{order_id}/bids", type="bid", order_id=order_id, price=price)

    def heartbeat(self, lease_id: str, interval: int, challenge: str, usage: dict[str, int]) -> Any:
        return self._post(
            "/v1/heartbeats",
            type="heartbeat",
            lease_id=lease_id,
            interval=interval,
            challenge=challenge,
            usage=usage,
        )

    def append_logs(self, lease_id: str, offset: int, data: str) -> Any:
        return self._post(
            f"/v1/leases/{lease_id}/logs", type="logs", lease_id=lease_id, offset=offset, data=data
        )

    def receipt(self, **fields: Any) -> Any:
        return self._post("/v1/receipts", type="receipt", **fields)

    def release(self, lease_id: str) -> Any:
        return self._post(f"/v1/leases/{lease_id}/release", type="lease.release", lease_id=lease_id)

    # -- blobs ------------------------------------------------------------------------------------

    def put_blob(self, path: Path, *, part_bytes: int | None = None) -> dict[str, Any]:
        """Upload a regular file as content-addressed blobs; returns its receipt entry's
        ``{sha256, size}`` and, when the file is larger than ``part_bytes`` (the market's blob
        limit), ``parts``: the sha256 of each consecutive slice, each uploaded as its own blob.

        The file is opened without following a symlink and without blocking (a FIFO opened
        for reading would otherwise wait forever for a writer), then checked on the open
        descriptor, so a job cannot swap in a FIFO or a link between a check and the upload:
        anything but a regular file is refused (``not_regular_file``). Hashing and uploading
        read the same descriptor, so the hashes are of exactly the bytes sent."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            raise PasarError(
                f"cannot open output {path.name!r}: {exc.strerror}", code="not_regular_file"
            ) from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise PasarError(f"{path.name!r} is not a regular file", code="not_regular_file")
            size = info.st_size
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
        entry: dict[str, Any] = {"sha256": whole.hexdigest(), "size": size}
        if len(parts) > 1:
            entry["parts"] = parts
        return entry

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


def _slice(f: IO[bytes], start: int, length: int) -> Iterator[bytes]:
    """``length`` bytes of ``f`` from ``start``, a chunk at a time."""
    f.seek(start)
    left = length
    while left > 0 and (chunk := f.read(min(BLOB_CHUNK, left))):
        left -= len(chunk)
        yield chunk
