"""Which blobs a request attaches (:func:`pasar.api.attachments.attachable`)."""

from __future__ import annotations

from pasar.api.attachments import INLINE_BYTES, MAX_ATTACHMENTS, attachable


def test_the_smallest_are_attached_while_they_fit() -> None:
    sizes = {"big": INLINE_BYTES - 10, "tiny": 5, "small": 6, "huge": INLINE_BYTES + 1}
    assert attachable(sizes) == {"tiny", "small"}  # "big" would take them past the limit
    assert attachable({"exact": INLINE_BYTES}) == {"exact"}
    assert attachable({"over": INLINE_BYTES + 1}) == set()
    assert attachable({}) == set()


def test_no_more_than_the_most_a_request_may_attach() -> None:
    sizes = {f"b{i}": 1 for i in range(MAX_ATTACHMENTS + 5)}
    assert len(attachable(sizes)) == MAX_ATTACHMENTS
