"""TLS for the market's HTTP API: its certificate, its fingerprint, and how clients trust it.

A market serves HTTPS with a certificate it is given (``--tls-cert``/``--tls-key``) or, with
``--tls auto``, one it makes for itself once (self-signed, kept in ``<home>/tls/``, the key
0600). A self-signed certificate has no authority vouching for it, so clients **pin** it:
its SHA-256 fingerprint (``sha256:<64 hex>``), which the market prints when it starts.

A client connecting to ``https://…`` trusts, in this order (:func:`client_context`):

1. a CA bundle (``PASAR_TLS_CA``, or ``tls_ca = "…"`` in ``$PASAR_HOME/config.toml``): the
   ordinary web model, for a certificate from a real authority;
2. a fingerprint given to it (``PASAR_TLS_FINGERPRINT``, or ``[tls_pins]`` in config.toml, one
   line per market URL);
3. otherwise **trust on first use**: it fetches the certificate, pins its fingerprint in
   config.toml and says so loudly, naming the fingerprint to compare with the market's.

A pin is checked *before* any request is sent: the certificate is fetched and hashed first, and
the connection then trusts exactly that certificate, so a changed certificate (a new one, or
someone in the middle) is refused with both fingerprints named, and nothing signed leaves.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import os
import ssl
import sys
from pathlib import Path
from urllib.parse import urlsplit

from pasar.core.errors import PasarError

log = logging.getLogger("pasar.tls")

CA_ENV = "PASAR_TLS_CA"
FINGERPRINT_ENV = "PASAR_TLS_FINGERPRINT"
PINS_TABLE = "tls_pins"
CERT_FILE, KEY_FILE = "cert.pem", "key.pem"
_FETCH_TIMEOUT_S = 10.0


def fingerprint_of_pem(pem: str) -> str:
    """``sha256:<hex>`` of a certificate's DER bytes (what ``openssl x509 -fingerprint`` hashes)."""
    return "sha256:" + hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def _normal_fingerprint(text: str, source: str) -> str:
    value = text.strip().lower().replace(":", "")
    value = value.removeprefix("sha256")
    if len(value) != 64 or set(value) - set("0123456789abcdef"):
        raise PasarError(
            f"the TLS fingerprint from {source} is not a SHA-256 fingerprint: {text!r}",
            code="invalid_fingerprint",
            field="tls_fingerprint",
            hint="copy the sha256:… line the market printed when it started",
        )
    return "sha256:" + value


# -- the market's side -----------------------------------------------------------------------------


def self_signed(home: Path, host: str) -> tuple[Path, Path]:
    """The market's own certificate in ``<home>/tls`` (made once; reused on every start, so
    its pin holds): ECDSA P-256, valid for ``localhost``, ``127.0.0.1``, ``::1`` and ``host``."""
    folder = home / "tls"
    cert, key = folder / CERT_FILE, folder / KEY_FILE
    if cert.exists() and key.exists():
        return cert, key
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for text in {"127.0.0.1", "::1", host}:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(text)))
        except ValueError:
            if text and text not in ("0.0.0.0", "localhost"):
                names.append(x509.DNSName(text))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pasar market")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key


# -- the client's side ---------------------------------------------------------------------------


def _config(home: Path) -> dict[str, object]:
    from pasar.client.settings import load_config  # the one reader of config.toml

    return load_config(home)


def pinned(home: Path, url: str) -> str | None:
    pins = _config(home).get(PINS_TABLE)
    value = pins.get(url) if isinstance(pins, dict) else None
    return _normal_fingerprint(value, "config.toml") if isinstance(value, str) else None


