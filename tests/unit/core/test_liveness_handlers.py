"""Liveness challenges (core/liveness_handlers.py): a suspected provider answers or is lost.

A missed challenge ends its provider's running leases long before the heartbeat grace, pays
them for verified time up to the challenge only, re-queues the shard on the rest of the escrow
and says why on the lease and the order; an answered one changes nothing. Only the market
challenges, only the challenged provider answers, and the decision is checked from the
transactions' stamps, so a replay reaches it too.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_state import ALICE, MARKET, P1, P2, SPEC, T0, conserved, make_state, market, send
from test_state import register as _register

from pasar.core.accounts import LedgerAccount
from pasar.core.errors import PasarError
from pasar.core.liveness_handlers import challengeable, leases_lost_to
from pasar.core.money import Money
from pasar.core.private_part import order_fields
from pasar.core.state import MarketState
from pasar.core.timelock import challenge_message

DEADLINE = 2_500  # the pasar preset's challenge_deadline_ms


def _running(s: MarketState) -> tuple[str, str]:
    """ALICE funded, P1 (cheaper) and P2 registered, one order running on P1, beat 0 in."""
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    _register(s, P1, cpu_ask="0.40")  # 2 cores: 0.80 USDC/h
    _register(s, P2, cpu_ask="0.45")
    order_id = send(s, ALICE, T0, type="order.create", **order_fields(SPEC))["order_id"]
    (lease,) = market(s, T0, type="match", order_id=order_id, seed=1)["leases"]
    sig = MARKET.sign(challenge_message(lease, 0)).hex()
    send(s, P1, T0 + 100, type="heartbeat", lease_id=lease, interval=0, challenge=sig)
    return order_id, lease


def _challenge(s: MarketState, at: int, provider: str = P1) -> dict[str, Any]:
    return market(
        s, at, type="liveness.challenge", provider=provider, reason="its feed connection dropped"
    )


def _refused(code: str, signer: str, at: int, s: MarketState, **body: Any) -> PasarError:
    before = s.balances_summary()
    with pytest.raises(PasarError) as err:
        send(s, signer, at, **body)
    assert err.value.code == code, err.value
    assert s.balances_summary() == before  # nothing moved
    return err.value


def test_a_missed_challenge_loses_the_lease_pays_verified_time_and_requeues() -> None:
    s = make_state()
    order_id, lease = _running(s)
    c = _challenge(s, T0 + 1_000)
    assert c["deadline_ms"] == T0 + 1_000 + DEADLINE and c["provider"] == P1
    cid = c["challenge_id"]
    # still open: not lost yet, and not challenged twice
    assert leases_lost_to(s, T0 + 1_000 + DEADLINE) == []
    _refused("too_early", MARKET.account_id, T0 + 2_000, s, type="lease.lost", lease_id=lease,
             challenge_id=cid)  # fmt: skip
    _refused("already_challenged", MARKET.account_id, T0 + 2_000, s, type="liveness.challenge",
             provider=P1, reason="again")  # fmt: skip
    at = T0 + 1_000 + DEADLINE + 1
    assert leases_lost_to(s, at) == [(lease, cid)]
    result = market(s, at, type="lease.lost", lease_id=lease, challenge_id=cid)
    assert result["requeued"]
    record = s.leases[lease]
    assert record.status == "lost"
    assert record.note is not None and "missed a liveness challenge" in record.note
    assert "feed connection dropped" in record.note
    order_note = s.orders[order_id].note
    assert order_note is not None and "missed a liveness challenge" in order_note
    # paid for its verified time up to the challenge (1 s of the 5 s its beat covered), no more
    assert record.billed_ms == 1_000
    assert record.charges is not None and record.charges.billed == Money.parse("0.80 USDC").scale(
        1_000, 3_600_000
    )
    assert s.ledger.balance(LedgerAccount.earnings(P1), "USDC") > Money.zero("USDC")
    # the shard is back on the order with the rest of the escrow; P1 takes no new work
    assert s.orders[order_id].status == "open"
    assert not s.providers[P1].available
    (second,) = market(s, at + 10, type="match", order_id=order_id, seed=2)["leases"]
    assert s.leases[second].provider == P2
    conserved(s)


def test_an_answered_challenge_keeps_the_lease() -> None:
    s = make_state()
    _, lease = _running(s)
    cid = _challenge(s, T0 + 1_000)["challenge_id"]
    assert send(s, P1, T0 + 1_200, type="liveness.answer", challenge_id=cid)["answered"]
    after = T0 + 1_000 + DEADLINE + 1
    assert leases_lost_to(s, after) == []
    _refused("too_early", MARKET.account_id, after, s, type="lease.lost", lease_id=lease,
             challenge_id=cid)  # fmt: skip
    _refused("already_answered", P1, T0 + 1_300, s, type="liveness.answer", challenge_id=cid)
    assert s.leases[lease].status == "running"
    assert challengeable(s, P1, after)  # a later suspicion may challenge it again
    conserved(s)


def test_only_the_market_challenges_and_only_the_challenged_provider_answers() -> None:
    s = make_state()
    _, lease = _running(s)
    # a hostile client (or a rival provider) cannot raise a suspicion of P1 ...
    for signer in (ALICE, P2):
        _refused("wrong_signer", signer, T0 + 900, s, type="liveness.challenge", provider=P1,
                 reason="I say it is dead")  # fmt: skip
    cid = _challenge(s, T0 + 1_000)["challenge_id"]
    # ... nor answer for it (a dead provider's accomplice), nor declare its lease lost
    for signer in (ALICE, P2):
        _refused("not_found", signer, T0 + 1_100, s, type="liveness.answer", challenge_id=cid)
        _refused("wrong_signer", signer, T0 + 9_000, s, type="lease.lost", lease_id=lease,
                 challenge_id=cid)  # fmt: skip
    # too late is too late
    _refused("too_late", P1, T0 + 1_000 + DEADLINE + 1, s, type="liveness.answer",
             challenge_id=cid)  # fmt: skip
    # a challenge id that is not the provider's current one decides nothing
    _refused("not_found", MARKET.account_id, T0 + 9_000, s, type="lease.lost", lease_id=lease,
             challenge_id=f"{P1}.live-{T0}")  # fmt: skip
    assert s.leases[lease].status == "running"
    conserved(s)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"provider": P1, "reason": ""}, "invalid_challenge"),
        ({"provider": P1, "reason": "x" * 301}, "invalid_challenge"),
        ({"provider": "nobody", "reason": "dropped"}, "not_found"),
        ({"provider": P2, "reason": "dropped"}, "nothing_running"),  # nothing to lose
    ],
)
def test_bad_challenges_are_refused_naming_the_field(body: dict[str, Any], code: str) -> None:
    s = make_state()
    _running(s)
    _refused(code, MARKET.account_id, T0 + 1_000, s, type="liveness.challenge", **body)


def test_a_network_without_challenges_refuses_them() -> None:
    s = make_state("ionet")
    assert s.preset.timing.challenge_deadline_ms == 0
    _refused("challenges_off", MARKET.account_id, T0, s, type="liveness.challenge", provider=P1,
             reason="dropped")  # fmt: skip


def test_a_lease_begun_after_the_missed_deadline_is_not_lost_to_it() -> None:
    s = make_state()
    order_id, lease = _running(s)
    cid = _challenge(s, T0 + 1_000)["challenge_id"]
    at = T0 + 1_000 + DEADLINE + 1
    market(s, at, type="lease.lost", lease_id=lease, challenge_id=cid)
    # P1 comes back (registers again) and gets new work: the old missed challenge is history
    _register(s, P1, cpu_ask="0.10")
    (second,) = market(s, at + 100, type="match", order_id=order_id, seed=2)["leases"]
    assert s.leases[second].provider == P1
    assert leases_lost_to(s, at + 200) == []
    _refused("too_early", MARKET.account_id, at + 200, s, type="lease.lost", lease_id=second,
             challenge_id=cid)  # fmt: skip
    assert challengeable(s, P1, at + 200)
    conserved(s)
