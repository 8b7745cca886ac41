"""Multi-node jobs in the core (issue 15): the head's receipt names the gang's other running
leases (their providers stop them and send their own receipts); a node address is an IP."""

from __future__ import annotations

from typing import Any

import pytest
from test_state import (
    ALICE,
    P1,
    P2,
    P3,
    SPEC,
    T0,
    _empty_root,
    conserved,
    heartbeat,
    make_state,
    market,
    register,
    send,
    tx,
)

from pasar.core.accounts import LedgerAccount
from pasar.core.errors import PasarError
from pasar.core.market_records import Applied
from pasar.core.money import Money
from pasar.core.private_part import order_fields
from pasar.core.state import MarketState


def _gang(s: MarketState, **spec: Any) -> list[str]:
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    for p in (P1, P2, P3):
        register(s, p, cpu_ask="0.05")
    fields = order_fields({**SPEC, **spec})
    order_id = send(s, ALICE, T0 + 1, type="order.create", **fields)["order_id"]
    leases: list[str] = market(s, T0 + 2, type="match", order_id=order_id, seed=1)["leases"]
    return sorted(leases, key=lambda x: s.leases[x].shard)


def _receipt(s: MarketState, lease_id: str, at: int, **extra: Any) -> Applied:
    body = {"exit_code": 0, "outputs": [], "root": _empty_root(), **extra}
    return s.apply(tx(s.leases[lease_id].provider, at, type="receipt", lease_id=lease_id, **body))


def test_the_heads_receipt_names_the_gang_to_stop_and_wakes_their_providers() -> None:
    s = make_state()
    head, first, second = leases = _gang(s, num_nodes=3)
    assert {s.leases[x].provider for x in leases} == {P1, P2, P3}  # three distinct providers
    for x in leases:
        heartbeat(s, x, 0, s.leases[x].started_at + 100)
    early = _receipt(s, first, s.leases[first].started_at + 3000, exit_code=1)
    assert "stop" not in early.result  # a worker's end stops nobody
    applied = _receipt(s, head, s.leases[head].started_at + 4000)
    assert applied.result["stop"] == [second]  # the one still running
    assert s.leases[second].provider in applied.providers
    assert s.leases[second].status == "running"  # its provider ends it with its own receipt
    _receipt(s, second, s.leases[second].started_at + 4500, exit_code=137, kill_reason="gang")
    assert {s.leases[x].status for x in leases} == {"settled"}
    assert s.orders[s.leases[head].order_id].status == "done"
    conserved(s)


def test_shards_are_not_a_gang() -> None:
    s = make_state()
    leases = _gang(s, shards=3)
    applied = _receipt(s, leases[0], s.leases[leases[0]].started_at + 1000)
    assert "stop" not in applied.result
    conserved(s)


@pytest.mark.parametrize("address", ["evil.example", "10.0.0.5; rm -rf /", "", "localhost"])
def test_a_node_address_is_an_ip_address(address: str) -> None:
    s = make_state()
    with pytest.raises(PasarError) as err:
        send(
            s,
            P1,
            T0,
            type="provider.register",
            inventory={"gpus": [], "cpus": 8, "memory_gb": 32, "disk_gb": 100},
            asks={"cpu_core": "0.05"},
            attributes={"node_address": address},
        )
    assert err.value.code == "invalid_attributes" and err.value.field == "attributes.node_address"
    assert P1 not in s.providers


def test_ipv4_and_ipv6_node_addresses_register() -> None:
    s = make_state()
    for provider, address in ((P1, "10.0.0.5"), (P2, "fd00::5")):
        send(
            s,
            provider,
            T0,
            type="provider.register",
            inventory={"gpus": [], "cpus": 8, "memory_gb": 32, "disk_gb": 100},
            asks={"cpu_core": "0.05"},
            attributes={"node_address": address},
        )
        assert s.providers[provider].attributes["node_address"] == address


