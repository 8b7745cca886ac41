"""Proof-of-learning training harness (issue 16; PyTorch is the ``ml`` extra).

Importing this package pins the determinism environment torch reads when it loads
(:mod:`pasar.train.environment`) — so a training script imports it first, before torch. Where
torch is already loaded (a test process, a notebook), the harness refuses to train unless the
pinned variables were set before torch loaded (by whoever started the process).
"""

from __future__ import annotations

import sys

from pasar.train.environment import pin_environment

if "torch" not in sys.modules:
    pin_environment()

from pasar.train.harness import Run, Setup, derive_seed, replay, train

__all__ = ["Run", "Setup", "derive_seed", "replay", "train"]
