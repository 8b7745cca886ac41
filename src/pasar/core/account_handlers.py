"""The handlers of the transactions about accounts and providers: the devnet faucet, a
provider's registration, stake, unstake, unbonded withdrawal and withdrawal.

Split from :mod:`pasar.core.state` as :mod:`pasar.core.order_handlers` and
:mod:`pasar.core.lease_handlers` are: each checks a transaction against the state and changes
it through the state's journaled getters, so :meth:`MarketState.apply` stays all-or-nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pasar.core.capacity import CapacityStatus
from pasar.core.errors import PasarError
from pasar.core.market_records import Applied, ProviderRecord, Tx, fail
from pasar.core.money import Money
from pasar.core.reputation import Reputation
from pasar.core.stake import required_stake
from pasar.core.timelock import MS
from pasar.core.tx_parsing import parse_amount, parse_asks, parse_inventory

if TYPE_CHECKING:
    from pasar.core.state import MarketState

MAX_FAUCET_UNITS = 10_000


def on_faucet(state: MarketState, tx: Tx) -> Applied:
    if not state.devnet:
        raise fail(
            "the faucet is off on this market",
            code="faucet_disabled",
            status=403,
            hint="only a market started with --devnet mints money",
        )
    amount = parse_amount(tx.body.get("amount"), "amount", state.preset.currency)
    if amount.currency != state.preset.currency:
        raise fail(
            f"the faucet mints {state.preset.currency}", code="currency_mismatch", field="amount"
        )
    if amount > Money.units(MAX_FAUCET_UNITS, amount.currency):
        raise fail(
            f"at most {MAX_FAUCET_UNITS} {amount.currency} per request",
            code="invalid_amount",
            field="amount",
        )
    state.ledger.mint(tx.signer, amount, memo="faucet")
    return Applied(tx.type, {"minted": amount.to_json()})


#: the attribute naming the address other nodes of a multi-node job reach this provider's at
NODE_ADDRESS = "node_address"
#: the attribute listing the clusters (``cluster:`` in a spec) this provider starts, by commas
CLUSTERS = "cluster"


def offered_clusters(provider: ProviderRecord) -> frozenset[str]:
    """The ``cluster:`` kinds a provider says it can start (``ray``), from its attributes."""
    listed = provider.attributes.get(CLUSTERS, "")
    return frozenset(kind.strip() for kind in listed.split(",") if kind.strip())


def _check_node_address(value: str | None) -> None:
    """An IP address, never a host name: the gang's nodes are told to connect to it, so a
    name (resolved by whom, to what?) would let a provider point them anywhere it likes."""
    if value is None:
        return
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise fail(
            f"attributes.node_address must be an IP address; found {value!r}",
            code="invalid_attributes",
            field=f"attributes.{NODE_ADDRESS}",
            hint="the address the other nodes of a multi-node job reach this machine at, "
            "e.g. 10.0.0.5 (127.0.0.1 when every node is on this machine)",
        ) from None


def on_register(state: MarketState, tx: Tx) -> Applied:
    body = tx.body
    inventory = parse_inventory(body.get("inventory"))
    asks = parse_asks(body.get("asks"), state.preset.currency)
    rate = body.get("rate_per_score_hour")
    score = body.get("score", 0)
    if isinstance(score, bool) or not isinstance(score, int) or score < 0:
        raise fail("score must be a whole number of GFLOP/s", code="invalid_score", field="score")
    region = body.get("region")
    attributes = body.get("attributes", {})
    if not isinstance(attributes, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise fail(
            "attributes must map strings to strings", code="invalid_attributes", field="attributes"
        )
    _check_node_address(attributes.get(NODE_ADDRESS))
    available = body.get("available", True)
    if not isinstance(available, bool):
        raise fail("available must be true or false", code="invalid_provider", field="available")
    existing = state.providers.get(tx.signer)
    capacity = existing.capacity if existing else CapacityStatus()
    if existing and (existing.score != score or existing.inventory != inventory):
        capacity = capacity.for_new_claim()  # the old verdict does not vouch for the new claim
    record = ProviderRecord(
        id=tx.signer,
        inventory=inventory,
        asks=asks,
        rate_per_score_hour=None
        if rate is None
        else parse_amount(rate, "rate_per_score_hour", state.preset.currency),
        score=score,
        region=str(region) if region is not None else None,
        attributes=dict(attributes),
        registered_at=existing.registered_at if existing else tx.at,
        reputation=existing.reputation if existing else Reputation.initial(),
        running=dict(existing.running) if existing else {},
        available=available,
        capacity=capacity,
        # a registration is no answer to a liveness challenge (only liveness.answer is)
        probe=existing.probe if existing else None,
    )
    try:
        if record.running:  # with nothing lent out, everything is free
            record.free()
    except (PasarError, ValueError) as exc:
        raise fail(
            "the new inventory no longer holds the provider's running leases",
            code="conflict",
            status=409,
            field="inventory",
            hint="wait for running leases to end before shrinking the inventory",
        ) from exc
    state._put(state.providers, tx.signer, record)
    state._reindex(tx.signer)
    return Applied(tx.type, {"provider": tx.signer, "updated": existing is not None})


def staker(state: MarketState, account: str) -> ProviderRecord | None:
    """Who may stake: a registered provider (returned) or verifier (None); 403 otherwise."""
    if account in state.verifiers and account not in state.providers:
        return None
    return state._provider(account)


def on_stake(state: MarketState, tx: Tx) -> Applied:
    staker(state, tx.signer)
    amount = parse_amount(tx.body.get("amount"), "amount", state.preset.currency)
    state.ledger.stake(tx.signer, amount)
    return Applied(tx.type, {"staked": amount.to_json()})


def on_unstake(state: MarketState, tx: Tx) -> Applied:
    """Start unbonding: the amount leaves stake at once but stays slashable for the preset's
    ``unbonding_s`` (leaving stake must not escape a slash), then ``unbonded.withdraw`` frees
    it. Refused while the stake backs running leases: what is left must still meet the
    network's stake rule for the provider's inventory."""
    provider = staker(state, tx.signer)
    amount = parse_amount(tx.body.get("amount"), "amount", state.preset.currency)
    staked = state.stake_of(tx.signer)
    if amount > staked:
        raise fail(
            f"only {staked} is staked", code="insufficient_funds", status=409, field="amount"
        )
    need = None if provider is None else required_stake(state.preset.stake_rule, provider.inventory)
    if provider is not None and provider.running and need is not None and staked - amount < need:
        raise fail(
            f"the stake backs {len(provider.running)} running lease(s): at least {need} must "
            "stay staked until they end",
            code="stake_in_use",
            status=409,
            field="amount",
            hint="unstake after the running leases end, or unstake less",
        )
    cooldown = state.preset.timing.unbonding_s
    state.ledger.unstake(tx.signer, amount, now=tx.at // MS, cooldown=cooldown)
    return Applied(
        tx.type,
        {"unstaked": amount.to_json(), "release_at_ms": (tx.at // MS + cooldown) * MS},
        providers={tx.signer},
    )


def on_withdraw_unbonded(state: MarketState, tx: Tx) -> Applied:
    """Move every unbonding amount whose cooldown has ended back to the spendable balance."""
    transfers = state.ledger.withdraw_unbonded(tx.signer, now=tx.at // MS)
    total = sum((t.amount for t in transfers), Money.zero(state.preset.currency))
    return Applied(tx.type, {"withdrawn": total.to_json()})


def on_withdraw(state: MarketState, tx: Tx) -> Applied:
    amount = parse_amount(tx.body.get("amount"), "amount", state.preset.currency)
    state.ledger.withdraw_earnings(tx.signer, amount)
    return Applied(tx.type, {"withdrawn": amount.to_json()})
