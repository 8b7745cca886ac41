"""The records still in play: open orders, running and held leases, assigned checks.

Why: the engine asks on every pass what is due — orders to match or expire, leases overdue or
waiting for a verdict, checks past their deadline — and each question scanned every record the
market ever made: time linear in its history (0.1 ms per thousand orders), under the lock that
every transaction's apply takes, so every order waited for it. These ordered sets hold the ids
of the records in those statuses; they follow each applied transaction from the records it
changed and the ones it added, which its undo journal names (a handler changes a record only
after saving it there: :mod:`pasar.core.record_journal`), so a pass walks what is live only.
A refused transaction changes nothing here (its records are put back as they were).

The sets say where to look, not what holds: callers still test each record's status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from pasar.core.market_records import CheckRecord, LeaseRecord, OrderRecord
from pasar.core.record_journal import RecordJournal

#: An ordered set: ids in the order they became live (a dict's keys), so what the engine sends
#: comes out in the same order on every run.
IdSet = dict[str, None]


class LiveIndex:
    """Which orders are open, which leases run or are held, which checks are assigned."""

    def __init__(self) -> None:
        self.open_orders: IdSet = {}
        self.running_leases: IdSet = {}
        self.held_leases: IdSet = {}
        self.assigned_checks: IdSet = {}

    def follow(
        self,
        journal: RecordJournal,
        orders: MutableMapping[str, OrderRecord],
        leases: MutableMapping[str, LeaseRecord],
        checks: MutableMapping[str, CheckRecord],
    ) -> None:
        """Bring the sets up to date after a transaction that ``journal`` recorded."""
        for record in journal.touched_records():
            self._place(record)
        mappings: tuple[MutableMapping[str, Any], ...] = (orders, leases, checks)
        for mapping in mappings:
            for key in journal.touched_keys(mapping):  # added by the transaction
                record = mapping.get(str(key))
                if record is not None:
                    self._place(record)
                else:  # never done today; a record gone is not live
                    for ids in self._sets():
                        ids.pop(str(key), None)

    def _sets(self) -> tuple[IdSet, ...]:
        return (self.open_orders, self.running_leases, self.held_leases, self.assigned_checks)

    def _place(self, record: object) -> None:
        if isinstance(record, OrderRecord):
            _member(self.open_orders, record.id, record.status == "open")
        elif isinstance(record, LeaseRecord):
            _member(self.running_leases, record.id, record.status == "running")
            _member(self.held_leases, record.id, record.status == "held")
        elif isinstance(record, CheckRecord):
            _member(self.assigned_checks, record.id, record.status == "assigned")

    def problems(
        self,
        orders: Mapping[str, OrderRecord],
        leases: Mapping[str, LeaseRecord],
        checks: Mapping[str, CheckRecord],
    ) -> list[str]:
        """Where the sets differ from a scan of every record (empty when they agree): what the
        tests assert after every transaction they apply."""
        scans: dict[str, tuple[IdSet, Iterable[Any], str]] = {
            "open_orders": (self.open_orders, orders.values(), "open"),
            "running_leases": (self.running_leases, leases.values(), "running"),
            "held_leases": (self.held_leases, leases.values(), "held"),
            "assigned_checks": (self.assigned_checks, checks.values(), "assigned"),
        }
        out = []
        for name, (held, records, status) in scans.items():
            scanned = {r.id for r in records if r.status == status}
            if scanned != set(held):
                out.append(f"{name}: index {sorted(held)} != scan {sorted(scanned)}")
        return out


def _member(ids: IdSet, record_id: str, member: bool) -> None:
    if member:
        ids.setdefault(record_id, None)
    else:
        ids.pop(record_id, None)
