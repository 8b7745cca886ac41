"""``pasar audit``: replay a market's chain from genesis and check it reproduces the market.

The audit trusts nothing but the market's public key:

1. every block is checked (signature, links, heights, tx roots) together with every transaction
   it names (envelope signature, digest, nonce never reused) — :func:`verify_chain`;
2. the transactions are replayed, in order, through the same pure
   :class:`~pasar.core.state.MarketState` the market runs: every state transition must be valid
   (money, capacity, prices, timing, who may send what), and the market's own decisions are
   re-derived (a ``match`` carries only a seed; the awards are recomputed here);
3. the balances the replay arrives at must equal the balances the market reports — exactly,
   every account, every micro-unit.

Online (``--market URL``) the audit reads blocks, transactions and balances over the API;
offline (``--db URL``) it reads the store directly and checks the chain and the replay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pasar.core.errors import PasarError
from pasar.core.market_records import Tx
from pasar.core.presets import builtin_preset
from pasar.core.state import MarketState
from pasar.crypto.identity import public_key_of, verify_signature
from pasar.market.chain import Block, verify_log
from pasar.market.store import SqlStore
from pasar.market.tx_records import TxRecord


@dataclass
class AuditReport:
    """What the audit checked and found."""

    market: str
    preset: str
    blocks: int
    txs: int
    unsealed_txs: int
    balances: dict[str, str]
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "market": self.market,
            "preset": self.preset,
            "blocks": self.blocks,
            "txs": self.txs,
            "unsealed_txs": self.unsealed_txs,
            "mismatches": self.mismatches,
            "balances": self.balances,
        }


def replay(
    records: Iterable[TxRecord], *, market: str, preset_name: str, devnet: bool
) -> MarketState:
    """Apply ``records`` in order to a fresh state; a refused transaction fails the audit."""
    public_key = public_key_of(market, field="market")
    state = MarketState(
        builtin_preset(preset_name),
        market_id=market,
        verify_market_signature=lambda m, s: verify_signature(public_key, m, s),
        devnet=devnet,
    )
    for record in records:
        try:
            state.apply(Tx.from_envelope(record.envelope, record.digest, at=record.at))
        except PasarError as exc:
            raise PasarError(
                f"transaction {record.seq} ({record.type}, {record.digest[:12]}…) does not "
                f"replay: {exc.message}",
                code="audit_failed",
                hint="the market accepted a transaction its own rules refuse",
            ) from None
    return state


def audit_records(
    blocks: list[Block],
    records: list[TxRecord],
    *,
    market: str,
    preset_name: str,
    devnet: bool,
    reported: dict[str, str] | None,
    replay_upto: int | None = None,
) -> AuditReport:
    """Check the chain over ``records``, replay the first ``replay_upto`` of them (default: all)
    and compare the result with the ``reported`` balances (taken after exactly that many)."""
    verify_log(blocks, records, market_account=market)
    sealed = blocks[-1].last_seq if blocks else 0
    upto = len(records) if replay_upto is None else replay_upto
    state = replay(records[:upto], market=market, preset_name=preset_name, devnet=devnet)
    balances = state.balances_summary()
    report = AuditReport(
        market=market,
        preset=preset_name,
        blocks=len(blocks),
        txs=upto,
        unsealed_txs=max(0, upto - sealed),
        balances=balances,
    )
    if reported is not None:
        for account in sorted(set(balances) | set(reported)):
            mine, theirs = balances.get(account), reported.get(account)
            if mine != theirs:
                report.mismatches.append(f"{account}: replay {mine}, market says {theirs}")
    return report


def _record_from_wire(item: dict[str, Any]) -> TxRecord:
    """A logged transaction as the API returns it. Nothing is trusted yet: the chain check
    re-verifies the envelope and that it hashes to the claimed digest."""
    envelope = item.get("envelope")
    if not isinstance(envelope, dict) or not isinstance(envelope.get("body"), dict):
        raise PasarError(f"transaction {item.get('seq')} is not an envelope", code="audit_failed")
    body = envelope["body"]
    return TxRecord(
        seq=int(item["seq"]),
        digest=str(item["digest"]),
        type=str(body.get("type")),
        signer=str(envelope.get("signer")),
        nonce=str(envelope.get("nonce")),
        ts=int(envelope.get("ts", 0)),
        envelope=envelope,
        at=int(item.get("at") or envelope.get("ts") or 0),
    )


def audit_market(get: Callable[[str, dict[str, Any]], Any]) -> AuditReport:
    """Audit a live market through ``get(path, params) -> JSON`` (the client's transport).

    The market's balances are read first, with the number ``N`` of transactions they reflect;
    the audit then replays exactly the first ``N`` logged transactions, so traffic arriving
    during the audit does not disturb the comparison. Transactions not yet sealed into a block
    are checked by signature; the sealed ones by the chain as well.
    """
    health = get("/v1/healthz", {})
    reported = get("/v1/state/balances", {})
    upto = int(reported["tx_count"])
    blocks: list[Block] = []
    while True:
        page = get("/v1/chain/blocks", {"from": len(blocks), "limit": 1000})["blocks"]
        blocks.extend(Block.from_dict(b) for b in page)
        if len(page) < 1000:
            break
    want = max(upto, blocks[-1].last_seq if blocks else 0)
    records: list[TxRecord] = []
    while len(records) < want:
        page = get("/v1/chain/txs", {"after": len(records), "limit": 1000})["txs"]
        if not page:
            break
        records.extend(_record_from_wire(t) for t in page)
    if len(records) < upto:
        raise PasarError(
            f"the market reports {upto} transactions but serves only {len(records)}",
            code="audit_failed",
        )
    return audit_records(
        blocks,
        records[:want],
        market=health["market"],
        preset_name=health["preset"],
        devnet=bool(health["devnet"]),
        reported=reported["balances"],
        replay_upto=upto,
    )


def audit_store(store: SqlStore) -> AuditReport:
    """Audit a market's database directly (``pasar audit --db URL``), market stopped or not.

    There is no live state to compare with: the chain is verified, the log replayed, and the
    resulting balances reported. A tampered byte anywhere fails with the block's height.
    The database's own integrity check runs first: a damaged page the replay would never read
    (an index, a free page) is still damage the operator must hear about, as a StoreError
    (``store_damaged``) naming the file rather than a mismatch.
    """
    problems = store.integrity_problems()
    if problems:
        raise store.damaged("SQLite's integrity check: " + "; ".join(problems))
    market = store.get_meta("market")
    preset = store.get_meta("preset")
    if market is None or preset is None:
        raise PasarError(
            "this database holds no market (no market key or preset recorded)",
            code="not_a_market_db",
            field="--db",
        )
    devnet = store.get_meta("devnet") == "true"
    blocks = store.blocks()
    records = store.txs()
    return audit_records(
        blocks, records, market=market, preset_name=preset, devnet=devnet, reported=None
    )
