"""BlobStore: content addressing, atomic publication, and refusing what does not match."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pasar.market.blobs import BlobError, BlobStore, check_hash


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs", max_bytes=1000)


def test_put_then_read_back(store: BlobStore) -> None:
    data = b"hello blobs"
    digest = sha(data)
    assert not store.exists(digest)
    assert store.put(digest, data) is True
    assert store.put(digest, data) is False  # already there: nothing rewritten
    assert store.exists(digest)
    assert store.size(digest) == len(data)
    with store.open(digest) as f:
        assert f.read() == data
    assert store.path(digest) == store.root / digest[:2] / digest
    assert files_under(store.root) == [store.path(digest)]  # no temporary file left behind


def test_put_accepts_chunks(store: BlobStore) -> None:
    chunks = [b"a" * 100, b"b" * 200, b"", b"c"]
    digest = sha(b"".join(chunks))
    assert store.put(digest, iter(chunks)) is True
    assert store.size(digest) == 301


def test_async_put_streams(store: BlobStore) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(5):
            yield bytes([i]) * 50

    digest = sha(b"".join(bytes([i]) * 50 for i in range(5)))
    assert asyncio.run(store.aput(digest, chunks())) is True
    assert store.size(digest) == 250


def test_hash_mismatch_keeps_nothing(store: BlobStore) -> None:
    with pytest.raises(BlobError) as info:
        store.put(sha(b"claimed"), b"sent")
    assert info.value.code == "hash_mismatch"
    assert info.value.status == 400
    assert files_under(store.root) == []


def test_over_the_limit_is_413_and_keeps_nothing(store: BlobStore) -> None:
    data = b"x" * 1001
    with pytest.raises(BlobError) as info:
        store.put(sha(data), [data[:500], data[500:]])
    assert info.value.code == "too_large"
    assert info.value.status == 413
    assert files_under(store.root) == []


@pytest.mark.parametrize("bad", ["", "abc", "g" * 64, "0" * 63, "0" * 65, "../" + "0" * 61])
def test_invalid_hash_is_a_400(store: BlobStore, bad: str) -> None:
    for call in (store.exists, store.path, store.size):
        with pytest.raises(BlobError) as info:
            call(bad)
        assert info.value.code == "invalid_hash"
        assert info.value.status == 400
        assert info.value.hint


def test_upper_case_hash_hints_at_lower_case() -> None:
    with pytest.raises(BlobError) as info:
        check_hash(sha(b"x").upper())
    assert "lower case" in (info.value.hint or "")


def test_missing_blob_is_a_404(store: BlobStore) -> None:
    digest = sha(b"never stored")
    for call in (store.path, store.size, store.open):
        with pytest.raises(BlobError) as info:
            call(digest)
        assert info.value.code == "blob_not_found"
        assert info.value.status == 404


def test_concurrent_puts_of_one_blob_create_it_once(store: BlobStore) -> None:
    data = os.urandom(900)
    digest = sha(data)
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def put() -> None:
        barrier.wait()
        results.append(store.put(digest, data))

    threads = [threading.Thread(target=put) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert store.path(digest).read_bytes() == data
    assert files_under(store.root) == [store.path(digest)]


def test_stale_temporaries_are_swept_on_start(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    (root / "ab").mkdir(parents=True)
    stale = root / "ab" / ".abc.1234.tmp"
    fresh = root / "ab" / ".abd.5678.tmp"
    stale.write_bytes(b"interrupted")
    fresh.write_bytes(b"in progress")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    BlobStore(root)
    assert not stale.exists()
    assert fresh.exists()


def test_put_many_stores_each_and_says_which_were_new(store: BlobStore) -> None:
    store.put(sha(b"old"), b"old")
    mtime = store.path(sha(b"old")).stat().st_mtime_ns
    created = store.put_many({sha(b"one"): b"one", sha(b"two"): b"two", sha(b"old"): b"old"})
    assert sorted(created) == sorted([sha(b"one"), sha(b"two")])
    for data in (b"one", b"two", b"old"):
        assert store.path(sha(data)).read_bytes() == data
    assert store.path(sha(b"old")).stat().st_mtime_ns == mtime  # not written again
    assert not [p for p in files_under(store.root) if p.name.endswith(".tmp")]


def test_put_many_stores_nothing_when_one_does_not_match(store: BlobStore) -> None:
    with pytest.raises(BlobError) as err:
        store.put_many({sha(b"fine"): b"fine", sha(b"claimed"): b"something else"})
    assert err.value.code == "hash_mismatch"
    assert files_under(store.root) == []  # not even the one that matched
