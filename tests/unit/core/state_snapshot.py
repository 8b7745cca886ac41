"""Helpers for the all-or-nothing tests: a canonical snapshot of a market state, and a way to
make a handler fail after it has done all its work (the hardest case for a rollback)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pasar.core import state as state_module
from pasar.core.fleet_index import FleetIndex
from pasar.core.market_records import Applied, Tx, fail
from pasar.core.state import MarketState


def snapshot(state: MarketState) -> dict[str, Any]:
    """Everything a transaction may change, deep-copied so later changes do not leak in."""
    return {
        "ledger": state.ledger.balances(),
        "unbonding": {p: sorted(map(str, a)) for p, a in state.ledger._unbonding.items() if a},
        "providers": copy.deepcopy(state.providers),
        "provider_order": list(state.providers),
        "orders": copy.deepcopy(state.orders),
        "leases": copy.deepcopy(state.leases),
        "verifiers": copy.deepcopy(state.verifiers),
        "checks": copy.deepcopy(state.checks),
        "challenges": copy.deepcopy(state.challenges),
        "disputes": copy.deepcopy(state.disputes),
        "blob_orders": copy.deepcopy(state.blob_orders),
        "capacity_challenges": dict(state.capacity_challenges),  # frozen records
        "attestations": dict(state.attestations),  # frozen records
        "nonces": set(state.nonces._seen),
        "tx_count": state.tx_count,
        "last_ts": state.last_ts,
    }


@contextmanager
def sabotaged(tx_type: str) -> Iterator[None]:
    """While active, the handler of ``tx_type`` does all its work and then fails (a 409)."""
    real = state_module._HANDLERS[tx_type]

    def failing(state: MarketState, tx: Tx) -> Applied:
        real(state, tx)
        raise fail("injected after the handler's work", code="injected", status=409)

    state_module._HANDLERS[tx_type] = failing
    try:
        yield
    finally:
        state_module._HANDLERS[tx_type] = real


def books_balance(state: MarketState) -> None:
    """Money is conserved: per currency all balances (mint's negative one included) sum to
    zero, and what circulates is what was minted less what was burned (slashes burn)."""
    for currency in state.ledger.currencies():
        held = [b.amount.micros for b in state.ledger.balances() if b.amount.currency == currency]
        assert sum(held) == 0, f"the {currency} books are off by {sum(held)} micros"
        ledger = state.ledger
        assert ledger.circulating(currency) == ledger.minted(currency) - ledger.burned(currency)


def index_content(state: MarketState) -> dict[str, Any]:
    """What the fleet index holds, in a form two states can be compared by: it is derived data,
    so after any apply (accepted or rolled back) it must equal an index rebuilt from the records
    (only the books' tie-breaking age may differ, and no search depends on it)."""
    index = state.index
    book = index.book
    return {
        "rank_order": sorted(index._rank, key=index._rank.__getitem__),
        "by_model": {m: dict(h) for m, h in index._by_model.items()},
        "models": dict(index._models),
        "cpu_class": dict(index._cpu_class),
        "book": {
            pid: (p.inventory, p.asks, {m: sorted(s) for m, s in p.free.items()}, dict(p.shelves))
            for pid, p in book._providers.items()
        },
    }


def rebuilt_index(state: MarketState) -> dict[str, Any]:
    """:func:`index_content` of an index built afresh from ``state``'s provider records."""
    fresh = copy.copy(state)
    fresh.index = FleetIndex()
    for pid in state.providers:
        fresh._reindex(pid)
    return index_content(fresh)
