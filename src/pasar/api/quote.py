"""``POST /v1/orders/quote``: what the market would do with an order for a spec.

The market computes the quote with the code an order runs (:mod:`pasar.core.quotes`); the SDK
and ``pasar launch`` only show it, so no client re-derives fit, price or escrow. Money travels
as text (``"0.05 USDC"``), exact, as everywhere on the wire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # the market builds responses from these; clients only read the models
    from pasar.core.quotes import OrderQuote, QuotedOffer

ACCOUNT_MAX = 128


class QuoteRequest(BaseModel):
    """A spec to quote, and optionally who would send the order (its own provider is left out,
    as ``order.create`` leaves it out). Nothing is signed: a quote reveals only offers, which
    are public."""

    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="The job spec, as order.create takes it.")
    client: str | None = Field(
        default=None,
        max_length=ACCOUNT_MAX,
        description="The account that would send the order (a signed request's signer wins).",
    )


class QuotedOfferView(BaseModel):
    """A provider that fits: its price for one lease, the leases it would take, why not."""

    provider: str
    price_per_hour: str | None = Field(
        description="Per lease and hour; null when the mechanism sets it or bids decide."
    )
    reputation: str
    score: int
    leases: int = Field(description="Leases of the order it would take now (0: none).")
    chosen: bool
    reason: str | None = Field(description="Why it would take none, if so.")
    alternative: int | None = Field(
        default=None,
        description="Which of the spec's resources.alternatives (0-based) it would satisfy: "
        "the first it fits (pick: ordered) or the one it is cheapest for (pick: cheapest); "
        "null for a spec without alternatives.",
    )

    @classmethod
    def of(cls, offer: QuotedOffer) -> QuotedOfferView:
        return cls(
            provider=offer.provider,
            price_per_hour=None if offer.price_per_hour is None else offer.price_per_hour.to_json(),
            reputation=str(offer.reputation),
            score=offer.score,
            leases=offer.leases,
            chosen=offer.chosen,
            reason=offer.reason,
            alternative=offer.alternative,
        )


class AwardView(BaseModel):
    provider: str
    price_per_hour: str
    leases: int
    alternative: int | None = Field(
        default=None, description="The alternative its leases would run under, if any."
    )


class QuoteResponse(BaseModel):
    """The escrow an order would lock, the offers that fit, the pick, and every loser's reason."""

    mechanism: str
    takes_bids: bool = Field(description="Providers answer with sealed bids (an auction).")
    request: str = Field(description="What each lease needs, in words.")
    leases: int
    max_price_per_hour: str
    escrow_per_lease: str
    escrow: str = Field(description="What order.create escrows: the cap plus the client's fees.")
    chosen: str | None = Field(description="The provider of the first lease, if it would match.")
    price_per_hour: str | None = Field(description="The first lease's price, if it would match.")
    awards: list[AwardView]
    unfilled: int = Field(description="Leases nobody would take now (they wait for a provider).")
    fits_anywhere: bool = Field(
        default=True,
        description="Some registered provider's whole machine (busy or not, any price) could "
        "hold one lease; false: no order for this spec can ever match on this network.",
    )
    providers_fit: int = Field(
        default=0,
        description="Registered providers whose whole machine could hold one lease (and offer "
        "the spec's cluster); a multi-node job needs one per node.",
    )
    nodes_fit: int = Field(
        default=0,
        description="Nodes of the job those machines could hold at once: one per provider, or "
        "with placement: spread as many as each holds (up to the job's nodes each).",
    )
    note: str | None
    decided_by: str | None = Field(description="Set when bids, not the preview, decide.")
    offers: list[QuotedOfferView] = Field(description="The providers that fit, cheapest first.")
    reasons: dict[str, str] = Field(description="Every other provider: why it cannot take it.")
    complete: bool = Field(
        default=True,
        description="Whether offers and reasons cover the whole fleet; false on a large fleet "
        "(the fleet index found the offers that decide the match) or when more than 100 rows "
        "were left out. `pasar offers` and `pasar explain` list everything.",
    )

    @classmethod
    def of(cls, quote: OrderQuote) -> QuoteResponse:
        price = quote.price_per_hour
        return cls(
            mechanism=quote.mechanism,
            takes_bids=quote.takes_bids,
            request=quote.request,
            leases=quote.leases,
            max_price_per_hour=quote.max_price_per_hour.to_json(),
            escrow_per_lease=quote.escrow_per_lease.to_json(),
            escrow=quote.escrow.to_json(),
            chosen=quote.chosen,
            price_per_hour=None if price is None else price.to_json(),
            awards=[
                AwardView(
                    provider=a.provider,
                    price_per_hour=a.price_per_hour.to_json(),
                    leases=a.leases,
                    alternative=a.alternative,
                )
                for a in quote.awards
            ],
            unfilled=quote.unfilled,
            fits_anywhere=quote.fits_anywhere,
            providers_fit=quote.providers_fit,
            nodes_fit=quote.nodes_fit,
            note=quote.note,
            decided_by=quote.decided_by,
            offers=[QuotedOfferView.of(o) for o in quote.offers],
            reasons=dict(quote.reasons),
            complete=quote.complete,
        )
