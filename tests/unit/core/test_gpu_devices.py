"""GPUs belong to someone: allocations name physical devices (NVML index and UUID), chosen
lowest free index first, and two leases on one machine never share a GPU.

No GPU is present in these tests: the providers' GPUs are inventories written as data.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest
from test_state import ALICE, MARKET, T0, conserved, heartbeat, make_state, tx

from pasar.core.errors import PasarError
from pasar.core.market_records import ProviderRecord
from pasar.core.money import Money
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.book import Asks, BookIndex, book_candidates
from pasar.core.private_part import order_fields
from pasar.core.resources import (
    GpuDevice,
    Inventory,
    ResourceError,
    ResourceRequest,
    choose_slots,
    fit,
)
from pasar.core.state import MarketState
from pasar.core.tx_parsing import parse_inventory

UUIDS = ("GPU-aaaa0000-0000-0000-0000-000000000000", "GPU-bbbb1111-1111-1111-1111-111111111111")
ONE = ResourceRequest.build(gpus=1, models=["H100"], cpus=1, memory_gb=1, disk_gb=1)
TWO = ResourceRequest.build(gpus=2, models=["H100"], cpus=1, memory_gb=1, disk_gb=1)


def two_gpu_provider() -> ProviderRecord:
    """A provider that registered two H100s by NVML index and UUID (data: no GPU is here)."""
    inventory = parse_inventory(
        {
            "gpus": ["H100", "H100"],
            "devices": [{"index": i, "uuid": uuid} for i, uuid in enumerate(UUIDS)],
            "cpus": 8,
            "memory_gb": 32,
            "disk_gb": 100,
        }
    )
    return ProviderRecord("p", inventory, Asks(), None, 100, None, {}, T0)


def start(provider: ProviderRecord, lease: str, request: ResourceRequest) -> tuple[int, ...]:
    """What the market does when a lease starts: fit against what is free, then hold it."""
    allocation = fit(request, provider.free()).allocation
    if allocation is None:
        raise LookupError(fit(request, provider.free()).reasons)
    provider.running[lease] = allocation
    return tuple(d.index for d in allocation.devices)


def test_two_one_gpu_leases_get_distinct_devices_and_a_third_is_refused() -> None:
    p = two_gpu_provider()
    assert start(p, "a", ONE) == (0,)
    assert start(p, "b", ONE) == (1,)  # not device 0 again, although it is slot 0 of what is free
    assert p.running["b"].devices == (GpuDevice(1, UUIDS[1]),)
    with pytest.raises(LookupError, match="needs 1× H100, has no GPUs"):
        start(p, "c", ONE)


def test_release_returns_the_device_and_the_lowest_free_index_is_taken() -> None:
    p = two_gpu_provider()
    start(p, "a", ONE)
    start(p, "b", ONE)
    del p.running["a"]  # lease "a" ended: device 0 is free again
    assert [d.index for d in p.free().gpu_ids] == [0]
    assert start(p, "c", ONE) == (0,)
    del p.running["b"], p.running["c"]
    assert start(p, "d", ONE) == (0,)  # both free: the lowest index, deterministically


def test_a_two_gpu_job_takes_both_and_nothing_is_left() -> None:
    p = two_gpu_provider()
    assert start(p, "big", TWO) == (0, 1)
    with pytest.raises(LookupError):
        start(p, "more", ONE)
    p2 = two_gpu_provider()
    start(p2, "small", ONE)
    with pytest.raises(LookupError, match="needs 2× H100, has 1× H100-80GB"):
        start(p2, "big", TWO)


def test_devices_are_sorted_by_index_and_keep_their_uuid_through_minus() -> None:
    inv = Inventory.build(
        gpus=["H100", "A100", "H100"],
        devices=[GpuDevice(3, "GPU-3"), GpuDevice(1, "GPU-1"), GpuDevice(0, "GPU-0")],
    )
    assert [d.index for d in inv.gpu_ids] == [0, 1, 3]
    assert [m.family for m in inv.devices()] == ["H100", "A100", "H100"]
    alloc = fit(ResourceRequest.build(gpus=1, models=["H100"], cpus=0, memory_gb=0, disk_gb=0), inv)
    assert alloc.allocation is not None and alloc.allocation.devices == (GpuDevice(0, "GPU-0"),)
    left = inv.minus(alloc.allocation)
    assert left.gpu_ids == (GpuDevice(1, "GPU-1"), GpuDevice(3, "GPU-3"))
    again = fit(
        ResourceRequest.build(gpus=1, models=["H100"], cpus=0, memory_gb=0, disk_gb=0), left
    )
    assert again.allocation is not None and again.allocation.devices == (GpuDevice(3, "GPU-3"),)


def test_old_inventories_get_indices_synthesised() -> None:
    inv = parse_inventory({"gpus": ["RTX4090", "RTX4090"], "cpus": 2})
    assert inv.gpu_ids == (GpuDevice(0), GpuDevice(1))
    assert parse_inventory({"gpus": {"L4": 3}}).gpu_ids == tuple(GpuDevice(i) for i in range(3))
    with pytest.raises(PasarError) as err:
        parse_inventory({"gpus": {"L4": 1}, "devices": [{"index": 0}]})
    assert err.value.field == "inventory.devices"


def test_choose_slots_is_lowest_first_and_refuses_too_few() -> None:
    assert choose_slots([5, 2, 9], 2) == (2, 5)
    assert choose_slots([], 0) == ()
    with pytest.raises(LookupError):
        choose_slots([1], 2)


@pytest.mark.parametrize(
    ("devices", "field"),
    [
        ([{"index": 0}, {"index": 0}], "inventory.devices"),
        ([{"index": 1}, {"index": -1}], "inventory.devices[1]"),
        ([{"index": True}, {"index": 1}], "inventory.devices[0]"),
        ([{"index": 0, "uuid": "GPU-1,GPU-2"}, {"index": 1}], "inventory.devices[0]"),
        ([{"index": 0, "uuid": 'x" --privileged'}, {"index": 1}], "inventory.devices[0]"),
        ([{"index": 0, "slot": 1}, {"index": 1}], "inventory.devices[0]"),
        (["0", {"index": 1}], "inventory.devices[0]"),
        ([{"index": 0}], "inventory.devices"),  # one per GPU
        ([{"uuid": "GPU-1"}, {"index": 1}], "inventory.devices[0]"),
        ({"0": "GPU-1"}, "inventory.devices"),
        ([{"index": 0, "uuid": "GPU-1"}, {"index": 1, "uuid": "GPU-1"}], "inventory.devices"),
    ],
)
def test_bad_devices_are_refused_naming_the_field(devices: Any, field: str) -> None:
    with pytest.raises(PasarError) as err:
        parse_inventory({"gpus": ["H100", "H100"], "devices": devices, "cpus": 1})
    assert err.value.status == 400 and err.value.field == field
    assert err.value.code == "invalid_inventory"


def test_allocations_must_name_as_many_devices_as_gpus() -> None:
    inv = Inventory.build(gpus={"H100": 1})
    alloc = fit(ResourceRequest.build(gpus=1, cpus=0, memory_gb=0, disk_gb=0), inv).allocation
    assert alloc is not None
    with pytest.raises(ResourceError):
        type(alloc)(alloc.gpu, alloc.gpu_slots, alloc.cpus, alloc.memory_gb, alloc.disk_gb)


def test_the_book_index_and_fit_choose_the_same_devices() -> None:
    p = two_gpu_provider()
    order = Order("o", "client", ONE, Money.parse("2 USDC"), 3600)
    asks = Asks.build({"H100": "1 USDC"})
    view = ProviderView(p.id, p.inventory)
    index = BookIndex()
    index.upsert_provider(view, asks)
    first = index.take(order).awards[0].allocation
    fitted = fit(ONE, p.free()).allocation
    assert first is not None and fitted is not None
    assert first.devices == fitted.devices == (GpuDevice(0, UUIDS[0]),)
    second = index.take(order).awards[0].allocation
    assert second is not None and second.devices == (GpuDevice(1, UUIDS[1]),)
    index.release(p.id, first)
    again = index.take(order).awards[0].allocation
    assert again is not None and again.devices == first.devices
    (candidate,), _ = book_candidates(order, [(view, asks)])
    assert candidate.allocation is not None
    assert candidate.allocation.devices == (GpuDevice(0, UUIDS[0]),)


# -- the market's state machine --------------------------------------------------------------------


def send(state: MarketState, signer: str, ts: int, **body: Any) -> dict[str, Any]:
    """test_state's ``send``, with a digest of its own per transaction (order ids come from it)."""
    t = tx(signer, ts, **body)
    return state.apply(replace(t, digest=hashlib.sha256(t.nonce.encode()).hexdigest())).result


