"""The client's word on a held result (``verification: approve``): approve, reject, or the
market approving on the client's behalf once the preset's window has passed.

* ``result.approve`` (the order's client): one shard's held result, or every held result of the
  order whose window is still open, is paid — settled for its verified time up to its receipt;
* ``result.reject`` (the order's client, with a reason): the run is paid nothing, its whole
  escrow goes back to the order and the shard is re-run on another provider, paid from that
  escrow at the new provider's price; the rejection counts against the provider's reputation.
  The ``max_reruns``-th rejected run of one shard ends the job instead: the order is closed
  (:func:`~pasar.core.order_handlers.close_order`) and the rejected run's escrow, like every
  unfilled shard's, goes back to the client;
* ``result.auto_approve`` (the market, once a held result's window has passed).

Every handler checks all of it before it changes anything and moves money only through
:func:`~pasar.core.lease_handlers.carry_out`, so a replay of the log re-derives every payment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pasar.core.lease_handlers import carry_out
from pasar.core.market_records import Applied, LeaseRecord, OrderRecord, Tx, fail
from pasar.core.order_handlers import close_order
from pasar.core.verify.approve import ApprovePolicy
from pasar.core.verify.base import Result, Verdict

if TYPE_CHECKING:
    from pasar.core.state import MarketState

MAX_REASON_CHARS = 500


def approve_policy(state: MarketState, record: OrderRecord) -> ApprovePolicy | None:
    """The order's policy when it is ``approve``, else None."""
    policy = state.preset.verification_policy(record.verification)
    return policy if isinstance(policy, ApprovePolicy) else None


def _clients_order(state: MarketState, tx: Tx, action: str) -> tuple[OrderRecord, ApprovePolicy]:
    record = state._order(tx.body.get("order_id"))
    if tx.signer != record.client:
        raise fail(
            f"only the order's client may {action} its results", code="wrong_signer", status=403
        )
    policy = approve_policy(state, record)
    if policy is None:
        raise fail(
            f"order {record.id} is verified by {record.verification!r}, not by the client's "
            "approval",
            code="not_approvable",
            status=409,
            hint="only an order with verification: approve has results to approve or reject",
        )
    return record, policy


