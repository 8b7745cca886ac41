"""Unit tests of pasar.crypto.tls: pins in config.toml, fingerprints, the market's own
certificate, and client certificates that name an account (the mTLS identity)."""

from __future__ import annotations

import ssl
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pasar.core.errors import PasarError
from pasar.crypto.tls import (
    _certificate,
    _normal_fingerprint,
    account_of_cert,
    client_key_and_csr_key,
    fingerprint_of_pem,
    issue_client_cert,
    load_client_cert,
    pin,
    pinned,
    save_client_cert,
    self_signed,
)

URL = "https://127.0.0.1:8420"
FP = "sha256:" + "0f" * 32


def test_a_pin_lands_in_its_table_whatever_follows_it(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        'market = "https://127.0.0.1:8420"\n[tls_pins]\n"https://other:1" = "'
        + "sha256:"
        + "aa" * 32
        + '"\n[later]\nx = 1\n',
        encoding="utf-8",
    )
    pin(tmp_path, URL, FP)
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    assert data["market"] == URL and data["later"] == {"x": 1}  # nothing else moved
    assert data["tls_pins"][URL] == FP and "https://other:1" in data["tls_pins"]
    assert pinned(tmp_path, URL) == FP

    again = "sha256:" + "1e" * 32  # a re-pin replaces the line, it does not add a second
    pin(tmp_path, URL, again)
    assert pinned(tmp_path, URL) == again
    assert config.read_text(encoding="utf-8").count(URL + '" =') == 1


def test_a_fresh_home_gets_the_pins_table(tmp_path: Path) -> None:
    pin(tmp_path, URL, FP)  # a fresh home: the table is created
    assert pinned(tmp_path, URL) == FP
    assert pinned(tmp_path, "https://127.0.0.1:9999") is None


@pytest.mark.parametrize(
    "text",
    ["sha256:" + "0F" * 32, ":".join(["0F"] * 32), "SHA256:" + ":".join(["0f"] * 32)],
)
def test_fingerprints_are_read_the_ways_tools_print_them(text: str) -> None:
    assert _normal_fingerprint(text, "test") == FP


@pytest.mark.parametrize("text", ["", "sha256:abc", "zz" * 32, "sha256:" + "0f" * 33])
def test_a_malformed_fingerprint_names_the_field(text: str) -> None:
    with pytest.raises(PasarError) as err:
        _normal_fingerprint(text, "test")
    assert err.value.code == "invalid_fingerprint" and err.value.field == "tls_fingerprint"


def test_a_malformed_pin_in_config_is_refused_not_trusted(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(f'[tls_pins]\n"{URL}" = "nope"\n', encoding="utf-8")
    with pytest.raises(PasarError) as err:
        pinned(tmp_path, URL)
    assert err.value.code == "invalid_fingerprint"


def test_the_markets_certificate_is_made_once_with_a_private_key(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "127.0.0.1")
    assert key.stat().st_mode & 0o777 == 0o600
    first = fingerprint_of_pem(cert.read_text(encoding="ascii"))
    assert self_signed(tmp_path, "127.0.0.1") == (cert, key)  # reused: the pin holds
    assert fingerprint_of_pem(cert.read_text(encoding="ascii")) == first
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)  # a usable pair


def test_an_issued_client_certificate_names_its_account_and_a_bad_key_is_refused(
    tmp_path: Path,
) -> None:
    _, public_pem = client_key_and_csr_key()
    pem = issue_client_cert(tmp_path, "acct-alice", public_pem)
    assert account_of_cert(ssl.PEM_cert_to_DER_cert(pem)) == "acct-alice"
    server_cert, _ = self_signed(tmp_path, "127.0.0.1")  # names no account
    der = ssl.PEM_cert_to_DER_cert(server_cert.read_text(encoding="ascii"))
    assert account_of_cert(der) is None
    with pytest.raises(PasarError) as err:
        issue_client_cert(tmp_path, "acct-alice", "not a key")
    assert err.value.field == "body.public_key" and err.value.status == 422


def test_an_expiring_client_certificate_is_not_presented(tmp_path: Path) -> None:
    """One about to expire would fail the handshake; not presenting it makes the market answer
    ``client_cert_required``, on which the SDK fetches a fresh one."""
    key_pem, public_pem = client_key_and_csr_key()
    issued = issue_client_cert(tmp_path, "acct", public_pem)
    save_client_cert(tmp_path, URL, "acct", key_pem, issued)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert load_client_cert(context, tmp_path, URL, "acct")  # 30 days left: presented

    issuer = ec.generate_private_key(ec.SECP256R1())
    subject = serialization.load_pem_private_key(key_pem, None)
    short = _certificate(subject, issuer, "pasar client", ca=False, days=0, account="acct")
    save_client_cert(tmp_path, URL, "acct", key_pem, short.decode("ascii"))
    assert not load_client_cert(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), tmp_path, URL, "acct")
    assert not load_client_cert(context, tmp_path, URL, "someone-else")  # none kept
