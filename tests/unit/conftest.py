"""What every unit test checks besides its own assertions.

The live index (:mod:`pasar.core.live_index`): after every transaction any unit test applies,
the open orders, running and held leases and assigned checks it holds are exactly what a scan
of every record finds. The engine walks the index instead of the history, so a transition a
handler made without saving the record first would leave an order unmatched or a lease never
judged; every lifecycle the unit tests drive (matches, receipts, holds, verdicts, re-runs,
cancels, expiries, disputes) is checked here for it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pasar.core.market_records import Applied, Tx
from pasar.core.state import MarketState


@pytest.fixture(autouse=True)
def live_index_follows_every_transaction(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    apply = MarketState.apply

    def checked_apply(self: MarketState, tx: Tx) -> Applied:
        applied = apply(self, tx)
        problems = self.live.problems(self.orders, self.leases, self.checks)
        assert not problems, f"after {tx.type}: {problems}"
        return applied

    monkeypatch.setattr(MarketState, "apply", checked_apply)
    yield
