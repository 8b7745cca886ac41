"""Small outputs that came inline with the order's view are used only if they are what the
receipt says; anything else is ignored (the output is downloaded and checked as ever)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from pasar.client.client import _inline_output
from pasar.client.results import OutputFile

DATA = b"42\n"
SHA = hashlib.sha256(DATA).hexdigest()


def _item(tmp_path: Path, **changes: object) -> OutputFile:
    fields: dict[str, object] = {
        "shard": 0,
        "lease_id": "l-1",
        "provider": "p" * 64,
        "path": "result.pkl",
        "sha256": SHA,
        "size": len(DATA),
        "dest": tmp_path / "out" / "result.pkl",
    }
    fields.update(changes)
    return OutputFile(**fields)  # type: ignore[arg-type]


def test_the_receipts_bytes_are_written_as_a_download(tmp_path: Path) -> None:
    got = _inline_output({SHA: base64.b64encode(DATA).decode()}, _item(tmp_path))
    assert got is not None
    sha, size, tmp = got
    assert (sha, size, tmp.read_bytes()) == (SHA, len(DATA), DATA)
    assert tmp.parent == tmp_path / "out" and tmp.name != "result.pkl"  # not in place yet


def test_other_bytes_or_garbage_are_ignored_and_leave_nothing(tmp_path: Path) -> None:
    """A market (or a proxy) that sends other bytes under the receipt's sha256 gets nothing
    accepted: the caller downloads and checks the output instead."""
    item = _item(tmp_path)
    for inline in (
        {SHA: base64.b64encode(b"43\n").decode()},  # other bytes
        {SHA: "not base64!"},
        {SHA: 42},
        {"0" * 64: base64.b64encode(DATA).decode()},  # another blob's
        ["not a mapping"],
        None,
    ):
        assert _inline_output(inline, item) is None
    assert list((tmp_path / "out").iterdir()) == []  # the refused bytes' file is gone


def test_an_output_in_parts_is_never_taken_inline(tmp_path: Path) -> None:
    item = _item(tmp_path, parts=("a" * 64, "b" * 64))
    assert _inline_output({SHA: base64.b64encode(DATA).decode()}, item) is None
