"""An order as its parties see it, as an invited bidder sees it, the long-poll answer, the list,
and ``explain`` (why each provider did or did not take it)."""

from __future__ import annotations

from pydantic import Field

from pasar.api.base import JSONObject, WireModel
from pasar.api.leases import LeaseView
from pasar.api.receipts import FileEntry
from pasar.api.status import OrderStatus


class AuctionView(WireModel):
    """The open sealed-bid window: who is invited, how many answered."""

    opened_at: int
    deadline: int
    invited: list[str]
    answered: int


class PublicOrderView(WireModel):
    """What a provider invited to bid sees: the requirements (``spec`` is the job spec's public
    part), never the command, environment, inputs or leases."""

    order_id: str
    client: str
    status: OrderStatus
    mechanism: str
    takes_bids: bool  # the mechanism takes sealed bids (an invited provider answers with one)
    spec: JSONObject
    created_at: int
    deadline: int
    unfilled: int
    auction: AuctionView | None = None


class OrderView(WireModel):
    """The order as its client, its providers and the operator see it (``spec`` in full).
    Not a subclass of the public view: the fields keep the order they have always had."""

    order_id: str
    client: str
    status: OrderStatus
    mechanism: str
    takes_bids: bool  # the mechanism takes sealed bids (an invited provider answers with one)
    spec: JSONObject
    created_at: int
    deadline: int
    unfilled: int
    escrow: str
    leases: list[LeaseView] = Field(default_factory=list)
    note: str | None = None
    inputs: list[FileEntry] = Field(default_factory=list)
    auction: AuctionView | None = None
    private: str | None = None  # sha256 of the private part (the chain's commitment)
    steps: list[str] = Field(default_factory=list)  # a cluster's steps: each command's blob
    # the bytes (base64, by sha256) of a finished order's outputs when they are small in all (a
    # remote call's result): in the client's GET /v1/orders/{id}/wait only, so that it need not
    # fetch them one round trip later; it checks each against the receipt as it would a download
    inline_outputs: dict[str, str] = Field(default_factory=dict)


class OrderList(WireModel):
    orders: list[OrderView]


class OrderWait(WireModel):
    """The order after it changed (or the wait ran out); ``next`` is the ``after`` to send."""

    order: OrderView | PublicOrderView
    next: int


class ExplainRow(WireModel):
    """One provider: whether it fits now, its price, whether it won, the recorded reason."""

    provider: str
    fits: bool
    price_per_hour: str | None = None
    won: bool
    reason: str | None = None
    # which of the spec's resources.alternatives it would satisfy (absent without them)
    alternative: int | None = None


class Explain(WireModel):
    order_id: str
    status: OrderStatus
    mechanism: str
    request: str
    max_price_per_hour: str
    note: str | None = None
    providers: list[ExplainRow]
