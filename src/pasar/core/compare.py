"""How a re-run's output is compared with the provider's: exactly, or within a tolerance.

Why a tolerance: floating-point results differ in their last bits between CPUs, BLAS builds
and thread counts, so two honest runs of a numerical job need not be byte-equal. A spec says,
per output, ``compare: {out/loss.csv: "numeric:rtol=1e-5"}`` (``atol=`` too); every output it
does not name is compared exactly (by its sha256, through the result's Merkle root).

A tolerance only makes sense for numbers: it applies to text files of numbers (``.csv``,
``.tsv``, ``.txt``, ``.json``, ``.dat``) and NumPy arrays (``.npy``), and a spec that puts one on
any other file is refused at order time. :func:`numbers_match` is what a verifier runs on the
two files' bytes: both parse to the same count of numbers, and each pair is within
``atol + rtol × |expected|``; a non-numeric token where a number should be is a mismatch.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

NUMERIC_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".dat", ".npy")
_NUMBER_SPLIT = re.compile(r"[\s,;\[\]{}:]+")


class CompareError(ValueError):
    """A compare rule that cannot be read; the message says what is expected."""


@dataclass(frozen=True)
class CompareRule:
    """``numeric`` with its tolerances, or ``exact``."""

    kind: str  # "exact" | "numeric"
    rtol: Decimal = Decimal(0)
    atol: Decimal = Decimal(0)

    def text(self) -> str:
        if self.kind == "exact":
            return "exact"
        parts = [f"rtol={self.rtol}"] + ([f"atol={self.atol}"] if self.atol else [])
        return "numeric:" + ",".join(parts)


def parse_rule(text: object) -> CompareRule:
    """``"exact"`` or ``"numeric:rtol=1e-5[,atol=1e-8]"``."""
    expected = 'expected "exact" or "numeric:rtol=1e-5" (optionally ",atol=1e-8")'
    if not isinstance(text, str):
        raise CompareError(f"{expected}; found {text!r}")
    kind, _, args = text.strip().partition(":")
    if kind == "exact" and not args:
        return CompareRule("exact")
    if kind != "numeric" or not args:
        raise CompareError(f"{expected}; found {text!r}")
    values: dict[str, Decimal] = {}
    for part in args.split(","):
        key, _, raw = part.strip().partition("=")
        if key not in ("rtol", "atol") or key in values:
            raise CompareError(f"{expected}; found {text!r}")
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise CompareError(f"{key} must be a number; found {raw!r}") from None
        if not value.is_finite() or value < 0:
            raise CompareError(f"{key} must be a finite number >= 0; found {raw!r}")
        values[key] = value
    return CompareRule("numeric", values.get("rtol", Decimal(0)), values.get("atol", Decimal(0)))


def is_numeric_file(path: str) -> bool:
    return path.lower().endswith(NUMERIC_SUFFIXES)


def _numbers(data: bytes, path: str) -> list[float] | None:
    """The numbers in a file, in order, or None when it is not a file of numbers."""
    if path.lower().endswith(".npy"):
        import numpy as np  # numpy is a dependency (the CPU benchmark); kept local

        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError):
            return None
        if array.dtype.kind not in "iuf":
            return None
        return [float(x) for x in array.ravel()]
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    if path.lower().endswith(".json"):
        try:
            text = " ".join(str(x) for x in _flatten(json.loads(text)))
        except (ValueError, TypeError):
            return None
    out: list[float] = []
    for token in _NUMBER_SPLIT.split(text):
        if not token:
            continue
        try:
            out.append(float(token))
        except ValueError:
            return None
    return out


def _flatten(value: object) -> list[object]:
    if isinstance(value, list):
        return [x for item in value for x in _flatten(item)]
    if isinstance(value, dict):
        return [x for key in sorted(value) for x in _flatten(value[key])]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    return [value]


def numbers_match(expected: bytes, got: bytes, path: str, rule: CompareRule) -> bool:
    """Whether ``got`` equals ``expected`` under ``rule`` (bytes, or numbers within tolerance)."""
    if expected == got:
        return True
    if rule.kind == "exact":
        return False
    a, b = _numbers(expected, path), _numbers(got, path)
    if a is None or b is None or len(a) != len(b):
        return False
    rtol, atol = float(rule.rtol), float(rule.atol)
    for x, y in zip(a, b, strict=True):
        if math.isnan(x) or math.isnan(y):
            if not (math.isnan(x) and math.isnan(y)):
                return False
            continue
        if abs(x - y) > atol + rtol * abs(x):
            return False
    return True
