"""Sealed data: a job's data key, and the files, texts and log lines encrypted under it.

A sealed job (``privacy: sealed``, docs/privacy.md §2) has one random 32-byte **data key**. The
client encrypts the job's private part and its inputs under it, and *seals* the key — a PyNaCl
sealed box, X25519 + XSalsa20-Poly1305 with an ephemeral sender key — to each party allowed to
read: the lease key a provider announced for its lease, and each assigned verifier's account
key (an Ed25519 key has an X25519 twin). Outputs and logs come back under the same key, so the
client and the verifiers, and nobody else, can read them. The market only ever stores
ciphertext and sealed keys.

Files are encrypted as a **stream** (libsodium's ``secretstream``, XChaCha20-Poly1305), in
chunks of :data:`CHUNK_BYTES`, so a large input never sits whole in memory::

    MAGIC (8 bytes) | stream header (24 bytes) | chunk₁ | … | chunkₙ (tagged FINAL)

Each chunk authenticates its bytes, its place in the stream, and whether it is the last, so a
flipped byte, a dropped or reordered chunk and a truncated file are all refused
(:class:`SealError`), never decrypted into something else.
"""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import nacl.bindings as sodium
import nacl.exceptions
import nacl.public
import nacl.secret
import nacl.signing

from pasar.core.errors import PasarError
from pasar.crypto.identity import Identity, public_key_of

DATA_KEY_BYTES = 32
CHUNK_BYTES = 64 * 1024
MAGIC = b"PSEAL1\x00\x00"
_HEADER = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
_ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
_TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
_TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE


class SealError(PasarError):
    """Sealed data that does not open: tampered, truncated, or under another key."""

    def __init__(self, message: str, *, code: str = "sealed_data_invalid") -> None:
        super().__init__(
            message,
            code=code,
            status=422,
            hint="the data was changed after it was sealed, or sealed for someone else",
        )


def new_data_key() -> bytes:
    return secrets.token_bytes(DATA_KEY_BYTES)


# -- keys ------------------------------------------------------------------------------------------


def lease_keypair() -> tuple[nacl.public.PrivateKey, str]:
    """A fresh X25519 key pair for one lease: the private key, and the public key as hex."""
    private = nacl.public.PrivateKey.generate()
    return private, bytes(private.public_key).hex()


def account_box_key(account_id: str) -> nacl.public.PublicKey:
    """The X25519 public key of an account (its Ed25519 key's twin): a verifier's or a
    client's sealed-key recipient, with no key to announce."""
    verify_key = nacl.signing.VerifyKey(public_key_of(account_id))
    return verify_key.to_curve25519_public_key()


def identity_box_key(identity: Identity) -> nacl.public.PrivateKey:
    """The X25519 private key of ``identity``: opens what was sealed to :func:`account_box_key`."""
    return nacl.signing.SigningKey(identity.seed).to_curve25519_private_key()


def parse_box_key(text: object, *, field: str) -> nacl.public.PublicKey:
    """An X25519 public key from 64 hex digits (a lease acceptance's ``key``), or a 400."""
    if not isinstance(text, str) or len(text) != 64 or set(text) - set("0123456789abcdef"):
        raise PasarError(
            f"{field} must be an X25519 public key: 64 lower-case hex digits",
            code="invalid_key",
            field=field,
        )
    return nacl.public.PublicKey(bytes.fromhex(text))


def seal_key(data_key: bytes, recipient: nacl.public.PublicKey) -> str:
    """``data_key`` sealed to ``recipient`` (hex): only its private key opens it."""
    return bytes(nacl.public.SealedBox(recipient).encrypt(data_key)).hex()


def open_key(sealed_hex: str, private: nacl.public.PrivateKey) -> bytes:
    try:
        key = nacl.public.SealedBox(private).decrypt(bytes.fromhex(sealed_hex))
    except (ValueError, nacl.exceptions.CryptoError):
        raise SealError(
            "the sealed data key does not open with this key", code="sealed_key_invalid"
        ) from None
    if len(key) != DATA_KEY_BYTES:
        raise SealError("the sealed data key has the wrong size", code="sealed_key_invalid")
    return key


# -- small texts and log lines ---------------------------------------------------------------------


def encrypt_bytes(data: bytes, key: bytes) -> bytes:
    """One small message (a private part, a log line): XSalsa20-Poly1305, random nonce."""
    return bytes(nacl.secret.SecretBox(key).encrypt(data))


