"""The market node's one write path: verify → apply to the state → log durably → notify.

:class:`MarketService` owns the in-memory :class:`~pasar.core.state.MarketState` and the SQL
log. Every transaction, whoever sends it (a client, a provider, the market's own engine), goes
through :meth:`MarketService.submit` under one lock, so the log order is the apply order and a
replay of the log (on restart, or by ``pasar audit``) rebuilds exactly this state.

Apply comes before the durable append: a transaction the state refuses is never logged. If the
append itself fails (the database is gone), the state is rebuilt from the log before the error
is returned, so memory never runs ahead of what survives a crash.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import Any

from pasar.core.errors import PasarError
from pasar.core.presets import Preset
from pasar.core.state import Applied, MarketState, Tx
from pasar.core.timelock import challenge_message, interval_at
from pasar.crypto.envelope import VerifiedEnvelope, sign, verify
from pasar.crypto.identity import Identity, verify_signature
from pasar.market.logging import log_event
from pasar.market.notifier import Notifier
from pasar.market.store import SqlStore, TxRecord

Clock = Callable[[], int]


class MarketService:
    """State, log, notifier and the market's key, behind one lock."""

    def __init__(
        self,
        *,
        store: SqlStore,
        identity: Identity,
        preset: Preset,
        clock: Clock,
        devnet: bool = False,
        notifier: Notifier | None = None,
    ) -> None:
        self.store = store
        self.identity = identity
        self.preset = preset
        self.clock = clock
        self.devnet = devnet
        self.notifier = notifier or Notifier()
        self.lock = threading.RLock()
        self.capacity_changed = True  # the engine retries unmatched orders when this is set
        self.state = self._fresh_state()
        self._check_meta()
        self.recover()

    # -- start-up ----------------------------------------------------------------------------------

    def _fresh_state(self) -> MarketState:
        public_key = self.identity.public_key
        return MarketState(
            self.preset,
            market_id=self.identity.account_id,
            verify_market_signature=lambda m, s: verify_signature(public_key, m, s),
            devnet=self.devnet,
        )

    def _check_meta(self) -> None:
        """A market's log only replays under the key and preset that wrote it."""
        expected = (
            ("market", self.identity.account_id),
            ("preset", self.preset.name),
            ("devnet", "true" if self.devnet else "false"),
        )
        for key, value in expected:
            stored = self.store.get_meta(key)
            if stored is None:
                self.store.set_meta(key, value)
            elif stored != value:
                raise PasarError(
                    f"this database was written by a market with {key} {stored!r}, not {value!r}",
                    code="wrong_database",
                    hint=f"start the market with the same {key}, or use another --db/--home",
                )

    def recover(self) -> int:
        """Rebuild the state from the log; returns how many transactions were replayed."""
        with self.lock:
            state = self._fresh_state()
            count = 0
            for record in self.store.txs():
                state.apply(Tx.from_envelope(record.envelope, record.digest))
                count += 1
            self.state = state
            self.capacity_changed = True
            return count

    # -- the write path ----------------------------------------------------------------------------

    def submit(self, envelope: VerifiedEnvelope) -> Applied:
        """Apply and durably log one verified transaction; raise PasarError (4xx) if refused."""
        tx = Tx.from_envelope(envelope.to_dict(), envelope.digest)
        with self.lock:
            applied = self.state.apply(tx)
            try:
                self.store.append(TxRecord.from_verified(envelope))
            except Exception:
                self.recover()  # memory must not run ahead of the log
                raise
            if tx.type in (
                "provider.register",
                "receipt",
                "lease.lost",
                "order.cancel",
                "order.expire",
                "stake",
            ):
                self.capacity_changed = True
        log_event(
            tx.type,
            signer=tx.signer,
            **{k: v for k, v in applied.result.items() if isinstance(v, str | int)},
        )
        self.notifier.publish(
            tx.type, applied.result, providers=applied.providers, orders=applied.orders
        )
        return applied

    def submit_market(self, body: dict[str, Any]) -> Applied:
        """Sign ``body`` with the market's key and submit it (the engine's decisions)."""
        now = self.clock()
        envelope = sign(body, self.identity, now_ms=now)
        verified = verify(envelope, now_ms=now, expected_signer=self.identity.account_id)
        return self.submit(verified)

    def new_seed(self) -> int:
        """A fresh seed for a clearing; it is recorded in the ``match`` transaction."""
        return secrets.randbits(63)

    # -- challenges --------------------------------------------------------------------------------

    def challenge(self, lease_id: str) -> dict[str, Any]:
        """The market's challenge for the current heartbeat interval of a running lease."""
        with self.lock:
            lease = self.state.leases.get(lease_id)
            if lease is None:
                raise PasarError(f"no lease {lease_id!r}", code="not_found", status=404)
            if lease.status != "running":
                raise PasarError(
                    f"lease {lease_id} is {lease.status}", code="not_running", status=409
                )
            started = lease.started_at
        interval_s = self.preset.timing.heartbeat_interval_s
        k = interval_at(started, self.clock(), interval_s)
        signature = self.identity.sign(challenge_message(lease_id, k))
        return {
            "lease_id": lease_id,
            "interval": k,
            "challenge": signature.hex(),
            "interval_s": interval_s,
            "next_at_ms": started + (k + 1) * interval_s * 1000,
        }
