"""Issue 12 §3: the market over HTTPS, and clients that pin its certificate.

A real market process serves ``--tls auto`` (a self-signed certificate it makes once and prints
the fingerprint of). A client trusts it on first use and pins it in its config.toml; a client
whose pin names another certificate is refused before it sends anything signed, and no money
moves; a plain-HTTP client gets a clear error, not a traceback.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_market_flow import total_minted

from pasar.client.client import Client
from pasar.client.transport import Transport
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.crypto.envelope import sign, wall_clock_ms
from pasar.crypto.identity import Identity
from pasar.crypto.tls import client_context, load_client_cert, pin, pinned


def _fingerprint(market: Any) -> str:
    printed = re.search(r"TLS certificate (sha256:[0-9a-f]{64})", market.stdout())
    assert printed, market.stdout()
    return printed.group(1)


def test_a_client_pins_the_certificate_on_first_use_and_refuses_another(
    spawn_market: Any, tmp_path: Path
) -> None:
    market = spawn_market(tmp_path / "m", "--tls", "auto")
    assert market.url.startswith("https://127.0.0.1:")
    printed = _fingerprint(market)
    assert (tmp_path / "m" / "tls" / "key.pem").stat().st_mode & 0o777 == 0o600

    first = tmp_path / "alice"
    alice = Client(market.url, identity=Identity.generate(), home=first)
    assert alice.faucet("5 USDC")["minted"] == "5.00 USDC"  # trusted on first use
    assert pinned(first, market.url) == printed  # the very fingerprint the market printed

    # the same market restarted keeps its certificate: the pin still holds
    market = market.restart()
    assert _fingerprint(market) == printed
    again = Client(market.url, identity=alice.identity, home=first)
    assert again.balance()["balance"] == "5.00 USDC"

    # a pin for another certificate (someone in the middle, or a re-keyed market): refused,
    # naming both fingerprints, before any signed request is sent
    mallory_home = tmp_path / "pinned-elsewhere"
    other = "sha256:" + "ab" * 32
    pin(mallory_home, market.url, other)
    victim = Identity.generate()
    with pytest.raises(PasarError) as err:  # the pin is checked as the client connects
        Client(market.url, identity=victim, home=mallory_home).faucet("5 USDC")
    assert err.value.code == "tls_pin_mismatch"
    assert printed in err.value.message and other in err.value.message
    assert "config.toml" in str(err.value.hint)
    balances = again.transport.get("/v1/state/balances")["balances"]
    assert not any(victim.account_id in k for k in balances)  # nothing reached the market

    # plain HTTP to an HTTPS market: a clear transport error, no traceback
    with pytest.raises(httpx.HTTPError):
        httpx.get(market.url.replace("https://", "http://") + "/v1/healthz", timeout=5)
    plain = Client(market.url.replace("https://", "http://"), identity=Identity.generate())
    with pytest.raises(PasarError) as refused:
        plain.faucet("1 USDC")
    assert refused.value.code == "unreachable" and "https://" in str(refused.value.hint)


def test_bad_tls_flags_exit_2_naming_the_flag(spawn_market: Any, tmp_path: Path) -> None:
    import subprocess
    import sys

    for args, flag in (
        (["--tls", "manual"], "--tls"),
        (
            ["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(tmp_path / "k")],
            "--tls-cert",
        ),
        (["--tls-cert", str(tmp_path / "c.pem")], "--tls-key"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "pasar", "market", "serve", "--home", str(tmp_path / "x"),
             "--port", "0", *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, done.stdout + done.stderr
        assert flag in done.stderr and "Traceback" not in done.stderr


def test_mtls_refuses_a_signed_request_over_another_accounts_certificate(
    spawn_market: Any, tmp_path: Path
) -> None:
    """``--mtls``: the SDK gets a certificate naming its account and uses it; a request signed
    by one account over a connection holding another account's certificate is refused, as is
    a signed request with no certificate; no money moves."""
    market = spawn_market(tmp_path / "m", "--tls", "auto", "--mtls")
    home = tmp_path / "mallory"
    mallory = Identity.generate()
    client = Client(market.url, identity=mallory, home=home)
    assert client.faucet("5 USDC")["minted"] == "5.00 USDC"  # a certificate fetched on the way
    assert list((home / "tls").glob(f"client-*-{mallory.account_id}.pem"))

    bob = Identity.generate()
    transport = Transport(market.url, home=home)  # the pin, no certificate yet
    body = {"type": "faucet", "amount": "5 USDC"}

    def post_as(who: Identity, context: ssl.SSLContext) -> httpx.Response:
        envelope = sign(body, who, now_ms=wall_clock_ms(), market=transport.market)
        with httpx.Client(base_url=market.url, verify=context, timeout=10) as http:
            return http.post("/v1/faucet", json=envelope)

    with_mallorys = client_context(market.url, home)
    assert load_client_cert(with_mallorys, home, market.url, mallory.account_id)
    mismatch = post_as(bob, with_mallorys)
    assert mismatch.status_code == 403, mismatch.text
    assert mismatch.json()["error"]["code"] == "client_cert_mismatch"
    bare = post_as(bob, client_context(market.url, home))
    assert bare.status_code == 403 and bare.json()["error"]["code"] == "client_cert_required"
    assert post_as(mallory, with_mallorys).status_code == 200  # her own: accepted
    balances = transport.get("/v1/state/balances")["balances"]  # public reads need no cert
    assert not any(bob.account_id in k for k in balances)
    assert total_minted(balances) == Money.parse("10 USDC")  # and conserved


def test_mtls_refuses_a_forged_certificate_naming_another_account(
    spawn_market: Any, tmp_path: Path
) -> None:
    """A hostile client makes its own certificate with the ``pasar:<account>`` name the
    market's authority writes, naming the very account it signs with (so only the authority
    check stands in the way): the market's TLS layer refuses it because the market did not
    issue it; nothing reaches the app, and no money moves."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from pasar.crypto.tls import _certificate, _write_key

    market = spawn_market(tmp_path / "m", "--tls", "auto", "--mtls")
    victim_home, victim = tmp_path / "victim", Identity.generate()
    assert Client(market.url, identity=victim, home=victim_home).faucet("5 USDC")["minted"]

    home = tmp_path / "forger"
    forger = Identity.generate()
    transport = Transport(market.url, home=home)  # pins the market's certificate
    key = ec.generate_private_key(ec.SECP256R1())
    cert_path, key_path = home / "forged.pem", home / "forged.key"
    cert_path.write_bytes(
        _certificate(key, key, "pasar client", ca=False, days=1, account=forger.account_id)
    )
    _write_key(key_path, key)
    context = client_context(market.url, home)
    context.load_cert_chain(cert_path, key_path)
    envelope = sign(
        {"type": "faucet", "amount": "5 USDC"}, forger, now_ms=wall_clock_ms(),
        market=transport.market,
    )  # fmt: skip
    http = httpx.Client(base_url=market.url, verify=context, timeout=10)
    with http, pytest.raises(httpx.HTTPError):  # the handshake is refused: no response at all
        http.post("/v1/faucet", json=envelope).raise_for_status()
    balances = transport.get("/v1/state/balances")["balances"]
    assert not any(forger.account_id in k for k in balances)
    assert total_minted(balances) == Money.parse("5 USDC")  # only the victim's, conserved


