"""Refuse a training job whose step is not deterministic, naming the operator (issue 16).

Why at commit time: proof of learning compares hashes bit for bit, so an operator that gives
different bits on the same inputs (a kernel with nondeterministic reductions, a draw from a
generator the harness does not seed, anything reading the clock) would make an honest prover
fail every check. Before the manifest is written, :func:`check_step` builds the job twice,
runs step 1 on each under a dispatch trace (every aten operator, forward, backward and the
optimizer's, with a hash of its outputs), and compares the states after it. If they differ,
the job is refused (``nondeterministic_operator``) naming the first operator whose outputs
differ on the two runs, and nothing is committed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from pasar.core.errors import PasarError


def _digest(value: Any) -> str:
    import torch

    from pasar.train.state_hash import tensor_bytes

    digest = hashlib.sha256()
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        if isinstance(item, torch.Tensor):
            digest.update(str(item.dtype).encode() + str(tuple(item.shape)).encode())
            digest.update(tensor_bytes(item))
        elif item is None or isinstance(item, bool | int | float | str):
            digest.update(repr(item).encode())
        else:  # an opaque object (a profiler handle...): its repr holds an address
            digest.update(type(item).__name__.encode())
    return digest.hexdigest()


def traced_step(run_step: Callable[[], Any], *, views: bool = True) -> list[tuple[str, str]]:
    """``(operator, hash of its outputs)`` of every aten operator ``run_step`` dispatches
    (``views=False``: without the operators that only alias their input — ``view``,
    ``select``, ``detach``... compute nothing, and a dispute names the operator that did)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    trace: list[tuple[str, str]] = []
    mode: Any = TorchDispatchMode  # untyped upstream

    class Trace(mode):  # type: ignore[misc]
        def __torch_dispatch__(
            self, func: Any, types: Any, args: Any = (), kwargs: Any = None
        ) -> Any:
            out = func(*args, **(kwargs or {}))
            if views or not getattr(func, "is_view", False):
                trace.append((str(func), _digest(out)))
            return out

    with Trace():
        run_step()
    return trace


def first_difference(a: list[tuple[str, str]], b: list[tuple[str, str]]) -> str | None:
    """The first operator whose outputs (or whose place in the sequence) differ."""
    for (op_a, out_a), (op_b, out_b) in zip(a, b, strict=False):
        if op_a != op_b:
            return f"{op_a} / {op_b} (the two runs dispatched different operators)"
        if out_a != out_b:
            return op_a
    if len(a) != len(b):
        return "the two runs dispatched a different number of operators"
    return None


def check_step(
    build_and_step: Callable[[], tuple[str, list[tuple[str, str]]]],
) -> None:
    """Run ``build_and_step`` (a fresh build, step 1 traced; returns the state hash and the
    trace) twice and refuse, naming the operator, if the two states differ."""
    hash_a, trace_a = build_and_step()
    hash_b, trace_b = build_and_step()
    if hash_a == hash_b:
        return
    operator = first_difference(trace_a, trace_b) or "outside any traced operator"
    raise PasarError(
        f"the training step is not deterministic: two runs of step 1 from the same state "
        f"differ, first at {operator}",
        code="nondeterministic_operator",
        field="operator",
        hint="proof of learning compares every step bit for bit: replace that operator, or "
        "draw its randomness from the generator the harness seeds each step",
    )
