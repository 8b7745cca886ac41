"""A lease's receipt: what the provider signed at its end (outputs, root, usage, failure).

These are the parts of a ``receipt`` transaction's body (:class:`pasar.api.txs.Receipt`). A
lease view's ``receipt`` echoes the body as the provider signed it: readers (the SDK's result
check, the CLI) treat it as untrusted JSON and check every field they use themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from pasar.api.base import WireModel


class FileEntry(WireModel):
    """A content-addressed file: an input of an order or an output of a receipt. An output
    larger than the market's blob limit travels as ``parts`` (the sha256 of each slice)."""

    path: str
    sha256: str
    size: int | None = None
    parts: list[str] | None = None
    plain_sha256: str | None = (
        None  # a sealed job's file: the plaintext's hash (sha256: ciphertext)
    )


class Usage(WireModel):
    """What the job consumed, as the provider measured it (empty when it never ran)."""

    cpu_ms: int | None = None
    max_rss_bytes: int | None = None


class Failure(WireModel):
    """Why a lease could not produce a result, and whose fault that was."""

    reason: str
    fault: Literal["job", "provider"]
    detail: str


def file_entries(items: Iterable[Mapping[str, object]]) -> list[FileEntry]:
    """Manifest entries (already validated by core) as models, keeping which keys were given."""
    return [FileEntry.model_validate(item) for item in items]
