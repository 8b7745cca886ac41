"""Content-addressed blob storage: a file's name is the SHA-256 of its bytes.

Job inputs and outputs travel as blobs (DESIGN.md §4). Because the address *is* the hash, a
stored blob can be trusted by anyone who knows its address, whoever uploaded it, and any other
content-addressed store (S3 keyed by hash, IPFS with sha256 CIDs) can replace this folder.

Layout: ``<root>/<first two hex digits>/<sha256>``, so no directory grows past a few thousand
entries. An upload streams into a temporary file *in the same directory* while being hashed,
is fsynced, and only then linked to its final name (atomic, and it never replaces a file that
is already there), so a reader never sees a partial blob and a crash leaves at most a temporary
file (swept on the next start). Content whose hash differs from the claimed one is refused with
nothing kept.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread

from pasar.api.attachments import INLINE_BYTES
from pasar.core.errors import PasarError
from pasar.crypto.hashing import is_sha256_hex

DEFAULT_MAX_BLOB_BYTES = 256 << 20
DEFAULT_QUOTA_BYTES = 10 << 30  # what one account may keep stored at once
DEFAULT_GRACE_S = 3600  # how long a blob no order names is kept
_STALE_TEMP_S = 3600  # an upload older than this was interrupted by a crash


class BlobError(PasarError):
    """An invalid hash, a missing blob, content that does not match its hash, or too much of it."""


def check_hash(sha256: str) -> str:
    """Return ``sha256`` if it is a wire digest (64 lower-case hex), else raise 400."""
    if is_sha256_hex(sha256):
        return sha256
    shown = sha256 if len(sha256) <= 80 else sha256[:77] + "..."
    lower = sha256.lower()
    hint = (
        "write digests in lower case"
        if is_sha256_hex(lower)
        else "a blob's address is the sha256 of its content: 64 lower-case hex characters, "
        "e.g. the first column of `sha256sum FILE`"
    )
    raise BlobError(
        f"invalid blob hash {shown!r}", code="invalid_hash", field="sha256", hint=hint, status=400
    )


def _not_found(sha256: str) -> BlobError:
    return BlobError(
        f"no blob {sha256}",
        code="blob_not_found",
        field="sha256",
        hint="upload it first with PUT /v1/blobs/{sha256}",
        status=404,
    )


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory sync
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _Upload:
    """One blob being written: temporary file, running hash and size; commit or discard."""

    def __init__(self, final: Path, sha256: str, max_bytes: int) -> None:
        self.final = final
        self.sha256 = sha256
        self.max_bytes = max_bytes
        self.size = 0
        self.hash = hashlib.sha256()
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{sha256}.", suffix=".tmp", dir=final.parent)
        self.temp = Path(name)
        self.file: BinaryIO = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise BlobError(
                f"blob is larger than the limit of {self.max_bytes} bytes",
                code="too_large",
                field="body",
                hint="split the data into several blobs",
                status=413,
            )
        self.hash.update(chunk)
        self.file.write(chunk)

    def commit(self) -> bool:
        """Check the hash and publish the file; True if it was not stored before."""
        self.check()
        self.sync()
        created = self.publish()
        if created:
            _fsync_dir(self.final.parent)
        return created

    def check(self) -> None:
        """Refuse (400 ``hash_mismatch``) content that is not what its address says."""
        actual = self.hash.hexdigest()
        if actual != self.sha256:
            raise BlobError(
                f"the content's sha256 is {actual}, not the {self.sha256} in the address",
                code="hash_mismatch",
                field="sha256",
                hint="the address must be the sha256 of exactly the bytes sent; nothing was stored",
                status=400,
            )

    def sync(self) -> None:
        """The bytes on disk before the name is (a crash never leaves a partial blob)."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def publish(self) -> bool:
        """Link the synced file to its address; True if it was not stored before (then the
        caller syncs the directory)."""
        try:
            os.link(self.temp, self.final)  # atomic, and never replaces an existing blob
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links
            if self.final.exists():
                return False
            os.replace(self.temp, self.final)
        return True

    def discard(self) -> None:
        """Remove the temporary file (after a commit too: the blob is its hard link)."""
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()


