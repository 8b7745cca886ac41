"""Ed25519 identities, printable account ids, and key files under ``$PASAR_HOME``.

**Account id.** Every account is an Ed25519 public key (DESIGN.md §4). Its printable form is::

    "pa1" + base32(public_key || checksum)      # lower case, no padding: 61 characters

where ``checksum`` is the first 4 bytes of BLAKE2b(public_key, person=b"pasar-account"). The
prefix makes an id recognisable in logs and refuses keys of other systems; base32 avoids the
characters people confuse (0/O, 1/l, 8/B) and survives copy-paste and case-insensitive media; the
checksum turns a mistyped or truncated id into a clear error instead of a payment to a key nobody
holds. Exactly one spelling is accepted (lower case, canonical final character), so an account
never has two ids — a market that keys nonces or balances by id can compare strings.

**Key files.** ``<home>/keys/<name>.key``, a small JSON document holding the 32-byte seed in hex.
The directory is created 0700 and the file 0600 from its first byte (it is written to a
temporary file opened with mode 0600, then linked or renamed into place, so no moment exists in
which another user could read it). A key file that group or others can read is refused, as
OpenSSH refuses one: the key may already have leaked, and the user should know.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import secrets
import stat
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NewType

import nacl.exceptions
import nacl.signing

from pasar.core.errors import PasarError

AccountId = NewType("AccountId", str)

ACCOUNT_PREFIX = "pa1"
PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
SIGNATURE_SIZE = 64
CHECKSUM_SIZE = 4
_CHECKSUM_PERSON = b"pasar-account"
_BODY_CHARS = -(-(PUBLIC_KEY_SIZE + CHECKSUM_SIZE) * 8 // 5)  # 58 base32 characters
ACCOUNT_ID_LENGTH = len(ACCOUNT_PREFIX) + _BODY_CHARS  # 61
_BASE32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"

DEFAULT_KEY_NAME = "default"
KEY_FILE_KIND = "pasar-ed25519-key"
KEY_FILE_VERSION = 1
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HEX_SEED = re.compile(r"[0-9a-f]{64}")


class IdentityError(PasarError):
    """A malformed account id, an unusable key file, or a key name that cannot be a file name."""


# --------------------------------------------------------------------------- account ids


def _checksum(public_key: bytes) -> bytes:
    return hashlib.blake2b(public_key, digest_size=CHECKSUM_SIZE, person=_CHECKSUM_PERSON).digest()


def account_id_of(public_key: bytes) -> AccountId:
    """The printable account id of a 32-byte Ed25519 public key."""
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise IdentityError(
            f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes, got {len(public_key)}",
            code="invalid_public_key",
        )
    body = base64.b32encode(public_key + _checksum(public_key)).decode("ascii")
    return AccountId(ACCOUNT_PREFIX + body.rstrip("=").lower())


def public_key_of(text: object, *, field: str | None = None) -> bytes:
    """The 32-byte public key inside an account id; raise :class:`IdentityError` saying what is
    wrong with it (prefix, length, a character outside base32, or a checksum mismatch)."""
    try:
        return _decode_account_id(text) if isinstance(text, str) else _decode_uncached(text)
    except IdentityError as exc:
        if field is None:
            raise
        raise IdentityError(exc.message, code=exc.code, field=field, hint=exc.hint) from None


@lru_cache(maxsize=4096)
def _decode_account_id(text: str) -> bytes:
    # A market sees the same few signers over and over; decoding and re-encoding each time is
    # a quarter of an envelope check. Failures raise, and lru_cache does not keep those.
    return _decode_uncached(text)


def _decode_uncached(text: object) -> bytes:
    def bad(message: str, hint: str) -> IdentityError:
        return IdentityError(message, code="invalid_account_id", hint=hint)

    if not isinstance(text, str):
        raise bad(
            f"an account id is a string, got {type(text).__name__}",
            f"account ids look like {ACCOUNT_PREFIX}… ({ACCOUNT_ID_LENGTH} characters)",
        )
    shown = text if len(text) <= 80 else text[:77] + "..."
    if not text.startswith(ACCOUNT_PREFIX):
        if text.lower().startswith(ACCOUNT_PREFIX):
            raise bad(f"account id {shown!r} is not lower case", "write account ids in lower case")
        raise bad(
            f"{shown!r} is not a pasar account id: it does not start with {ACCOUNT_PREFIX!r}",
            "copy the whole id as printed by `pasar keys show`",
        )
    if len(text) != ACCOUNT_ID_LENGTH:
        raise bad(
            f"account id {shown!r} has {len(text)} characters; an account id has "
            f"{ACCOUNT_ID_LENGTH}",
            "the id was truncated or extended; copy it again in full",
        )
    body = text[len(ACCOUNT_PREFIX) :]
    for position, char in enumerate(body, start=len(ACCOUNT_PREFIX) + 1):
        if char not in _BASE32_ALPHABET:
            if char in _BASE32_ALPHABET.upper():
                raise bad(
                    f"account id {shown!r} is not lower case", "write account ids in lower case"
                )
            raise bad(
                f"account id {shown!r} has {char!r} at position {position}, which never occurs "
                "in an account id",
                "account ids use only a-z and 2-7 (never 0, 1, 8 or 9); check for a typo",
            )
    padded = body.upper() + "=" * (-len(body) % 8)
    raw = base64.b32decode(padded)
    public_key, checksum = raw[:PUBLIC_KEY_SIZE], raw[PUBLIC_KEY_SIZE:]
    if _checksum(public_key) != checksum or account_id_of(public_key) != text:
        raise bad(
            f"account id {shown!r} fails its checksum: it was mistyped or corrupted",
            "copy the id again from its source (e.g. `pasar keys show`)",
        )
    return public_key


def parse_account_id(text: object, *, field: str | None = None) -> AccountId:
    """Check that ``text`` is a well-formed account id and return it typed as one."""
    public_key_of(text, field=field)
    assert isinstance(text, str)  # checked by public_key_of; this tells the type checker
    return AccountId(text)


def is_account_id(text: object) -> bool:
    """True when ``text`` is a well-formed account id (for filters; parse when you need why)."""
    try:
        public_key_of(text)
    except IdentityError:
        return False
    return True


# --------------------------------------------------------------------------- signing


@lru_cache(maxsize=4096)
def _verify_key(public_key: bytes) -> nacl.signing.VerifyKey:
    # A market verifies many envelopes from few accounts; building the key once saves the decode.
    return nacl.signing.VerifyKey(public_key)


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        _verify_key(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


class Identity:
    """An Ed25519 signing key and the account id it controls.

    ``repr`` and ``str`` never show the seed, so an identity can be logged safely.
    """

    __slots__ = ("_account_id", "_key")

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        self._key = signing_key
        self._account_id = account_id_of(bytes(signing_key.verify_key))

    @classmethod
    def generate(cls) -> Identity:
        """A fresh identity from the operating system's random source."""
        return cls.from_seed(secrets.token_bytes(SEED_SIZE))

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """The identity of a 32-byte seed (deterministic: for tests, devnets and key files)."""
        if len(seed) != SEED_SIZE:
            raise IdentityError(
                f"an Ed25519 seed is {SEED_SIZE} bytes, got {len(seed)}", code="invalid_seed"
            )
        return cls(nacl.signing.SigningKey(bytes(seed)))

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed. Whoever holds it controls the account."""
        return bytes(self._key)

    @property
    def public_key(self) -> bytes:
        return bytes(self._key.verify_key)

    @property
    def account_id(self) -> AccountId:
        return self._account_id

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached Ed25519 signature of ``message``."""
        return bytes(self._key.sign(message).signature)

    def __repr__(self) -> str:
        return f"Identity({self._account_id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and other._account_id == self._account_id

    def __hash__(self) -> int:
        return hash(self._account_id)


