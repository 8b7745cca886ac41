"""The two transactions of a sealed job's key exchange (``privacy: sealed``, docs/privacy.md §2).

A sealed job's private part, inputs, outputs and logs are encrypted under one data key that
only the client holds at first. It reaches each party through the public chain, sealed:

- ``lease.accept`` — the lease's provider announces a fresh X25519 public key for this lease
  (``key``, 64 hex). Only the provider holds its private half, and only for the lease's life.
- ``key.seal`` — the order's client posts the data key sealed to one recipient of one lease
  (``recipient``: the lease's provider, whose announced lease key it was sealed to, or a
  verifier assigned a check of the lease, sealed to its account key). A sealed key is useless
  to anyone but its recipient, so it may be public; the chain records who could read the job.

Each is once per lease and recipient. While a lease of a sealed order waits for its key, the
order's note says so: the job cannot start until its client seals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pasar.core.market_records import LIVE_LEASE, Applied, LeaseRecord, Tx, fail

if TYPE_CHECKING:
    from pasar.core.state import MarketState

KEY_HEX_CHARS = 64
#: A sealed box of a 32-byte key: 32 (ephemeral key) + 16 (tag) + 32 bytes, as hex.
SEALED_KEY_HEX_CHARS = 2 * (32 + 16 + 32)
_HEX = frozenset("0123456789abcdef")


def _hex(value: object, chars: int, field: str, what: str) -> str:
    if not isinstance(value, str) or len(value) != chars or set(value) - _HEX:
        raise fail(f"{field} must be {what}: {chars} lower-case hex digits", code="invalid_key",
                   field=field)  # fmt: skip
    return value


def _sealed_order_lease(state: MarketState, tx: Tx) -> LeaseRecord:
    lease = state._lease(tx.body.get("lease_id"))
    if state.orders[lease.order_id].spec.privacy != "sealed":
        raise fail(
            f"lease {lease.id} is not of a sealed job: there is no key to exchange",
            code="not_sealed",
            status=409,
            field="lease_id",
        )
    return lease


def waiting_note(lease: LeaseRecord) -> str:
    return f"shard {lease.shard}: waiting for the client to seal the data key to its provider"


def on_lease_accept(state: MarketState, tx: Tx) -> Applied:
    lease = _sealed_order_lease(state, tx)
    if tx.signer != lease.provider:
        raise fail("only the lease's provider may accept it", code="wrong_signer", status=403)
    if lease.status != "running":
        raise fail(f"lease {lease.id} is {lease.status}", code="not_running", status=409)
    if lease.box_key is not None:
        raise fail(f"lease {lease.id} already has its key", code="already_accepted", status=409)
    lease.box_key = _hex(tx.body.get("key"), KEY_HEX_CHARS, "key", "an X25519 public key")
    record = state._order(lease.order_id)
    record.note = waiting_note(lease)
    return Applied(
        tx.type,
        {"lease_id": lease.id, "key": lease.box_key},
        providers={lease.provider},
        orders={record.id},
    )


def _verifiers_of(state: MarketState, lease: LeaseRecord) -> set[str]:
    return {state.checks[c].verifier for c in lease.checks}


def on_key_seal(state: MarketState, tx: Tx) -> Applied:
    lease = _sealed_order_lease(state, tx)
    record = state._order(lease.order_id)
    if tx.signer != record.client:
        raise fail("only the order's client may seal its data key", code="wrong_signer",
                   status=403)  # fmt: skip
    if lease.status not in (*LIVE_LEASE, "held"):
        raise fail(f"lease {lease.id} is {lease.status}", code="not_running", status=409)
    recipient = tx.body.get("recipient")
    if recipient == lease.provider:
        if lease.box_key is None:
            raise fail(
                "the provider has not announced its lease key yet (lease.accept)",
                code="no_lease_key",
                status=409,
                hint="seal to the key the lease view shows once it has one",
            )
    elif recipient not in _verifiers_of(state, lease):
        raise fail(
            "recipient must be the lease's provider or a verifier assigned to check it",
            code="not_a_party",
            status=403,
            field="recipient",
        )
    assert isinstance(recipient, str)
    if recipient in lease.sealed_keys:
        raise fail(f"the data key is already sealed to {recipient}", code="already_sealed",
                   status=409)  # fmt: skip
    sealed = _hex(tx.body.get("sealed_key"), SEALED_KEY_HEX_CHARS, "sealed_key", "a sealed box")
    lease.sealed_keys[recipient] = sealed
    if recipient == lease.provider and record.note == waiting_note(lease):
        record.note = None
    return Applied(
        tx.type,
        {"lease_id": lease.id, "recipient": recipient},
        providers={recipient} if recipient == lease.provider else set(),
        orders={record.id},
    )
