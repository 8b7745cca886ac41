"""The market's copy of its orders' private parts: what the parties' views show, off the chain.

An order transaction carries only a commitment to its private part (:mod:`pasar.core.private_part`);
the part itself is a blob the client uploaded. The market reads it once — when the order arrives,
and again when it restarts — and keeps it here, so that

- the **views** an order's parties read (``GET /v1/orders/{id}``, ``/v1/leases/{id}``,
  ``/v1/checks/{id}``) show the whole spec and the input manifest, as they did before the chain
  stopped carrying them; and
- **blob reads** are authorized for the inputs an order names (:func:`pasar.market.access.
  check_blob_reader`), although no transaction names them any more.

This is the market's memory, not consensus state: an audit replays the chain without it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from pasar.core.errors import PasarError
from pasar.core.market_records import OrderRecord
from pasar.core.private_part import MAX_PRIVATE_BYTES, PrivatePart
from pasar.market.blobs import BlobStore

log = logging.getLogger("pasar.market")


def read_private_part(blobs: BlobStore, sha256: str, *, field: str = "body.private") -> PrivatePart:
    """The private part stored under ``sha256``, parsed strictly (422 naming ``field``)."""
    if not blobs.exists(sha256):
        raise PasarError(
            f"the private part {sha256[:12]}… is not stored at the market",
            code="private_part_missing",
            status=422,
            field=field,
            hint="upload the private part as a blob before the order (the SDK and CLI do)",
        )
    if blobs.size(sha256) > MAX_PRIVATE_BYTES:
        raise PasarError(
            f"the private part is over {MAX_PRIVATE_BYTES} bytes",
            code="invalid_private_part",
            status=422,
            field=field,
            hint="send data as input files, not in envs or the command",
        )
    with blobs.open(sha256) as f:
        return PrivatePart.parse(f.read())


@dataclass(frozen=True)
class Revealed:
    """An order's private part and the whole spec it completes, worked out once (the parties'
    views are read on every poll: they must not validate the spec again each time)."""

    part: PrivatePart
    spec: dict[str, Any]

    @classmethod
    def of(cls, part: PrivatePart, public: Mapping[str, Any], *, source: str) -> Revealed:
        """``part`` laid over the chain's ``public`` part; a 422 when they make no valid spec."""
        return cls(part, part.job_spec(public, source=source).to_dict())


class RevealedCache:
    """The last ``size`` private parts read and checked, by blob and public part.

    A private part is a blob, named by the sha256 of its content, so the same name always
    parses to the same part, and laid over the same public part always gives the same spec
    (or the same refusal, which is not kept). A client that sends many orders for one job
    (a ``.map``'s shards, the API benchmark) has its part read, parsed and validated once.
    The blob's presence is still checked on every use: a collected blob is not served from
    here."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, bytes], Revealed] = OrderedDict()
        self._lock = threading.Lock()

    def reveal(
        self,
        blobs: BlobStore,
        sha256: str,
        public: Mapping[str, Any],
        *,
        source: str,
        present: bool | None = None,
    ) -> Revealed:
        """``Revealed.of(read_private_part(blobs, sha256), public)``, read once per key.
        ``present``: whether the blob is stored, when the caller just asked the store."""
        try:
            key = (sha256, orjson.dumps(public, option=orjson.OPT_SORT_KEYS))
        except (TypeError, orjson.JSONEncodeError):  # not JSON: let the full path say why
            return Revealed.of(read_private_part(blobs, sha256), public, source=source)
        if blobs.exists(sha256) if present is None else present:
            with self._lock:
                cached = self._entries.get(key)
                if cached is not None:
                    self._entries.move_to_end(key)
                    return cached
        revealed = Revealed.of(read_private_part(blobs, sha256), public, source=source)
        with self._lock:
            self._entries[key] = revealed
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return revealed


class PrivateParts:
    """Order id → its private part, and input blob → the orders that name it."""

    def __init__(self) -> None:
        self._parts: dict[str, Revealed] = {}
        self._blob_orders: dict[str, set[str]] = {}
        self.recent = RevealedCache()  # new orders' parts, read once per job

    def add(self, order_id: str, revealed: Revealed) -> None:
        self._parts[order_id] = revealed
        for item in revealed.part.inputs:
            self._blob_orders.setdefault(str(item["sha256"]), set()).add(order_id)

    def of(self, record: OrderRecord) -> Revealed:
        """``record``'s private part; a 503 if this market could not read it (say why, never
        show a spec without its command: a provider would run the placeholder)."""
        part = self._parts.get(record.id)
        if part is None:
            raise PasarError(
                f"the private part of order {record.id} is not available at this market",
                code="private_part_unavailable",
                status=503,
                hint="the market lost the blob it was stored in; the client may cancel and "
                "launch the job again",
            )
        return part

    def spec_of(self, record: OrderRecord) -> dict[str, Any]:
        """The whole spec of ``record`` as its parties read it (public part + private part).
        A sealed job's private part is ciphertext the market cannot read: its parties get the
        public part, and fetch and open the private part themselves (``private`` names it)."""
        if record.spec.privacy == "sealed":
            return record.spec.public_dict()
        return self.of(record).spec

    def inputs_of(self, record: OrderRecord) -> tuple[dict[str, Any], ...]:
        if record.spec.privacy == "sealed":
            return ()  # listed in the sealed private part
        return self.of(record).part.inputs

    def orders_naming(self, sha256: str) -> frozenset[str]:
        """The orders whose private part names ``sha256`` as an input."""
        return frozenset(self._blob_orders.get(sha256, ()))

    def load(self, orders: Iterable[OrderRecord], blobs: BlobStore) -> int:
        """Read the private part of every order (a restart); returns how many were read.
        A part that is gone or unreadable is logged and left out: its views answer 503."""
        count = 0
        for record in orders:
            if not record.private or record.id in self._parts or record.spec.privacy == "sealed":
                continue
            try:
                part = read_private_part(blobs, record.private)
                public = record.spec.public_dict()
                self.add(record.id, Revealed.of(part, public, source=f"order {record.id}"))
                count += 1
            except PasarError as exc:
                log.warning("order %s: its private part cannot be read: %s", record.id, exc.message)
        return count
