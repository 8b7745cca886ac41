"""A provider's push feed: events after a sequence number.

An event is the ``type`` of the transaction that caused it and that transaction's result (see
:class:`pasar.api.txs.TxAnswer`), so it carries more than the fields named here; the named ones
are those the provider agent acts on.
"""

from __future__ import annotations

from pasar.api.base import OpenModel, WireModel
from pasar.api.leases import LeaseView


class FeedEvent(OpenModel):
    seq: int
    type: str
    order_id: str | None = None
    lease_id: str | None = None
    mechanism: str | None = None
    # an order's mechanism takes sealed bids; a match: a window reopened for the leases left
    takes_bids: bool | None = None  # None: not said
    leases: list[str] | None = None
    assigned: dict[str, str] | None = None  # lease id -> its provider (a match)
    # a match on the winning provider's own feed: its new leases as GET /v1/leases/{id} answers
    # it (inline inputs and interval 0's challenge included), so its agent starts them without
    # that read; never on another's feed; a lease without one (too many, an older market) is
    # read by GET (pasar.market.routes.feed_views)
    views: dict[str, LeaseView] | None = None
    check_id: str | None = None  # a check.assign: the check and the verifier it went to
    verifier: str | None = None
    challenge_id: str | None = None  # a capacity challenge (GET /v1/capacity/{id} has it)
    stop: list[str] | None = None  # a multi-node head's receipt: the gang's leases to stop
    step: int | None = None  # a cluster.exec: the step's number and its command's blob
    command: str | None = None
    # a pol dispute's move: the round's question both parties answer (pasar.verifier.dispute)
    dispute_id: str | None = None
    asked_step: int | None = None
    status: str | None = None
    referee: str | None = None  # once pinned to an operator: the third verifier who traces it


class FeedPage(WireModel):
    """Events in order; ``next`` is the ``after`` of the next poll."""

    events: list[FeedEvent]
    next: int
