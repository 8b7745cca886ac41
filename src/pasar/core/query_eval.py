"""Evaluating a parsed offer query: conditions compiled once into closures, and sort keys.

A query is parsed once and tested against many offers (thousands per request on a busy
market), so each condition becomes a reader (offer → comparable value, or None when the offer
lacks it) and a tester (value → bool) built once.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from pasar.core.errors import PasarError
from pasar.core.query_fields import (
    BY_NAME,
    FieldSpec,
    FieldType,
    as_fraction,
    as_price,
    as_strs,
    ops_for,
    read,
)
from pasar.core.query_values import Condition, Normalizer, Price, Scalar

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _folder(spec: FieldSpec, normalize: Normalizer | None) -> Callable[[str], str]:
    if spec.fold == "exact":
        return str
    if spec.fold == "model" and normalize is not None:
        return normalize
    return str.casefold


def reader_for(spec: FieldSpec, normalize: Normalizer | None) -> Callable[[object], Any]:
    """offer → the field's comparable value, or None when absent or unreadable."""
    ftype = spec.type
    fold = _folder(spec, normalize)

    def read_str(offer: object) -> Any:
        raw = read(offer, spec)
        if not isinstance(raw, str):
            return None
        try:
            return fold(raw)
        except (PasarError, ValueError, KeyError, TypeError):
            return None  # a model the normalizer rejects matches nothing

    def read_list(offer: object) -> Any:
        items = as_strs(read(offer, spec))
        if items is None:
            return None
        try:
            return frozenset(fold(i) for i in items)
        except (PasarError, ValueError, KeyError, TypeError):
            return None

    def read_bool(offer: object) -> Any:
        raw = read(offer, spec)
        return raw if isinstance(raw, bool) else None

    if ftype is FieldType.STR:
        return read_str
    if ftype is FieldType.LIST:
        return read_list
    if ftype is FieldType.BOOL:
        return read_bool
    if ftype in (FieldType.MONEY, FieldType.MONEY_PER_HOUR):
        return lambda offer: as_price(read(offer, spec))
    return lambda offer: as_fraction(read(offer, spec))


def _exact(spec: FieldSpec, value: Scalar, fold: Callable[[str], str]) -> Any:
    """A literal in the form the reader produces, so comparison is plain ``==``/``<``."""
    if spec.type in (FieldType.STR, FieldType.LIST):
        return fold(str(value))
    if isinstance(value, Price):
        return value
    if isinstance(value, bool):
        return value
    return Fraction(value)


def _tester(
    cond: Condition, spec: FieldSpec, normalize: Normalizer | None
) -> Callable[[Any], bool]:
    """comparable offer value → does the condition hold (the value is never None here)."""
    fold = _folder(spec, normalize)
    op = cond.op
    if isinstance(cond.value, tuple):
        targets = [_exact(spec, v, fold) for v in cond.value]
    else:
        targets = [_exact(spec, cond.value, fold)]
    positive = op not in ("!=", "notin")

    if spec.type in (FieldType.MONEY, FieldType.MONEY_PER_HOUR):
        prices: list[Price] = targets

        def same(p: Price, v: Any) -> bool:
            return p.currency is None or p.currency == v.currency

        if op in ("=", "!=", "in", "notin"):
            return lambda v: any(same(p, v) and v.micros == p.micros for p in prices) == positive
        cmp, price = _CMP[op], prices[0]
        return lambda v: same(price, v) and cmp(v.micros, price.micros)

    if spec.type is FieldType.LIST:
        wanted = frozenset(targets)
        return lambda v: bool(v & wanted) == positive

    if spec.fold == "model" and op in ("=", "!=", "in", "notin"):
        # A model name selects every more specific model: "A100" matches "A100-80GB" and
        # "A100-80GB-SXM", as a job spec's "A100" accepts any A100. Canonical names are
        # family-VRAM-interface joined by "-" (no family contains one), so a prefix up to a
        # "-" is exactly GpuSelector's rule.
        def selects(v: str) -> bool:
            return any(v == t or v.startswith(t + "-") for t in targets)

        return lambda v: selects(v) == positive
    if op in ("in", "notin"):
        pool = frozenset(targets)
        return lambda v: (v in pool) == positive
    cmp, target = _CMP[op], targets[0]
    return lambda v: cmp(v, target)


def compile_condition(cond: Condition, normalize: Normalizer | None) -> Callable[[object], bool]:
    spec = BY_NAME.get(cond.field)
    if spec is None or spec.name != cond.field or cond.op not in ops_for(spec.type):
        raise PasarError(f"invalid condition {cond.render()!r}", code="invalid_query")
    reader, test = reader_for(spec, normalize), _tester(cond, spec, normalize)

    def predicate(offer: object) -> bool:
        value = reader(offer)
        return value is not None and test(value)

    return predicate


class SortItem:
    """One key of one offer: absent values last, direction applied, no negation needed."""

    __slots__ = ("descending", "value")

    def __init__(self, value: Any, descending: bool) -> None:
        self.value = value
        self.descending = descending

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SortItem) and self.value == other.value

    def __hash__(self) -> int:  # pragma: no cover - sort keys are never hashed
        return hash(self.value)

    def __lt__(self, other: SortItem) -> bool:
        if self.value is None or other.value is None:
            return self.value is not None and other.value is None
        if self.descending:
            return bool(other.value < self.value)
        return bool(self.value < other.value)


def sort_value(spec: FieldSpec, reader: Callable[[object], Any]) -> Callable[[object], Any]:
    if spec.type in (FieldType.MONEY, FieldType.MONEY_PER_HOUR):

        def price(offer: object) -> Any:
            v = reader(offer)
            return None if v is None else (v.micros, v.currency or "")

        return price
    if spec.type is FieldType.LIST:
        return lambda offer: None if (v := reader(offer)) is None else tuple(sorted(v))
    return reader
