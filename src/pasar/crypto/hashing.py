"""SHA-256 helpers: the one place pasar hashes bytes and files.

Blobs, results and Merkle leaves are all addressed by SHA-256, written on the wire as 64
lower-case hex characters. Keeping the hashing and the hex checks here means every module agrees
on one spelling of a digest (upper-case hex would make two addresses for one blob).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TypeGuard

from pasar.core.errors import PasarError

DIGEST_SIZE = 32
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20  # 1 MiB: big enough to amortise the syscalls, small enough to stay off the heap


class HashError(PasarError):
    """A digest that is not 64 lower-case hex characters, or a file that cannot be hashed."""


def sha256_digest(data: bytes | bytearray | memoryview) -> bytes:
    """The 32-byte SHA-256 digest of ``data``."""
    return hashlib.sha256(data).digest()


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    """The SHA-256 of ``data`` as 64 lower-case hex characters (the wire form)."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], *, chunk_size: int = _CHUNK) -> str:
    """The SHA-256 of a file's contents (hex), read in chunks so any size fits in memory."""
    h = hashlib.sha256()
    try:
        with Path(path).open("rb") as f:
            while chunk := f.read(chunk_size):
                h.update(chunk)
    except OSError as exc:
        raise HashError(
            f"cannot hash {os.fspath(path)}: {exc.strerror or exc}",
            code="unreadable_file",
            hint="check that the file exists and is readable",
        ) from exc
    return h.hexdigest()


def is_sha256_hex(value: object) -> TypeGuard[str]:
    """True when ``value`` is a digest in wire form: exactly 64 lower-case hex characters."""
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def parse_sha256(value: object, *, field: str | None = None) -> bytes:
    """Turn a wire digest (hex str) or a raw 32-byte digest into 32 bytes, or say why not."""
    if isinstance(value, bytes | bytearray):
        if len(value) != DIGEST_SIZE:
            raise HashError(
                f"a sha256 digest is {DIGEST_SIZE} bytes, got {len(value)}",
                code="invalid_digest",
                field=field,
            )
        return bytes(value)
    if not is_sha256_hex(value):
        shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else repr(value[:77])
        raise HashError(
            f"expected a sha256 digest (64 lower-case hex characters), got {shown}",
            code="invalid_digest",
            field=field,
            hint="write digests as lower-case hex, e.g. the output of `sha256sum`",
        )
    return bytes.fromhex(value)
