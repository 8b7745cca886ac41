"""The statuses of orders and leases, as ``Literal`` types (the one list of each).

The state machine in ``core`` sets them; clients, the agent and the CLI compare against these
names rather than repeating bare strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

OrderStatus = Literal["open", "running", "done", "expired", "cancelled"]
LeaseStatus = Literal[
    "running", "held", "settled", "failed", "lost", "cancelled", "released", "rejected"
]
CheckStatus = Literal["assigned", "done", "expired", "cancelled"]

ORDER_STATUSES: tuple[OrderStatus, ...] = get_args(OrderStatus)
LEASE_STATUSES: tuple[LeaseStatus, ...] = get_args(LeaseStatus)

# an order in one of these will not change again
TERMINAL_ORDER: frozenset[OrderStatus] = frozenset({"done", "expired", "cancelled"})
# a lease in one of these is over and its shard will not be re-run (lost and released leases are
# re-queued: another lease follows them)
FINAL_LEASE: frozenset[LeaseStatus] = frozenset({"settled", "cancelled"})


def awaiting_approval(order: Mapping[str, Any]) -> bool:
    """An order's wire view (``verification: approve``): every shard has run and at least one
    result waits for the client's approval, so the order goes on only when the client judges
    it (or the approval window passes)."""
    leases = order.get("leases") or []
    return (
        order.get("status") == "running"
        and order.get("unfilled") == 0
        and any(x.get("status") == "held" for x in leases)
        and not any(x.get("status") == "running" for x in leases)
    )


def order_status(value: str) -> OrderStatus:
    """A core record's status as the Literal type (a status outside the list is a bug)."""
    for status in ORDER_STATUSES:
        if status == value:
            return status
    raise ValueError(f"unknown order status {value!r}")


def lease_status(value: str) -> LeaseStatus:
    """A core record's status as the Literal type (a status outside the list is a bug)."""
    for status in LEASE_STATUSES:
        if status == value:
            return status
    raise ValueError(f"unknown lease status {value!r}")