# --------------------------------------------------------------------------- key files


def pasar_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The pasar home: ``home`` if given, else ``$PASAR_HOME``, else ``~/.pasar``."""
    if home is not None and os.fspath(home) != "":
        return Path(home).expanduser()
    env = os.environ.get("PASAR_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".pasar"


def check_key_name(name: str) -> str:
    """Refuse key names that are not a plain file name (no ``/``, no ``..``, no leading dot)."""
    if not _KEY_NAME.fullmatch(name):
        raise IdentityError(
            f"invalid key name {name!r}",
            code="invalid_key_name",
            field="name",
            hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def key_path(name: str = DEFAULT_KEY_NAME, home: str | os.PathLike[str] | None = None) -> Path:
    """Where the key called ``name`` lives: ``<home>/keys/<name>.key``."""
    return pasar_home(home) / "keys" / f"{check_key_name(name)}.key"


@dataclass(frozen=True)
class KeyFileInfo:
    """What ``pasar keys show`` reports about a key file that loaded."""

    name: str
    path: Path
    account_id: AccountId
    mode: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "account_id": self.account_id,
            "path": str(self.path),
            "mode": f"{self.mode:04o}",
            "permissions_ok": True,
        }


def _key_file_bytes(identity: Identity) -> bytes:
    # The account id is stored beside the seed so that a corrupted seed is detected on load
    # rather than silently becoming a different account.
    text = (
        "{\n"
        f'  "kind": "{KEY_FILE_KIND}",\n'
        f'  "version": {KEY_FILE_VERSION},\n'
        f'  "account_id": "{identity.account_id}",\n'
        f'  "seed": "{identity.seed.hex()}"\n'
        "}\n"
    )
    return text.encode("ascii")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform or filesystem lets a directory sync
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_identity(
    identity: Identity,
    name: str = DEFAULT_KEY_NAME,
    home: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``identity`` to ``<home>/keys/<name>.key`` (mode 0600, atomically); return the path.

    Refuses to replace an existing key unless ``overwrite``: a lost key is a lost account.
    """
    path = key_path(name, home)
    keys_dir = path.parent
    try:
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise IdentityError(
            f"cannot create the key directory {keys_dir}: {exc.strerror or exc}",
            code="key_dir_unwritable",
            hint="check the permissions of the pasar home, or choose another with --home",
        ) from exc
    if path.exists() and not overwrite:
        raise _exists_error(path, name)
    tmp = keys_dir / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        # O_EXCL: never write through a file or link someone else placed here; 0o600 from the
        # first byte (umask can only narrow it), then fchmod in case umask narrowed it to 0400.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)
            os.write(fd, _key_file_bytes(identity))
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic, and fails if a key appeared meanwhile
            except FileExistsError:
                raise _exists_error(path, name) from None
            except OSError:  # a filesystem without hard links: fall back to rename
                if path.exists():
                    raise _exists_error(path, name) from None
                os.replace(tmp, path)
    except OSError as exc:
        raise IdentityError(
            f"cannot write the key file {path}: {exc.strerror or exc}",
            code="key_file_unwritable",
            hint="check the permissions of the key directory, or choose another with --home",
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(keys_dir)
    return path


def _exists_error(path: Path, name: str) -> IdentityError:
    return IdentityError(
        f"a key named {name!r} already exists at {path}",
        code="key_exists",
        field="name",
        hint="choose another --name, or pass --force to replace it (the old account is lost "
        "unless you kept a copy of the file)",
    )


def _check_permissions(path: Path, st: os.stat_result) -> None:
    if os.name == "nt":  # POSIX modes mean nothing there; rely on the profile directory's ACL
        return
    if not stat.S_ISREG(st.st_mode):
        raise IdentityError(
            f"{path} is not a regular file", code="key_file_invalid", hint="remove it"
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise IdentityError(
            f"the key file {path} belongs to another user (uid {st.st_uid})",
            code="key_file_owner",
            hint=f"run as its owner, or `chown $(id -u) {path}`",
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise IdentityError(
            f"the key file {path} has mode {mode:04o}, so other users of this machine can read "
            "it; pasar refuses to use a key that may have leaked (if others may have read it, "
            "make a new key and move your funds)",
            code="key_file_permissions",
            hint=f"chmod 600 {path}",
        )


def load_key_file(path: Path, *, name: str | None = None) -> tuple[Identity, os.stat_result]:
    """Read a key file, refusing loose permissions or a file that does not match its account."""
    shown_name = name or path.stem
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise IdentityError(
            f"no key named {shown_name!r} (looked for {path})",
            code="key_not_found",
            field="name",
            hint=f"create one with `pasar keys new --name {shown_name}`, or set --home / "
            "$PASAR_HOME to where your keys are",
        ) from None
    except OSError as exc:
        raise IdentityError(
            f"cannot read the key file {path}: {exc.strerror or exc}",
            code="key_file_unreadable",
            hint=f"check the permissions: `ls -l {path}`",
        ) from exc
    try:
        st = os.fstat(fd)  # the file we opened, not whatever the path points to by now
        _check_permissions(path, st)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(4096)
    finally:
        os.close(fd)
    return _parse_key_file(path, data), st


def _parse_key_file(path: Path, data: bytes) -> Identity:
    import json  # local: only key loading needs the forgiving stdlib parser

    def corrupt(why: str) -> IdentityError:
        return IdentityError(
            f"the key file {path} is not a valid pasar key: {why}",
            code="key_file_invalid",
            hint="restore it from a backup, or create a new key with `pasar keys new --force`",
        )

    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise corrupt("it is not JSON") from None
    if not isinstance(doc, dict) or doc.get("kind") != KEY_FILE_KIND:
        raise corrupt(f'it has no "kind": "{KEY_FILE_KIND}"')
    if doc.get("version") != KEY_FILE_VERSION:
        raise corrupt(f"unsupported version {doc.get('version')!r}")
    seed = doc.get("seed")
    if not isinstance(seed, str) or not _HEX_SEED.fullmatch(seed):
        raise corrupt("the seed is not 64 lower-case hex characters")
    identity = Identity.from_seed(bytes.fromhex(seed))
    if doc.get("account_id") != identity.account_id:
        raise corrupt("its seed does not match its account id (the file was altered)")
    return identity


def load_identity(
    name: str = DEFAULT_KEY_NAME, home: str | os.PathLike[str] | None = None
) -> Identity:
    """Load the key called ``name`` from ``<home>/keys``; see :func:`load_key_file` for refusals."""
    identity, _ = load_key_file(key_path(name, home), name=name)
    return identity


def key_info(
    name: str = DEFAULT_KEY_NAME, home: str | os.PathLike[str] | None = None
) -> KeyFileInfo:
    """Load a key and describe it (account id, path, mode) without exposing the seed."""
    path = key_path(name, home)
    identity, st = load_key_file(path, name=name)
    return KeyFileInfo(name, path, identity.account_id, stat.S_IMODE(st.st_mode))


def list_key_names(home: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the key files in ``<home>/keys``, sorted (their contents are not read)."""
    keys_dir = pasar_home(home) / "keys"
    if not keys_dir.is_dir():
        return []
    return sorted(
        p.stem for p in keys_dir.glob("*.key") if _KEY_NAME.fullmatch(p.stem) and p.is_file()
    )
