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
``Reputation``, allocations, specs) are kept by reference: they never change in place; so are
container fields marked :data:`REPLACED_WHOLE` (assigned anew, never changed in place), which
keeps a transaction's cost off the size of an order's match reasons.

Pure data, no I/O, like the rest of ``core``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Mapping, MutableMapping
from types import MappingProxyType
from typing import Any, cast

_MISSING = object()
_Snapshot = dict[str, tuple[object, object]]
_SavedKey = tuple[MutableMapping[Any, Any], Hashable, object]


#: Field metadata for a container field that handlers only ever *replace*, never change in
#: place (an order's match reasons: one entry per provider that lost, so tens of thousands):
#: the journal keeps the old container by reference instead of copying it.
REPLACED_WHOLE: Mapping[str, bool] = MappingProxyType({"journal_by_reference": True})


def _plan(kind: type) -> Callable[[Any], object] | None:
    """How to capture a value of this type: a copier for containers, :func:`_snapshot` for
    mutable records, None for values that never change in place. Cached per type, because a
    transaction captures a few dozen fields and this runs for each."""
    for container in (dict, list, set):
        if issubclass(kind, container):
            return container
    if dataclasses.is_dataclass(kind) and not kind.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        return _snapshot
    return None


_PLANS: dict[type, Callable[[Any], object] | None] = {}


def _capture(value: object) -> tuple[object, object]:
    """``(value, how to restore its contents)``: a copy for containers, a snapshot for records,
    None for what never changes in place."""
    kind = type(value)
    try:
        plan = _PLANS[kind]
    except KeyError:
        plan = _PLANS[kind] = _plan(kind)
    return value, None if plan is None else plan(value)


def _restore(value: object, contents: object) -> object:
    """Put ``contents`` (from :func:`_capture`) back into ``value`` in place; ``value``."""
    if contents is None:
        return value
    if isinstance(value, dict):
        value.clear()
        value.update(cast("dict[Any, Any]", contents))
    elif isinstance(value, list):
        value[:] = cast("list[Any]", contents)
    elif isinstance(value, set):
        value.clear()
        value.update(cast("set[Any]", contents))
    else:
        _put_back(value, cast(_Snapshot, contents))
    return value


def _by_reference(record: object) -> frozenset[str]:
    cls = type(record)
    cached = _BY_REFERENCE.get(cls)
    if cached is None:
        cached = frozenset(
            f.name
            for f in dataclasses.fields(cast(Any, cls))
            if f.metadata.get("journal_by_reference")
        )
        _BY_REFERENCE[cls] = cached
    return cached


_BY_REFERENCE: dict[type, frozenset[str]] = {}


def _snapshot(record: object) -> _Snapshot:
    keep = _by_reference(record)
    return {
        name: (value, None) if name in keep else _capture(value)
        for name, value in vars(record).items()
    }


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
        self._added: list[tuple[set[Any], Hashable]] = []

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

    def adding(self, members: set[Any], item: Hashable) -> None:
        """Remember that ``item``, not in ``members`` now, is about to be added to it: a
        rollback discards it again. For a set that only grows and may be large (the orders
        naming a blob), where :meth:`save_key` would copy it whole for every transaction."""
        if item not in members:
            self._added.append((members, item))

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
        # last: a set saved whole after an item was added holds the item in its copy
        for members, item in self._added:
            members.discard(item)
        self._records.clear()
        self._keys.clear()
        self._added.clear()
