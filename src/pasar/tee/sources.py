"""Where a provider gets a quote: the kernel's configfs-tsm interface inside a TDX guest, or a
dstack/tappd socket inside a Phala CVM. Each is used only where present; on a machine without a
TEE (the CI machine, most laptops) :func:`detect` says so plainly rather than pretending.

Only "not present" is tested here: no TEE exists on the machines these tests run on.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import uuid
from pathlib import Path
from typing import Protocol

from pasar.core.errors import PasarError

TSM_REPORT = Path("/sys/kernel/config/tsm/report")
DSTACK_SOCKETS = (Path("/var/run/dstack.sock"), Path("/var/run/tappd.sock"))
TEE_MODES = ("auto", "tdx", "none")


class QuoteSource(Protocol):
    """Something that turns 64 bytes of report data into a signed quote of this machine."""

    name: str

    def available(self) -> bool:
        """Whether this source exists on this machine (cheap; no quote is made)."""
        ...

    def quote(self, report_data: bytes) -> bytes:
        """A quote whose report data is ``report_data`` (64 bytes)."""
        ...


class ConfigfsTsm:
    """Linux configfs-tsm (``/sys/kernel/config/tsm/report``, kernel 6.7+ TDX guests): make a
    report entry, write the report data to ``inblob``, read the quote from ``outblob``."""

    name = "configfs-tsm"

    def __init__(self, root: Path = TSM_REPORT) -> None:
        self.root = root

    def available(self) -> bool:
        return self.root.is_dir() and os.access(self.root, os.W_OK)

    def quote(self, report_data: bytes) -> bytes:
        entry = self.root / f"pasar-{uuid.uuid4().hex[:12]}"
        entry.mkdir()
        try:
            (entry / "inblob").write_bytes(report_data)
            return (entry / "outblob").read_bytes()
        finally:
            entry.rmdir()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self._path))
        self.sock = sock


class DstackSocket:
    """Phala's dstack guest agent (``/var/run/dstack.sock``: ``GET /GetQuote``) or its older
    tappd (``/var/run/tappd.sock``: ``POST /prpc/Tappd.TdxQuote?json``), inside a CVM."""

    name = "dstack"

    def __init__(self, path: Path | None = None, timeout: float = 30.0) -> None:
        self.path = (
            path
            if path is not None
            else next((p for p in DSTACK_SOCKETS if p.exists()), DSTACK_SOCKETS[0])
        )
        self.timeout = timeout

    def available(self) -> bool:
        return self.path.exists()

    def quote(self, report_data: bytes) -> bytes:
        conn = _UnixConnection(self.path, self.timeout)
        try:
            if self.path.name == "tappd.sock":
                body = json.dumps({"report_data": report_data.hex()})
                conn.request("POST", "/prpc/Tappd.TdxQuote?json", body=body)
            else:
                conn.request("GET", f"/GetQuote?report_data={report_data.hex()}")
            answer = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        return bytes.fromhex(str(answer["quote"]).removeprefix("0x"))


def sources() -> list[QuoteSource]:
    """Every source this module knows, most direct first."""
    return [ConfigfsTsm(), DstackSocket()]


def detect(mode: str, candidates: list[QuoteSource] | None = None) -> QuoteSource | None:
    """The quote source for ``--tee MODE``: None for ``none``; for ``auto`` the first present
    (None when there is none); for ``tdx`` the first present or a clear error."""
    if mode not in TEE_MODES:
        raise PasarError(
            f"--tee takes {', '.join(TEE_MODES)}; found {mode!r}", code="invalid_tee", field="tee"
        )
    if mode == "none":
        return None
    found = next((s for s in (candidates or sources()) if s.available()), None)
    if found is None and mode == "tdx":
        raise PasarError(
            "there is no TEE on this machine: neither configfs-tsm "
            f"({TSM_REPORT}) nor a dstack/tappd socket ({', '.join(map(str, DSTACK_SOCKETS))}) "
            "is present",
            code="no_tee",
            field="tee",
            hint="run the provider inside an Intel TDX guest or a Phala CVM, or start it with "
            "--tee none (it then takes no verification: tee jobs)",
        )
    return found
