"""Hostile tolerance-mode verdicts over HTTP (issue 16): a distance sent as a float (no floats
in signed data), a stray field beside the tolerance fields, a tolerance verdict on a check
that does not exist — each refused, nothing moved. The threshold rules
(a mismatch at or below it refused, a forged large distance outvoted, no dispute over a
tolerance verdict) are tested on the state machine in tests/unit/core/test_pol_tolerance.py
and end to end in tests/integration/test_pol_tolerance_market.py."""

from __future__ import annotations

from typing import Any

import pytest
from attacklib import Party, assert_money_safe

from pasar.core.errors import PasarError

CHECK = "o-0-0.check-0"
BASE = {"type": "check.verdict", "check_id": CHECK, "root": "ab" * 32, "outputs": [],
        "matches": False}  # fmt: skip


def _refused(party: Party, code: str, status: int, **body: Any) -> PasarError:
    with pytest.raises(PasarError) as err:
        party.post(f"/v1/checks/{CHECK}/verdict", **{**BASE, **body})
    assert (err.value.code, err.value.status) == (code, status), err.value.to_dict()
    return err.value


def test_hostile_tolerance_verdicts_are_refused_and_move_nothing(market_server: Any) -> None:
    mallory = Party(market_server)
    mallory.fund()
    with pytest.raises(PasarError) as as_float:  # refused before it is signed or sent
        mallory.post(f"/v1/checks/{CHECK}/verdict", **BASE, mode="tolerance", distance=0.5)
    assert as_float.value.code == "malformed_envelope" and "body.distance" in str(as_float.value)
    stray = _refused(mallory, "unknown_field", 400, mode="tolerance", distance="0.5", bonus=1)
    assert stray.field == "body.bonus"
    _refused(mallory, "not_found", 404, mode="tolerance", distance="0.5")
    # the calibrated threshold's fields: text only, and known to the wire model
    for name in ("noise", "threshold"):
        with pytest.raises(PasarError) as bad:
            mallory.post(f"/v1/checks/{CHECK}/verdict", **BASE, mode="tolerance",
                         distance="0.5", **{name: 0.001})  # fmt: skip
        assert bad.value.code == "malformed_envelope" and f"body.{name}" in str(bad.value)
    _refused(mallory, "not_found", 404, mode="tolerance", distance="0.5", noise="0.001",
             threshold="0.01")  # fmt: skip
    assert_money_safe(market_server.url)
