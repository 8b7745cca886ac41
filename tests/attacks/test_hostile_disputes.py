"""Hostile moves in pol disputes over HTTP (issue 16): a stranger opening a dispute over a check
it does not hold, a malformed proof, an answer to a dispute that does not exist, a party
posting the market's own ruling or expiry, a trace of a dispute that does not exist — each a
4xx naming the field, nothing moved. The rules of a real dispute (wrong roots, proofs and
traces, deadlines, both directions of settlement) are tested on the state machine in
tests/unit/core/test_disputes.py and end to end in tests/integration/test_pol_market.py."""

from __future__ import annotations

from typing import Any

import pytest
from attacklib import Party, assert_money_safe

from pasar.core.errors import PasarError

H = "ab" * 32
PROOF = {"index": 0, "size": 1, "siblings": []}
KEYS = ("prover_start", "verifier_start", "prover_end", "verifier_end")


def _refused(party: Party, path: str, code: str, status: int, **body: Any) -> PasarError:
    with pytest.raises(PasarError) as err:
        party.post(path, **body)
    assert (err.value.code, err.value.status) == (code, status), err.value.to_dict()
    return err.value


def test_hostile_dispute_moves_are_refused_and_move_nothing(market_server: Any) -> None:
    mallory = Party(market_server)
    mallory.fund()
    opening = {
        "type": "dispute.open",
        "check_id": "o-0-0.check-0",
        "start": 0,
        "end": 1,
        "prover_root": H,
        "verifier_root": H,
        "start_hash": H,
        "end_hash": H,
        "prover_end_hash": H,
        "proofs": dict.fromkeys(KEYS, PROOF),
    }
    _refused(mallory, "/v1/disputes", "not_found", 404, **opening)
    stray = _refused(mallory, "/v1/disputes", "unknown_field", 400, **opening, bonus=1)
    assert stray.field == "body.bonus"
    answer = {"type": "dispute.answer", "dispute_id": "o-0-0.dispute-0", "step": 1, "hash": H,
              "proof": PROOF}  # fmt: skip
    _refused(mallory, "/v1/disputes/o-0-0.dispute-0/answer", "not_found", 404, **answer)
    # a body signed for one dispute cannot be posted at another's URL
    _refused(mallory, "/v1/disputes/o-1-0.dispute-0/answer", "path_mismatch", 400, **answer)
    # the market's own moves, signed by someone else, at any endpoint that takes a signature
    wrong = _refused(mallory, "/v1/disputes", "wrong_type", 400, type="dispute.rule",
                     dispute_id="o-0-0.dispute-0", step=1, hash=H)  # fmt: skip
    assert wrong.field == "body.type"
    # the operator phase: a trace of a dispute that does not exist, a ruling posted as a trace
    trace = {"type": "dispute.trace", "dispute_id": "o-0-0.dispute-0", "step": 1,
             "operators": [["aten.add_.Tensor", H]], "hash": H}  # fmt: skip
    _refused(mallory, "/v1/disputes/o-0-0.dispute-0/trace", "not_found", 404, **trace)
    _refused(mallory, "/v1/disputes/o-1-0.dispute-0/trace", "path_mismatch", 400, **trace)
    _refused(mallory, "/v1/disputes/o-0-0.dispute-0/trace", "wrong_type", 400,
             type="dispute.rule", dispute_id="o-0-0.dispute-0", step=1, hash=H,
             operator={"index": 0, "name": "aten.add_.Tensor", "hash": H})  # fmt: skip
    with pytest.raises(PasarError) as missing:
        mallory.get("/v1/disputes/o-0-0.dispute-0")
    assert missing.value.status == 404
    assert mallory.get("/v1/leases/o-0-0/disputes") == []
    assert_money_safe(market_server.url)
