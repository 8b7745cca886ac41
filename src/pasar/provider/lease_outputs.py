"""A finished lease's outputs at the market: uploaded, attached to the receipt, or sealed; and
what the receipt says about the declared outputs the job did not write.

Split from :mod:`pasar.provider.executor` (which runs a lease from start to receipt). Not in
:mod:`pasar.provider.job_outputs`: that module decides which files are outputs from the files
alone, and a verifier's re-run uses it without any market; this one talks to the market and
knows the receipt's rules (attachments, sealing, ``missing_outputs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pasar.api.attachments import INLINE_BYTES, attachable
from pasar.api.receipts import Failure, FileEntry
from pasar.core.errors import PasarError
from pasar.core.receipts import FAILURE_FAULTS, MAX_DETAIL_CHARS
from pasar.core.spec import Output
from pasar.provider.lease_failure import LeaseFailedError
from pasar.provider.market_api import MarketAPI
from pasar.provider.sealed import seal_output

#: the collected outputs, ``{relative path: (path, size)}``, as
#: :func:`~pasar.provider.job_outputs.collect_outputs` returns them
Collected = dict[str, tuple[Path, int]]


def upload_outputs(
    api: MarketAPI,
    collected: Collected,
    *,
    data_key: bytes | None,
    max_blob_bytes: int | None,
    scratch: Path,
) -> tuple[list[FileEntry], dict[str, bytes]]:
    """Upload every collected output (checked already, so a bad output has failed the lease
    before the first byte was sent); the receipt's entries, and the bytes of the small ones it
    carries itself (by sha256: :func:`attachable_outputs`).

    A sealed job's outputs (``data_key``) are sealed into ``scratch``, beside the workdir,
    and uploaded. A file swapped for a non-regular one after the check fails the lease
    (``output_rejected``), as does one over a blob limit the market did not announce
    (``output_too_large``)."""
    outputs: list[FileEntry] = []
    attached: dict[str, bytes] = {}
    small = attachable_outputs(collected, sealed=data_key is not None,
                               max_blob_bytes=max_blob_bytes)  # fmt: skip
    for rel, (path, size) in sorted(collected.items()):
        try:
            read = api.small_output(path, size) if rel in small else None
            if read is not None:
                entry, data = read
                attached[entry.sha256] = data
            elif data_key is None:
                entry = api.put_blob(path, part_bytes=max_blob_bytes)
            else:
                entry = seal_output(api, path, data_key, scratch, max_blob_bytes)
        except PasarError as exc:
            if exc.code == "not_regular_file":  # swapped after the check
                raise LeaseFailedError(
                    "output_rejected", f"output {rel!r}: {exc.message}"
                ) from None
            if exc.status == 413:  # a market whose limit we did not know
                raise LeaseFailedError(
                    "output_too_large", f"output {rel!r} ({size} bytes): {exc.message}"
                ) from None
            raise
        outputs.append(entry.model_copy(update={"path": rel}))
    return outputs, attached


def attachable_outputs(
    collected: Collected, *, sealed: bool, max_blob_bytes: int | None
) -> set[str]:
    """The outputs small enough to go with the receipt (:mod:`pasar.api.attachments`: one
    round trip for a remote call's result, not one more); none of a sealed job (each is
    sealed into a blob of its own), none over the market's blob limit."""
    if sealed:
        return set()
    limit = max_blob_bytes or INLINE_BYTES
    return attachable({rel: size for rel, (_, size) in collected.items() if size <= limit})


def missing_note(missing: Sequence[str], declared: Sequence[Output]) -> str | None:
    """The receipt's note naming the missing outputs, optional ones marked (also written to
    the job's log, where its owner reads it with ``pasar logs``); None when none is missing."""
    if not missing:
        return None
    optional = {o.path for o in declared if o.optional}
    named = [f"{m} (optional)" if m in optional else m for m in missing]
    return f"missing outputs: {', '.join(named)}"


def only_optional(missing: Sequence[str], declared: Sequence[Output]) -> bool:
    """Whether every missing output is one the job may skip (its note is then a warning)."""
    return set(missing) <= {o.path for o in declared if o.optional}


def missing_failure(missing: Sequence[str], declared: Sequence[Output]) -> Failure | None:
    """A job that exited 0 without writing a required output has no result: the lease
    fails (``missing_outputs``, the job's fault: every provider would find the same), its
    receipt still carrying what the job did write, so a re-running policy can check the
    claim (:data:`pasar.core.receipts.CHECKED_FAILURES`). A job that already failed or was
    killed keeps its own end (the caller asks only for a clean exit); the note then names
    what is missing."""
    optional = {o.path for o in declared if o.optional}
    required = [m for m in missing if m not in optional]
    if not required:
        return None
    detail = (
        f"the job exited 0 but did not write {', '.join(required)} (declared in outputs; "
        "mark an output {path: ..., optional: true} if the job may skip it)"
    )
    return Failure(reason="missing_outputs", fault=FAILURE_FAULTS["missing_outputs"],
                   detail=detail[:MAX_DETAIL_CHARS])  # fmt: skip
