"""Sealed data (issue 12 §2): keys only their recipient opens, streams that refuse tampering."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pasar.crypto.hashing import sha256_hex
from pasar.crypto.identity import Identity
from pasar.crypto.sealing import (
    CHUNK_BYTES,
    SealError,
    account_box_key,
    decrypt_bytes,
    decrypt_file,
    encrypt_bytes,
    encrypt_file,
    identity_box_key,
    lease_keypair,
    new_data_key,
    open_key,
    open_log_lines,
    parse_box_key,
    seal_key,
    seal_log_line,
)


@pytest.mark.parametrize("size", [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, 3 * CHUNK_BYTES + 17])
def test_a_file_round_trips_and_both_hashes_are_reported(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "in").write_bytes(data)
    key = new_data_key()
    plain_sha, cipher_sha = encrypt_file(tmp_path / "in", tmp_path / "sealed", key)
    sealed = (tmp_path / "sealed").read_bytes()
    assert plain_sha == sha256_hex(data) and cipher_sha == sha256_hex(sealed)
    assert size < 32 or data[:32] not in sealed
    assert decrypt_file(tmp_path / "sealed", tmp_path / "out", key) == plain_sha
    assert (tmp_path / "out").read_bytes() == data


def _sealed(tmp_path: Path, size: int = 2 * CHUNK_BYTES + 5) -> tuple[bytes, bytes]:
    (tmp_path / "in").write_bytes(os.urandom(size))
    key = new_data_key()
    encrypt_file(tmp_path / "in", tmp_path / "sealed", key)
    return (tmp_path / "sealed").read_bytes(), key


@pytest.mark.parametrize(
    "tamper",
    [
        lambda b: b[:200] + bytes([b[200] ^ 1]) + b[201:],  # a flipped byte
        lambda b: b[:-10],  # truncated inside the last chunk
        lambda b: b[: 8 + 24 + CHUNK_BYTES + 17],  # the final chunk dropped
        lambda b: b + b"x",  # trailing data
        lambda b: b"NOTPASAR" + b[8:],  # not our format
    ],
    ids=["flipped", "cut", "no-final", "trailing", "magic"],
)
def test_a_tampered_stream_is_refused_and_leaves_nothing(tmp_path: Path, tamper: object) -> None:
    sealed, key = _sealed(tmp_path)
    (tmp_path / "bad").write_bytes(tamper(sealed))  # type: ignore[operator]
    with pytest.raises(SealError) as err:
        decrypt_file(tmp_path / "bad", tmp_path / "out", key)
    assert err.value.status == 422 and err.value.hint
    assert not (tmp_path / "out").exists()


def test_another_key_does_not_open_a_stream(tmp_path: Path) -> None:
    sealed, _ = _sealed(tmp_path)
    (tmp_path / "s").write_bytes(sealed)
    with pytest.raises(SealError):
        decrypt_file(tmp_path / "s", tmp_path / "out", new_data_key())


def test_a_data_key_opens_only_for_its_recipient() -> None:
    key = new_data_key()
    lease_private, lease_public = lease_keypair()
    sealed = seal_key(key, parse_box_key(lease_public, field="key"))
    assert open_key(sealed, lease_private) == key
    other, _ = lease_keypair()  # a provider that did not win the lease
    with pytest.raises(SealError) as err:
        open_key(sealed, other)
    assert err.value.code == "sealed_key_invalid"
    verifier = Identity.generate()
    to_verifier = seal_key(key, account_box_key(verifier.account_id))
    assert open_key(to_verifier, identity_box_key(verifier)) == key
    with pytest.raises(SealError):
        open_key(to_verifier, identity_box_key(Identity.generate()))


def test_log_lines_and_small_messages_round_trip_and_refuse_tampering() -> None:
    key = new_data_key()
    stored = seal_log_line("hello\n", key) + seal_log_line("world\n", key)
    assert "hello" not in stored
    assert open_log_lines(stored, key) == "hello\nworld\n"
    box = encrypt_bytes(b"spec", key)
    assert decrypt_bytes(box, key) == b"spec"
    with pytest.raises(SealError):
        decrypt_bytes(box[:-1] + bytes([box[-1] ^ 1]), key)
    with pytest.raises(SealError):
        open_log_lines("not base64 !!\n", key)


@pytest.mark.parametrize("bad", ["", "zz" * 32, "ab" * 31, 7])
def test_a_malformed_lease_key_names_the_field(bad: object) -> None:
    with pytest.raises(Exception) as err:
        parse_box_key(bad, field="key")
    assert getattr(err.value, "field", None) == "key"
