"""The determinism environment of a proof-of-learning run (issue 16), fixed before torch loads.

Why before: torch reads its thread counts, CPU capability (which SIMD kernels it dispatches to)
and MKL's reproducibility mode when it is imported; set later they change nothing. Measured on
this machine with CPU torch 2.13: runs are bitwise identical at fixed threads and capability,
and a different thread count, ``ATEN_CPU_CAPABILITY``, mkldnn or ``MKL_CBWR`` changes the
hashes (even ``torch.randn(1000)`` differs across capabilities). So the prover pins all of it,
records it in the manifest (:func:`fingerprint`), and a verifier replays bit for bit only
within the environment the manifest names (elsewhere, in tolerance mode).

A machine may choose otherwise — its SIMD kernels (``PASAR_TRAIN_CAPABILITY=avx2``), more
threads (``PASAR_TRAIN_THREADS``), mkldnn (``PASAR_TRAIN_MKLDNN=1``) — and the fingerprint
records the choice; a verifier whose fingerprint differs replays in tolerance mode
(:mod:`pasar.train.tolerance`). The benchmark of that mode uses these to make honest runs in
different environments.

The capability defaults to ``default`` (torch's portable scalar kernels): slower, but the same
on every x86-64 machine, so any verifier can replay a prover's steps bit for bit.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from typing import Any

from pasar.core.errors import PasarError

#: the variables torch and its math libraries read when they load, and their pinned values
PINNED: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_CBWR": "COMPATIBLE",
    "ATEN_CPU_CAPABILITY": "default",
}

#: a machine's own choices (see the module doc): unset, the pinned values hold
CAPABILITY_ENV = "PASAR_TRAIN_CAPABILITY"
THREADS_ENV = "PASAR_TRAIN_THREADS"
MKLDNN_ENV = "PASAR_TRAIN_MKLDNN"
CHOICES = (CAPABILITY_ENV, THREADS_ENV, MKLDNN_ENV)


def _threads() -> int:
    text = os.environ.get(THREADS_ENV, "")
    return int(text) if text.isdigit() and int(text) > 0 else 1


def pin_environment(capability: str | None = None) -> dict[str, str]:
    """Set the pinned variables in this process (``capability`` overrides the default one, to
    replay a manifest made with another); refuse if torch is already loaded, since it would
    keep what it read. Returns what was set."""
    if "torch" in sys.modules:
        raise PasarError(
            "torch was imported before pasar.train: the determinism environment it reads when "
            "it loads (threads, CPU capability, MKL's mode) can no longer be pinned",
            code="torch_already_loaded",
            hint="import pasar.train before torch (first thing in the training script)",
        )
    values = dict(PINNED)
    capability = capability or os.environ.get(CAPABILITY_ENV) or None
    if capability is not None:
        values["ATEN_CPU_CAPABILITY"] = capability
    if _threads() != 1:
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            values[key] = str(_threads())
    os.environ.update(values)
    return values


def configure_torch() -> None:
    """The settings torch takes at run time: one thread, deterministic algorithms, no mkldnn
    (unless this machine chose otherwise: see the module doc)."""
    import torch

    torch.set_num_threads(_threads())
    if torch.get_num_interop_threads() != 1:
        with contextlib.suppress(RuntimeError):  # allowed once, before any parallel work
            torch.set_num_interop_threads(1)
    torch.use_deterministic_algorithms(True)
    mkldnn: Any = torch.backends.mkldnn  # a module whose flag is a descriptor (untyped here)
    mkldnn.enabled = os.environ.get(MKLDNN_ENV) == "1"


def fingerprint() -> dict[str, Any]:
    """What a replay must match for bitwise equality: versions, threads, capability, flags."""
    import torch

    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "mkldnn": torch.backends.mkldnn.enabled,
        "env": {k: os.environ.get(k, "") for k in PINNED},
    }
