"""A provider's (and a verifier's) side of a sealed job (``privacy: sealed``, docs/privacy.md §2).

The market hands a sealed lease over with only the spec's public part and the address of the
encrypted private part. Before anything runs, the executor needs the job's data key:

- a **provider** draws a fresh X25519 key pair for the lease, announces the public half in a
  signed ``lease.accept``, and waits for the client's ``key.seal`` to it;
- a **verifier** needs no announcement: the client seals the key to its account key.

With the key, :func:`open_private_part` decrypts the spec's private part (the command, the
environment, the input manifest); inputs are decrypted into the workdir as they arrive
(:func:`fetch_sealed_input`), outputs encrypted before they leave (:func:`seal_output`), log
lines sealed one by one. Plaintext lives only in the lease's workdir, which a sealed lease keeps
on a memory file system (:func:`sealed_workroot`) and which is removed when the lease ends.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

from pasar.api.receipts import FileEntry
from pasar.core.errors import PasarError
from pasar.core.private_part import PrivatePart
from pasar.crypto.sealing import decrypt_bytes, decrypt_file, encrypt_file
from pasar.provider.market_api import MarketAPI

log = logging.getLogger("pasar.provider")

#: How long a lease waits for its client to seal the data key: an order's default TTL (10 min),
#: capped by the job's own ``max_duration``.
KEY_WAIT_S = 600
SHM = Path("/dev/shm")


def _is_tmpfs(path: Path) -> bool:
    """Whether ``path`` is a mount point of a memory file system (/proc/mounts says so)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return False
    return any(
        len(f := line.split()) >= 3 and f[1] == str(path) and f[2] == "tmpfs" for line in mounts
    )


def _sealed_root(home: Path) -> Path:
    if _is_tmpfs(SHM) and os.access(SHM, os.W_OK):
        tag = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]
        return SHM / f"pasar-{os.getuid()}-{tag}"
    return home / "sealed-work"


def sealed_workroot(home: Path) -> Path:
    """Where a sealed lease's workdir lives: a private folder on ``/dev/shm`` (memory, never
    written to disk) when the machine has one, else under ``home`` (said, loudly)."""
    root = _sealed_root(home)
    if not root.is_relative_to(SHM):
        log.warning("no memory file system at /dev/shm: sealed jobs' plaintext is on disk")
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    return root


def clear_sealed_workroot(home: Path) -> None:
    """Remove the sealed workroot and whatever a killed agent left in it: plaintext must not
    outlive its lease, even in memory. Called when an agent starts and when it stops."""
    shutil.rmtree(_sealed_root(home), ignore_errors=True)


def open_private_part(api: MarketAPI, private_sha: str, key: bytes, scratch: Path) -> PrivatePart:
    """Fetch the sealed private part (its address checks the ciphertext) and decrypt it."""
    got = api.get_blob(private_sha, scratch)
    if got != private_sha:
        raise PasarError(
            f"the sealed private part does not match its address {private_sha[:12]}…",
            code="sealed_data_invalid",
        )
    try:
        return PrivatePart.parse(decrypt_bytes(scratch.read_bytes(), key))
    finally:
        scratch.unlink(missing_ok=True)


def fetch_sealed_input(
    api: MarketAPI, item: FileEntry, dest: Path, key: bytes, scratch: Path
) -> str | None:
    """Fetch one sealed input's ciphertext to ``scratch`` and decrypt it to ``dest``; the
    reason it failed (as :meth:`LeaseExecutor._fetch_inputs` reports one), or None."""
    try:
        if api.get_blob(item.sha256, scratch) != item.sha256:
            return f"input {item.path!r} does not match its sha256 {item.sha256[:12]}…"
        plain = decrypt_file(scratch, dest, key)
    finally:
        scratch.unlink(missing_ok=True)
    if plain != item.plain_sha256:
        dest.unlink(missing_ok=True)
        return f"input {item.path!r} does not decrypt to the file its client sealed"
    return None


def seal_output(api: MarketAPI, path: Path, key: bytes, scratch: Path, part_bytes: int | None
                ) -> FileEntry:  # fmt: skip
    """Encrypt one output into ``scratch`` and upload the ciphertext: the entry names both."""
    plain_sha, _cipher_sha = encrypt_file(path, scratch, key)
    try:
        entry = api.put_blob(scratch, part_bytes=part_bytes)
    finally:
        scratch.unlink(missing_ok=True)
    return entry.model_copy(update={"plain_sha256": plain_sha})
