"""Identities, account ids and key files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pasar.crypto.identity import (
    ACCOUNT_ID_LENGTH,
    ACCOUNT_PREFIX,
    Identity,
    IdentityError,
    account_id_of,
    is_account_id,
    key_info,
    key_path,
    list_key_names,
    load_identity,
    parse_account_id,
    pasar_home,
    public_key_of,
    save_identity,
    verify_signature,
)

SEED = bytes(range(32))


def test_from_seed_is_deterministic() -> None:
    a, b = Identity.from_seed(SEED), Identity.from_seed(SEED)
    assert a == b and a.account_id == b.account_id and hash(a) == hash(b)
    assert a.seed == SEED
    assert len(a.public_key) == 32


def test_generate_differs() -> None:
    assert Identity.generate().account_id != Identity.generate().account_id


def test_repr_hides_seed() -> None:
    ident = Identity.from_seed(SEED)
    assert SEED.hex() not in repr(ident)
    assert ident.account_id in repr(ident)


def test_sign_and_verify_signature() -> None:
    ident = Identity.from_seed(SEED)
    sig = ident.sign(b"hello")
    assert len(sig) == 64
    assert verify_signature(ident.public_key, b"hello", sig)
    assert not verify_signature(ident.public_key, b"hellO", sig)
    assert not verify_signature(ident.public_key, b"hello", sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not verify_signature(ident.public_key[:31], b"hello", sig)
    assert not verify_signature(ident.public_key, b"hello", sig[:63])


def test_seed_length_checked() -> None:
    with pytest.raises(IdentityError):
        Identity.from_seed(b"short")


@given(st.binary(min_size=32, max_size=32))
def test_account_id_round_trip(public_key: bytes) -> None:
    aid = account_id_of(public_key)
    assert aid.startswith(ACCOUNT_PREFIX)
    assert len(aid) == ACCOUNT_ID_LENGTH == 61
    assert aid == aid.lower()
    assert public_key_of(aid) == public_key
    assert parse_account_id(aid) == aid
    assert is_account_id(aid)


@given(st.binary(min_size=32, max_size=32), st.data())
def test_any_single_character_change_is_caught(public_key: bytes, data: st.DataObject) -> None:
    aid = account_id_of(public_key)
    pos = data.draw(st.integers(0, len(aid) - 1))
    repl = data.draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz234567ABZ019-"))
    mutated = aid[:pos] + repl + aid[pos + 1 :]
    if mutated != aid:
        with pytest.raises(IdentityError) as info:
            parse_account_id(mutated, field="to")
        assert info.value.code == "invalid_account_id"
        assert info.value.field == "to"


def _aid() -> str:
    return str(Identity.from_seed(SEED).account_id)


def test_error_names_wrong_prefix() -> None:
    with pytest.raises(IdentityError, match="does not start with 'pa1'"):
        parse_account_id("xx1" + _aid()[3:])


def test_error_names_length() -> None:
    with pytest.raises(IdentityError, match="has 60 characters"):
        parse_account_id(_aid()[:-1])


def test_error_names_bad_character_and_position() -> None:
    aid = _aid()
    bad = aid[:10] + "0" + aid[11:]
    with pytest.raises(IdentityError) as info:
        parse_account_id(bad)
    assert "'0' at position 11" in info.value.message
    assert info.value.hint and "never 0, 1, 8 or 9" in info.value.hint


def test_error_names_checksum() -> None:
    aid = _aid()
    swapped = aid[:10] + ("a" if aid[10] != "a" else "b") + aid[11:]
    with pytest.raises(IdentityError, match="checksum"):
        parse_account_id(swapped)


def test_upper_case_refused_with_hint() -> None:
    with pytest.raises(IdentityError, match="lower case"):
        parse_account_id(_aid().upper())


def test_non_canonical_last_character_refused() -> None:
    # 36 bytes fill 57.6 base32 characters: the last one carries 3 bits, so its 2 low bits are
    # zero in the canonical spelling. Any other final character would decode to the same key.
    aid = _aid()
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    value = alphabet.index(aid[-1])
    other = aid[:-1] + alphabet[value | 1]
    assert other != aid
    with pytest.raises(IdentityError):
        parse_account_id(other)


@pytest.mark.parametrize("bad", [None, 5, b"pa1", ""])
def test_non_strings_and_empty(bad: object) -> None:
    assert not is_account_id(bad)


def test_account_id_of_wrong_length() -> None:
    with pytest.raises(IdentityError):
        account_id_of(b"\x00" * 31)


# ------------------------------------------------------------------ home and key files


def test_pasar_home_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PASAR_HOME", str(tmp_path / "env"))
    assert pasar_home() == tmp_path / "env"
    assert pasar_home(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("PASAR_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert pasar_home() == tmp_path / "h" / ".pasar"


def test_save_load_round_trip_and_modes(tmp_path: Path) -> None:
    ident = Identity.generate()
    path = save_identity(ident, "alice", tmp_path)
    assert path == tmp_path / "keys" / "alice.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_identity("alice", tmp_path) == ident
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_saved_under_tight_umask_is_still_0600(tmp_path: Path) -> None:
    old = os.umask(0o277)
    try:
        path = save_identity(Identity.generate(), home=tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_default_name_and_env_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PASAR_HOME", str(tmp_path))
    ident = Identity.generate()
    assert save_identity(ident) == tmp_path / "keys" / "default.key"
    assert load_identity() == ident


def test_refuses_overwrite_unless_asked(tmp_path: Path) -> None:
    first, second = Identity.generate(), Identity.generate()
    save_identity(first, "k", tmp_path)
    with pytest.raises(IdentityError) as info:
        save_identity(second, "k", tmp_path)
    assert info.value.code == "key_exists"
    assert info.value.hint and "--force" in info.value.hint
    assert load_identity("k", tmp_path) == first
    save_identity(second, "k", tmp_path, overwrite=True)
    assert load_identity("k", tmp_path) == second


def test_several_named_keys(tmp_path: Path) -> None:
    for name in ("market", "provider-1", "verifier"):
        save_identity(Identity.generate(), name, tmp_path)
    assert list_key_names(tmp_path) == ["market", "provider-1", "verifier"]
    assert list_key_names(tmp_path / "nowhere") == []


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_loose_permissions_refused_with_chmod_hint(tmp_path: Path, mode: int) -> None:
    path = save_identity(Identity.generate(), "k", tmp_path)
    path.chmod(mode)
    with pytest.raises(IdentityError) as info:
        load_identity("k", tmp_path)
    assert info.value.code == "key_file_permissions"
    assert info.value.hint and f"chmod 600 {path}" in info.value.hint
    assert f"{mode:04o}" in info.value.message


def test_owner_only_read_is_fine(tmp_path: Path) -> None:
    path = save_identity(Identity.generate(), "k", tmp_path)
    path.chmod(0o400)
    assert key_info("k", tmp_path).mode == 0o400


def test_missing_key_has_hint(tmp_path: Path) -> None:
    with pytest.raises(IdentityError) as info:
        load_identity("nope", tmp_path)
    assert info.value.code == "key_not_found"
    assert info.value.hint and "pasar keys new --name nope" in info.value.hint


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "", "x" * 65, "a b"])
def test_bad_key_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(IdentityError) as info:
        key_path(name, tmp_path)
    assert info.value.code == "invalid_key_name"


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"kind": "other", "version": 1}',
        b'{"kind": "pasar-ed25519-key", "version": 2}',
        b'{"kind": "pasar-ed25519-key", "version": 1, "seed": "zz"}',
    ],
)
def test_corrupt_key_files(tmp_path: Path, content: bytes) -> None:
    path = save_identity(Identity.generate(), "k", tmp_path)
    path.write_bytes(content)
    with pytest.raises(IdentityError) as info:
        load_identity("k", tmp_path)
    assert info.value.code == "key_file_invalid"


def test_altered_seed_detected(tmp_path: Path) -> None:
    ident = Identity.from_seed(SEED)
    path = save_identity(ident, "k", tmp_path)
    other_seed = bytes(31) + b"\x01"
    path.write_text(path.read_text().replace(SEED.hex(), other_seed.hex()))
    with pytest.raises(IdentityError, match="does not match its account id"):
        load_identity("k", tmp_path)


def test_key_info_never_shows_the_seed(tmp_path: Path) -> None:
    ident = Identity.generate()
    save_identity(ident, "k", tmp_path)
    info = key_info("k", tmp_path).to_dict()
    assert info["account_id"] == ident.account_id
    assert info["mode"] == "0600" and info["permissions_ok"] is True
    assert ident.seed.hex() not in str(info)


def test_directory_as_key_refused(tmp_path: Path) -> None:
    (tmp_path / "keys" / "d.key").mkdir(parents=True, mode=0o700)
    with pytest.raises(IdentityError):
        load_identity("d", tmp_path)
