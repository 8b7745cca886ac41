"""The client's side of a sealed job (``privacy: sealed``, docs/privacy.md §2).

At launch the client draws the job's data key, encrypts every input and the private part
under it, uploads only ciphertext, and keeps the key in ``$PASAR_HOME/sealed/`` (0600, named by
the sealed private part's address, which the order names). While the job lives, someone must
seal the key to each provider that accepts one of its leases and to each verifier assigned to
check one: :class:`Sealer` does it — in the background of the SDK, while ``pasar launch
--wait`` waits, or in ``pasar seal-agent`` for long jobs. Outputs and logs come back under the
same key: :func:`open_output` and :class:`LogOpener` decrypt and verify them.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pasar.api.status import TERMINAL_ORDER
from pasar.client import calls
from pasar.client.calls import Call
from pasar.core.errors import PasarError
from pasar.crypto.hashing import sha256_hex
from pasar.crypto.identity import pasar_home
from pasar.crypto.sealing import (
    DATA_KEY_BYTES,
    account_box_key,
    decrypt_file,
    encrypt_bytes,
    encrypt_file,
    new_data_key,
    open_log_lines,
    parse_box_key,
    seal_key,
)

if TYPE_CHECKING:  # the spec's modules load only when a sealed job is launched
    from pasar.client.inputs import LocalInput
    from pasar.core.spec import JobSpec

log = logging.getLogger("pasar.client")

Perform = Callable[[Call[Any]], Any]
Upload = Callable[[str, "Path | bytes"], None]


class KeyStore:
    """Data keys of sealed jobs, one 0600 file each, named by the sealed private part."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.dir = pasar_home(home) / "sealed"

    def path(self, private_sha: str) -> Path:
        return self.dir / f"{private_sha}.key"

    def save(self, private_sha: str, key: bytes) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path(private_sha), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)

    def load(self, private_sha: str) -> bytes | None:
        try:
            key = self.path(private_sha).read_bytes()
        except FileNotFoundError:
            return None
        return key if len(key) == DATA_KEY_BYTES else None

    def of(self, order: Mapping[str, Any]) -> bytes:
        """The data key of a sealed ``order`` (its view), or a clear error."""
        private = str(order.get("private") or "")
        key = self.load(private)
        if key is None:
            raise PasarError(
                f"order {order.get('order_id')} is sealed and this machine has not its data key",
                code="sealed_key_missing",
                hint=f"run this where the job was launched (the key is {self.path(private)})",
            )
        return key


def is_sealed(order: Mapping[str, Any]) -> bool:
    spec = order.get("spec") or {}
    return isinstance(spec, Mapping) and spec.get("privacy") == "sealed"


@dataclass(frozen=True)
class SealedOrder:
    """What a sealed launch uploaded: the order's fields, and the key to keep."""

    fields: dict[str, Any]
    key: bytes


def prepare_sealed(job: JobSpec, files: list[LocalInput], upload: Upload) -> SealedOrder:
    """Encrypt each input and the private part under a fresh data key, upload the ciphertexts
    (streamed from a temporary file), and return the order's fields: the sealed private part's
    address as ``private``, the inputs' ciphertexts as ``blobs``."""
    from pasar.core.private_part import PrivatePart, order_fields

    key = new_data_key()
    manifest: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pasar-seal-") as scratch:
        for i, item in enumerate(files):
            sealed = Path(scratch) / str(i)
            plain_sha, cipher_sha = encrypt_file(item.file, sealed, key)
            upload(cipher_sha, sealed)
            entry = {"path": item.name, "sha256": cipher_sha, "size": sealed.stat().st_size}
            manifest.append({**entry, "plain_sha256": plain_sha})
            sealed.unlink()
    part = PrivatePart.of(job, manifest, secrets.token_bytes(32))
    ciphertext = encrypt_bytes(part.to_bytes(), key)
    private = sha256_hex(ciphertext)
    upload(private, ciphertext)
    fields = {
        **order_fields(job, part),
        "private": private,
        "blobs": [str(m["sha256"]) for m in manifest],
    }
    return SealedOrder(fields, key)


def seal_pending(perform: Perform, order: Mapping[str, Any], key: bytes) -> int:
    """Seal ``key`` to every party of ``order``'s leases that may read it and has not got it:
    each provider that announced its lease key, each verifier assigned a check. Returns how
    many were sealed now."""
    sealed = 0
    for lease in order.get("leases", []):
        if lease.get("status") not in ("running", "held"):
            continue
        have = set(lease.get("sealed_keys") or {})
        lease_id = str(lease["lease_id"])
        box_key = lease.get("box_key")
        if box_key and lease["provider"] not in have:
            to = parse_box_key(box_key, field="box_key")
            perform(calls.seal_key(lease_id, lease["provider"], seal_key(key, to)))
            sealed += 1
        for check_id in lease.get("checks", []):
            verifier = perform(calls.check(check_id)).verifier
            if verifier not in have:
                to_verifier = account_box_key(verifier)
                perform(calls.seal_key(lease_id, verifier, seal_key(key, to_verifier)))
                have.add(verifier)
                sealed += 1
    return sealed


class Sealer:
    """Follows one sealed order until it ends, sealing its data key to each new party."""

    def __init__(self, perform: Perform, order_id: str, key: bytes, *, poll_s: float = 10) -> None:
        self.perform = perform
        self.order_id = order_id
        self.key = key
        self.poll_s = poll_s
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"seal-{order_id}", daemon=True)

    def start(self) -> Sealer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        after = 0
        while not self._stop.is_set():
            try:
                reply = self.perform(calls.wait_order(self.order_id, after, self.poll_s))
                after = int(reply["next"])
                order = reply["order"]
                seal_pending(self.perform, order, self.key)
                if order["status"] in TERMINAL_ORDER:
                    return
            except PasarError as exc:  # a market restart, a refusal: say it, try again
                log.warning("sealing order %s: %s", self.order_id, exc.message)
                self._stop.wait(1.0)
            except Exception as exc:  # the client closed under a long poll, most often
                if self._stop.is_set():
                    return  # stopped: whatever the closed connection raised is expected
                log.warning("sealing order %s: %s", self.order_id, type(exc).__name__)
                self._stop.wait(1.0)


def open_output(path: Path, key: bytes, plain_sha256: str | None, what: str) -> None:
    """Decrypt a downloaded sealed output in place and check it is the plaintext the receipt
    names; a mismatch or a tampered stream leaves nothing behind."""
    plain = path.with_name(path.name + ".open")
    try:
        got = decrypt_file(path, plain, key)
    except PasarError:
        path.unlink(missing_ok=True)
        raise
    if got != plain_sha256:
        plain.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        raise PasarError(
            f"{what} decrypts to a file the receipt does not name (sha256 {got[:16]}…)",
            code="output_mismatch",
            status=502,
            hint="the provider signed a different plaintext; do not use this result",
        )
    os.replace(plain, path)


class LogOpener:
    """Turns a sealed log's stream of base64 lines, in arbitrary chunks, into plain text."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._partial = ""

    def feed(self, chunk: str) -> str:
        """The plain text of the whole lines received so far. A line that is not sealed under
        the job's key (the provider's own words before it had the key, such as why it could
        not start) is shown marked, never silently dropped or taken for the job's output."""
        text = self._partial + chunk
        whole, _, self._partial = text.rpartition("\n")
        out = []
        for line in whole.split("\n") if whole else []:
            try:
                out.append(open_log_lines(line, self.key))
            except PasarError:
                out.append(f"[not sealed] {line}\n")
        return "".join(out)
