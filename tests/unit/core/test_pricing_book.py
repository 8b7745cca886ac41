"""Posted-price matching (io.net): asks, the Book mechanism and the BookIndex at scale."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.base import Award, Mechanism
from pasar.core.pricing.book import Asks, Book, BookError, BookIndex, book_candidates
from pasar.core.resources import GpuModel, Inventory, ResourceRequest

RNG = random.Random(0)


def usdc(text: str) -> Money:
    return Money.parse(text, default_currency="USDC")


def gpu_order(
    gpus: int = 1,
    models: tuple[str, ...] = ("RTX4090",),
    max_price: str = "2",
    *,
    leases: int = 1,
    together: bool = False,
    cpus: int = 2,
    currency: str = "USDC",
) -> Order:
    request = ResourceRequest.build(
        gpus=gpus, models=models, cpus=cpus, memory_gb=8 * max(gpus, 1), disk_gb=10
    )
    price = Money.parse(max_price, default_currency=currency)
    return Order("o", "client", request, price, 3600, leases=leases, together=together)


def cpu_order(cpus: int | str, max_price: str = "1", *, leases: int = 1) -> Order:
    request = ResourceRequest.build(cpus=cpus, memory_gb=4, disk_gb=10)
    return Order("o", "client", request, usdc(max_price), 3600, leases=leases)


def rig(gpus: dict[str, int] | None = None, cpus: int = 32) -> Inventory:
    return Inventory.build(gpus=gpus or {}, cpus=cpus, memory_gb=256, disk_gb=1000)


def fleet() -> list[tuple[ProviderView, Asks]]:
    return [
        (ProviderView("cheap", rig({"RTX4090": 1})), Asks.build({"RTX4090": "0.30 USDC"})),
        (ProviderView("mid", rig({"RTX4090": 4})), Asks.build({"RTX4090": "0.40 USDC"})),
        (ProviderView("dear", rig({"RTX4090": 2})), Asks.build({"RTX4090": "0.50 USDC"})),
        (ProviderView("a100", rig({"A100-80GB": 8})), Asks.build({"A100": "1.20 USDC"})),
        (
            ProviderView("cpu", rig(cpus=64)),
            Asks.build(cpu_core="0.02 USDC"),
        ),
        (
            ProviderView("cpu2", rig({"RTX3090": 1}, cpus=16)),
            Asks.build({"RTX3090": "0.2 USDC"}, cpu_core="0.01 USDC"),
        ),
    ]


def index_of(providers: list[tuple[ProviderView, Asks]]) -> BookIndex:
    index = BookIndex()
    for view, asks in providers:
        index.upsert_provider(view, asks)
    return index


def prices(awards: tuple[Award, ...]) -> list[int]:
    return sorted(a.price_per_hour.micros for a in awards)


# -- asks ------------------------------------------------------------------------------------------


def test_asks_are_normalized_and_looked_up_most_specific_first() -> None:
    asks = Asks.build(
        {"a100": "1.0", "A100-80GB": "1.5", "a100 sxm": "1.7", "A100-80GB-SXM": "2.0"},
        currency="USDC",
    )
    assert set(asks.gpu) == {"A100", "A100-80GB", "A100-SXM", "A100-80GB-SXM"}
    assert asks.unit_for(GpuModel.parse("A100-80GB-SXM4")) == usdc("2.0")
    assert asks.unit_for(GpuModel.parse("A100 80GB PCIe")) == usdc("1.5")
    assert asks.unit_for(GpuModel.parse("A100-40GB-SXM")) == usdc("1.7")
    assert asks.unit_for(GpuModel.parse("A100-40GB")) == usdc("1.0")
    assert asks.unit_for(GpuModel.parse("H100")) is None
    assert asks.currency == "USDC"
    assert Asks().currency is None


def test_asks_refuse_mixed_currencies_and_non_positive_prices() -> None:
    with pytest.raises(BookError, match="one currency"):
        Asks.build({"RTX4090": "1 USDC"}, cpu_core="1 EUR")
    with pytest.raises(BookError, match="positive"):
        Asks.build({"RTX4090": "0 USDC"})
    with pytest.raises(PasarError, match="unknown GPU"):
        Asks.build({"RTX9999": "1 USDC"})


def test_price_for_gpu_and_cpu_requests() -> None:
    asks = Asks.build({"RTX4090": "0.30"}, cpu_core="0.015", currency="USDC")
    view = ProviderView("p", rig({"RTX4090": 2}))
    gpu = gpu_order(2)
    cands, _ = book_candidates(gpu, [(view, asks)])
    assert cands[0].price_per_hour == usdc("0.60")
    half = cpu_order("2.5")
    cands, _ = book_candidates(half, [(view, asks)])
    assert cands[0].price_per_hour == usdc("0.0375")


# -- the mechanism ---------------------------------------------------------------------------------


def test_book_is_a_mechanism() -> None:
    mechanism: Mechanism = Book()
    assert mechanism.name == "book"


def test_book_takes_the_cheapest_fitting_ask_at_its_own_price() -> None:
    order = gpu_order(2)
    cands, reasons = book_candidates(order, fleet())
    assert reasons["cheap"] == "needs 2× RTX4090, has 1× RTX4090-24GB"
    result = Book().clear(order, cands, RNG)
    assert result.winners == ("mid",)
    assert result.awards[0].price_per_hour == usdc("0.80")
    assert result.reasons == {"dear": "ask 1.00 > winning ask 0.80"}
    assert result.awards[0].allocation is not None
    assert result.awards[0].allocation.gpu_slots == (0, 1)


def test_book_rejects_asks_above_max_with_a_reason() -> None:
    order = gpu_order(1, max_price="0.35")
    cands, _ = book_candidates(order, fleet())
    result = Book().clear(order, cands, RNG)
    assert result.winners == ("cheap",)
    assert result.reasons["dear"] == "price 0.50 > max 0.35"


def test_book_partial_fill_for_shards() -> None:
    order = gpu_order(1, leases=5)
    cands, _ = book_candidates(order, fleet())
    result = Book().clear(order, cands, RNG)
    assert result.winners == ("cheap", "mid", "dear")
    assert result.unfilled == 2
    assert result.note == "filled 3 of 5 leases: too few asks fit"

    index = index_of(fleet())
    taken = index.take(order)
    assert taken.winners == ("cheap", "mid", "dear")
    assert taken.unfilled == 2
    assert taken.note is not None and taken.note.startswith("filled 3 of 5 leases")


def test_book_together_order_fills_all_or_nothing() -> None:
    order = gpu_order(1, leases=4, together=True)
    cands, _ = book_candidates(order, fleet())
    result = Book().clear(order, cands, RNG)
    assert result.awards == () and result.unfilled == 4
    assert set(result.reasons) == {"cheap", "mid", "dear"}
    index = index_of(fleet())
    taken = index.take(order)
    assert taken.awards == () and taken.unfilled == 4
    assert index.free_inventory("cheap").gpu_count == 1  # nothing was reserved
    ok = index.take(gpu_order(1, leases=3, together=True))
    assert ok.winners == ("cheap", "mid", "dear")


def test_cpu_only_orders_use_per_core_asks() -> None:
    order = cpu_order(8)
    cands, reasons = book_candidates(order, fleet())
    assert reasons["mid"] == "posts no ask per CPU core"
    result = Book().clear(order, cands, RNG)
    assert result.winners == ("cpu2",)
    assert result.awards[0].price_per_hour == usdc("0.08")
    assert result.reasons == {"cpu": "ask 0.16 > winning ask 0.08"}
    index = index_of(fleet())
    taken = index.take(order)
    assert taken.winners == ("cpu2",)
    assert taken.awards[0].price_per_hour == usdc("0.08")
    allocation = taken.awards[0].allocation
    assert allocation is not None and allocation.gpu is None
    assert index.free_inventory("cpu2").cpus == Decimal(8)
    assert index.free_inventory("cpu2").gpu_count == 1  # the GPU is still for sale


def test_currency_mismatch_reason() -> None:
    euro = (ProviderView("euro", rig({"RTX4090": 1})), Asks.build({"RTX4090": "0.1 EUR"}))
    order = gpu_order(1)
    cands, _ = book_candidates(order, [*fleet(), euro])
    result = Book().clear(order, cands, RNG)
    assert result.winners == ("cheap",)
    assert result.reasons["euro"] == "prices in EUR, the order pays USDC"
    index = index_of([*fleet(), euro])
    assert index.take(order).winners == ("cheap",)
    in_euro = index.take(gpu_order(1, ("RTX3090",), currency="EUR"))
    assert in_euro.awards == ()
    assert in_euro.note == "no ask in EUR for 1× RTX3090"


def test_book_ties_are_broken_by_the_seed() -> None:
    same = [
        (ProviderView(pid, rig({"RTX4090": 1})), Asks.build({"RTX4090": "0.3 USDC"}))
        for pid in "abcd"
    ]
    order = gpu_order(1)
    cands, _ = book_candidates(order, same)
    winners = {Book().clear(order, cands, random.Random(seed)).winners for seed in range(30)}
    assert len(winners) > 1
    one = Book().clear(order, cands, random.Random(5))
    assert one == Book().clear(order, list(reversed(cands)), random.Random(5))
    assert set(one.reasons.values()) == {"ask 0.30 ties the winning ask; lost the tie-break"}


# -- the index -------------------------------------------------------------------------------------


def test_index_take_reserves_and_release_gives_back() -> None:
    index = index_of(fleet())
    assert len(index) == 6 and "mid" in index
    first = index.take(gpu_order(2))
    assert first.winners == ("mid",)
    alloc = first.awards[0].allocation
    assert alloc is not None and alloc.gpu_slots == (0, 1)
    assert index.free_inventory("mid").gpu_count == 2
    assert index.free_inventory("mid").cpus == Decimal(30)
    second = index.take(gpu_order(2))
    assert second.winners == ("mid",)
    assert second.awards[0].allocation is not None
    assert second.awards[0].allocation.gpu_slots == (2, 3)
    third = index.take(gpu_order(2))
    assert third.winners == ("dear",)  # "mid" is full now
    index.release("mid", alloc)
    assert index.free_inventory("mid").gpu_count == 2
    fourth = index.take(gpu_order(2))
    assert fourth.winners == ("mid",)
    assert fourth.awards[0].allocation is not None
    assert fourth.awards[0].allocation.gpu_slots == (0, 1)  # the released devices


def test_index_release_refuses_what_was_not_lent() -> None:
    index = index_of(fleet())
    taken = index.take(gpu_order(1))
    alloc = taken.awards[0].allocation
    assert alloc is not None
    index.release("cheap", alloc)
    with pytest.raises(BookError) as err:
        index.release("cheap", alloc)
    assert err.value.code == "invalid_release"
    with pytest.raises(BookError) as unknown:
        index.release("nobody", alloc)
    assert unknown.value.code == "unknown_provider"


def test_index_reasons_cover_only_examined_entries() -> None:
    providers = [
        (ProviderView(f"p{i}", rig({"RTX4090": 1})), Asks.build({"RTX4090": f"0.{i + 1} USDC"}))
        for i in range(8)
    ]
    index = index_of(providers)
    result = index.take(gpu_order(1, max_price="0.25"))
    assert result.winners == ("p0",)
    assert result.reasons == {}
    assert result.note == (
        "examined 1 of 8 asks in the USDC books this order accepts; "
        "providers not examined are not listed"
    )
    for _ in range(1):
        index.take(gpu_order(1, max_price="0.25"))
    none = index.take(gpu_order(1, max_price="0.25"))
    assert none.awards == ()
    assert none.reasons == {"p2": "price 0.30 > max 0.25"}
    assert none.note is not None
    assert none.note.startswith("no ask fits 1× RTX4090, 2 CPUs, 8 GB memory, 10 GB disk")
    assert "within the max price" in none.note


def test_index_skips_entries_without_room_and_says_why() -> None:
    index = index_of(fleet())
    # "cheap" has its GPU but someone takes nearly all of its CPUs first
    index.take(cpu_order(1))  # goes to cpu2 (cheapest core)
    small_cpu = Order(
        "o", "c", ResourceRequest.build(cpus=30), usdc("5"), 60
    )  # only "cpu" has 30 cores and a core ask
    assert index.take(small_cpu).winners == ("cpu",)
    hungry = gpu_order(1, cpus=20)
    providers = [
        (ProviderView("lean", rig({"RTX4090": 1}, cpus=16)), Asks.build({"RTX4090": "0.1 USDC"})),
        (ProviderView("fat", rig({"RTX4090": 1}, cpus=24)), Asks.build({"RTX4090": "0.2 USDC"})),
    ]
    index = index_of(providers)
    result = index.take(hungry)
    assert result.winners == ("fat",)
    assert result.reasons == {"lean": "needs 20 CPUs, has 16 free"}


def test_index_multi_gpu_orders_skip_small_machines_without_walking_them() -> None:
    providers = [
        (ProviderView(f"s{i}", rig({"A100": 1})), Asks.build({"A100": "1.0 USDC"}))
        for i in range(50)
    ]
    providers.append((ProviderView("big", rig({"A100": 8})), Asks.build({"A100": "1.5 USDC"})))
    index = index_of(providers)
    result = index.take(gpu_order(8, ("A100",), max_price="20", cpus=8))
    assert result.winners == ("big",)
    assert result.awards[0].price_per_hour == usdc("12")
    assert result.note is not None and result.note.startswith("examined 1 of 51 asks")


def test_index_provider_lifecycle_and_price_changes() -> None:
    index = index_of(fleet())
    index.set_asks("dear", Asks.build({"RTX4090": "0.1 USDC"}))
    assert index.take(gpu_order(1)).winners == ("dear",)
    assert index.free_inventory("dear").gpu_count == 1  # lent-out GPUs survive a price change
    assert index.remove_provider("dear")
    assert not index.remove_provider("dear")
    assert "dear" not in index
    assert index.take(gpu_order(1)).winners == ("cheap",)
    index.upsert_provider(ProviderView("cheap", rig({"RTX4090": 1})), Asks())
    assert index.take(gpu_order(1)).winners == ("mid",)  # "cheap" no longer sells
    with pytest.raises(BookError):
        index.set_asks("ghost", Asks())


def test_index_fitting_lists_candidates_without_reserving() -> None:
    index = index_of(fleet())
    cands = index.fitting(gpu_order(1), limit=2)
    assert [c.id for c in cands] == ["cheap", "mid"]
    assert [c.price_per_hour for c in cands] == [usdc("0.30"), usdc("0.40")]
    assert len(index.fitting(gpu_order(1))) == 3
    assert index.free_inventory("cheap").gpu_count == 1


def test_index_accepts_any_gpu_and_min_vram() -> None:
    index = index_of(fleet())
    request = ResourceRequest.build(gpus=1, min_vram_gb=40, cpus=2, memory_gb=8, disk_gb=10)
    big = index.take(Order("o", "c", request, usdc("5"), 60))
    assert big.winners == ("a100",)
    anything = ResourceRequest.build(gpus=1, cpus=2, memory_gb=8, disk_gb=10)
    assert index.take(Order("o", "c", anything, usdc("5"), 60)).winners == ("cpu2",)


# -- properties ------------------------------------------------------------------------------------

MODELS = ("RTX4090", "RTX3090", "A100-40GB", "A100-80GB", "H100-80GB-SXM")
ASK_NAMES = {
    "RTX4090": ("RTX4090",),
    "RTX3090": ("RTX3090",),
    "A100-40GB": ("A100", "A100-40GB"),
    "A100-80GB": ("A100", "A100-80GB"),
    "H100-80GB-SXM": ("H100", "H100-80GB-SXM", "H100-80GB"),
}
SELECTORS = ("RTX4090", "RTX3090", "A100", "A100-80GB", "H100")
PRICE = st.integers(min_value=1, max_value=3_000_000)


@st.composite
def providers_st(draw: st.DrawFn) -> list[tuple[ProviderView, Asks]]:
    out = []
    for i in range(draw(st.integers(min_value=0, max_value=10))):
        groups = draw(st.dictionaries(st.sampled_from(MODELS), st.integers(1, 8), max_size=2))
        inventory = Inventory.build(
            gpus=groups,
            cpus=draw(st.integers(0, 64)),
            memory_gb=draw(st.integers(0, 256)),
            disk_gb=draw(st.integers(0, 500)),
        )
        gpu_asks = {}
        for model in groups:
            if draw(st.booleans()) or len(groups) == 1:
                name = draw(st.sampled_from(ASK_NAMES[model]))
                gpu_asks[name] = Money(draw(PRICE), "USDC")
        cpu_core = Money(draw(st.integers(1, 50_000)), "USDC") if draw(st.booleans()) else None
        rep = draw(st.fractions(0, 1, max_denominator=10))
        out.append((ProviderView(f"p{i}", inventory, rep), Asks(gpu_asks, cpu_core)))
    return out


@st.composite
def orders_st(draw: st.DrawFn) -> Order:
    gpus = draw(st.sampled_from((0, 0, 1, 1, 2, 4, 8)))
    models = draw(st.lists(st.sampled_from(SELECTORS), max_size=2, unique=True)) if gpus else []
    min_vram = draw(st.sampled_from((None, None, 24, 40, 80))) if gpus else None
    request = ResourceRequest.build(
        gpus=gpus,
        models=models,
        min_vram_gb=min_vram,
        cpus=draw(st.sampled_from(("0.5", "1", "2", "8", "16", "33"))),
        memory_gb=draw(st.integers(0, 128)),
        disk_gb=draw(st.integers(0, 300)),
    )
    leases = draw(st.integers(1, 4))
    return Order(
        "o",
        "c",
        request,
        Money(draw(st.integers(1, 30_000_000)), "USDC"),
        3600,
        leases=leases,
        together=draw(st.booleans()),
    )


def free_fleet(
    index: BookIndex, providers: list[tuple[ProviderView, Asks]]
) -> list[tuple[ProviderView, Asks]]:
    """The fleet as the index sees it now: each provider with what it has free."""
    return [
        (ProviderView(view.id, index.free_inventory(view.id), view.reputation), asks)
        for view, asks in providers
    ]


@settings(max_examples=250, deadline=None)
@given(providers_st(), st.lists(orders_st(), min_size=1, max_size=6), st.randoms())
def test_property_index_takes_the_same_prices_as_book_over_all_candidates(
    providers: list[tuple[ProviderView, Asks]], orders: list[Order], chance: random.Random
) -> None:
    index = index_of(providers)
    lent: list[tuple[str, Award]] = []
    for order in orders:
        cands, _ = book_candidates(order, free_fleet(index, providers))
        expected = Book().clear(order, cands, random.Random(0))
        taken = index.take(order)
        assert prices(taken.awards) == prices(expected.awards)
        assert taken.unfilled == expected.unfilled
        for award in taken.awards:
            assert award.price_per_hour <= order.max_price_per_hour
            lent.append((award.provider, award))
        # give some leases back, in any order
        chance.shuffle(lent)
        while lent and chance.random() < 0.5:
            provider, award = lent.pop()
            assert award.allocation is not None
            index.release(provider, award.allocation)
    for provider, award in lent:
        assert award.allocation is not None
        index.release(provider, award.allocation)
    # everything given back: the index is as it was registered
    for view, _ in providers:
        free = index.free_inventory(view.id)
        assert Counter(free.devices()) == Counter(view.inventory.devices())
        assert (free.cpus, free.memory_gb, free.disk_gb) == (
            view.inventory.cpus,
            view.inventory.memory_gb,
            view.inventory.disk_gb,
        )


@settings(max_examples=250, deadline=None)
@given(providers_st(), orders_st(), st.integers(0, 2**32))
def test_property_book_takes_the_cheapest_fitting_asks(
    providers: list[tuple[ProviderView, Asks]], order: Order, seed: int
) -> None:
    cands, reasons = book_candidates(order, providers)
    result = Book().clear(order, cands, random.Random(seed))
    valid = sorted(
        c.price_per_hour.micros
        for c in cands
        if c.price_per_hour is not None
        and 0 < c.price_per_hour.micros <= order.max_price_per_hour.micros
    )
    assert set(result.winners) | set(result.reasons) == {c.id for c in cands}
    assert set(reasons).isdisjoint(c.id for c in cands)
    if order.together and len(valid) < order.leases:
        assert result.awards == ()
    else:
        # the k cheapest valid asks, each paid what it asked, never above the max
        assert prices(result.awards) == valid[: order.leases]
    for award in result.awards:
        assert award.price_per_hour <= order.max_price_per_hour
    by_id = {c.id: c for c in cands}
    for award in result.awards:
        assert award.price_per_hour == by_id[award.provider].price_per_hour


def test_reputation_is_ignored_by_the_book() -> None:
    good = ProviderView("good", rig({"RTX4090": 1}), Fraction(1))
    bad = ProviderView("bad", rig({"RTX4090": 1}), Fraction(0))
    order = gpu_order(1)
    cands, _ = book_candidates(
        order,
        [(good, Asks.build({"RTX4090": "0.5 USDC"})), (bad, Asks.build({"RTX4090": "0.4 USDC"}))],
    )
    assert Book().clear(order, cands, RNG).winners == ("bad",)
