"""A lease's receipt: what the provider signed at its end (outputs, root, usage, failure).

The same shape is the body of a ``receipt`` transaction (see :class:`pasar.api.txs.Receipt`)
and the ``receipt`` of a lease view, which echoes the body the market accepted.
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


class Usage(WireModel):
    """What the job consumed, as the provider measured it (empty when it never ran)."""

    cpu_ms: int | None = None
    max_rss_bytes: int | None = None


class Failure(WireModel):
    """Why a lease could not produce a result, and whose fault that was."""

    reason: str
    fault: Literal["job", "provider"]
    detail: str


class ReceiptView(WireModel):
    """A receipt as the market keeps it (the accepted body, ``type`` included)."""

    type: Literal["receipt"] = "receipt"
    lease_id: str
    exit_code: int
    root: str
    outputs: list[FileEntry]
    started_at: int
    ended_at: int
    usage: Usage | None = None
    kill_reason: str | None = None
    note: str | None = None
    failure: Failure | None = None


def file_entries(items: Iterable[Mapping[str, object]]) -> list[FileEntry]:
    """Manifest entries (already validated by core) as models, keeping which keys were given."""
    return [FileEntry.model_validate(item) for item in items]
