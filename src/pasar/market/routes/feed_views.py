"""A ``match`` on the winning provider's own feed carries its new leases' views (issue 13).

Without them the agent, told of a lease by the feed, reads it (``GET /v1/leases/{id}``: its
spec, inputs and inline input bytes) and then its first heartbeat's challenge before its job can
start and be paid: two round trips on every remote call's path. The feed route builds the same
view :func:`~pasar.market.routes.leases.party_view` answers that GET — the challenge of the
interval in progress (interval 0) included — and hands it over with the event.

Who may see a view is decided here, per page and per reader, never stored in the event: the
notifier's events are shared (the same ``match`` wakes the order's client, the other providers
holding leases of it, the providers invited to a reopened auction window), so the views are
added to the page of the one provider whose own signed poll this is (the route refuses any
other signer), and only for leases the market's state says that provider holds and runs.

A page carries at most :data:`MAX_VIEWS` views and :data:`PAGE_INLINE_BYTES` of inline inputs
(a burst of matches, a feed read from far behind); a lease beyond either is read by GET, as it
is from an older market or after a restart (the feed's events are not kept across one).
"""

from __future__ import annotations

from collections.abc import Sequence

from pasar.api.attachments import INLINE_BYTES
from pasar.api.feed import FeedEvent
from pasar.api.leases import LeaseView
from pasar.core.errors import PasarError
from pasar.market import notifier
from pasar.market.blobs import BlobStore
from pasar.market.routes.leases import party_view
from pasar.market.service import MarketService
from pasar.market.thread_hop import ThreadHop

MAX_VIEWS = 32  # lease views on one page of a feed; the others are read by GET
PAGE_INLINE_BYTES = 4 * INLINE_BYTES  # their inline inputs together, at most (before base64)
#: Views for at most this many leases are built on the event loop itself: a remote call's one
#: lease costs it ~0.3 ms there (the state's lock, a small blob's read from the page cache, a
#: signature), where a hop to a worker thread and back cost ~1 ms on a loaded 2-core machine,
#: on every call's path. A burst (a ``.map``) is built on a worker thread, so that a page of
#: dozens of views never holds the loop for long.
ON_LOOP = 2
HOP = ThreadHop(2, "pasar-feed-views")


def won_leases(events: Sequence[notifier.FeedEvent], provider: str) -> int:
    """How many leases the ``match`` events among ``events`` give ``provider``."""
    return sum(
        1
        for e in events
        if e.type == "match"
        for holder in (e.data.get("assigned") or {}).values()
        if holder == provider
    )


async def add_views_async(
    service: MarketService,
    blobs: BlobStore,
    provider: str,
    page: Sequence[FeedEvent],
    won: int,
) -> None:
    """:func:`add_views` for a page that gives ``provider`` ``won`` leases: on the loop for a
    few (:data:`ON_LOOP`), else on a worker thread."""
    if won <= ON_LOOP:
        add_views(service, blobs, provider, page)
    else:
        await HOP.run(add_views, service, blobs, provider, page)


def add_views(
    service: MarketService, blobs: BlobStore, provider: str, page: Sequence[FeedEvent]
) -> None:
    """Give each ``match`` on ``provider``'s ``page`` the views of the leases it won that are
    running (their holder checked against the state, not the event), within the page's
    limits. Called for the provider's own signed poll only."""
    count, budget = 0, PAGE_INLINE_BYTES
    for event in page:
        if event.type != "match" or not event.assigned:
            continue
        views: dict[str, LeaseView] = {}
        for lease_id, holder in event.assigned.items():
            if holder != provider or count >= MAX_VIEWS:
                continue
            view = _own_view(service, blobs, lease_id, provider, budget)
            if view is None:
                continue
            views[lease_id] = view
            count += 1
            budget -= sum(e.size or 0 for e in view.inputs) if view.inline_inputs else 0
        if views:
            event.views = views


def _own_view(
    service: MarketService, blobs: BlobStore, lease_id: str, provider: str, budget: int
) -> LeaseView | None:
    """The running lease's view for its provider, or None (not its, or not running now)."""
    with service.lock:
        lease = service.state.leases.get(lease_id)
        if lease is None or lease.provider != provider or lease.status != "running":
            return None
    try:
        view = party_view(service, blobs, lease_id, provider, inline_budget=budget)
    except PasarError:
        return None
    return view if view.status == "running" else None
