"""The market's chain: logged transactions batched into blocks signed by the market key.

A block commits to a contiguous run of the transaction log (DESIGN.md §4, docs/market.md)::

    header = {height, prev_hash, tx_root, first_seq, last_seq, txs, stamps, ts, signer}
    hash   = sha256(canonical_json(header))                       # hex
    sig    = Ed25519(market key, b"pasar/block/v1\\n" + canonical_json(header))

- ``txs`` lists the transaction digests (:attr:`VerifiedEnvelope.digest`) in log order, and
  ``tx_root = merkle.root_of_hashes(txs)``, so a light client can be handed a Merkle proof that
  one transaction is in a block without fetching the rest.
- ``stamps`` lists, for each of ``txs``, the market's clock when it accepted that transaction
  (unix ms). The state machine's rules (billing, windows, deadlines) run on these stamps, not
  on the signers' ``ts``, so the market signs them here and an audit replays the same times.
  (A block written before stamps existed has none; its transactions were stamped with their
  ``ts``.)
- ``first_seq``/``last_seq`` name the run of the log the block covers. The store hands out
  sequence numbers without gaps (1, 2, 3, …), so block ``h`` covers exactly
  ``last_seq(h-1) + 1 .. last_seq(h)`` and ``len(txs) == last_seq - first_seq + 1``: a
  transaction deleted from the log, or slipped in, breaks the count.
- Genesis is height 0 with ``prev_hash`` = 64 zeros and ``first_seq`` = 1. Heights are
  contiguous and each ``prev_hash`` is the hash of the block before, so no block can be dropped,
  reordered or edited without breaking every later link. ``ts`` never decreases.
- The domain prefix keeps a block signature from ever being valid as an envelope signature (or
  anything else signed with the market key), and the other way round.

:func:`verify_chain` is what ``pasar audit`` and a restarting market run: it re-checks every
header *and* every transaction the blocks name (its envelope's signature and digest), so any
changed byte in a stored block or transaction is found, and the error names the height of the
first bad block.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeGuard

from pasar.core.errors import PasarError
from pasar.crypto.canonical import canonical_json, parse_json
from pasar.crypto.envelope import verify
from pasar.crypto.hashing import is_sha256_hex, sha256_hex
from pasar.crypto.identity import Identity, is_account_id, public_key_of, verify_signature
from pasar.crypto.merkle import root_of_hashes

if TYPE_CHECKING:
    from pasar.market.store import SqlStore
    from pasar.market.tx_records import TxRecord

BLOCK_DOMAIN = b"pasar/block/v1\n"
GENESIS_PREV_HASH = "0" * 64
GENESIS_FIRST_SEQ = 1
DEFAULT_MAX_TXS = 500
_HEADER_FIELDS = ("height", "prev_hash", "tx_root", "first_seq", "last_seq", "txs", "ts", "signer")

TxLookup = Mapping[str, "TxRecord"] | Callable[[str], "TxRecord | None"]


class ChainError(PasarError):
    """A block or a transaction it names fails verification; ``height`` is the first bad block.

    The message always starts with ``block <height>:`` so that a person reading ``pasar audit``
    output knows where to look without parsing anything.
    """

    default_status = 422

    def __init__(self, height: int, why: str, *, code: str = "chain_invalid") -> None:
        super().__init__(
            f"block {height}: {why}",
            code=code,
            hint="the stored chain or log was altered or damaged; restore it from a good copy",
        )
        self.height = height


@dataclass(frozen=True)
class Block:
    """One signed block. ``txs`` are transaction digests in log (seq) order."""

    height: int
    prev_hash: str
    tx_root: str
    first_seq: int
    last_seq: int
    txs: tuple[str, ...]
    ts: int
    signer: str
    sig: str
    stamps: tuple[int, ...] | None = None  # None: a block from before market stamps

    def header(self) -> dict[str, Any]:
        """The signed fields (everything but ``sig``) as a JSON-ready dict."""
        header: dict[str, Any] = {
            "height": self.height,
            "prev_hash": self.prev_hash,
            "tx_root": self.tx_root,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "txs": list(self.txs),
            "ts": self.ts,
            "signer": self.signer,
        }
        if self.stamps is not None:
            header["stamps"] = list(self.stamps)
        return header

    def stamp_of(self, offset: int, envelope_ts: int) -> int:
        """The market's stamp of the ``offset``-th transaction (its ``ts`` in an old block)."""
        return envelope_ts if self.stamps is None else self.stamps[offset]

    def header_json(self) -> bytes:
        """The canonical JSON of :meth:`header`: what is hashed, signed and stored."""
        return canonical_json(self.header())

    @property
    def hash(self) -> str:
        """``sha256(canonical_json(header))`` in hex: the next block's ``prev_hash``."""
        return sha256_hex(self.header_json())

    def to_dict(self) -> dict[str, Any]:
        """The wire form: the header plus ``sig`` (and ``hash``, for the reader's convenience)."""
        return {**self.header(), "sig": self.sig, "hash": self.hash}

    @classmethod
    def from_dict(cls, data: object, *, height: int | None = None) -> Block:
        """Rebuild a block from its wire or stored form, checking every field's shape.

        ``height`` is where the caller found it (a row, a list position); it is the height an
        error names when the data is too broken to say its own.
        """
        where = height if height is not None else -1
        if not isinstance(data, Mapping):
            raise ChainError(where, "a block is a JSON object", code="malformed_block")
        claimed = data.get("height")
        if height is None and _is_int(claimed):
            where = claimed
        missing = [f for f in (*_HEADER_FIELDS, "sig") if f not in data]
        if missing:
            why = f"missing field(s) {', '.join(missing)}"
            raise ChainError(where, why, code="malformed_block")
        txs = data["txs"]
        problems = []
        for name in ("height", "first_seq", "last_seq", "ts"):
            if not _is_int(data[name]) or data[name] < 0:
                problems.append(f"{name} must be a non-negative integer")
        for name in ("prev_hash", "tx_root"):
            if not is_sha256_hex(data[name]):
                problems.append(f"{name} must be 64 lower-case hex characters")
        if not isinstance(txs, list | tuple) or not all(is_sha256_hex(d) for d in txs):
            problems.append("txs must be a list of tx digests (64 lower-case hex characters)")
        if not is_account_id(data["signer"]):
            problems.append("signer must be an account id")
        stamps = data.get("stamps")
        if stamps is not None and (
            not isinstance(stamps, list | tuple)
            or len(stamps) != len(txs)
            or not all(_is_int(x) and x >= 0 for x in stamps)
        ):
            problems.append("stamps must list one non-negative integer per transaction")
        sig = data["sig"]
        if not isinstance(sig, str) or len(sig) != 128 or not _is_lower_hex(sig):
            problems.append("sig must be 128 lower-case hex characters")
        if problems:
            raise ChainError(where, "; ".join(problems), code="malformed_block")
        block = cls(
            height=data["height"],
            prev_hash=data["prev_hash"],
            tx_root=data["tx_root"],
            first_seq=data["first_seq"],
            last_seq=data["last_seq"],
            txs=tuple(txs),
            ts=data["ts"],
            signer=data["signer"],
            sig=sig,
            stamps=None if stamps is None else tuple(stamps),
        )
        if height is not None and block.height != height:
            raise ChainError(height, f"stored as height {height} but says {block.height}")
        return block

    @classmethod
    def from_stored(cls, height: int, body: str | bytes, sig: str) -> Block:
        """Rebuild a block from its stored header (canonical JSON text) and signature.

        The text must be exactly the canonical form: a stored header that parses to the same
        values but is spelled differently has still been altered.
        """
        raw = body.encode("utf-8") if isinstance(body, str) else body
        try:
            header = parse_json(raw, what=f"block {height}")
            if not isinstance(header, dict) or canonical_json(header) != raw:
                raise ChainError(height, "stored header is not canonical JSON")
        except ChainError:
            raise
        except (PasarError, UnicodeError) as exc:
            raise ChainError(height, f"stored header cannot be read: {exc}") from None
        return cls.from_dict({**header, "sig": sig}, height=height)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_lower_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def signing_message(header_json: bytes) -> bytes:
    """The exact bytes a block signature covers."""
    return BLOCK_DOMAIN + header_json