def test_the_async_client_gets_its_certificate_on_an_mtls_market(
    spawn_market: Any, tmp_path: Path
) -> None:
    """``pasar.AsyncClient`` (AsyncTransport) over ``--mtls``: it pins the market, fetches a
    certificate naming its account when asked, and its signed requests then pass; a wrong pin
    is refused as the transport is made, before anything is sent."""
    import asyncio

    from pasar.client.aio import AsyncClient

    market = spawn_market(tmp_path / "m", "--tls", "auto", "--mtls")
    home, carol = tmp_path / "carol", Identity.generate()

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        async with AsyncClient(market.url, identity=carol, home=home) as client:
            return await client.faucet("3 USDC"), await client.balance()

    minted, balance = asyncio.run(run())
    assert minted["minted"] == "3.00 USDC" and balance["balance"] == "3.00 USDC"
    assert list((home / "tls").glob(f"client-*-{carol.account_id}.pem"))

    elsewhere, dave = tmp_path / "pinned-elsewhere", Identity.generate()
    pin(elsewhere, market.url, "sha256:" + "cd" * 32)
    with pytest.raises(PasarError) as err:
        AsyncClient(market.url, identity=dave, home=elsewhere)
    assert err.value.code == "tls_pin_mismatch"
    balances = Transport(market.url, home=home).get("/v1/state/balances")["balances"]
    assert not any(dave.account_id in k for k in balances)
    assert total_minted(balances) == Money.parse("3 USDC")
