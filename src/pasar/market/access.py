"""Who may read what: the market's read authorization (issue 9; DESIGN.md §4 "Reads").

Offers, stats, GPU tables and the chain are public (``pasar audit --market`` must work for
anyone), and so are quotes (``POST /v1/orders/quote``): a quote reveals only offers. A job's
private data is not: its order (command, environment, inputs), its leases, their logs, and its
blobs are readable only by

- the order's **client**;
- the **providers** holding a lease of the order (they need the spec and the inputs to run it);
- the market's **operator** (whoever holds the market key);

and, for an auction, a provider **invited to bid** sees the order's public requirements only
(resources, price, duration — what a bid needs, never the command, envs or inputs). So do

- the **verifiers** given a check of one of its leases (they re-run it: spec, inputs, and the
  provider's outputs to compare with);
- any staked verifier while one of its settled results may still be challenged (a
  whistleblower re-checks before it posts a bond);
- the referee of a pol dispute over one of its leases (it traces the disputed step).

Every rule takes the reader's account as proven by a signed request
(:mod:`pasar.crypto.request_auth`): no signature is a 401, the wrong account a 403.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pasar.core.challenge_handlers import challenge_window_ends
from pasar.core.errors import PasarError
from pasar.core.market_records import LeaseRecord, OrderRecord
from pasar.core.state import MarketState
from pasar.core.verifiers import staked_verifier

View = Literal["full", "public"]
_SIGN_HINT = "sign the request with the key of the order's client (the SDK and CLI do)"


def _unsigned() -> PasarError:
    return PasarError(
        "this is private to the job's parties: sign the request",
        code="unauthenticated",
        status=401,
        field="Authorization",
        hint=_SIGN_HINT,
    )


def _forbidden(what: str) -> PasarError:
    return PasarError(
        f"{what} is readable only by the job's client, its providers and the market operator",
        code="forbidden",
        status=403,
        hint=_SIGN_HINT,
    )


def is_operator(state: MarketState, reader: str | None) -> bool:
    return reader is not None and reader == state.market_id


def is_party(state: MarketState, record: OrderRecord, reader: str) -> bool:
    """The order's client, a provider of one of its leases, a verifier given a check of one
    of them (it re-runs the job: it reads the spec, the inputs and the provider's outputs),
    the referee of a dispute over one of them (it traces the disputed step as the job ran), or
    the operator."""
    return (
        reader == record.client
        or is_operator(state, reader)
        or any(state.leases[x].provider == reader for x in record.leases)
        or any(
            state.checks[c].verifier == reader
            for x in record.leases
            for c in state.leases[x].checks
        )
        or any(d.referee == reader and d.order_id == record.id for d in state.disputes.values())
        or _may_blow_the_whistle(state, record, reader)
    )


def _may_blow_the_whistle(state: MarketState, record: OrderRecord, reader: str) -> bool:
    """A staked verifier may read an order while one of its settled results can still be
    challenged (so it can re-check it before it posts a bond), and its checkers once it is."""
    if not staked_verifier(state, reader):
        return False
    now = state.last_ts
    for lease_id in record.leases:
        ends = challenge_window_ends(state, state.leases[lease_id])
        if ends is not None and now <= ends:
            return True
    return any(
        state.checks[c].verifier == reader
        for ch in state.challenges.values()
        if ch.order_id == record.id
        for c in ch.checks
    )


def order_view_for(state: MarketState, record: OrderRecord, reader: str | None) -> View:
    """Which view of ``record`` the reader may have (raises 401/403 if none)."""
    if reader is None:
        raise _unsigned()
    if is_party(state, record, reader):
        return "full"
    window = record.window
    if window is not None and reader in window.invited:
        return "public"
    raise _forbidden(f"order {record.id}")


def check_order_party(state: MarketState, record: OrderRecord, reader: str | None) -> None:
    if order_view_for(state, record, reader) != "full":
        raise _forbidden(f"order {record.id}")


def check_lease_party(state: MarketState, lease: LeaseRecord, reader: str | None) -> None:
    """A lease (its spec, inputs, logs) is its client's, its provider's and the operator's."""
    if reader is None:
        raise _unsigned()
    if reader not in (lease.client, lease.provider) and not is_operator(state, reader):
        raise _forbidden(f"lease {lease.id}")


def check_blob_reader(
    state: MarketState | None,
    sha256: str,
    reader: str | None,
    inputs_of: Iterable[str] = (),
) -> None:
    """A blob is readable by its uploaders (the route checks them), the parties of any order
    that names it (as its private part, an input, or an output in one of its receipts) and the
    operator. ``state`` is None where there are no orders (a bare HTTP shell); ``inputs_of``
    are the orders whose private part names the blob as an input (the chain does not say)."""
    if reader is None:
        raise _unsigned()
    if state is None:
        raise _forbidden("this blob")
    if is_operator(state, reader):
        return
    for order_id in (*state.blob_orders.get(sha256, ()), *inputs_of):
        record = state.orders.get(order_id)
        if record is not None and is_party(state, record, reader):
            return
    raise _forbidden("this blob")


def check_own_account(state: MarketState, account: str, reader: str | None) -> None:
    """An account's signed history (which includes its orders' specs) is its own."""
    if reader is None:
        raise _unsigned()
    if reader != account and not is_operator(state, reader):
        raise _forbidden(f"the history of {account}")
