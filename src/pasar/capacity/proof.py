"""The capacity challenge's arithmetic: derive the matrices, compute the answer, check it.

The shapes and the reasons are in :mod:`pasar.core.capacity`; this module is the numpy
(and, on a GPU, torch) side shared by the provider, which computes the chain, and the market,
which checks it with Freivalds' test at a small fraction of the cost. Both derive the same
matrices from the challenge's seed (numpy's PCG64, seeded with ``[seed, stream]``), so the
challenge transaction carries a seed, never a matrix.
"""

from __future__ import annotations

import importlib
import os
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from pasar.core.capacity import CHECK_VECTORS, MODULUS

__all__ = ["answer_bytes", "check", "derive", "solve"]

_MASK = MODULUS - 1
Matrix = npt.NDArray[Any]


def derive(seed: int, n: int, steps: int) -> tuple[Matrix, Matrix]:
    """``(W, offsets)``: the ``n × 2n`` int8 matrix in ``[0, MODULUS)`` and each step's window
    offset in ``[0, n]`` (``A_i = W[:, offsets[i] : offsets[i] + n]``)."""
    w = np.random.default_rng([seed, 1]).integers(0, MODULUS, size=(n, 2 * n), dtype=np.int8)
    offsets = np.random.default_rng([seed, 2]).integers(0, n + 1, size=steps)
    return w, offsets


class ProofCancelledError(Exception):
    """The agent is stopping: the chain was abandoned between two steps."""


def _check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise ProofCancelledError()


def solve(
    seed: int, n: int, steps: int, *, device: str = "cpu", stop: threading.Event | None = None
) -> Matrix:
    """``X_steps`` as an ``n × n`` uint8 matrix (the provider's work): numpy on ``"cpu"``,
    torch on ``"cuda[:N]"`` (TF32 off: the products must be exact). Raises
    :class:`ProofCancelledError` between two steps once ``stop`` is set: an agent that is stopping
    must not stay alive for the rest of a chain (its BLAS threads keep the process)."""
    w, offsets = derive(seed, n, steps)
    if device == "cpu":
        wf = w.astype(np.float32)
        x = wf[:, :n].copy()
        y, q = np.empty_like(x), np.empty_like(x)  # reused: no page faults inside the loop
        for s in offsets:
            _check(stop)
            np.matmul(x, wf[:, s : s + n], out=y)  # exact: partial sums are integers < 2^24
            _reduce(y, q)
            x, q = q, x
        return x.astype(np.uint8)
    return _solve_torch(w, offsets, n, device, stop)


def _reduce(y: Matrix, out: Matrix) -> None:
    """``out = y mod MODULUS`` for float32 integers, in place: ``y - 32·floor(y/32)`` is exact
    (dividing by a power of two loses nothing) and four passes over memory, no conversions."""
    np.multiply(y, np.float32(1 / MODULUS), out=out)
    np.floor(out, out=out)
    out *= -MODULUS
    out += y


def _solve_torch(
    w: Matrix, offsets: Matrix, n: int, device: str, stop: threading.Event | None
) -> Matrix:
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    torch: Any = importlib.import_module("torch")
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device(device)
    wf = torch.from_numpy(w).to(dev).to(torch.float32)
    x = wf[:, :n].clone()
    for s in offsets.tolist():
        _check(stop)
        y = x @ wf[:, s : s + n]
        x = (y.to(torch.int32) & _MASK).to(torch.float32)
    out: Matrix = x.to(torch.uint8).cpu().numpy()
    del wf, x
    torch.cuda.empty_cache()
    return out


def answer_bytes(x: Matrix) -> bytes:
    """The bytes the provider uploads: row-major, one byte an entry."""
    return np.ascontiguousarray(x, dtype=np.uint8).tobytes()


def check(seed: int, n: int, steps: int, answer: bytes, *, check_seed: int) -> str | None:
    """None when ``answer`` is ``X_steps`` (Freivalds: ``CHECK_VECTORS`` random vectors from
    ``check_seed``, which the provider cannot know), else why not.

    ``O(steps · n² · CHECK_VECTORS)``: every product is of an int matrix below 32 with vectors
    below 32, exact in float32 (sums below ``n · 31² < 2^24``)."""
    if len(answer) != n * n:
        return f"the answer has {len(answer)} bytes, not n² = {n * n}"
    x = np.frombuffer(answer, dtype=np.uint8).reshape(n, n)
    if int(x.max(initial=0)) >= MODULUS:
        return f"the answer has entries of {MODULUS} or more"
    w, offsets = derive(seed, n, steps)
    wf = w.astype(np.float32)
    r = np.random.default_rng([check_seed, 3]).integers(0, MODULUS, size=(n, CHECK_VECTORS))
    v = r.astype(np.float32)
    for s in offsets[::-1]:
        v = np.bitwise_and((wf[:, s : s + n] @ v).astype(np.int64), _MASK).astype(np.float32)
    expected = np.bitwise_and((wf[:, :n] @ v).astype(np.int64), _MASK)
    got = np.bitwise_and((x.astype(np.float32) @ r.astype(np.float32)).astype(np.int64), _MASK)
    if not np.array_equal(expected, got):
        wrong = int(np.count_nonzero((expected != got).any(axis=1)))
        return f"the product is wrong (Freivalds' check fails on {wrong} of {n} rows)"
    return None
