"""Blocks over the transaction log: a valid chain verifies, and any changed byte is found.

The tamper tests model the store as it is on disk — each transaction as its columns plus the
canonical JSON text of its envelope, each block as its header text plus its signature — flip
one byte (hypothesis picks which), and read everything back the way the store does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pasar.crypto.canonical import canonical_json
from pasar.crypto.envelope import sign, verify
from pasar.crypto.hashing import sha256_hex
from pasar.crypto.identity import Identity, verify_signature
from pasar.crypto.merkle import root_of_hashes
from pasar.market.chain import (
    BLOCK_DOMAIN,
    GENESIS_PREV_HASH,
    Block,
    ChainError,
    make_block,
    verify_chain,
)
from pasar.market.tx_records import TxRecord

NOW = 1_700_000_000_000
MARKET = Identity.from_seed(b"m" * 32)
ALICE = Identity.from_seed(b"a" * 32)
BOB = Identity.from_seed(b"b" * 32)
MALLORY = Identity.from_seed(b"x" * 32)
BLOCK_SIZES = (2, 3, 1, 2)


def _tx(who: Identity, seq: int, body: dict[str, Any], *, nonce: str | None = None) -> TxRecord:
    envelope = sign(body, who, market=MARKET.account_id, now_ms=NOW + seq, nonce=nonce)
    return replace(
        TxRecord.from_verified(verify(envelope, market=MARKET.account_id, now_ms=NOW + seq)),
        seq=seq,
    )


def _log(n: int) -> list[TxRecord]:
    bodies = [
        {"type": "faucet", "amount": 5_000_000},
        {"type": "order.create", "spec": {"gpu": "h100", "note": "café ☕"}, "price": 12},
        {"type": "provider.register", "region": "eu-west", "gpus": [1, 2]},
    ]
    return [
        _tx(ALICE if seq % 2 else BOB, seq, {**bodies[seq % 3], "n": seq})
        for seq in range(1, n + 1)
    ]


def _chain(log: list[TxRecord], sizes: tuple[int, ...] = BLOCK_SIZES) -> list[Block]:
    blocks: list[Block] = []
    start = 0
    for size in sizes:
        prev = blocks[-1] if blocks else None
        blocks.append(
            make_block(prev, log[start : start + size], market=MARKET, ts_ms=NOW + 1000 * start)
        )
        start += size
    return blocks


LOG = _log(sum(BLOCK_SIZES))
CHAIN = _chain(LOG)
HEIGHT_OF_SEQ = {seq: b.height for b in CHAIN for seq in range(b.first_seq, b.last_seq + 1)}


@dataclass
class StoredTx:
    """A txs row: the columns and the envelope's stored text (bytes, to flip any of them)."""

    columns: dict[str, Any]
    envelope: bytes

    @classmethod
    def of(cls, tx: TxRecord) -> StoredTx:
        columns = {
            "seq": tx.seq,
            "digest": tx.digest,
            "type": tx.type,
            "signer": tx.signer,
            "nonce": tx.nonce,
            "ts": tx.ts,
        }
        return cls(columns, tx.envelope_json().encode("utf-8"))

    def read(self) -> TxRecord:
        return TxRecord.from_stored(**self.columns, envelope=self.envelope)


def _lookup(rows: dict[str, StoredTx]) -> Callable[[str], TxRecord | None]:
    def find(digest: str) -> TxRecord | None:
        row = rows.get(digest)
        return None if row is None else row.read()

    return find


def _rows() -> dict[str, StoredTx]:
    return {tx.digest: StoredTx.of(tx) for tx in LOG}


def _verify(blocks: list[Block], lookup: Any = None) -> int:
    return verify_chain(
        blocks, lookup if lookup is not None else _lookup(_rows()), market_account=MARKET.account_id
    )


def _fails_at(height: int, check: Callable[[], object]) -> ChainError:
    with pytest.raises(ChainError) as caught:
        check()
    assert caught.value.height == height, caught.value.message
    assert caught.value.message.startswith(f"block {height}: ")
    return caught.value


def _resign(block: Block, signer: Identity = MARKET, **changes: Any) -> Block:
    """The block with ``changes``, signed again: what a dishonest market key could produce."""
    unsigned = replace(block, **changes)
    sig = signer.sign(BLOCK_DOMAIN + unsigned.header_json()).hex()
    return replace(unsigned, sig=sig)


# --------------------------------------------------------------------------- valid chains


