"""The market's side of :mod:`pasar.api.attachments`: take a request's attached blobs apart from
its envelope, check them, and store them as the verified signer's uploads.

Checked before the signature (they cost nothing to check and a malformed request is refused
with the field to fix), stored only after it verified (only then is the uploader known), and
before the transaction is applied, so the existence and ownership checks of the order or
receipt that names them treat them exactly like blobs uploaded with ``PUT /v1/blobs``.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from hashlib import sha256 as sha256_of

from pasar.api.attachments import ATTACHMENTS, INLINE_BYTES, MAX_ATTACHMENTS
from pasar.core.errors import PasarError
from pasar.crypto.hashing import is_sha256_hex
from pasar.market.blobs import BlobStore
from pasar.market.logging import log_event

_MAX_TEXT = (INLINE_BYTES + 2) // 3 * 4  # the base64 of INLINE_BYTES bytes
_HINT = f'send "{ATTACHMENTS}": {{"<sha256 of the bytes>": "<base64 of the bytes>"}}'


def _refused(message: str, field: str, *, code: str = "invalid_attachments") -> PasarError:
    return PasarError(message, code=code, field=field, hint=_HINT, status=400)


def split_attachments(document: object) -> tuple[object, dict[str, bytes]]:
    """The request document without ``attachments`` (the envelope, checked next), and the
    attached blobs, decoded, each checked against its address and all within the limit."""
    if not isinstance(document, dict) or ATTACHMENTS not in document:
        return document, {}
    envelope = {key: value for key, value in document.items() if key != ATTACHMENTS}
    attached = document[ATTACHMENTS]
    if not isinstance(attached, dict):
        raise _refused(f"{ATTACHMENTS} must be an object of sha256 → base64", ATTACHMENTS)
    if len(attached) > MAX_ATTACHMENTS:  # each is a file written and synced
        raise _refused(
            f"at most {MAX_ATTACHMENTS} attachments per request, got {len(attached)}", ATTACHMENTS
        )
    blobs: dict[str, bytes] = {}
    total = 0
    for sha256, text in attached.items():
        field = f"{ATTACHMENTS}.{sha256[:16]}"
        if not is_sha256_hex(sha256):
            raise _refused("an attachment's key must be the lower-case hex sha256", field)
        if not isinstance(text, str):
            raise _refused("an attachment's value must be a base64 string", field)
        if len(text) > _MAX_TEXT:  # before decoding it
            raise _attachments_too_large()
        try:
            data = b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise _refused("an attachment is not valid base64", field) from None
        total += len(data)
        if total > INLINE_BYTES:
            raise _attachments_too_large()
        if sha256_of(data).hexdigest() != sha256:
            raise _refused(
                f"the attachment's sha256 is {sha256_of(data).hexdigest()}, not its key",
                field,
                code="hash_mismatch",
            )
        blobs[sha256] = data
    return envelope, blobs


def _attachments_too_large() -> PasarError:
    return PasarError(
        f"attachments are larger than the limit of {INLINE_BYTES} bytes in all",
        code="too_large",
        field=ATTACHMENTS,
        hint="upload larger blobs on their own (PUT /v1/blobs/{sha256}, signed)",
        status=413,
    )


def store_attachments(blobs: BlobStore, attached: dict[str, bytes], owner: str) -> None:
    """Store each attached blob as ``owner``'s upload (its quota, its read access), as a signed
    ``PUT /v1/blobs/{sha256}`` of the same bytes would."""
    sizes = {sha256: len(data) for sha256, data in attached.items()}
    blobs.check_quota_of_all(owner, sizes, field="attachments")  # all of them, not each
    for sha256 in blobs.put_many(attached):
        log_event("blob.stored", sha256=sha256, size=len(attached[sha256]))
    for sha256 in attached:
        blobs.add_owner(sha256, owner)
