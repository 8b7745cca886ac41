"""RevealedCache: a private part is read and checked once per (blob, public part), never
served once its blob is gone, and a refusal is never kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pasar.core.errors import PasarError
from pasar.core.private_part import PrivatePart
from pasar.core.spec import JobSpec
from pasar.crypto.hashing import sha256_hex
from pasar.market.blobs import BlobStore
from pasar.market.private_parts import Revealed, RevealedCache, read_private_part

SPEC = {"run": "echo hi", "max_price_per_hour": "0.01 USDC", "max_duration": "1m"}


def stored_part(blobs: BlobStore) -> tuple[str, dict[str, Any]]:
    """A private part stored as a blob: its sha256, and the public part it completes."""
    spec = JobSpec.from_dict(SPEC)
    part = PrivatePart.of(spec, [], bytes(32))
    data = part.to_bytes()
    blobs.put(sha256_hex(data), data)
    return sha256_hex(data), spec.public_dict()


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def test_the_same_part_is_read_once_and_equals_a_fresh_read(blobs: BlobStore) -> None:
    sha, public = stored_part(blobs)
    cache = RevealedCache()
    first = cache.reveal(blobs, sha, public, source="private.spec")
    assert cache.reveal(blobs, sha, dict(public), source="private.spec") is first
    fresh = Revealed.of(read_private_part(blobs, sha), public, source="private.spec")
    assert first == fresh
    assert first.spec["run"] == "echo hi"


def test_another_public_part_is_checked_on_its_own(blobs: BlobStore) -> None:
    sha, public = stored_part(blobs)
    cache = RevealedCache()
    first = cache.reveal(blobs, sha, public, source="private.spec")
    longer = cache.reveal(blobs, sha, {**public, "max_duration": "2m"}, source="private.spec")
    assert longer is not first
    assert longer.spec["max_duration"] != first.spec["max_duration"]
    with pytest.raises(PasarError):  # a refusal is not kept: asked again, refused again
        cache.reveal(blobs, sha, {**public, "max_duration": "forever"}, source="x")
    with pytest.raises(PasarError):
        cache.reveal(blobs, sha, {**public, "max_duration": "forever"}, source="x")


def test_a_blob_that_is_gone_is_not_served_from_memory(blobs: BlobStore) -> None:
    sha, public = stored_part(blobs)
    cache = RevealedCache()
    cache.reveal(blobs, sha, public, source="private.spec")
    blobs.path(sha).unlink()
    with pytest.raises(PasarError) as refused:
        cache.reveal(blobs, sha, public, source="private.spec")
    assert refused.value.code == "private_part_missing"


def test_the_cache_keeps_at_most_its_size(blobs: BlobStore) -> None:
    sha, public = stored_part(blobs)
    cache = RevealedCache(size=2)
    a = cache.reveal(blobs, sha, {**public, "max_duration": "2m"}, source="s")
    cache.reveal(blobs, sha, {**public, "max_duration": "3m"}, source="s")
    cache.reveal(blobs, sha, {**public, "max_duration": "4m"}, source="s")
    assert cache.reveal(blobs, sha, {**public, "max_duration": "2m"}, source="s") is not a