class BlobStore:
    """Blobs under ``root``; see the module docstring for the layout and guarantees."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BLOB_BYTES,
        quota_bytes: int = DEFAULT_QUOTA_BYTES,
    ) -> None:
        self.root = root
        self._root_text = str(root)
        self.max_bytes = max_bytes
        self.quota_bytes = quota_bytes
        root.mkdir(parents=True, exist_ok=True)
        self._sweep_temporaries()
        self._lock = threading.Lock()
        self._usage: dict[str, int] | None = None  # account → bytes it stored (built on demand)

    def _sweep_temporaries(self) -> None:
        cutoff = time.time() - _STALE_TEMP_S
        for temp in self.root.glob("??/.*.tmp"):
            with contextlib.suppress(OSError):
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()

    def _path(self, sha256: str) -> Path:
        check_hash(sha256)
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        """Whether the blob is stored (an invalid hash is a 400, not ``False``). A string path
        and ``os.path``, not ``Path`` objects: every order asks (a third of the cost)."""
        check_hash(sha256)
        return os.path.isfile(f"{self._root_text}/{sha256[:2]}/{sha256}")

    def path(self, sha256: str) -> Path:
        """The file holding the blob; 404 ``blob_not_found`` if there is none."""
        path = self._path(sha256)
        if not path.is_file():
            raise _not_found(sha256)
        return path

    def size(self, sha256: str) -> int:
        """The blob's length in bytes; 404 if it is not stored."""
        return self.path(sha256).stat().st_size

    def _owners_file(self, sha256: str) -> Path:
        return self.root / "owners" / sha256[:2] / sha256

    def add_owner(self, sha256: str, account: str) -> None:
        """Record that ``account`` uploaded the blob: it may read it back, and the blob counts
        against its quota. One line per uploader."""
        path = self._owners_file(check_hash(sha256))
        with self._lock:
            if account in self.owners(sha256):
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="ascii") as f:
                f.write(account + "\n")
            usage = self._usage_index()
            usage[account] = usage.get(account, 0) + self.size(sha256)

    def usage(self, account: str) -> int:
        """Bytes of the blobs ``account`` uploaded that are still stored."""
        with self._lock:
            return self._usage_index().get(account, 0)

    def check_quota(self, account: str, adding: int, sha256: str) -> None:
        """Refuse (413 ``quota_exceeded``) an upload that would take ``account`` past its quota;
        a blob it already owns costs nothing more."""
        self.check_quota_of_all(account, {sha256: adding})

    def check_quota_of_all(
        self, account: str, sizes: Mapping[str, int], *, field: str = "body"
    ) -> None:
        """:meth:`check_quota` for several blobs stored at once (a request's attachments): their
        sizes together, so that no request takes an account past its quota, whatever it holds."""
        new = {sha256: size for sha256, size in sizes.items() if account not in self.owners(sha256)}
        if not new:
            return
        adding = sum(new.values())
        used = self.usage(account)
        if used + adding > self.quota_bytes:
            raise BlobError(
                f"this upload ({adding} bytes) would take {account[:16]}… past its storage "
                f"quota: {used} of {self.quota_bytes} bytes used",
                code="quota_exceeded",
                field=field,
                hint="blobs no order names are removed after a grace period; wait, or use "
                "fewer or smaller inputs",
                status=413,
            )

    def _usage_index(self) -> dict[str, int]:
        if self._usage is None:
            usage: dict[str, int] = {}
            for owners in self.root.glob("owners/??/*"):
                blob = self.root / owners.parent.name / owners.name
                with contextlib.suppress(OSError):
                    size = blob.stat().st_size
                    for account in owners.read_text(encoding="ascii").split():
                        usage[account] = usage.get(account, 0) + size
            self._usage = usage
        return self._usage

    def collect(self, referenced: Callable[[str], bool], *, older_than_s: float) -> list[str]:
        """Delete every blob that nothing references and that is older than the grace; return
        their hashes. A client uploads inputs before it signs the order naming them, so the
        grace must outlast that gap (the default is an hour)."""
        cutoff = time.time() - older_than_s
        removed: list[str] = []
        for blob in self.root.glob("??/*"):
            sha = blob.name
            if not is_sha256_hex(sha) or referenced(sha):
                continue
            with contextlib.suppress(OSError), self._lock:
                stat = blob.stat()
                if stat.st_mtime >= cutoff:
                    continue
                owners_file = self._owners_file(sha)
                owners = self.owners(sha)
                blob.unlink()
                owners_file.unlink(missing_ok=True)
                usage = self._usage_index()
                for account in owners:
                    usage[account] = max(0, usage.get(account, 0) - stat.st_size)
                removed.append(sha)
        return removed

    def owners(self, sha256: str) -> set[str]:
        """The accounts that uploaded the blob (empty for one stored before owners existed)."""
        check_hash(sha256)
        try:  # a string path and a binary read, not Path.read_text: every order asks
            with open(f"{self._root_text}/owners/{sha256[:2]}/{sha256}", "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return set()
        return set(data.decode("ascii").split())

    def open(self, sha256: str) -> BinaryIO:
        """The blob opened for reading (the caller closes it); 404 if it is not stored."""
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError:
            raise _not_found(sha256) from None

    def put(self, sha256: str, data: bytes | Iterable[bytes]) -> bool:
        """Store ``data`` as blob ``sha256``; True if created, False if already present.

        Raises 400 ``hash_mismatch`` (nothing kept) or 413 ``too_large``.
        """
        upload = _Upload(self._path(sha256), sha256, self.max_bytes)
        try:
            for chunk in [data] if isinstance(data, bytes | bytearray | memoryview) else data:
                upload.write(bytes(chunk))
            return upload.commit()
        finally:
            upload.discard()

    def put_many(self, blobs: dict[str, bytes]) -> list[str]:
        """Store several small blobs (a request's attachments) as :meth:`put` stores each, in
        stages across all of them — write, sync, link, sync the folders — so that one journal
        commit makes all their bytes durable and one more all their names (storing them one
        by one cost a journal commit per sync: tens of milliseconds on a busy disk). Returns
        the ones created; one already stored is not written again (its address is its
        content). Raises as :meth:`put` does, with nothing stored."""
        uploads = [
            _Upload(self._path(sha256), sha256, self.max_bytes)
            for sha256 in blobs
            if not self.exists(sha256)
        ]
        try:
            for upload in uploads:
                upload.write(blobs[upload.sha256])
                upload.check()
            for upload in uploads:
                upload.sync()
            created = [upload for upload in uploads if upload.publish()]
            for folder in {upload.final.parent for upload in created}:
                _fsync_dir(folder)
            return [upload.sha256 for upload in created]
        finally:
            for upload in uploads:
                upload.discard()

    async def aput(self, sha256: str, chunks: AsyncIterable[bytes]) -> bool:
        """:meth:`put` for an async stream (an HTTP body): the bytes never all sit in memory.

        Chunk writes go to the page cache and are quick; the fsync that may wait for the disk
        runs in a worker thread so the event loop keeps serving other requests.
        """
        upload = _Upload(self._path(sha256), sha256, self.max_bytes)
        try:
            async for chunk in chunks:
                upload.write(chunk)
            return await anyio.to_thread.run_sync(upload.commit)
        finally:
            upload.discard()


def small_blobs(blobs: BlobStore, wanted: Iterable[tuple[str, int | None]]) -> dict[str, str]:
    """The bytes (base64, by sha256) of the blobs ``wanted`` (``(sha256, size)``) when all of
    them together are :data:`INLINE_BYTES` or less and stored; else nothing — the reader
    fetches them, as it may. The caller decides who may read them (the same parties a blob
    download admits); the reader checks each against its sha256 as it would a download."""
    wanted = list(wanted)
    if not wanted or sum(INLINE_BYTES + 1 if n is None else n for _, n in wanted) > INLINE_BYTES:
        return {}
    found: dict[str, str] = {}
    for sha256, _ in wanted:
        try:
            with blobs.open(sha256) as f:
                data = f.read(INLINE_BYTES + 1)
        except (PasarError, OSError):
            return {}
        if len(data) > INLINE_BYTES:  # not the size it was said to be
            return {}
        found[sha256] = base64.b64encode(data).decode("ascii")
    return found
