"""What one market node is told at start: where it lives, what it listens on, its limits.

A frozen value built once (by the CLI or a test) and read everywhere else, so no module reaches
for environment variables or defaults of its own: two markets in one process (tests, the devnet)
cannot leak settings into each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pasar.core.errors import PasarError
from pasar.crypto.identity import pasar_home
from pasar.market.blobs import DEFAULT_GRACE_S, DEFAULT_QUOTA_BYTES
from pasar.market.ratelimit import DEFAULT_MAX_WAITERS, DEFAULT_RATE_PER_S

MIB = 1 << 20
DEFAULT_PORT = 8420
DEFAULT_HOST = "127.0.0.1"  # never all interfaces unless the operator asks for it
DEFAULT_MAX_BODY_BYTES = 1 * MIB  # a JSON request: an order or a bid is a few KiB
DEFAULT_MAX_BLOB_BYTES = 256 * MIB  # one content-addressed input or output file


def default_db_url(home: Path) -> str:
    """SQLite in the market's home: ``sqlite:////abs/home/market.db``."""
    return f"sqlite:///{home.absolute() / 'market.db'}"


@dataclass(frozen=True)
class MarketConfig:
    """Settings of one market node; see :meth:`build` for the defaults."""

    home: Path
    db_url: str
    preset: str = "pasar"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0: the OS picks a free port (tests, the devnet)
    devnet: bool = False  # enables the faucet: never on a market holding real money
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES
    key_name: str = "market"
    rate_per_s: int = DEFAULT_RATE_PER_S  # requests per second per account (bursts: 2×)
    max_waiters: int = DEFAULT_MAX_WAITERS  # long polls one account may hold open
    blob_quota_bytes: int = DEFAULT_QUOTA_BYTES  # blobs one account may keep stored
    blob_grace_s: int = DEFAULT_GRACE_S  # a blob no order names is removed after this
    # HTTPS: "auto" (a self-signed certificate kept in <home>/tls), or a certificate and key
    tls: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    mtls: bool = False  # signed requests must come with a client certificate naming the signer
    # serve on this inherited socket, already bound and listening (``pasar devnet``'s, so that
    # its providers can start before the market listens); ``host``/``port`` then only name it
    listen_fd: int | None = None

    @property
    def blobs_dir(self) -> Path:
        """Where content-addressed blobs are kept: ``<home>/blobs``."""
        return self.home / "blobs"

    @classmethod
    def build(
        cls,
        *,
        home: str | Path | None = None,
        db_url: str | None = None,
        preset: str = "pasar",
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        devnet: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES,
        key_name: str = "market",
        rate_per_s: int = DEFAULT_RATE_PER_S,
        blob_quota_bytes: int = DEFAULT_QUOTA_BYTES,
        blob_grace_s: int = DEFAULT_GRACE_S,
        tls: str | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        mtls: bool = False,
        listen_fd: int | None = None,
    ) -> MarketConfig:
        """Resolve the home (``--home``, else ``$PASAR_HOME``, else ``~/.pasar``) to an
        absolute path, so that a later ``chdir`` cannot move the database or the keys."""
        resolved = pasar_home(home).absolute()
        if tls not in (None, "auto") or (tls == "auto" and (tls_cert or tls_key)):
            raise PasarError(
                f"--tls takes only 'auto' (a self-signed certificate), got {tls!r}",
                code="invalid_flag",
                field="--tls",
                hint="--tls auto, or --tls-cert FILE --tls-key FILE for your own certificate",
            )
        if mtls and tls is None and tls_cert is None:
            raise PasarError(
                "--mtls needs TLS: client certificates are a TLS feature",
                code="invalid_flag",
                field="--mtls",
                hint="add --tls auto (or --tls-cert FILE --tls-key FILE)",
            )
        if (tls_cert is None) != (tls_key is None):
            raise PasarError(
                "--tls-cert and --tls-key go together",
                code="invalid_flag",
                field="--tls-key" if tls_key is None else "--tls-cert",
                hint="give both the certificate (PEM) and its private key (PEM)",
            )
        for flag, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key)):
            if path is not None and not path.is_file():
                raise PasarError(f"{flag}: no file {path}", code="invalid_flag", field=flag,
                                 hint="give the path of a PEM file")  # fmt: skip
        return cls(
            home=resolved,
            db_url=db_url or default_db_url(resolved),
            preset=preset,
            host=host,
            port=port,
            devnet=devnet,
            max_body_bytes=max_body_bytes,
            max_blob_bytes=max_blob_bytes,
            key_name=key_name,
            rate_per_s=rate_per_s,
            blob_quota_bytes=blob_quota_bytes,
            blob_grace_s=blob_grace_s,
            tls=tls,
            tls_cert=tls_cert,
            tls_key=tls_key,
            mtls=mtls,
            listen_fd=listen_fd,
        )
