"""Small blobs sent with the signed request that names them: one round trip, not three.

A remote call names two small blobs (its pickled payload and its private part) and its receipt
one (the result). Uploading each with a ``PUT /v1/blobs/{sha256}`` of its own cost a trivial
call about a third of its time on a 2-core machine (issue 13), so ``POST /v1/orders`` and
``POST /v1/receipts`` accept, beside the envelope's fields, ``attachments``: an object of
``sha256 → base64 bytes``, at most :data:`MAX_ATTACHMENTS` blobs and :data:`INLINE_BYTES`
bytes in all. Anything more is uploaded as before.

Why an attachment needs no signature of its own: a blob's address is the SHA-256 of its bytes.
The market stores an attachment only if its bytes hash to its key, and records the envelope's
*verified* signer as its uploader exactly as a signed ``PUT`` would (quota included), before it
applies the transaction. So an attachment can neither change what the signed body means (the
body names digests, and a digest has one content) nor be credited to anyone but the signer,
and it never enters the ledger. A request replayed with other attachments is refused for its
reused nonce like any other replay.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

#: the most bytes (decoded, all blobs together) a request attaches, and a view carries inline:
#: a remote call's payload or result is a fraction of a kilobyte; more is uploaded on its own
INLINE_BYTES = 64 * 1024

#: the most blobs one request attaches (each is a file the market writes and syncs)
MAX_ATTACHMENTS = 32

#: the request document's key beside the envelope's fields
ATTACHMENTS = "attachments"


def encode_attachments(blobs: Mapping[str, bytes]) -> dict[str, str]:
    """The ``attachments`` object of ``blobs`` (sha256 → bytes)."""
    return {sha256: base64.b64encode(data).decode("ascii") for sha256, data in blobs.items()}


def attachable(sizes: Mapping[str, int]) -> set[str]:
    """Which of the blobs of ``sizes`` (a blob's name — its sha256, or a file's path — → its
    size in bytes) to attach: the smallest first, as many as fit the limits; the rest are
    uploaded on their own."""
    chosen: set[str] = set()
    total = 0
    for sha256, size in sorted(sizes.items(), key=lambda item: item[1]):
        if len(chosen) == MAX_ATTACHMENTS or total + size > INLINE_BYTES:
            break
        chosen.add(sha256)
        total += size
    return chosen