class Stamped(Protocol):
    """What a block holds of a logged transaction: its place, its digest, the market's stamp
    (a :class:`~pasar.market.tx_records.TxRecord` or a :class:`TxStamp`)."""

    @property
    def seq(self) -> int: ...
    @property
    def digest(self) -> str: ...
    @property
    def at(self) -> int: ...


class TxStamp(NamedTuple):
    """A logged transaction as sealing reads it (:meth:`SqlStore.tx_stamps`): sealing needs no
    envelope, so none is read, parsed or re-serialized (that was most of a seal's time)."""

    seq: int
    digest: str
    at: int


def make_block(
    prev: Block | None, txs: Sequence[Stamped], *, market: Identity, ts_ms: int
) -> Block:
    """The block after ``prev`` (genesis when None) holding ``txs``, signed by ``market``.

    Pure: nothing is stored. ``txs`` must be the next run of the log (seq ``prev.last_seq + 1``
    onwards, no gaps); a block is never empty. ``ts`` is clamped to ``prev.ts`` so a clock that
    steps back cannot produce a chain that fails verification.
    """
    height = 0 if prev is None else prev.height + 1
    first_seq = GENESIS_FIRST_SEQ if prev is None else prev.last_seq + 1
    if not txs:
        raise ChainError(height, "a block holds at least one transaction", code="empty_block")
    for offset, tx in enumerate(txs):
        if tx.seq != first_seq + offset:
            raise ChainError(
                height,
                f"transaction {offset} has seq {tx.seq}, expected {first_seq + offset}",
                code="seq_gap",
            )
    digests = tuple(tx.digest for tx in txs)
    ts = ts_ms if prev is None else max(ts_ms, prev.ts)
    unsigned = Block(
        height=height,
        prev_hash=GENESIS_PREV_HASH if prev is None else prev.hash,
        tx_root=root_of_hashes(digests),
        first_seq=first_seq,
        last_seq=first_seq + len(txs) - 1,
        txs=digests,
        stamps=tuple(tx.at for tx in txs),
        ts=ts,
        signer=market.account_id,
        sig="0" * 128,
    )
    sig = market.sign(signing_message(unsigned.header_json())).hex()
    return replace(unsigned, sig=sig)


