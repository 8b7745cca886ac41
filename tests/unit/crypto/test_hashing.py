"""SHA-256 helpers: one spelling of a digest, streamed file hashing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pasar.crypto.hashing import (
    HashError,
    is_sha256_hex,
    parse_sha256,
    sha256_digest,
    sha256_file,
    sha256_hex,
)


@given(st.binary(max_size=2000))
def test_matches_hashlib(data: bytes) -> None:
    assert sha256_digest(data) == hashlib.sha256(data).digest()
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert parse_sha256(sha256_hex(data)) == sha256_digest(data)


@given(st.binary(max_size=5000), st.integers(1, 64))
def test_file_hash_streams_in_any_chunk_size(data: bytes, chunk: int) -> None:
    # tmp_path is function-scoped and hypothesis reruns the body, so use a private file per run
    import tempfile

    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        assert sha256_file(f.name, chunk_size=chunk) == hashlib.sha256(data).hexdigest()


def test_missing_file_is_a_pasar_error(tmp_path: Path) -> None:
    with pytest.raises(HashError) as info:
        sha256_file(tmp_path / "nope")
    assert info.value.code == "unreadable_file"


@pytest.mark.parametrize(
    "bad", ["", "ab", "A" * 64, "g" * 64, "a" * 63, "a" * 65, None, 5, b"x" * 31]
)
def test_bad_digests(bad: object) -> None:
    assert not is_sha256_hex(bad)
    with pytest.raises(HashError) as info:
        parse_sha256(bad, field="sha256")
    assert info.value.code == "invalid_digest"
    assert info.value.field == "sha256"


def test_raw_digest_accepted() -> None:
    d = sha256_digest(b"x")
    assert parse_sha256(d) == d
    assert parse_sha256(bytearray(d)) == d