def market(state: MarketState, ts: int, **body: Any) -> dict[str, Any]:
    return send(state, MARKET.account_id, ts, **body)


def gpu_spec(gpus: int) -> dict[str, Any]:
    return {
        "name": "gpu",
        "run": "env",
        "resources": {"accelerators": f"H100:{gpus}", "cpus": 1, "memory": 1, "disk": 1},
        "max_price_per_hour": "5 USDC",
        "max_duration": "1h",
    }


def register_two_gpus(s: MarketState, provider: str) -> None:
    send(
        s,
        provider,
        T0,
        type="provider.register",
        inventory={
            "gpus": ["H100", "H100"],
            "devices": [{"index": i, "uuid": u} for i, u in enumerate(UUIDS)],
            "cpus": 8,
            "memory_gb": 32,
            "disk_gb": 100,
        },
        asks={"gpu": {"H100": "1 USDC"}},
        score=100,
    )


def test_the_market_gives_two_leases_distinct_devices_and_takes_them_back() -> None:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="100 USDC")
    register_two_gpus(s, "prov-gpu")
    leases = []
    for _ in range(2):
        order = send(s, ALICE, T0 + 1, type="order.create", **order_fields(gpu_spec(1)))["order_id"]
        (lease,) = market(s, T0 + 2, type="match", order_id=order, seed=1)["leases"]
        leases.append(lease)
    devices = [s.leases[x].allocation.devices for x in leases]
    assert devices == [(GpuDevice(0, UUIDS[0]),), (GpuDevice(1, UUIDS[1]),)]
    third = send(s, ALICE, T0 + 3, type="order.create", **order_fields(gpu_spec(1)))["order_id"]
    assert market(s, T0 + 4, type="match", order_id=third, seed=1)["leases"] == []
    # the first lease is handed back: its device is the one the waiting order gets
    heartbeat(s, leases[0], 0, T0 + 100)
    send(s, "prov-gpu", T0 + 1_000, type="lease.release", lease_id=leases[0])
    (again,) = market(s, T0 + 2_000, type="match", order_id=third, seed=1)["leases"]
    assert s.leases[again].allocation.devices == (GpuDevice(0, UUIDS[0]),)
    conserved(s)