def _lookup(txs_by_digest: TxLookup) -> Callable[[str], TxRecord | None]:
    if isinstance(txs_by_digest, Mapping):
        return txs_by_digest.get
    return txs_by_digest


def verify_chain(
    blocks: Iterable[Block],
    txs_by_digest: TxLookup,
    *,
    market_account: str,
    after: Block | None = None,
) -> int:
    """Check ``blocks`` (in order) and every transaction they name; return how many blocks.

    ``after`` is an already-trusted block the first of ``blocks`` must follow; without it the
    first block must be genesis. Raises :class:`ChainError` naming the first bad block's height:
    a wrong signer or signature, a broken ``prev_hash`` link, a height or seq gap, a ``tx_root``
    that is not the root of ``txs``, a named transaction that is missing, or one whose stored
    envelope no longer verifies or no longer hashes to its digest. ``blocks`` may be a lazy
    iterator, so a long chain is checked in constant memory apart from the nonce set.
    """
    market_key = public_key_of(market_account, field="market_account")
    lookup = _lookup(txs_by_digest)
    prev = after
    seen_nonces: set[tuple[str, str]] = set()
    count = 0
    for block in blocks:
        _verify_header(block, prev, market_account, market_key)
        for offset, digest in enumerate(block.txs):
            nonce_key = _verify_tx(block, offset, digest, lookup, market_account)
            if nonce_key in seen_nonces:
                raise ChainError(
                    block.height, f"tx {digest} reuses a nonce already in the chain", code="replay"
                )
            seen_nonces.add(nonce_key)
        prev = block
        count += 1
    return count


def _verify_header(
    block: Block, prev: Block | None, market_account: str, market_key: bytes
) -> None:
    h = block.height
    want_height = 0 if prev is None else prev.height + 1
    if h != want_height:
        raise ChainError(h, f"expected height {want_height}", code="height_gap")
    if block.signer != market_account:
        raise ChainError(h, f"signed by {block.signer}, not the market", code="wrong_signer")
    try:
        sig = bytes.fromhex(block.sig)
        header_json = block.header_json()
    except (ValueError, PasarError) as exc:
        raise ChainError(h, f"unreadable block: {exc}", code="malformed_block") from None
    if not verify_signature(market_key, signing_message(header_json), sig):
        raise ChainError(h, "the market's signature does not match", code="bad_block_signature")
    want_prev = GENESIS_PREV_HASH if prev is None else prev.hash
    if block.prev_hash != want_prev:
        raise ChainError(h, "prev_hash is not the hash of the block before", code="wrong_prev_hash")
    want_first = GENESIS_FIRST_SEQ if prev is None else prev.last_seq + 1
    if block.first_seq != want_first:
        why = f"first_seq is {block.first_seq}, expected {want_first}"
        raise ChainError(h, why, code="seq_gap")
    if not block.txs or block.last_seq - block.first_seq + 1 != len(block.txs):
        raise ChainError(
            h,
            f"covers seq {block.first_seq}..{block.last_seq} but lists {len(block.txs)} txs",
            code="seq_gap",
        )
    if prev is not None and block.ts < prev.ts:
        raise ChainError(h, "ts is earlier than the block before", code="ts_backwards")
    if block.tx_root != root_of_hashes(block.txs):
        raise ChainError(h, "tx_root is not the Merkle root of txs", code="tx_root_mismatch")


