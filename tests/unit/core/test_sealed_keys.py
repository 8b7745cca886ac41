"""A sealed job's key exchange on the chain (issue 12 §2): who may announce, who may seal, and
what a sealed receipt must commit to. Every refusal changes nothing and moves no money."""

from __future__ import annotations

from typing import Any

import pytest
from test_state import ALICE, P1, SPEC, T0, conserved, make_state, market, register, send

from pasar.core.errors import PasarError
from pasar.core.private_part import order_fields
from pasar.core.state import MarketState
from pasar.crypto.merkle import root_of_files

SHA = "ab" * 32
KEY = "12" * 32
SEALED_KEY = "34" * 80


def _sealed_lease(spec: dict[str, Any] | None = None) -> tuple[MarketState, str]:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpu_ask="0.05")
    fields = order_fields(spec or {**SPEC, "privacy": "sealed"})
    order_id = send(s, ALICE, T0 + 1, type="order.create", **fields)["order_id"]
    (lease,) = market(s, T0 + 2, type="match", order_id=order_id, seed=1)["leases"]
    return s, lease


def _refused(s: MarketState, signer: str, code: str, **body: Any) -> PasarError:
    before = (s.balances_summary(), s.tx_count)
    with pytest.raises(PasarError) as err:
        send(s, signer, T0 + 5, **body)
    assert err.value.code == code, err.value.to_dict()
    assert (s.balances_summary(), s.tx_count) == before
    conserved(s)
    return err.value


def test_the_provider_announces_and_the_client_seals_once_each() -> None:
    s, lease = _sealed_lease()
    _refused(s, ALICE, "wrong_signer", type="lease.accept", lease_id=lease, key=KEY)
    _refused(s, P1, "invalid_key", type="lease.accept", lease_id=lease, key="zz" * 32)
    _refused(  # nothing to seal to before the provider announced its key
        s, ALICE, "no_lease_key", type="key.seal", lease_id=lease, recipient=P1,
        sealed_key=SEALED_KEY,
    )  # fmt: skip
    send(s, P1, T0 + 3, type="lease.accept", lease_id=lease, key=KEY)
    assert s.leases[lease].box_key == KEY
    assert "waiting for the client" in str(s.orders[s.leases[lease].order_id].note)
    _refused(s, P1, "already_accepted", type="lease.accept", lease_id=lease, key=KEY)
    _refused(
        s, P1, "wrong_signer", type="key.seal", lease_id=lease, recipient=P1, sealed_key=SEALED_KEY
    )
    _refused(
        s, ALICE, "not_a_party", type="key.seal", lease_id=lease, recipient="mallory",
        sealed_key=SEALED_KEY,
    )  # fmt: skip
    _refused(
        s, ALICE, "invalid_key", type="key.seal", lease_id=lease, recipient=P1, sealed_key="34"
    )
    send(s, ALICE, T0 + 4, type="key.seal", lease_id=lease, recipient=P1, sealed_key=SEALED_KEY)
    assert s.leases[lease].sealed_keys == {P1: SEALED_KEY}
    assert s.orders[s.leases[lease].order_id].note is None  # no longer waiting
    _refused(
        s, ALICE, "already_sealed", type="key.seal", lease_id=lease, recipient=P1,
        sealed_key=SEALED_KEY,
    )  # fmt: skip


def test_a_plain_job_has_no_key_exchange() -> None:
    s, lease = _sealed_lease(SPEC)
    _refused(s, P1, "not_sealed", type="lease.accept", lease_id=lease, key=KEY)


def _receipt(**extra: Any) -> dict[str, Any]:
    outputs = [{"path": "out.txt", "sha256": SHA, "size": 3, "plain_sha256": "cd" * 32}]
    root = root_of_files([("out.txt", SHA)])
    return {"type": "receipt", "exit_code": 0, "outputs": outputs, "root": root, **extra}


def test_a_sealed_receipt_commits_to_its_plaintexts() -> None:
    s, lease = _sealed_lease()
    _refused(s, P1, "bad_root", lease_id=lease, **_receipt())  # no plain_root
    _refused(s, P1, "bad_root", lease_id=lease, **_receipt(plain_root="00" * 32))
    plain_root = root_of_files([("out.txt", "cd" * 32)])
    send(s, P1, T0 + 6, lease_id=lease, **_receipt(plain_root=plain_root))
    assert s.leases[lease].receipt is not None
    conserved(s)


def test_a_plain_receipt_carries_no_plain_root() -> None:
    s, lease = _sealed_lease(SPEC)
    _refused(s, P1, "invalid_receipt", lease_id=lease, **_receipt(plain_root="00" * 32))