def pin(home: Path, url: str, fingerprint: str) -> None:
    """Record ``fingerprint`` for ``url`` in ``[tls_pins]`` of ``home``'s config.toml, keeping
    every other line (a market address, a CA, other markets' pins) where it was."""
    path = home / "config.toml"
    home.mkdir(parents=True, exist_ok=True)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    header = f"[{PINS_TABLE}]"
    lines = [ln for ln in text.splitlines() if not ln.startswith(f'"{url}" =')]
    if header not in (ln.strip() for ln in lines):
        lines.append(header)
    # right under the header, not at the end: a table written after [tls_pins] (or a key a
    # user appended) would otherwise swallow the pin, or the pin would land in that table
    at = next(i for i, ln in enumerate(lines) if ln.strip() == header) + 1
    lines.insert(at, f'"{url}" = "{fingerprint}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _server_certificate(url: str) -> str:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    try:
        return ssl.get_server_certificate((host, port), timeout=_FETCH_TIMEOUT_S)
    except (OSError, ssl.SSLError) as exc:
        raise PasarError(
            f"cannot reach {url} over TLS to read its certificate: {exc}",
            code="market_unreachable",
            status=503,
            hint="is the market running with TLS at that address?",
        ) from None


def client_context(url: str, home: Path, fingerprint: str | None = None) -> ssl.SSLContext:
    """The SSL context a client uses for the market at ``url`` (see the module docstring)."""
    ca = os.environ.get(CA_ENV) or _config(home).get("tls_ca")
    if isinstance(ca, str) and ca:
        return ssl.create_default_context(cafile=ca)
    given = fingerprint or os.environ.get(FINGERPRINT_ENV)
    expected = _normal_fingerprint(given, "the given pin") if given else pinned(home, url)
    pem = _server_certificate(url)
    found = fingerprint_of_pem(pem)
    if expected is None:
        pin(home, url, found)
        print(
            f"pasar: WARNING: trusting {url} on first use: its TLS certificate is {found}. "
            f"Compare it with the fingerprint the market printed; it is now pinned in "
            f"{home / 'config.toml'} and any other certificate will be refused.",
            file=sys.stderr,
        )
    elif found != expected:
        raise PasarError(
            f"the TLS certificate of {url} is {found}, not the pinned {expected}: "
            "refusing to send anything",
            code="tls_pin_mismatch",
            status=502,
            field="tls_pins",
            hint=f"if the market really has a new certificate, remove its line from "
            f"[{PINS_TABLE}] in {home / 'config.toml'} and connect again to pin the new one",
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # the pin names the certificate; no name could add to it
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the pinned leaf is the anchor
    context.load_verify_locations(cadata=pem)
    return context


# -- mutual TLS: client certificates that name a pasar account ------------------------------------

CLIENT_CA_CERT, CLIENT_CA_KEY = "clients-ca.pem", "clients-ca.key"
CLIENT_CERT_DAYS = 30
CLIENT_CERT_RENEW = datetime.timedelta(hours=1)  # fetch a new one this long before expiry
ACCOUNT_URI_PREFIX = "pasar:"


def client_ca(home: Path) -> Path:
    """The market's authority for client certificates (``<home>/tls/clients-ca.*``, made once):
    Python's TLS checks a client certificate only against an authority, so the market is one,
    for certificates that name a pasar account and nothing else."""
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = home / "tls"
    cert = folder / CLIENT_CA_CERT
    if cert.exists():
        return cert
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    _write_key(folder / CLIENT_CA_KEY, private)
    cert.write_bytes(_certificate(private, private, "pasar market client CA", ca=True, days=3650))
    return cert


def _write_key(path: Path, private: object) -> None:
    from cryptography.hazmat.primitives import serialization

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            private.private_bytes(  # type: ignore[attr-defined]
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def _certificate(
    subject_key: object,
    issuer_key: object,
    name: str,
    *,
    ca: bool,
    days: int,
    issuer: str | None = None,
    account: str | None = None,
) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer or name)]))
        .public_key(subject_key.public_key() if hasattr(subject_key, "public_key") else subject_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if account is not None:
        uri = x509.UniformResourceIdentifier(ACCOUNT_URI_PREFIX + account)
        builder = builder.add_extension(x509.SubjectAlternativeName([uri]), critical=False)
    certificate = builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
    return certificate.public_bytes(serialization.Encoding.PEM)


def issue_client_cert(home: Path, account: str, public_key_pem: str) -> str:
    """A client certificate for ``account`` over the client's own public key, signed by the
    market's client authority, valid :data:`CLIENT_CERT_DAYS` days."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    client_ca(home)
    folder = home / "tls"
    issuer_key = serialization.load_pem_private_key((folder / CLIENT_CA_KEY).read_bytes(), None)
    try:
        public = serialization.load_pem_public_key(public_key_pem.encode())
    except (ValueError, TypeError):
        public = None
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise PasarError(
            "public_key must be an EC public key in PEM",
            code="invalid_key",
            status=422,
            field="body.public_key",
            hint="let the SDK make the key (it does when the market asks for a certificate)",
        )
    return _certificate(
        public, issuer_key, "pasar client", ca=False, days=CLIENT_CERT_DAYS,
        issuer="pasar market client CA", account=account,
    ).decode("ascii")  # fmt: skip


def account_of_cert(der: bytes) -> str | None:
    """The pasar account a (verified) client certificate names, if it names one."""
    from cryptography import x509

    try:
        names = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
    except (ValueError, x509.ExtensionNotFound):
        return None
    for uri in names.value.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(ACCOUNT_URI_PREFIX):
            return uri[len(ACCOUNT_URI_PREFIX) :]
    return None


def client_key_and_csr_key() -> tuple[bytes, str]:
    """A fresh client key (PEM, for the client's files) and its public key (PEM, to send)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    key_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return key_pem, public_pem


#: Where an account asks a market with mutual TLS for its client certificate.
ISSUE_PATH = "/v1/tls/client-certs"


def _client_cert_files(home: Path, url: str, account: str) -> tuple[Path, Path]:
    tag = hashlib.sha256(url.encode()).hexdigest()[:12]
    folder = home / "tls"
    return folder / f"client-{tag}-{account}.pem", folder / f"client-{tag}-{account}.key"


def save_client_cert(home: Path, url: str, account: str, key_pem: bytes, cert_pem: str) -> None:
    """Keep the client certificate for ``account`` at ``url`` (its key 0600)."""
    cert, key = _client_cert_files(home, url, account)
    cert.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    cert.write_text(cert_pem, encoding="ascii")


def load_client_cert(context: ssl.SSLContext, home: Path, url: str, account: str) -> bool:
    """Present ``account``'s client certificate for ``url`` on ``context``, if one is kept and
    still valid for an hour: an expired one would fail the handshake (a bare "unreachable"),
    whereas no certificate gets ``client_cert_required`` and the SDK fetches a fresh one."""
    from cryptography import x509

    cert, key = _client_cert_files(home, url, account)
    if not (cert.exists() and key.exists()):
        return False
    try:
        ends = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc
    except ValueError:
        ends = None  # unreadable: as good as expired
    if ends is None or ends - datetime.datetime.now(datetime.UTC) < CLIENT_CERT_RENEW:
        return False
    context.load_cert_chain(cert, key)
    return True