def _verify_tx(
    block: Block,
    offset: int,
    digest: str,
    lookup: Callable[[str], TxRecord | None],
    market: str,
) -> tuple[str, str]:
    h = block.height
    try:
        tx = lookup(digest)
    except KeyError:
        tx = None
    except PasarError as exc:  # a stored row too damaged to read
        raise ChainError(h, f"tx {digest}: {exc.message}", code="tx_tampered") from None
    if tx is None:
        raise ChainError(h, f"tx {digest} is missing from the log", code="missing_tx")
    want_seq = block.first_seq + offset
    if tx.digest != digest or tx.seq != want_seq:
        raise ChainError(
            h, f"tx {digest} is stored as {tx.digest} at seq {tx.seq}, expected seq {want_seq}"
        )
    return _verify_envelope(h, tx, lambda ts: block.stamp_of(offset, ts), market)


def _verify_envelope(
    h: int, tx: TxRecord, stamp: Callable[[int], int], market: str
) -> tuple[str, str]:
    """The stored envelope still verifies, hashes to the digest and agrees with its columns;
    ``stamp(ts)`` is the market stamp the block (if any) gives it. Returns (signer, nonce)."""
    digest = tx.digest
    envelope = tx.envelope
    own_ts = envelope.get("ts") if isinstance(envelope, Mapping) else None
    try:
        # the envelope's own ts as "now": the clock check is meaningless on replay, the
        # signature and shape checks are the point.
        verified = verify(
            envelope, now_ms=own_ts if _is_int(own_ts) else 0, market=market, max_skew_ms=0
        )
    except PasarError as exc:
        raise ChainError(h, f"tx {digest}: {exc.message}", code="tx_tampered") from None
    body_type = verified.body.get("type")
    if (
        verified.digest != digest
        or verified.signer != tx.signer
        or verified.nonce != tx.nonce
        or verified.ts != tx.ts
        or body_type != tx.type
        or stamp(verified.ts) != tx.at
    ):
        why = f"tx {digest}: stored fields disagree with its envelope"
        raise ChainError(h, why, code="tx_tampered")
    return (verified.signer, verified.nonce)


def _own_stamp(at: int) -> Callable[[int], int]:
    """An unsealed transaction has only the stamp stored beside it."""
    return lambda _ts: at


def verify_log(
    blocks: Sequence[Block], records: Sequence[TxRecord], *, market_account: str
) -> None:
    """Check a whole log as a market or an auditor loads it: the chain over ``blocks``
    (:func:`verify_chain`), seqs 1, 2, 3… without a gap, and every transaction after the last
    block (not sealed yet) by its own signature and digest.

    A market runs this before it replays its log at start, so a tampered byte makes it refuse
    to start, naming the height (the next block's, for an unsealed transaction).
    """
    verify_chain(blocks, {r.digest: r for r in records}, market_account=market_account)
    sealed = blocks[-1].last_seq if blocks else 0
    next_height = blocks[-1].height + 1 if blocks else 0
    for i, record in enumerate(records, start=1):
        if record.seq != i:
            raise ChainError(
                next_height, f"the log has a gap at seq {i} (found {record.seq})", code="seq_gap"
            )
    seen = {(r.signer, r.nonce) for r in records[:sealed]}
    for record in records[sealed:]:
        key = _verify_envelope(next_height, record, _own_stamp(record.at), market_account)
        if key in seen:
            raise ChainError(
                next_height, f"tx {record.digest} reuses a nonce already logged", code="replay"
            )
        seen.add(key)


class ChainBuilder:
    """Seals the log's unblocked transactions into blocks, one :meth:`seal` at a time.

    The service calls :meth:`seal` periodically and :meth:`seal_all` on shutdown. A lock keeps
    two callers in one process from building on the same head; the store refuses a block whose
    height is not head + 1, so two processes cannot fork the chain either.
    """

    def __init__(
        self,
        store: SqlStore,
        market: Identity,
        clock: Callable[[], int],
        max_txs: int = DEFAULT_MAX_TXS,
    ) -> None:
        if max_txs < 1:
            raise ValueError("max_txs must be at least 1")
        self._store = store
        self._market = market
        self._clock = clock
        self._max_txs = max_txs
        self._lock = threading.Lock()

    def seal(self) -> Block | None:
        """Make, store and return one block of up to ``max_txs`` unblocked txs (None if none)."""
        with self._lock:
            head = self._store.head_block()
            after = 0 if head is None else head.last_seq
            txs = self._store.tx_stamps(after_seq=after, limit=self._max_txs)
            if not txs:
                return None
            block = make_block(head, txs, market=self._market, ts_ms=self._clock())
            self._store.append_block(block)
            return block

    def seal_all(self) -> list[Block]:
        """Seal until no unblocked tx is left (e.g. on shutdown); return the new blocks."""
        out: list[Block] = []
        while (block := self.seal()) is not None:
            out.append(block)
        return out
