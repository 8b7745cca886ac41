"""The fleet index changes how fast candidates are found, never the outcome of a clearing.

Over random fleets (several GPU models, tied asks, unavailable providers, the client among the
providers, capacity already lent to running leases) and random orders of every mechanism, a
clearing over the candidates the index finds gives exactly the awards, the unfilled count and
the note of a clearing over a scan of the whole fleet, for the same seed and offline set.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pasar.core.market_records import Tx
from pasar.core.presets import builtin_preset
from pasar.core.pricing.base import screen
from pasar.core.private_part import order_fields
from pasar.core.state import MarketState
from pasar.crypto.identity import Identity, verify_signature

MARKET = Identity.from_seed(bytes(32))
CLIENT = "client"
T0 = 1_700_000_000_000
MODELS = ("RTX4090", "RTX3090", "A100-80GB", "A100-40GB", "H100")
PRICES = ("0.10", "0.20", "0.30")  # few prices, so asks tie often
MECHANISMS = ("book", "tender", "stake", "performance", "auction")
_nonces = itertools.count()


def _state() -> MarketState:
    return MarketState(
        builtin_preset("pasar"),
        market_id=MARKET.account_id,
        verify_market_signature=lambda m, s: verify_signature(MARKET.public_key, m, s),
        devnet=True,
    )


def _send(state: MarketState, signer: str, ts: int, **body: Any) -> dict[str, Any]:
    n = next(_nonces)
    tx = Tx(
        type=body["type"], body=body, signer=signer, nonce=f"{n:032x}", ts=ts,
        digest=f"{n:016x}".ljust(64, "0"), at=ts,
    )  # fmt: skip
    return state.apply(tx).result


provider_st = st.fixed_dictionaries(
    {
        "gpus": st.lists(st.sampled_from(MODELS), max_size=4),
        "cpus": st.sampled_from((1, 2, 4, 8, 16)),
        "memory_gb": st.sampled_from((8, 64, 128)),
        "gpu_asks": st.dictionaries(st.sampled_from(MODELS), st.sampled_from(PRICES), min_size=2),
        "cpu_ask": st.none() | st.sampled_from(("0.01", "0.02")),
        "rate": st.none() | st.sampled_from(("0.000001", "0.000002")),
        "score": st.sampled_from((0, 1000, 5000)),
        "available": st.sampled_from((True, True, True, False)),
        "stake": st.sampled_from((0, 1, 2, 5)),
    }
)

order_st = st.fixed_dictionaries(
    {
        "gpus": st.sampled_from((0, 0, 1, 1, 2, 4)),
        "models": st.lists(st.sampled_from(MODELS), max_size=2, unique=True),
        "cpus": st.sampled_from((1, 2, 4)),
        "memory": st.sampled_from((1, 4, 16)),
        "max": st.sampled_from(("0.05", "0.25", "0.5", "3", "10")),
        "mechanism": st.sampled_from(MECHANISMS),
        "leases": st.sampled_from((1, 1, 2, 3)),
        "together": st.booleans(),
    }
)


def _register(state: MarketState, pid: str, p: dict[str, Any]) -> None:
    asks: dict[str, Any] = {"gpu": dict(p["gpu_asks"])} if p["gpu_asks"] else {}
    if p["cpu_ask"] is not None:
        asks["cpu_core"] = p["cpu_ask"]
    body: dict[str, Any] = {
        "inventory": {"gpus": p["gpus"], "cpus": p["cpus"], "memory_gb": p["memory_gb"],
                      "disk_gb": 100},
        "asks": asks,
        "score": p["score"],
        "available": p["available"],
    }  # fmt: skip
    if p["rate"] is not None:
        body["rate_per_score_hour"] = p["rate"]
    _send(state, pid, T0, type="provider.register", **body)
    if p["stake"]:
        _send(state, pid, T0, type="faucet", amount=f"{p['stake']} USDC")
        _send(state, pid, T0, type="stake", amount=f"{p['stake']} USDC")


def _spec(o: dict[str, Any]) -> dict[str, Any]:
    resources: dict[str, Any] = {"cpus": o["cpus"], "memory": o["memory"]}
    if o["gpus"]:
        models = o["models"] or ["RTX4090"]
        resources["accelerators"] = {"models": models, "count": o["gpus"]}
    spec: dict[str, Any] = {
        "run": "true",
        "resources": resources,
        "max_price_per_hour": f"{o['max']} USDC",
        "max_duration": "1h",
        "pricing": o["mechanism"],
    }
    if o["leases"] > 1:
        spec["num_nodes" if o["together"] else "shards"] = o["leases"]
    return spec


def _same(state: MarketState, order_id: str, seed: int, offline: frozenset[str]) -> None:
    record = state.orders[order_id]
    full = state.clear(record, seed, offline, indexed=False)
    fast = state.clear(record, seed, offline, indexed=True)
    assert fast.awards == full.awards
    assert fast.unfilled == full.unfilled
    assert fast.note == full.note
    # every reason the index gives is the one the scan gives
    for provider, reason in fast.reasons.items():
        assert full.reasons.get(provider) == reason, provider


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # fmt: skip
@given(
    fleet=st.lists(provider_st, min_size=2, max_size=16),
    warmup=st.lists(order_st, max_size=4),
    orders=st.lists(order_st, min_size=1, max_size=4),
    seed=st.integers(0, 2**63 - 1),
    client_provides=st.booleans(),
    offline_every=st.sampled_from((0, 2, 3)),
)
def test_the_index_clears_exactly_as_a_scan_of_the_fleet(
    *,
    fleet: list[dict[str, Any]],
    warmup: list[dict[str, Any]],
    orders: list[dict[str, Any]],
    seed: int,
    client_provides: bool,
    offline_every: int,
) -> None:
    state = _state()
    _send(state, CLIENT, T0, type="faucet", amount="10000 USDC")
    ids = [f"p{i:02d}" for i in range(len(fleet))]
    for pid, p in zip(ids, fleet, strict=True):
        _register(state, pid, p)
    if client_provides:
        _register(state, CLIENT, fleet[0])
    offline = frozenset(ids[::offline_every] if offline_every else ())
    ts = T0 + 1000
    # lend some capacity first, so the index has to follow leases starting
    for o in warmup:
        if o["mechanism"] == "auction":
            continue
        ts += 1
        order_id = _send(state, CLIENT, ts, type="order.create", **order_fields(_spec(o)))[
            "order_id"
        ]
        _send(state, MARKET.account_id, ts, type="match", order_id=order_id, seed=seed)
    for o in orders:
        ts += 1
        order_id = _send(state, CLIENT, ts, type="order.create", **order_fields(_spec(o)))[
            "order_id"
        ]
        record = state.orders[order_id]
        if record.window is not None:  # an auction: the invited bid their ask, or decline
            views, _ = state.eligible(record)  # a scan of the fleet invites the same providers
            fitting, _ = screen(state.remaining_order(record), views)
            assert record.window.invited == frozenset(view.id for view, _ in fitting)
            for i, pid in enumerate(sorted(record.window.invited)):
                price = None if i % 3 == 2 else f"0.{1 + i % 2}0 USDC"
                _send(state, pid, ts, type="bid", order_id=order_id, price=price)
        _same(state, order_id, seed, offline)


def test_the_index_follows_leases_and_re_registrations() -> None:
    """Capacity lent to a lease leaves the index and comes back when the lease ends."""
    state = _state()
    _send(state, CLIENT, T0, type="faucet", amount="100 USDC")
    gpu = {"gpus": ["H100"], "cpus": 8, "memory_gb": 64, "gpu_asks": {"H100": "0.20"},
           "cpu_ask": None, "rate": None, "score": 0, "available": True, "stake": 0}  # fmt: skip
    _register(state, "p1", gpu)
    order = {"gpus": 1, "models": ["H100"], "cpus": 1, "memory": 4, "max": "3",
             "mechanism": "book", "leases": 1, "together": False}  # fmt: skip
    first = _send(state, CLIENT, T0 + 1, type="order.create", **order_fields(_spec(order)))[
        "order_id"
    ]
    leases = _send(state, MARKET.account_id, T0 + 2, type="match", order_id=first, seed=1)
    assert leases["leases"]
    assert state.index.may_fit(state.orders[first].order.request) == []
    second = _send(state, CLIENT, T0 + 3, type="order.create", **order_fields(_spec(order)))[
        "order_id"
    ]
    assert not state.clear(state.orders[second], 1, indexed=True).awards
    _send(state, "p1", T0 + 4, type="lease.release", lease_id=leases["leases"][0])
    assert state.clear(state.orders[second], 1, indexed=True).awards[0].provider == "p1"
    # a re-registration without the GPU takes it out of the index
    _register(state, "p1", {**gpu, "gpus": []})
    assert not state.clear(state.orders[second], 1, indexed=True).awards