def test_a_valid_chain_verifies_with_a_mapping_or_a_callable() -> None:
    assert _verify(CHAIN) == len(BLOCK_SIZES)
    by_digest = {tx.digest: tx for tx in LOG}
    assert verify_chain(CHAIN, by_digest, market_account=MARKET.account_id) == len(CHAIN)
    assert verify_chain(iter(CHAIN), by_digest.get, market_account=MARKET.account_id) == 4


def test_a_chain_suffix_verifies_after_a_trusted_block() -> None:
    assert (
        verify_chain(CHAIN[2:], _lookup(_rows()), market_account=MARKET.account_id, after=CHAIN[1])
        == len(CHAIN) - 2
    )
    _fails_at(2, lambda: _verify(CHAIN[2:]))  # without it, the first block must be genesis


def test_block_hash_and_signature_are_as_documented() -> None:
    block = CHAIN[1]
    header = {
        "height": 1,
        "prev_hash": CHAIN[0].hash,
        "tx_root": root_of_hashes([tx.digest for tx in LOG[2:5]]),
        "first_seq": 3,
        "last_seq": 5,
        "txs": [tx.digest for tx in LOG[2:5]],
        "stamps": [tx.at for tx in LOG[2:5]],  # the market's own times, signed
        "ts": block.ts,
        "signer": MARKET.account_id,
    }
    assert block.header() == header
    assert block.hash == sha256_hex(canonical_json(header))
    message = b"pasar/block/v1\n" + canonical_json(header)
    assert verify_signature(MARKET.public_key, message, bytes.fromhex(block.sig))
    assert Block.from_dict(block.to_dict()) == block


def test_genesis_rules() -> None:
    genesis = CHAIN[0]
    assert (genesis.height, genesis.prev_hash, genesis.first_seq) == (0, "0" * 64, 1)
    assert GENESIS_PREV_HASH == "0" * 64
    _fails_at(0, lambda: _verify([_resign(genesis, prev_hash="1" * 64)]))
    shifted = make_block(None, LOG[:2], market=MARKET, ts_ms=NOW)
    _fails_at(1, lambda: _verify([_resign(shifted, height=1)]))  # genesis is height 0
    _fails_at(1, lambda: _verify(CHAIN[1:]))
    with pytest.raises(ChainError, match="seq"):
        make_block(None, LOG[1:3], market=MARKET, ts_ms=NOW)  # the log starts at seq 1


def test_make_block_refuses_empty_blocks_and_gaps_and_clamps_time() -> None:
    with pytest.raises(ChainError) as caught:
        make_block(CHAIN[0], [], market=MARKET, ts_ms=NOW)
    assert caught.value.code == "empty_block" and caught.value.height == 1
    with pytest.raises(ChainError, match="expected 3"):
        make_block(CHAIN[0], [LOG[3]], market=MARKET, ts_ms=NOW)
    later = make_block(CHAIN[0], LOG[2:3], market=MARKET, ts_ms=CHAIN[0].ts - 5_000)
    assert later.ts == CHAIN[0].ts  # a clock that stepped back does not break the chain
    assert _verify([CHAIN[0], later]) == 2


# --------------------------------------------------------------------------- what fails


def test_the_wrong_market_or_a_forged_signature_fails() -> None:
    with pytest.raises(ChainError) as caught:
        verify_chain(CHAIN, _lookup(_rows()), market_account=MALLORY.account_id)
    assert caught.value.height == 0 and caught.value.code == "wrong_signer"
    forged = _resign(CHAIN[2], MALLORY)
    err = _fails_at(2, lambda: _verify([*CHAIN[:2], forged, *CHAIN[3:]]))
    assert err.code == "bad_block_signature"


def test_a_missing_transaction_fails() -> None:
    rows = _rows()
    del rows[LOG[4].digest]
    err = _fails_at(1, lambda: _verify(CHAIN, _lookup(rows)))
    assert err.code == "missing_tx"


def test_a_market_signed_block_that_skips_or_reorders_transactions_fails() -> None:
    b1 = CHAIN[1]
    skipping = _resign(b1, txs=b1.txs[:-1], tx_root=root_of_hashes(b1.txs[:-1]))
    assert _fails_at(1, lambda: _verify([CHAIN[0], skipping])).code == "seq_gap"
    swapped = (b1.txs[1], b1.txs[0], b1.txs[2])
    reordered = _resign(b1, txs=swapped, tx_root=root_of_hashes(swapped))
    _fails_at(1, lambda: _verify([CHAIN[0], reordered]))
    stale_root = _resign(b1, tx_root=CHAIN[0].tx_root)
    assert _fails_at(1, lambda: _verify([CHAIN[0], stale_root])).code == "tx_root_mismatch"
    backwards = _resign(b1, ts=CHAIN[0].ts - 1)
    assert _fails_at(1, lambda: _verify([CHAIN[0], backwards])).code == "ts_backwards"


