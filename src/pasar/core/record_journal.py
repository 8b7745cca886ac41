"""An undo log for the market's records, so that a refused transaction changes nothing.

The ledger already undoes the money a failing handler moved (:meth:`Ledger.atomic`); this is
the same idea for the records around it (providers, orders, leases, the blob index). A handler
that fails half-way, say on the second lease of a match or on a ledger refusal after a lease
was marked settled, must leave memory exactly as a fresh replay of the log would, or the live
market drifts from its log until the next restart.

Why an undo log and not copies of the state: with tens of thousands of providers a transaction
touches a handful of records, so the cost must follow what is touched, not what is held.
Before a handler changes a record it :meth:`~RecordJournal.save`\\ s it (the state's record
getters do this for it); before it inserts, replaces or removes a key of one of the state's
dicts, or changes a value held there in place, it :meth:`~RecordJournal.save_key`\\ s that key.
Each is saved once per transaction, as it was before the transaction began; a rollback puts
every field and every key back *in place* (same objects, same containers), so references held
elsewhere stay valid.

What a record snapshot holds: every field; for a field that is a ``dict``, ``list`` or ``set``
the container and a shallow copy of its contents; for a field that is itself a mutable
dataclass (an order's auction window) a snapshot of it, recursively. Frozen values (``Money``,
``Reputation``, allocations, specs) are kept by reference: they never change in place.

Pure data, no I/O, like the rest of ``core``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, MutableMapping
from typing import Any, cast

_MISSING = object()
_Snapshot = dict[str, tuple[object, object]]
_SavedKey = tuple[MutableMapping[Any, Any], Hashable, object]


def _is_mutable_record(value: object) -> bool:
    return (
        dataclasses.is_dataclass(value)
        and not isinstance(value, type)
        and not value.__dataclass_params__.frozen  # type: ignore[attr-defined]
    )


def _capture(value: object) -> tuple[object, object]:
    """``(value, how to restore its contents)``: a copy for containers, a snapshot for records."""
    if isinstance(value, dict):
        return value, dict(value)
    if isinstance(value, list):
        return value, list(value)
    if isinstance(value, set):
        return value, set(value)
    if _is_mutable_record(value):
        return value, _snapshot(value)
    return value, None


def _restore(value: object, contents: object) -> object:
    """Put ``contents`` (from :func:`_capture`) back into ``value`` in place; ``value``."""
    if isinstance(value, dict):
        value.clear()
        value.update(cast("dict[Any, Any]", contents))
    elif isinstance(value, list):
        value[:] = cast("list[Any]", contents)
    elif isinstance(value, set):
        value.clear()
        value.update(cast("set[Any]", contents))
    elif contents is not None:
        _put_back(value, cast(_Snapshot, contents))
    return value


def _snapshot(record: object) -> _Snapshot:
    return {name: _capture(value) for name, value in vars(record).items()}


def _put_back(record: object, snapshot: _Snapshot) -> None:
    fields = vars(record)
    for name in [n for n in fields if n not in snapshot]:
        del fields[name]
    for name, (value, contents) in snapshot.items():
        fields[name] = _restore(value, contents)


class RecordJournal:
    """What one transaction changed in the records, and how to put it back."""

    def __init__(self) -> None:
        # id(record) → (record, snapshot); (id(mapping), key) → (mapping, key, _MISSING or a
        # capture of the old value and its contents)
        self._records: dict[int, tuple[object, _Snapshot]] = {}
        self._keys: dict[tuple[int, Hashable], _SavedKey] = {}

    def save(self, record: object) -> None:
        """Remember ``record`` (a mutable dataclass) as it is now, unless already saved."""
        key = id(record)
        if key not in self._records:
            self._records[key] = (record, _snapshot(record))

    def save_key(self, mapping: MutableMapping[Any, Any], key: Hashable) -> None:
        """Remember whether ``mapping`` holds ``key`` now, and what (its contents too, when the
        value is a container or a record), unless already saved."""
        slot = (id(mapping), key)
        if slot in self._keys:
            return
        old = mapping.get(key, _MISSING)
        self._keys[slot] = (mapping, key, _MISSING if old is _MISSING else _capture(old))

    def touched_records(self) -> list[object]:
        """The records saved so far (to re-derive what depends on them after a rollback)."""
        return [record for record, _ in self._records.values()]

    def touched_keys(self, mapping: MutableMapping[Any, Any]) -> list[Hashable]:
        """The keys of ``mapping`` saved so far."""
        return [key for m, key, _ in self._keys.values() if m is mapping]

    def rollback(self) -> None:
        """Put every saved record and key back as it was when first saved.

        Keys that were absent are removed; keys that were present get their old value back
        (in place, so a replaced value keeps its dict position). A key removed by the
        transaction comes back at the end of its dict: no handler removes records today, and
        one that does must not depend on their order.
        """
        for record, snapshot in self._records.values():
            _put_back(record, snapshot)
        for mapping, key, old in self._keys.values():
            if old is _MISSING:
                mapping.pop(key, None)
            else:
                value, contents = cast("tuple[object, object]", old)
                mapping[key] = _restore(value, contents)
        self._records.clear()
        self._keys.clear()
