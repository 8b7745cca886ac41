"""The values a parsed offer query is made of: money literals, conditions, sort keys.

Kept apart from the parser and the evaluator so that both can use them without depending on
each other; :mod:`pasar.core.query` re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

Normalizer = Callable[[str], str]
STOP_CHARS = frozenset("[],\"'=!<>")  # characters that end a bare word (besides whitespace)


@dataclass(frozen=True)
class Price:
    """A money literal: exact micro-units and, when written (``1.5USDC``), a currency."""

    micros: int
    currency: str | None = None

    def __str__(self) -> str:
        sign = "-" if self.micros < 0 else ""
        whole, frac = divmod(abs(self.micros), 1_000_000)
        frac_s = f"{frac:06d}".rstrip("0")
        amount = f"{sign}{whole}" + (f".{frac_s}" if frac_s else "")
        return amount + (self.currency or "")


Scalar = str | int | Decimal | bool | Price
Value = Scalar | tuple[Scalar, ...]


def is_bare(text: str) -> bool:
    return bool(text) and not any(c.isspace() or c in STOP_CHARS for c in text)


def render_scalar(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str):
        if is_bare(value) and value.lower() != "any":
            return value
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


@dataclass(frozen=True)
class Condition:
    """One term: ``field op value`` with ``field`` canonical and ``value`` typed and exact."""

    field: str
    op: str
    value: Value

    def render(self) -> str:
        if isinstance(self.value, tuple):
            items = ",".join(render_scalar(v) for v in self.value)
            return f"{self.field} {self.op} [{items}]"
        return f"{self.field}{self.op}{render_scalar(self.value)}"

    def __str__(self) -> str:
        return self.render()


@dataclass(frozen=True)
class OrderKey:
    """One sort key: a canonical field name and its direction."""

    field: str
    descending: bool = False

    def render(self) -> str:
        return self.field + ("-" if self.descending else "")