def test_a_reused_nonce_in_the_chain_fails() -> None:
    first = _tx(ALICE, 1, {"type": "faucet", "amount": 1}, nonce="ab" * 16)
    second = _tx(ALICE, 2, {"type": "faucet", "amount": 2}, nonce="ab" * 16)
    block = make_block(None, [first, second], market=MARKET, ts_ms=NOW)
    lookup = {first.digest: first, second.digest: second}
    err = _fails_at(0, lambda: verify_chain([block], lookup, market_account=MARKET.account_id))
    assert err.code == "replay"


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_flipped_byte_of_a_stored_envelope_is_found(data: st.DataObject) -> None:
    rows = _rows()
    tx = data.draw(st.sampled_from(LOG), label="tx")
    row = rows[tx.digest]
    at = data.draw(st.integers(0, len(row.envelope) - 1), label="byte")
    mask = data.draw(st.integers(1, 255), label="xor")
    flipped = bytearray(row.envelope)
    flipped[at] ^= mask
    row.envelope = bytes(flipped)
    _fails_at(HEIGHT_OF_SEQ[tx.seq], lambda: _verify(CHAIN, _lookup(rows)))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_any_changed_tx_column_is_found(data: st.DataObject) -> None:
    rows = _rows()
    tx = data.draw(st.sampled_from(LOG), label="tx")
    row = rows[tx.digest]
    name = data.draw(st.sampled_from(sorted(row.columns)), label="column")
    value = row.columns[name]
    if isinstance(value, int):
        row.columns[name] = value + data.draw(st.sampled_from([-1, 1, 1000]))
    else:
        at = data.draw(st.integers(0, len(value) - 1))
        row.columns[name] = value[:at] + ("0" if value[at] != "0" else "1") + value[at + 1 :]
    _fails_at(HEIGHT_OF_SEQ[tx.seq], lambda: _verify(CHAIN, _lookup(rows)))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_flipped_byte_of_a_stored_block_is_found(data: st.DataObject) -> None:
    stored = [(b.height, b.header_json(), b.sig.encode("ascii")) for b in CHAIN]
    index = data.draw(st.integers(0, len(CHAIN) - 1), label="block")
    part = data.draw(st.sampled_from([1, 2]), label="part (1 header, 2 sig)")
    height, header, sig = stored[index]
    raw = bytearray(header if part == 1 else sig)
    raw[data.draw(st.integers(0, len(raw) - 1), label="byte")] ^= data.draw(st.integers(1, 255))
    stored[index] = (height, bytes(raw), sig) if part == 1 else (height, header, bytes(raw))

    def read_and_verify() -> int:
        blocks = [
            Block.from_stored(h, body, s.decode("utf-8", errors="replace")) for h, body, s in stored
        ]
        return _verify(blocks)

    _fails_at(CHAIN[index].height, read_and_verify)


@settings(max_examples=60, deadline=None)
@given(st.permutations(range(len(CHAIN))))
def test_reordered_blocks_fail_at_the_first_misplaced_height(order: list[int]) -> None:
    blocks = [CHAIN[i] for i in order]
    misplaced = [i for i, j in enumerate(order) if i != j]
    if not misplaced:
        assert _verify(blocks) == len(CHAIN)
        return
    _fails_at(blocks[misplaced[0]].height, lambda: _verify(blocks))


def test_a_dropped_block_fails_at_the_next_height() -> None:
    err = _fails_at(2, lambda: _verify([CHAIN[0], *CHAIN[2:]]))
    assert err.code == "height_gap"


def test_malformed_block_data_names_the_height() -> None:
    with pytest.raises(ChainError) as caught:
        Block.from_dict({**CHAIN[1].to_dict(), "prev_hash": "XYZ"})
    assert caught.value.height == 1 and caught.value.code == "malformed_block"
    with pytest.raises(ChainError) as caught:
        Block.from_stored(3, b'{"height":3}', CHAIN[3].sig)
    assert caught.value.height == 3
    with pytest.raises(ChainError) as caught:
        Block.from_stored(2, CHAIN[1].header_json(), CHAIN[1].sig)  # row says 2, header says 1
    assert caught.value.height == 2