def test_replicate_is_refused_for_a_gang_naming_the_field() -> None:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    fields = order_fields({**SPEC, "num_nodes": 2, "verification": "replicate:0.5"})
    with pytest.raises(PasarError) as err:
        send(s, ALICE, T0 + 1, type="order.create", **fields)
    assert err.value.code == "verification_unavailable" and err.value.field == "spec.verification"
    assert s.orders == {}
    conserved(s)


def test_a_lost_node_ends_the_gang_paying_verified_time_and_refunding_the_rest() -> None:
    """``on_node_loss: fail`` (the default): one node lost, the job ends — the other nodes are
    billed for their verified seconds, nothing is re-queued, the rest goes back."""
    s = make_state()
    head, first, second = leases = _gang(s, num_nodes=3)
    order_id = s.leases[head].order_id
    started = s.leases[head].started_at
    for x in (head, second):  # the first worker never beats again
        for k in range(4):
            heartbeat(s, x, k, started + k * 5000 + 100)
    heartbeat(s, first, 0, started + 100)
    result = market(s, started + 20_000, type="lease.lost", lease_id=first)
    assert result["requeued"] is False and sorted(result["stop"]) == sorted([head, second])
    assert [s.leases[x].status for x in leases] == ["cancelled", "lost", "cancelled"]
    assert s.leases[head].billed_seconds == 20  # its verified time, up to the loss
    record = s.orders[order_id]
    assert record.status == "done" and "on_node_loss: fail" in (record.note or "")
    assert not record.free_shards
    assert s.ledger.balance(LedgerAccount.order_escrow(order_id), "USDC") == Money.zero("USDC")
    conserved(s)


def test_with_replace_a_lost_node_is_leased_again() -> None:
    s = make_state()
    head, first, _second = _gang(s, num_nodes=3, on_node_loss="replace")
    started = s.leases[head].started_at
    heartbeat(s, first, 0, started + 100)
    result = market(s, started + 20_000, type="lease.lost", lease_id=first)
    assert result["requeued"] is True and "stop" not in result
    record = s.orders[s.leases[head].order_id]
    assert record.status == "open" and record.free_shards == [1]  # waits for a new node
    conserved(s)


def test_a_released_node_ends_the_gang_too() -> None:
    s = make_state()
    head, first, second = _gang(s, num_nodes=3)
    released = send(
        s, s.leases[first].provider, s.leases[first].started_at + 3000,
        type="lease.release", lease_id=first,
    )  # fmt: skip
    assert sorted(released["stop"]) == sorted([head, second])
    assert s.orders[s.leases[head].order_id].status == "done"
    conserved(s)


SHA = "ab" * 32


def test_cluster_steps_come_from_the_client_in_order_to_the_heads_provider() -> None:
    s = make_state()
    head, *_ = _gang(s, num_nodes=3)
    order_id = s.leases[head].order_id
    at = s.leases[head].started_at + 1000
    for signer, body, code in (
        (P1, {"step": 1, "command": SHA}, "wrong_signer"),  # a provider is not the client
        (ALICE, {"step": 2, "command": SHA}, "invalid_step"),  # out of order
        (ALICE, {"step": 1, "command": "not-a-sha"}, "invalid_tx"),
    ):
        with pytest.raises(PasarError) as err:
            send(s, signer, at, type="cluster.exec", order_id=order_id, **body)
        assert err.value.code == code
    assert s.orders[order_id].steps == []
    applied = s.apply(tx(ALICE, at, type="cluster.exec", order_id=order_id, step=1, command=SHA))
    assert applied.result["lease_id"] == head and applied.providers == {s.leases[head].provider}
    assert s.orders[order_id].steps == [SHA] and order_id in s.blob_orders[SHA]
    conserved(s)


def test_a_job_of_one_node_takes_no_steps() -> None:
    s = make_state()
    (lease,) = _gang(s)
    with pytest.raises(PasarError) as err:
        send(s, ALICE, T0 + 5, type="cluster.exec", order_id=s.leases[lease].order_id, step=1,
             command=SHA)  # fmt: skip
    assert err.value.code == "not_a_cluster"
