"""A small training job under the proof-of-learning harness (issue 16): an MLP learns the two
spirals, a synthetic data set generated from the seed (no download: 512 points).

    python examples/pol_train.py train --out pol-out [--steps 200] [--every 20] [--seed 7]
    python examples/pol_train.py replay --out pol-out START END

``train`` writes the manifest, checkpoints every ``--every`` steps, the hash of every step
and their Merkle root; ``replay`` re-runs steps START+1..END from the checkpoint at START and
prints how many of their hashes match the committed ones. It runs the same way as a pasar job.
"""

from __future__ import annotations

# isort: off
import pasar.train as pt  # first: it pins the determinism environment torch reads at import

# isort: on
import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn import functional

from pasar.core.errors import PasarError

POINTS = 512
BATCH = 64


def spirals(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved spirals with a little noise, from ``generator`` only."""
    n = POINTS // 2
    t = torch.linspace(0.25, 3 * math.pi, n)
    noise = 0.1 * torch.randn(2, n, 2, generator=generator)
    a = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) / 10 + noise[0]
    b = -torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) / 10 + noise[1]
    return torch.cat([a, b]), torch.cat(
        [torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)]
    )


def make_build(lr: float = 0.01, width: int = 32, depth: int = 2) -> Callable[[int], pt.Setup]:
    """The job's ``build`` for a learning rate and an MLP of ``depth`` hidden layers of
    ``width`` (the defaults are the example; a larger ``lr`` or a deeper net drifts further
    between environments: benchmarks/bench_pol_tolerance.py's harder job)."""

    def build(seed: int) -> pt.Setup:
        x, y = spirals(torch.Generator().manual_seed(seed))
        layers: list[torch.nn.Module] = [torch.nn.Linear(2, width), torch.nn.Tanh()]
        for _ in range(depth - 1):
            layers += [torch.nn.Linear(width, width), torch.nn.Tanh()]
        model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 2))
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)

        def batches(step: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            index = torch.randint(0, len(x), (BATCH,), generator=generator)
            return x[index], y[index]

        def loss(net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            inputs, targets = batch
            return functional.cross_entropy(net(inputs), targets)

        config: dict[str, object] = {
            "batch_size": BATCH, "lr": lr, "data": f"two spirals, {POINTS} points, seeded",
        }  # fmt: skip
        if (width, depth) != (32, 2):
            config["mlp"] = {"width": width, "depth": depth}
        return pt.Setup(model, optimizer, batches, loss, config=config)

    return build


build = make_build()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["train", "replay"])
    parser.add_argument("segment", nargs="*", type=int)
    parser.add_argument("--out", type=Path, default=Path("pol-out"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=2)
    opts = parser.parse_intermixed_args()
    build = make_build(opts.lr, opts.width, opts.depth)
    if opts.action == "train":
        run = pt.train(
            build, steps=opts.steps, checkpoint_every=opts.every, seed=opts.seed, out=opts.out,
            script=__file__,
        )  # fmt: skip
        print(
            json.dumps({"root": run.root, "first_loss": run.losses[0], "last_loss": run.losses[-1]})
        )
    else:
        start, end = opts.segment
        committed = json.loads((opts.out / "step_hashes.json").read_text())["hashes"]
        again = pt.replay(build, opts.out, start, end)
        same = [a == b for a, b in zip(again, committed[start + 1 : end + 1], strict=True)]
        first_bad = next((start + 1 + i for i, ok in enumerate(same) if not ok), None)
        print(json.dumps({"matched": sum(same), "of": len(same), "first_mismatch": first_bad}))


if __name__ == "__main__":
    try:
        main()
    except PasarError as err:  # a refusal (a bad checkpoint, an unpinned environment): one line
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