def _shard(record: OrderRecord, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail("shard must be a whole number", code="invalid_shard", field="shard")
    if not 0 <= value < record.spec.shards:
        raise fail(
            f"order {record.id} has no shard {value} (it has {record.spec.shards}: "
            f"0 to {record.spec.shards - 1})",
            code="not_found",
            status=404,
            field="shard",
        )
    return value


def _held(state: MarketState, record: OrderRecord, shard: int) -> LeaseRecord:
    """The held lease of ``shard`` whose window is still open (409 when there is none)."""
    leases = [state.leases[x] for x in record.leases if state.leases[x].shard == shard]
    for lease in leases:
        if lease.status == "held":
            return state._lease(lease.id)
    latest = f"its latest run is {leases[-1].status}" if leases else "it has not run yet"
    raise fail(
        f"shard {shard} of order {record.id} has no result waiting for approval ({latest})",
        code="not_held",
        status=409,
        field="shard",
        hint="`pasar status ORDER` shows each shard's lease and whether it is held",
    )


def _window_open(lease: LeaseRecord, at: int) -> bool:
    return lease.held_until is None or at < lease.held_until


def _closed(lease: LeaseRecord) -> Exception:
    return fail(
        f"the approval window of shard {lease.shard} closed at {lease.held_until} (ms): the "
        "market approves it on the client's behalf",
        code="window_closed",
        status=409,
        field="shard",
    )


def _results(leases: list[LeaseRecord]) -> list[Result]:
    return [Result(x.id, x.provider, str((x.receipt or {}).get("root", ""))) for x in leases]


def _pay(
    state: MarketState, policy: ApprovePolicy, leases: list[LeaseRecord]
) -> list[dict[str, object]]:
    verdict = Verdict(accepted=tuple(x.id for x in leases))
    charges = carry_out(state, policy.outcome(verdict, _results(leases)))
    return [
        {
            "shard": x.shard,
            "lease_id": x.id,
            "billed": charges[x.id].billed.to_json(),
            "payout": charges[x.id].provider_payout.to_json(),
        }
        for x in leases
    ]


def on_approve(state: MarketState, tx: Tx) -> Applied:
    record, policy = _clients_order(state, tx, "approve")
    if tx.body.get("shard") is not None:
        lease = _held(state, record, _shard(record, tx.body.get("shard")))
        if not _window_open(lease, tx.at):
            raise _closed(lease)
        leases = [lease]
    else:
        held = [state.leases[x] for x in record.leases if state.leases[x].status == "held"]
        leases = [state._lease(x.id) for x in held if _window_open(x, tx.at)]
        if not leases:
            if held:
                raise _closed(held[0])
            raise fail(
                f"order {record.id} has no result waiting for approval",
                code="not_held",
                status=409,
                hint="`pasar status ORDER` shows each shard's lease and whether it is held",
            )
    approved = _pay(state, policy, leases)
    shards = ", ".join(str(x.shard) for x in leases)
    record.note = f"shard(s) {shards} approved by the client"
    return Applied(
        tx.type,
        {"order_id": record.id, "approved": approved},
        providers={x.provider for x in leases},
        orders={record.id},
    )


def _reason(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(
            "a rejection needs a reason (what is wrong with the result)",
            code="invalid_reason",
            field="reason",
            hint='e.g. --reason "tile 3 is black"',
        )
    if len(value) > MAX_REASON_CHARS:
        raise fail(
            f"the reason is {len(value)} characters long (at most {MAX_REASON_CHARS})",
            code="invalid_reason",
            field="reason",
        )
    return value.strip()


def on_reject(state: MarketState, tx: Tx) -> Applied:
    record, policy = _clients_order(state, tx, "reject")
    if tx.body.get("shard") is None:
        raise fail("say which shard's result is rejected", code="invalid_shard", field="shard")
    shard = _shard(record, tx.body.get("shard"))
    reason = _reason(tx.body.get("reason"))
    lease = _held(state, record, shard)
    if not _window_open(lease, tx.at):
        raise _closed(lease)
    count = record.rejections.get(shard, 0) + 1
    record.rejections[shard] = count
    ended = count >= policy.max_rejections
    if ended:  # closed first, so that carry_out refunds this run to the client, not re-queues it
        close_order(state, record, tx.at)
    verdict = Verdict(rejected=(lease.id,))
    charges = carry_out(state, policy.outcome(verdict, _results([lease])))
    rerun = shard in record.free_shards  # re-queued: only while the order is open
    if ended:
        record.note = (
            f"ended: shard {shard} was rejected {count} times ({reason}); its escrow and the "
            "unfilled shards' escrow were refunded"
        )
    else:
        after = "re-running it on another provider" if rerun else "not re-run: the order is over"
        record.note = (
            f"shard {shard} rejected ({count} of {policy.max_rejections}): {reason}; {after}"
        )
    return Applied(
        tx.type,
        {
            "order_id": record.id,
            "shard": shard,
            "lease_id": lease.id,
            "rejections": count,
            "refund": charges[lease.id].refund.to_json(),
            "rerun": rerun,
            "ended": ended,
        },
        providers={lease.provider},
        orders={record.id},
    )


def on_auto_approve(state: MarketState, tx: Tx) -> Applied:
    lease = state._lease(tx.body.get("lease_id"))
    record = state._order(lease.order_id)
    policy = approve_policy(state, record)
    if policy is None or lease.status != "held":
        raise fail(
            f"lease {lease.id} has no result waiting for approval", code="not_held", status=409
        )
    if _window_open(lease, tx.at):
        raise fail("the approval window is still open", code="too_early", status=409)
    approved = _pay(state, policy, [lease])
    record.note = f"shard {lease.shard} approved by the market: its approval window passed"
    return Applied(
        tx.type,
        {"order_id": record.id, "approved": approved},
        providers={lease.provider},
        orders={record.id},
    )


def overdue_approvals(state: MarketState, now_ms: int) -> list[str]:
    """Held leases of ``approve`` orders whose window has passed: the engine approves them."""
    return [
        lease.id
        for lease in map(state.leases.__getitem__, state.live.held_leases)
        if lease.status == "held"
        and lease.held_until is not None
        and now_ms >= lease.held_until
        and approve_policy(state, state.orders[lease.order_id]) is not None
    ]