def decrypt_bytes(data: bytes, key: bytes) -> bytes:
    try:
        return bytes(nacl.secret.SecretBox(key).decrypt(data))
    except (ValueError, nacl.exceptions.CryptoError):
        raise SealError("sealed data does not decrypt: it was changed, or is not ours") from None


def seal_log_line(text: str, key: bytes) -> str:
    """A chunk of a sealed job's log as one line of base64 (what the market stores)."""
    return base64.b64encode(encrypt_bytes(text.encode(), key)).decode("ascii") + "\n"


def open_log_lines(stored: str, key: bytes) -> str:
    """The plain text of whole sealed log lines (a partial last line is left for later)."""
    out = []
    for line in stored.splitlines():
        if line:
            try:
                raw = base64.b64decode(line, validate=True)
            except ValueError:
                raise SealError("a sealed log line is not base64") from None
            out.append(decrypt_bytes(raw, key).decode("utf-8", errors="replace"))
    return "".join(out)


# -- files, streamed -------------------------------------------------------------------------------


def _read_chunks(f: BinaryIO, size: int) -> Iterator[bytes]:
    while chunk := f.read(size):
        yield chunk


def encrypt_file(src: Path | bytes, dest: Path, key: bytes) -> tuple[str, str]:
    """Encrypt ``src`` (a file, or bytes in memory) into ``dest`` chunk by chunk; returns
    ``(sha256 of the plaintext, sha256 of the ciphertext)``: the receipt commits to both."""
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    plain, cipher = hashlib.sha256(), hashlib.sha256()
    source = io.BytesIO(src) if isinstance(src, bytes) else src.open("rb")
    with source as fin, dest.open("wb") as fout:

        def out(data: bytes) -> None:
            cipher.update(data)
            fout.write(data)

        out(MAGIC + header)
        pending = fin.read(CHUNK_BYTES)
        while True:
            following = fin.read(CHUNK_BYTES) if len(pending) == CHUNK_BYTES else b""
            last = not following
            plain.update(pending)
            tag = _TAG_FINAL if last else _TAG_MESSAGE
            out(sodium.crypto_secretstream_xchacha20poly1305_push(state, pending, None, tag))
            if last:
                break
            pending = following
    return plain.hexdigest(), cipher.hexdigest()


def decrypt_file(src: Path, dest: Path, key: bytes) -> str:
    """Decrypt ``src`` into ``dest``; returns the plaintext's sha256. Raises :class:`SealError`
    (and leaves no ``dest``) on a changed, reordered, truncated or foreign stream."""
    plain = hashlib.sha256()
    try:
        with src.open("rb") as fin, dest.open("wb") as fout:
            start = fin.read(len(MAGIC) + _HEADER)
            if len(start) != len(MAGIC) + _HEADER or not start.startswith(MAGIC):
                raise SealError("not a sealed pasar file (its header is missing)")
            state = sodium.crypto_secretstream_xchacha20poly1305_state()
            try:
                sodium.crypto_secretstream_xchacha20poly1305_init_pull(
                    state, start[len(MAGIC) :], key
                )
            except nacl.exceptions.CryptoError:
                raise SealError("the sealed file's header is invalid") from None
            finished = False
            for chunk in _read_chunks(fin, CHUNK_BYTES + _ABYTES):
                if finished:
                    raise SealError("the sealed file has data after its final chunk")
                try:
                    data, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, chunk)
                except (ValueError, nacl.exceptions.CryptoError):
                    raise SealError(
                        "the sealed file does not decrypt: a byte was changed, a chunk moved, "
                        "or it was sealed under another key"
                    ) from None
                plain.update(data)
                fout.write(data)
                finished = tag == _TAG_FINAL
            if not finished:
                raise SealError("the sealed file is truncated (its final chunk is missing)")
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return plain.hexdigest()


__all__ = [
    "CHUNK_BYTES",
    "DATA_KEY_BYTES",
    "SealError",
    "account_box_key",
    "decrypt_bytes",
    "decrypt_file",
    "encrypt_bytes",
    "encrypt_file",
    "identity_box_key",
    "lease_keypair",
    "new_data_key",
    "open_key",
    "open_log_lines",
    "parse_box_key",
    "seal_key",
    "seal_log_line",
]
