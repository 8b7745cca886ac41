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
CheckStatus = Literal["assigned", "done", "expired", "cancelled", "overturned"]

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


#: why the provider's sandbox stopped a job (a receipt's ``kill_reason``), in words
KILLED_BECAUSE: dict[str, str] = {
    "timeout": "timeout: it ran past its max_duration",
    "memory": "memory: it went over its memory limit",
    "disk": "disk: it wrote more than its disk limit",
    "file_size": "disk: it wrote a file larger than its limit",
    "cpu_time": "cpu time: it used up its CPU-time limit",
    "processes": "processes: it started more processes than its limit",
    "cancel": "cancelled",
    "gang": "stopped: the head node's run ended",  # a multi-node job ends with its head
}


def end_reason(lease: Mapping[str, Any]) -> str | None:
    """Why a lease's job did not end by itself, in a few words for people: killed at
    ``max_duration`` is ``"timeout: …"``, not ``exit 137``; ``None`` when it exited on its own
    (or still runs). Reads the receipt as its provider signed it (untrusted JSON)."""
    status = lease.get("status")
    receipt = lease.get("receipt") or {}
    killed = receipt.get("kill_reason") if isinstance(receipt, dict) else None
    if isinstance(killed, str):
        return KILLED_BECAUSE.get(killed, f"killed: {killed}")
    if status == "lost":
        note = lease.get("note")
        return f"lost: {note}" if isinstance(note, str) and note else "lost: its provider vanished"
    if status == "cancelled":
        return "cancelled"
    if status == "released":
        return "released: its provider handed it back (shutting down)"
    return None
