"""Train a small neural network (an MLP) on the two-spirals problem, in plain Python.

Runs as a pasar job (``pasar launch examples/train/train.yaml``) or locally
(``python examples/train/train.py``). It needs nothing but the standard library, so it runs
on any provider whose sandbox has a Python.

**The data is synthetic, and says so:** two interleaved spirals of points in the plane, one per
class, generated deterministically from ``SEED`` with a little noise — the classic benchmark of
Lang & Witbrock (1988). No straight line separates them (the script prints what a linear
classifier scores on the same split, for comparison), so a high test accuracy is learnt, not
given. The points are split into a training set and a held-out test set that the network never
trains on; the accuracy printed and written to ``metrics.json`` is measured on the test set.

Outputs: ``metrics.json`` (accuracy, loss curve, sizes, seed) and ``model.json`` (the weights).
Environment: ``SEED``, ``POINTS`` (per class), ``HIDDEN``, ``EPOCHS``, ``LR``.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time

Sample = tuple[float, float, int]
Matrix = list[list[float]]


def spirals(points_per_class: int, rng: random.Random, noise: float = 0.08) -> list[Sample]:
    """Two spirals of 1.5 turns each; class 1 is class 0 rotated by half a turn."""
    data: list[Sample] = []
    for i in range(points_per_class):
        t = 0.25 + 2.75 * math.pi * i / points_per_class  # angle along the spiral
        r = t / (3.0 * math.pi)
        for label, sign in ((0, 1.0), (1, -1.0)):
            x = sign * r * math.cos(t) + rng.gauss(0.0, noise) * r
            y = sign * r * math.sin(t) + rng.gauss(0.0, noise) * r
            data.append((x, y, label))
    rng.shuffle(data)
    return data


class MLP:
    """2 inputs → two tanh layers of ``hidden`` units → one sigmoid output; trained with SGD."""

    def __init__(self, hidden: int, rng: random.Random) -> None:
        def layer(n_in: int, n_out: int) -> Matrix:
            scale = 1.0 / math.sqrt(n_in)
            return [[rng.gauss(0.0, scale) for _ in range(n_in)] for _ in range(n_out)]

        self.w1, self.b1 = layer(2, hidden), [0.0] * hidden
        self.w2, self.b2 = layer(hidden, hidden), [0.0] * hidden
        self.w3, self.b3 = layer(hidden, 1)[0], 0.0

    def forward(self, x: list[float]) -> tuple[list[float], list[float], float]:
        h1 = [
            math.tanh(b + w[0] * x[0] + w[1] * x[1]) for w, b in zip(self.w1, self.b1, strict=True)
        ]
        h2 = [
            math.tanh(b + sum(wi * hi for wi, hi in zip(w, h1, strict=True)))
            for w, b in zip(self.w2, self.b2, strict=True)
        ]
        z = self.b3 + sum(wi * hi for wi, hi in zip(self.w3, h2, strict=True))
        p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
        return h1, h2, p

    def predict(self, x: list[float]) -> int:
        return int(self.forward(x)[2] >= 0.5)

    def step(self, x: list[float], label: int, lr: float) -> float:
        """One SGD step on one sample (cross-entropy loss); returns the loss."""
        h1, h2, p = self.forward(x)
        d3 = p - label  # dLoss/dz for sigmoid + cross-entropy
        d2 = [d3 * w * (1.0 - h * h) for w, h in zip(self.w3, h2, strict=True)]
        d1 = [
            sum(d2[j] * self.w2[j][i] for j in range(len(d2))) * (1.0 - h1[i] * h1[i])
            for i in range(len(h1))
        ]
        self.w3 = [w - lr * d3 * h for w, h in zip(self.w3, h2, strict=True)]
        self.b3 -= lr * d3
        for j, row in enumerate(self.w2):
            g = lr * d2[j]
            self.w2[j] = [w - g * h for w, h in zip(row, h1, strict=True)]
            self.b2[j] -= g
        for i, row in enumerate(self.w1):
            g = lr * d1[i]
            row[0] -= g * x[0]
            row[1] -= g * x[1]
            self.b1[i] -= g
        return -math.log(max(1e-12, p if label else 1.0 - p))

    def to_json(self) -> dict[str, object]:
        return {
            "w1": self.w1,
            "b1": self.b1,
            "w2": self.w2,
            "b2": self.b2,
            "w3": self.w3,
            "b3": self.b3,
        }


def accuracy(model: MLP, data: list[Sample]) -> float:
    return sum(model.predict([x, y]) == label for x, y, label in data) / len(data)


def linear_baseline(train: list[Sample], test: list[Sample], epochs: int = 50) -> float:
    """Test accuracy of logistic regression (a straight line) on the same split: the bar the
    network has to clear to show it learnt something a line cannot."""
    w, b = [0.0, 0.0], 0.0
    for _ in range(epochs):
        for x, y, label in train:
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, w[0] * x + w[1] * y + b))))
            g = 0.1 * (p - label)
            w = [w[0] - g * x, w[1] - g * y]
            b -= g
    return sum(int(w[0] * x + w[1] * y + b >= 0) == label for x, y, label in test) / len(test)


def main() -> int:
    seed = int(os.environ.get("SEED", "7"))
    points = int(os.environ.get("POINTS", "200"))
    hidden = int(os.environ.get("HIDDEN", "24"))
    epochs = int(os.environ.get("EPOCHS", "150"))
    lr = float(os.environ.get("LR", "0.1"))
    rng = random.Random(seed)
    data = spirals(points, rng)
    cut = len(data) * 3 // 4
    train, test = data[:cut], data[cut:]
    print(
        f"data: two spirals (synthetic, seed {seed}): {len(train)} training points, "
        f"{len(test)} held-out test points",
        flush=True,
    )
    baseline = linear_baseline(train, test)
    print(f"a linear classifier on the same split: {baseline:.1%} test accuracy", flush=True)
    print(
        f"model: MLP 2-{hidden}-{hidden}-1, tanh, SGD lr {lr} (then {lr * 0.3:g}), {epochs} epochs",
        flush=True,
    )
    model = MLP(hidden, rng)
    start = time.monotonic()
    curve: list[float] = []
    for epoch in range(1, epochs + 1):
        rng.shuffle(train)
        rate = lr if epoch <= epochs * 4 // 5 else lr * 0.3  # smaller steps to finish
        loss = sum(model.step([x, y], label, rate) for x, y, label in train) / len(train)
        curve.append(round(loss, 5))
        if epoch % 25 == 0 or epoch == 1:
            print(
                f"epoch {epoch:3d}  loss {loss:.4f}  train accuracy {accuracy(model, train):.1%}",
                flush=True,
            )
    test_acc = accuracy(model, test)
    seconds = time.monotonic() - start
    print(f"test accuracy {test_acc:.1%} on {len(test)} held-out points ({seconds:.1f} s)")
    metrics = {
        "data": "two spirals, synthetic",
        "seed": seed,
        "train_points": len(train),
        "test_points": len(test),
        "model": f"MLP 2-{hidden}-{hidden}-1",
        "epochs": epochs,
        "learning_rate": lr,
        "test_accuracy": test_acc,
        "train_accuracy": accuracy(model, train),
        "linear_baseline_test_accuracy": baseline,
        "loss_curve": curve,
        "seconds": round(seconds, 2),
    }
    with open("metrics.json", "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=1)
    with open("model.json", "w", encoding="utf-8") as f:
        json.dump(model.to_json(), f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
