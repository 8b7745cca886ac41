"""Every request :mod:`pasar.client.calls` describes builds, and its answer parser runs.

The wire models load inside the function that builds or parses with them (so that `pasar
balance` does not load ~80 of them, issue 14.10); a name left only in the module's
``TYPE_CHECKING`` block would be a NameError the first time that one call is made. This builds
each call, checks its body's type, and feeds its parser an answer.
"""

from __future__ import annotations

import inspect
from typing import Any

import httpx
import pytest

from pasar.api import txs
from pasar.client import calls
from pasar.core.errors import PasarError

SHA = "ab" * 32
ID = "pa1" + "a" * 56

#: builder → (its arguments, the type of the body it POSTs or None for a read)
BUILDERS: dict[str, tuple[tuple[Any, ...], type[txs.TxBody] | None]] = {
    "get_order": (("o-1",), None),
    "wait_order": (("o-1", 0, 1.0), None),
    "list_orders": ((ID, None, 10), None),
    "create_order": (({"spec": {"run": "true"}, "private": SHA}, 60), txs.OrderCreate),
    "quote": (({"run": "true"}, None), None),
    "cancel_order": (("o-1",), txs.OrderCancel),
    "approve": (("o-1", 0), txs.ResultApprove),
    "reject": (("o-1", 0, "wrong"), txs.ResultReject),
    "explain": (("o-1",), None),
    "offers": (("gpu=A100", None, 10), None),
    "stats": ((), None),
    "dashboard_challenge": ((), None),
    "account": ((ID,), None),
    "faucet": (("1 USDC",), txs.Faucet),
    "read_logs": (("l-1", 0, True), None),
    "health": ((), None),
    "provider": ((ID,), None),
    "provider_stake": ((ID,), None),
    "feed": ((ID, 0, 1.0), None),
    "order_view": (("o-1",), None),
    "lease": (("l-1",), None),
    "challenge": (("l-1",), None),
    "register": ((txs.ProviderRegister.model_construct(),), txs.ProviderRegister),
    "stake": (("1 USDC",), txs.Stake),
    "bid": (("o-1", None), txs.Bid),
    "heartbeat": (("l-1", 1, SHA, {"cpu_ms": 1}), txs.Heartbeat),
    "append_logs": (("l-1", 0, "hello\n"), txs.Logs),
    "receipt": ((txs.Receipt.model_construct(),), txs.Receipt),
    "capacity_challenge": (("c-1",), None),
    "capacity_answer": (("c-1", SHA), txs.CapacityAnswer),
    "liveness_answer": (("c-1",), txs.LivenessAnswer),
    "tee_nonce": ((ID,), None),
    "tee_present": ((txs.TeePresent.model_construct(provider=ID),), txs.TeePresent),
    "tee_attestation": ((ID,), None),
    "cluster_exec": (("o-1", 1, SHA), txs.ClusterExec),
    "release": (("l-1",), txs.LeaseRelease),
    "accept_lease": (("l-1", "key"), txs.LeaseAccept),
    "seal_key": (("l-1", ID, "sealed"), txs.KeySeal),
    "verifier_register": ((None,), txs.VerifierRegister),
    "verifier": ((ID,), None),
    "check": (("k-1",), None),
    "open_challenge": (("l-1", "wrong output", "1 USDC"), txs.ChallengeOpen),
    "verdict": ((txs.CheckVerdict.model_construct(check_id="k-1"),), txs.CheckVerdict),
    "open_dispute": ((txs.DisputeOpen.model_construct(check_id="k-1"),), txs.DisputeOpen),
    "answer_dispute": ((txs.DisputeAnswer.model_construct(dispute_id="d-1"),), txs.DisputeAnswer),
    "trace_dispute": ((txs.DisputeTrace.model_construct(dispute_id="d-1"),), txs.DisputeTrace),
    "dispute": (("d-1",), None),
    "lease_disputes": (("l-1",), None),
}


def _builders() -> set[str]:
    """The module's public functions that return one Call (not the procedures)."""
    return {
        name
        for name, value in vars(calls).items()
        if inspect.isfunction(value)
        and value.__module__ == calls.__name__
        and not name.startswith("_")
        and str(inspect.signature(value).return_annotation).startswith("Call[")
    }


def test_the_table_names_every_builder() -> None:
    assert set(BUILDERS) == _builders()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_each_call_builds_and_parses_its_answer(name: str) -> None:
    args, body_type = BUILDERS[name]
    call = getattr(calls, name)(*args)
    assert isinstance(call, calls.Call)
    assert call.path.startswith(("/v1/", "/ui/"))
    if body_type is None:
        assert call.body is None
    else:
        assert isinstance(call.body, body_type)
    # an answer that fits no model: a parser that runs says so as a PasarError (bad_response);
    # one that cannot run (a model it never imported) would raise something else
    answer = httpx.Response(200, json={"unexpected": True})
    try:
        call.parse(answer)
    except PasarError as err:
        assert err.status == 502
