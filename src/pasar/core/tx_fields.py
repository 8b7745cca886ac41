"""The body fields each transaction type accepts: the market's wire schema for transactions.

Why its own module: it is data, not state — :meth:`pasar.core.state.MarketState.apply`
refuses a body field not listed here before any handler runs, and the API's wire models
(:mod:`pasar.api.txs`) must list exactly the same fields (a contract test keeps them equal).
A new transaction type gets its row here and its handler in ``state._HANDLERS``.
"""

from __future__ import annotations

#: The body fields each transaction type accepts (besides ``type``); anything else is an error.
TX_FIELDS: dict[str, frozenset[str]] = {
    "faucet": frozenset({"amount"}),
    "provider.register": frozenset(
        {"inventory", "asks", "rate_per_score_hour", "score", "region", "attributes", "available"}
    ),
    "stake": frozenset({"amount"}),
    "unstake": frozenset({"amount"}),
    "unbonded.withdraw": frozenset(),
    "withdraw": frozenset({"amount"}),
    "order.create": frozenset({"spec", "ttl_s", "private", "tolerant", "blobs"}),
    "order.cancel": frozenset({"order_id"}),
    "bid": frozenset({"order_id", "price"}),
    "match": frozenset({"order_id", "seed", "offline"}),
    "order.expire": frozenset({"order_id"}),
    "heartbeat": frozenset({"lease_id", "interval", "challenge", "usage"}),
    "lease.lost": frozenset({"lease_id", "challenge_id"}),
    "liveness.challenge": frozenset({"provider", "reason"}),
    "liveness.answer": frozenset({"challenge_id"}),
    "lease.release": frozenset({"lease_id"}),
    "receipt": frozenset(
        {
            "lease_id",
            "exit_code",
            "root",
            "outputs",
            "started_at",
            "ended_at",
            "usage",
            "kill_reason",
            "note",
            "failure",
            "plain_root",
        }
    ),
    "result.approve": frozenset({"order_id", "shard"}),
    "result.reject": frozenset({"order_id", "shard", "reason"}),
    "result.auto_approve": frozenset({"lease_id"}),
    "verifier.register": frozenset({"operator"}),
    "check.draw": frozenset({"lease_id", "draw"}),
    "check.assign": frozenset({"lease_id", "seed", "challenge_id"}),
    "check.verdict": frozenset(
        {"check_id", "root", "outputs", "matches", "mode", "distance", "noise", "threshold"}
    ),
    "check.expire": frozenset({"check_id"}),
    "challenge.open": frozenset({"lease_id", "claim", "bond"}),
    "dispute.open": frozenset(
        {
            "check_id",
            "start",
            "end",
            "prover_root",
            "verifier_root",
            "start_hash",
            "end_hash",
            "prover_end_hash",
            "proofs",
        }
    ),
    "dispute.answer": frozenset({"dispute_id", "step", "hash", "proof"}),
    "dispute.expire": frozenset({"dispute_id"}),
    "dispute.rule": frozenset({"dispute_id", "step", "hash", "operator"}),
    "dispute.trace": frozenset({"dispute_id", "step", "operators", "hash"}),
    "capacity.challenge": frozenset({"provider", "seed"}),
    "capacity.answer": frozenset({"challenge_id", "sha256"}),
    "capacity.verdict": frozenset({"challenge_id", "result", "reason"}),
    "lease.accept": frozenset({"lease_id", "key"}),
    "key.seal": frozenset({"lease_id", "recipient", "sealed_key"}),
    "tee.attest": frozenset(
        {
            "provider",
            "tee",
            "tcb_status",
            "advisories",
            "measurements",
            "quote_sha256",
            "expires_at",
            "nonce",
            "nonce_issued_at",
        }
    ),
    "cluster.exec": frozenset({"order_id", "step", "command"}),
}
