"""Optional outputs a lease did not write: one warning line each, for ``launch --wait`` and
``JobResult.warnings`` (issue 14.4); a file under a declared folder counts as writing it."""

from __future__ import annotations

from typing import Any

from pasar.client.results import missing_optional, output_warnings


def _order(*leases: dict[str, Any]) -> dict[str, Any]:
    outputs = ["model.pt", {"path": "debug.log", "optional": True},
               {"path": "plots/", "optional": True}]  # fmt: skip
    return {"spec": {"outputs": outputs}, "leases": list(leases)}


def _lease(shard: int, status: str, *paths: str) -> dict[str, Any]:
    receipt = {"outputs": [{"path": p, "sha256": "0" * 64, "size": 1} for p in paths]}
    return {"shard": shard, "status": status, "receipt": receipt}


def test_each_missing_optional_output_is_one_warning_per_settled_lease() -> None:
    first = _lease(0, "settled", "model.pt", "plots/a.png")
    second = _lease(1, "settled", "model.pt", "debug.log")
    lost = _lease(1, "lost")
    order = _order(first, lost, second)
    assert missing_optional(order, first) == ["shard 0: missing output debug.log (optional)"]
    assert output_warnings(order) == [
        "shard 0: missing output debug.log (optional)",
        "shard 1: missing output plots/ (optional)",
    ]  # the lost lease says nothing: it has no result
    assert output_warnings({"spec": {}, "leases": [first]}) == []  # a sealed view: no outputs
