"""The reverse auction (Akash): scores, first/second price, reasons, and the bidding window."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.auction import Auction, AuctionError, AuctionWindow, rank, score_text
from pasar.core.pricing.base import Candidate, MatchResult, Mechanism
from pasar.core.resources import Allocation, Inventory, ResourceRequest, fit

REQUEST = ResourceRequest.build(gpus=1, models=["RTX4090"], cpus=2, memory_gb=8, disk_gb=10)
BIG = Inventory.build(gpus={"RTX4090": 2}, cpus=16, memory_gb=64, disk_gb=500)
SMALL = Inventory.build(gpus={"RTX3090": 1}, cpus=4, memory_gb=16, disk_gb=100)


def _allocation() -> Allocation:
    allocation = fit(REQUEST, BIG).allocation
    assert allocation is not None
    return allocation


ALLOCATION = _allocation()


def usdc(text: str) -> Money:
    return Money.parse(text, default_currency="USDC")


def order(max_price: str = "1.5", *, leases: int = 1, together: bool = False) -> Order:
    return Order("o1", "client", REQUEST, usdc(max_price), 3600, leases=leases, together=together)


def provider(pid: str, reputation: Fraction = Fraction(1), score: int = 0) -> ProviderView:
    return ProviderView(pid, BIG, reputation, score)


def bid(
    pid: str, price: str | Money | None, reputation: Fraction = Fraction(1), score: int = 0
) -> Candidate:
    money = usdc(price) if isinstance(price, str) else price
    return Candidate(provider(pid, reputation, score), ALLOCATION, money)


RNG = random.Random(0)


# -- examples --------------------------------------------------------------------------------------


def test_auction_is_a_mechanism() -> None:
    mechanism: Mechanism = Auction()
    assert mechanism.name == "auction"


def test_lowest_price_wins_first_price_pays_own_bid() -> None:
    result = Auction().clear(order(), [bid("a", "1.2"), bid("b", "1.0"), bid("c", "1.1")], RNG)
    assert result.winners == ("b",)
    assert result.awards[0].price_per_hour == usdc("1.0")
    assert result.awards[0].allocation == ALLOCATION
    assert set(result.reasons) == {"a", "c"}
    assert result.reasons["c"] == "score 1.10 > winner's 1.00"
    assert result.unfilled == 0 and result.note is None


def test_bid_above_max_is_rejected_with_a_reason() -> None:
    result = Auction().clear(order("1.5"), [bid("a", "1.9"), bid("b", "1.4")], RNG)
    assert result.winners == ("b",)
    assert result.reasons["a"] == "price 1.90 > max 1.50"


def test_declined_and_currency_mismatch_reasons() -> None:
    eur = Money.parse("1.0 EUR")
    result = Auction().clear(order(), [bid("a", None), bid("b", eur), bid("c", "1.2")], RNG)
    assert result.winners == ("c",)
    assert result.reasons["a"] == "declined"
    assert result.reasons["b"] == "prices in EUR, the order pays USDC"


def test_no_valid_bid_means_no_award_and_a_note() -> None:
    result = Auction().clear(order("1.0"), [bid("a", "2.0"), bid("b", None)], RNG)
    assert result.awards == () and result.unfilled == 1
    assert result.note == "no valid bid"
    assert set(result.reasons) == {"a", "b"}
    empty = Auction().clear(order(), [], RNG)
    assert empty.note == "no provider bid" and empty.unfilled == 1


def test_second_price_pays_the_runner_up() -> None:
    result = Auction(second_price=True).clear(order(), [bid("a", "1.0"), bid("b", "1.3")], RNG)
    assert result.winners == ("a",)
    assert result.awards[0].price_per_hour == usdc("1.3")


def test_second_price_is_capped_at_max_and_ignores_invalid_runner_ups() -> None:
    # the runner-up bid exactly the max: paid the max, not more
    at_max = Auction(second_price=True).clear(order("1.5"), [bid("a", "1.0"), bid("b", "1.5")], RNG)
    assert at_max.awards[0].price_per_hour == usdc("1.5")
    # the only other bid is above the max: it is no runner-up, so the winner gets its own bid
    above = Auction(second_price=True).clear(order("1.5"), [bid("a", "1.0"), bid("b", "9")], RNG)
    assert above.awards[0].price_per_hour == usdc("1.0")
    assert above.reasons["b"] == "price 9.00 > max 1.50"


def test_second_price_never_pays_less_than_own_bid() -> None:
    # "a" asks more but its reputation is perfect; "b" is cheaper with a bad record
    a = bid("a", "1.2", reputation=Fraction(1))
    b = bid("b", "1.0", reputation=Fraction(0))
    result = Auction(second_price=True, reputation_weight=Fraction(1)).clear(order(), [a, b], RNG)
    assert result.winners == ("a",)
    assert result.awards[0].price_per_hour == usdc("1.2")  # runner-up's 1.0 would be below
    assert result.reasons["b"] == "score 2.00 > winner's 1.20"


def test_performance_discount_can_beat_a_lower_price() -> None:
    fast = bid("fast", "1.1", score=1000)
    slow = bid("slow", "1.0", score=100)
    result = Auction(performance_weight=Fraction(1, 5)).clear(order(), [fast, slow], RNG)
    # fast: 1.1 × (1 − 0.2) = 0.88; slow: 1.0 × (1 − 0.2 × 0.1) = 0.98
    assert result.winners == ("fast",)
    assert result.reasons["slow"] == "score 0.98 > winner's 0.88"


def test_scores_follow_the_documented_formula() -> None:
    auction = Auction(reputation_weight=Fraction(1, 2), performance_weight=Fraction(1, 4))
    a = bid("a", "2.0", reputation=Fraction(1, 2), score=50)
    b = bid("b", "1.0", reputation=Fraction(3, 4), score=100)
    scores = auction.scores(order("5"), [a, b])
    assert scores["a"] == Fraction(2) * Fraction(5, 4) * (1 - Fraction(1, 4) * Fraction(1, 2))
    assert scores["b"] == Fraction(1) * Fraction(9, 8) * Fraction(3, 4)
    assert auction.score(usdc("2.0"), Fraction(1, 2), Fraction(1, 2)) == scores["a"]


def test_sharded_order_fills_the_lowest_scores_partially() -> None:
    result = Auction().clear(order(leases=3), [bid("a", "1.2"), bid("b", "1.0")], RNG)
    assert set(result.winners) == {"a", "b"}
    assert result.unfilled == 1
    assert result.note == "filled 2 of 3 leases: too few valid bids"


def test_together_order_with_too_few_bidders_awards_nobody() -> None:
    cands = [bid("a", "1.2"), bid("b", "1.0"), bid("c", "3.0")]
    result = Auction().clear(order(leases=3, together=True), cands, RNG)
    assert result.awards == () and result.unfilled == 3
    assert result.reasons == {
        "a": "together order needs 3 providers, only 2 valid bids",
        "b": "together order needs 3 providers, only 2 valid bids",
        "c": "price 3.00 > max 1.50",
    }
    assert result.note is not None and "nobody wins" in result.note


def test_together_order_with_enough_bidders_awards_all() -> None:
    cands = [bid("a", "1.2"), bid("b", "1.0"), bid("c", "1.4")]
    result = Auction().clear(order(leases=2, together=True), cands, RNG)
    assert result.winners == ("b", "a")
    assert result.reasons == {"c": "score 1.40 > winner's 1.20"}


def test_duplicate_candidates_keep_the_first_bid() -> None:
    result = Auction().clear(order(), [bid("a", "1.4"), bid("a", "1.0"), bid("b", "1.2")], RNG)
    assert result.winners == ("b",)
    assert result.reasons == {"a": "score 1.40 > winner's 1.20"}


def test_ties_are_broken_by_the_seed_not_by_arrival_order() -> None:
    cands = [bid(pid, "1.0") for pid in "abcdef"]
    winners = set()
    for seed in range(40):
        first = Auction().clear(order(), cands, random.Random(seed))
        again = Auction().clear(order(), list(reversed(cands)), random.Random(seed))
        assert first == again
        winners.add(first.winners[0])
        loser_reasons = set(first.reasons.values())
        assert loser_reasons == {"score 1.00 ties winner's 1.00; lost the tie-break"}
    assert len(winners) > 1


def test_weights_are_validated() -> None:
    with pytest.raises(PasarError, match="Fraction"):
        Auction(reputation_weight=0.5)  # type: ignore[arg-type]
    with pytest.raises(PasarError, match=r"\[0, 1\)"):
        Auction(performance_weight=Fraction(1))
    with pytest.raises(PasarError, match=">= 0"):
        Auction(reputation_weight=Fraction(-1))
    assert Auction(reputation_weight=1).reputation_weight == Fraction(1)  # type: ignore[arg-type]


def test_rank_and_score_text() -> None:
    assert rank([(2, "b", "B"), (1, "a", "A")], random.Random(0)) == ["A", "B"]
    assert score_text(1_100_000) == "1.10"
    assert score_text(1_234_567) == "1.234567"
    assert score_text(0) == "0.00"


# -- the window ------------------------------------------------------------------------------------


def window(deadline_ms: int = 1000) -> AuctionWindow:
    providers = [provider("a"), provider("b"), provider("c"), ProviderView("small", SMALL)]
    return AuctionWindow.open(order(), providers, deadline_ms)


def test_window_invites_only_fitting_providers() -> None:
    w = window()
    assert w.invited == {"a", "b", "c"}
    with pytest.raises(AuctionError, match="not invited") as err:
        w.bid("small", usdc("1.0"))
    assert err.value.code == "not_invited"
    assert "needs 1× RTX4090" in err.value.message
    with pytest.raises(AuctionError, match="not invited"):
        w.bid("stranger", usdc("1.0"))


def test_window_closes_early_once_everyone_answered() -> None:
    w = window(deadline_ms=5000)
    assert not w.ready(now_ms=10)
    assert w.bid("a", usdc("1.2"), now_ms=10) is None
    assert w.bid("b", usdc("1.9")) == "price 1.90 > max 1.50"  # recorded, and told at once
    assert not w.ready(now_ms=11)
    assert w.pending == {"c"}
    w.decline("c")
    assert w.ready(now_ms=12)  # long before the deadline
    result = w.close(random.Random(1))
    assert result.winners == ("a",)
    assert result.reasons == {
        "b": "price 1.90 > max 1.50",
        "c": "declined",
        "small": result.reasons["small"],
    }
    assert result.reasons["small"].startswith("needs 1× RTX4090")


def test_window_is_ready_at_the_deadline_and_names_the_silent() -> None:
    w = window(deadline_ms=1000)
    w.bid("a", usdc("1.0"))
    assert not w.ready(now_ms=999)
    assert w.ready(now_ms=1000)
    result = w.close(random.Random(1))
    assert result.winners == ("a",)
    assert result.reasons["b"] == "did not bid before the window closed"
    assert result.reasons["c"] == "did not bid before the window closed"


def test_window_rejects_duplicates_late_bids_and_bids_after_close() -> None:
    w = window(deadline_ms=1000)
    w.bid("a", usdc("1.0"))
    with pytest.raises(AuctionError) as dup:
        w.bid("a", usdc("0.9"))
    assert dup.value.code == "duplicate_bid"
    with pytest.raises(AuctionError) as dup_decline:
        w.decline("a")
    assert dup_decline.value.code == "duplicate_bid"
    with pytest.raises(AuctionError) as late:
        w.bid("b", usdc("1.0"), now_ms=1001)
    assert late.value.code == "auction_closed"
    w.close(random.Random(0))
    assert w.closed
    with pytest.raises(AuctionError) as after:
        w.bid("c", usdc("1.0"))
    assert after.value.code == "auction_closed"
    with pytest.raises(AuctionError):
        w.close(random.Random(0))


def test_window_with_nobody_fitting_says_so() -> None:
    w = AuctionWindow.open(order(), [ProviderView("small", SMALL)], 1000)
    assert w.ready(now_ms=0)
    result = w.close(random.Random(0))
    assert result.awards == ()
    assert result.note == "no provider can take 1× RTX4090, 2 CPUs, 8 GB memory, 10 GB disk"
    assert "small" in result.reasons


def test_window_with_second_price() -> None:
    w = AuctionWindow(order(), [(provider("a"), ALLOCATION), (provider("b"), ALLOCATION)], 10,
                      Auction(second_price=True))  # fmt: skip
    w.bid("a", usdc("1.0"))
    w.bid("b", usdc("1.25"))
    assert w.close(random.Random(0)).awards[0].price_per_hour == usdc("1.25")


# -- properties ------------------------------------------------------------------------------------

PRICES = st.integers(min_value=1, max_value=3_000_000)
REPUTATION = st.fractions(min_value=0, max_value=1, max_denominator=50)
BIDS = st.lists(
    st.tuples(
        st.one_of(st.none(), PRICES, st.tuples(st.just("EUR"), PRICES)),
        REPUTATION,
        st.integers(min_value=0, max_value=1000),
    ),
    max_size=12,
)


def make_candidates(raw: list[tuple[object, Fraction, int]]) -> list[Candidate]:
    out = []
    for i, (price, rep, score) in enumerate(raw):
        money: Money | None
        if price is None:
            money = None
        elif isinstance(price, tuple):
            money = Money(price[1], price[0])
        else:
            money = Money(int(price), "USDC")  # type: ignore[call-overload]
        out.append(bid(f"p{i:02d}", money, rep, score))
    return out


def oracle_scores(auction: Auction, o: Order, cands: list[Candidate]) -> dict[str, Fraction]:
    """The documented formula, computed independently of the mechanism."""
    valid = [
        c
        for c in cands
        if c.price_per_hour is not None
        and c.price_per_hour.currency == o.currency
        and c.price_per_hour.micros <= o.max_price_per_hour.micros
    ]
    best = max((c.provider.score for c in valid), default=0)
    out = {}
    for c in valid:
        assert c.price_per_hour is not None
        perf = Fraction(c.provider.score, best) if best else Fraction(0)
        out[c.id] = (
            Fraction(c.price_per_hour.micros, 1_000_000)
            * (1 + auction.reputation_weight * (1 - c.provider.reputation))
            * (1 - auction.performance_weight * perf)
        )
    return out


AUCTIONS = st.builds(
    Auction,
    second_price=st.booleans(),
    reputation_weight=st.fractions(min_value=0, max_value=3, max_denominator=20),
    performance_weight=st.fractions(min_value=0, max_value=Fraction(19, 20), max_denominator=20),
)
ORDERS = st.builds(
    lambda m, k, t: Order("o", "c", REQUEST, Money(m, "USDC"), 3600, leases=k, together=t),
    PRICES,
    st.integers(min_value=1, max_value=4),
    st.booleans(),
)


def check_invariants(auction: Auction, o: Order, cands: list[Candidate], r: MatchResult) -> None:
    scores = oracle_scores(auction, o, cands)
    winners = r.winners
    assert len(set(winners)) == len(winners)
    # every candidate either wins or is told why, never both
    assert set(winners).isdisjoint(r.reasons)
    assert set(winners) | set(r.reasons) == {c.id for c in cands}
    if o.together and len(scores) < o.leases:
        assert winners == ()
    else:
        assert len(winners) == min(o.leases, len(scores))
    assert r.unfilled == o.leases - len(winners)
    price = {c.id: c.price_per_hour for c in cands}
    losers = [pid for pid in scores if pid not in winners]
    for award in r.awards:
        own = price[award.provider]
        assert own is not None
        # the winners have the minimum scores among valid bids
        assert all(scores[award.provider] <= scores[pid] for pid in losers)
        # nobody is charged above the order's max, nor below its own bid
        assert own <= award.price_per_hour <= o.max_price_per_hour
        if not auction.second_price or not losers:
            assert award.price_per_hour == own
        else:
            # paid the runner-up (the best-scoring loser) capped at max, never below own bid
            best = min(scores[pid] for pid in losers)
            runner_ups = [pid for pid in losers if scores[pid] == best]
            allowed = set()
            for pid in runner_ups:
                runner = price[pid]
                assert runner is not None
                allowed.add(max(min(runner, o.max_price_per_hour), own))
            assert award.price_per_hour in allowed


@settings(max_examples=300, deadline=None)
@given(AUCTIONS, ORDERS, BIDS, st.integers(min_value=0, max_value=2**32))
def test_property_winners_minimum_score_and_prices_within_max(
    auction: Auction, o: Order, raw: list[tuple[object, Fraction, int]], seed: int
) -> None:
    cands = make_candidates(raw)
    result = auction.clear(o, cands, random.Random(seed))
    check_invariants(auction, o, cands, result)
    assert auction.scores(o, cands) == oracle_scores(auction, o, cands)


@settings(max_examples=150, deadline=None)
@given(AUCTIONS, ORDERS, BIDS, st.integers(min_value=0, max_value=2**32), st.randoms())
def test_property_outcome_depends_on_seed_not_on_arrival_order(
    auction: Auction,
    o: Order,
    raw: list[tuple[object, Fraction, int]],
    seed: int,
    shuffler: random.Random,
) -> None:
    cands = make_candidates(raw)
    shuffled = list(cands)
    shuffler.shuffle(shuffled)
    first = auction.clear(o, cands, random.Random(seed))
    second = auction.clear(o, shuffled, random.Random(seed))
    assert sorted(first.awards, key=lambda a: a.provider) == sorted(
        second.awards, key=lambda a: a.provider
    )
    assert dict(first.reasons) == dict(second.reasons)


@settings(max_examples=100, deadline=None)
@given(ORDERS, BIDS, st.integers(min_value=0, max_value=2**32))
def test_property_second_price_with_no_adjustment_pays_the_next_lowest_price(
    o: Order, raw: list[tuple[object, Fraction, int]], seed: int
) -> None:
    plain = Auction(
        second_price=True, reputation_weight=Fraction(0), performance_weight=Fraction(0)
    )
    cands = make_candidates(raw)
    result = plain.clear(o, cands, random.Random(seed))
    valid = sorted(
        c.price_per_hour.micros
        for c in cands
        if c.price_per_hour is not None
        and c.price_per_hour.currency == "USDC"
        and c.price_per_hour <= o.max_price_per_hour
    )
    k = len(result.awards)
    if k and len(valid) > k:
        # with pure price scores every winner is paid the (k+1)-th lowest valid price
        assert {a.price_per_hour.micros for a in result.awards} == {valid[k]}
