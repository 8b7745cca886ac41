"""The fields of the offer query language, declared in one table, and how offers are read.

Why one table: the parser, the evaluator, ``explain()``, the sort keys and the CLI's field help
all read :data:`FIELDS`, so a new field is one line here and nothing else changes.

Reading an offer is deliberately forgiving *in shape* and strict *in value*: an offer is a
mapping (or any object with attributes) whose values may arrive as ``Money``, exact numbers or
strings, but never floats. A value that is missing, ``None``, a float or otherwise unreadable is
**absent**, and an absent value matches no condition at all — not even ``!=`` or ``notin`` — so
a half-described offer is never listed by accident and never crashes a listing.

Units are those a renter types: GB for memory and disk, GFLOP/s for ``score``, dollars (units of
the offer's currency) per hour for ``dph``. The market's offer view presents values in these
units under these names (or an alias).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Literal

from pasar.core.money import MICROS_PER_UNIT, Money


class FieldType(StrEnum):
    """What a field holds, which decides its operators, literals and comparisons."""

    STR = "str"
    INT = "int"
    NUMBER = "number"  # exact decimal (GB, GFLOP/s, reputation points)
    RATIO = "ratio"  # exact decimal in [0, 1]; "98%" is accepted
    MONEY = "money"  # an amount in the offer's currency
    MONEY_PER_HOUR = "money_per_hour"  # an amount per hour in the offer's currency
    BOOL = "bool"
    LIST = "list_of_str"  # a set of strings; "=" means "contains"


NUMERIC_TYPES = frozenset(
    {FieldType.INT, FieldType.NUMBER, FieldType.RATIO, FieldType.MONEY, FieldType.MONEY_PER_HOUR}
)
ORDER_OPS = ("<", "<=", ">", ">=")
ALL_OPS = ("=", "!=", "<", "<=", ">", ">=", "in", "notin")


def ops_for(ftype: FieldType) -> tuple[str, ...]:
    """The operators a field of this type accepts (``region > eu`` has no meaning)."""
    if ftype in NUMERIC_TYPES:
        return ALL_OPS
    if ftype is FieldType.BOOL:
        return ("=", "!=")
    return ("=", "!=", "in", "notin")


# How strings compare: "model" uses the caller's GPU-model normalizer, so "a100-sxm4-80gb" and
# "A100" can be the same card; "casefold" ignores case (regions, interfaces); "exact" is for ids.
Fold = Literal["exact", "casefold", "model"]


@dataclass(frozen=True)
class FieldSpec:
    """One queryable field of an offer."""

    name: str
    type: FieldType
    description: str
    aliases: tuple[str, ...] = ()
    default: tuple[str, object] | None = None  # (op, value) applied unless the query names it
    fold: Fold = "casefold"
    derive: Callable[[Callable[[str], object], FieldSpec], object] | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        """The names looked up in an offer, canonical name first."""
        return (self.name, *self.aliases)


# --- exact readers for offer values -----------------------------------------------------------

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_AMOUNT = re.compile(
    r"\s*(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?P<cur>[A-Za-z][A-Za-z0-9]{1,9})?\s*"
)
_MAX_NUMBER_LEN = 64


def decimal_literal(text: str) -> Decimal | None:
    """``text`` as an exact Decimal if it is a plain decimal (no exponent, not too long)."""
    if len(text) > _MAX_NUMBER_LEN or not _DECIMAL.fullmatch(text):
        return None
    return Decimal(text)


def micros_of(number: str) -> int | None:
    """A plain decimal string as an exact count of micro-units, or None past six decimals."""
    sign = -1 if number.startswith("-") else 1
    digits = number.lstrip("+-")
    whole, _, frac = digits.partition(".")
    if len(frac) > 6:
        return None
    return sign * (int(whole or "0") * MICROS_PER_UNIT + int(frac.ljust(6, "0")))


def as_fraction(value: object) -> Fraction | None:
    """An exact number from an int, Fraction, finite Decimal or decimal string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Fraction):
        return Fraction(value)
    if isinstance(value, Decimal):
        return Fraction(value) if value.is_finite() else None
    if isinstance(value, str):
        dec = decimal_literal(value.strip())
        return None if dec is None else Fraction(dec)
    return None


@dataclass(frozen=True)
class ExactPrice:
    """An offer's price as read for comparison: micro-units as a Fraction, currency if known.

    A Fraction (not Money's int) so that derived prices such as ``dph / num_gpus`` stay exact.
    """

    micros: Fraction
    currency: str | None


def as_price(value: object) -> ExactPrice | None:
    """An exact price from Money, ``"1.5 USDC"``/``"1.5"`` or a Decimal number of units.

    Ints are refused: whether ``3`` means units or micro-units cannot be told, so an offer must
    say it with Money or a string.
    """
    if isinstance(value, ExactPrice):
        return value
    if isinstance(value, Money):
        return ExactPrice(Fraction(value.micros), value.currency)
    if isinstance(value, Decimal):
        return ExactPrice(Fraction(value) * MICROS_PER_UNIT, None) if value.is_finite() else None
    if isinstance(value, str) and len(value) <= 2 * _MAX_NUMBER_LEN:
        match = _AMOUNT.fullmatch(value)
        if match is None or len(match.group("num")) > _MAX_NUMBER_LEN:
            return None
        cur = match.group("cur")
        micros = Fraction(Decimal(match.group("num"))) * MICROS_PER_UNIT
        return ExactPrice(micros, cur.upper() if cur else None)
    return None


def as_strs(value: object) -> tuple[str, ...] | None:
    """A list field's items: a list/tuple/set of strings, or one string as a list of one."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple | set | frozenset) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


# --- derived fields ----------------------------------------------------------------------------


def _derive_total_gpu_ram(get: Callable[[str], object], _spec: FieldSpec) -> object:
    per_gpu, count = as_fraction(get("gpu_ram")), as_fraction(get("num_gpus"))
    if per_gpu is None or count is None:
        return None
    return per_gpu * count


def _derive_dph_per_gpu(get: Callable[[str], object], _spec: FieldSpec) -> object:
    price, count = as_price(get("dph")), as_fraction(get("num_gpus"))
    if price is None or count is None or count <= 0:
        return None
    return ExactPrice(price.micros / count, price.currency)


# --- the table ---------------------------------------------------------------------------------

FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "gpu_name",
        FieldType.STR,
        "GPU model, compared through the model normalizer",
        aliases=("gpu_model",),
        fold="model",
    ),
    FieldSpec("num_gpus", FieldType.INT, "number of GPUs in the offer", aliases=("gpu_count",)),
    FieldSpec("gpu_ram", FieldType.NUMBER, "memory per GPU, GB", aliases=("vram",)),
    FieldSpec(
        "total_gpu_ram",
        FieldType.NUMBER,
        "memory of all GPUs together, GB",
        derive=_derive_total_gpu_ram,
    ),
    FieldSpec("cpus", FieldType.INT, "CPU cores", aliases=("cpu_cores",)),
    FieldSpec("memory", FieldType.NUMBER, "system memory, GB", aliases=("ram", "cpu_ram")),
    FieldSpec("disk", FieldType.NUMBER, "disk space, GB", aliases=("disk_space",)),
    FieldSpec(
        "dph",
        FieldType.MONEY_PER_HOUR,
        "price per hour of the whole offer, in the offer's currency",
        aliases=("price",),
    ),
    FieldSpec(
        "dph_per_gpu",
        FieldType.MONEY_PER_HOUR,
        "price per hour of one GPU",
        derive=_derive_dph_per_gpu,
    ),
    FieldSpec("reliability", FieldType.RATIO, "share of leases completed, 0..1 (or 98%)"),
    FieldSpec("reputation", FieldType.NUMBER, "reputation score"),
    FieldSpec("score", FieldType.NUMBER, "benchmark score, GFLOP/s", aliases=("gflops",)),
    FieldSpec("region", FieldType.STR, "region code, e.g. eu or us-east", aliases=("geolocation",)),
    FieldSpec(
        "limits",
        FieldType.STR,
        "how job limits hold: cgroup-v2, cgroup-v1 (per job), rlimit (per process), docker",
        aliases=("enforcement",),
    ),
    FieldSpec(
        "provider", FieldType.STR, "provider account id", aliases=("provider_id",), fold="exact"
    ),
    FieldSpec("verified", FieldType.BOOL, "attributes signed by an auditor"),
    FieldSpec("rentable", FieldType.BOOL, "can take a lease now", default=("=", True)),
    FieldSpec("stake", FieldType.MONEY, "provider stake, in the offer's currency"),
    FieldSpec(
        "interface",
        FieldType.LIST,
        "GPU interconnects, e.g. pcie, sxm, nvlink",
        aliases=("interfaces",),
    ),
    FieldSpec(
        "runtime",
        FieldType.LIST,
        "job runtimes offered: sandbox, docker, process",
        aliases=("runtimes",),
    ),
)

BY_NAME: dict[str, FieldSpec] = {name: spec for spec in FIELDS for name in spec.keys}

# ``gpu=A100:2`` is a shorthand, not a field: gpu_name=A100 and num_gpus>=2.
SHORTHAND_GPU = "gpu"


def known_names() -> list[str]:
    """Every name a query may start a term with (for "did you mean" suggestions)."""
    return [*BY_NAME, SHORTHAND_GPU]


def describe_fields() -> list[dict[str, object]]:
    """The table as JSON-able rows, for ``pasar offers --fields`` and API docs."""
    rows: list[dict[str, object]] = []
    for spec in FIELDS:
        row: dict[str, object] = {
            "name": spec.name,
            "type": str(spec.type),
            "aliases": list(spec.aliases),
            "operators": list(ops_for(spec.type)),
            "description": spec.description,
        }
        if spec.default is not None:
            op, value = spec.default
            row["default"] = f"{spec.name}{op}{str(value).lower()}"
        rows.append(row)
    return rows


def read(offer: object, spec: FieldSpec) -> object:
    """The raw value of ``spec`` in ``offer`` (mapping or object), derived if absent, or None."""

    def get(name: str) -> object:
        keys = BY_NAME[name].keys
        if isinstance(offer, Mapping):
            for key in keys:
                value = offer.get(key)
                if value is not None:
                    return value
            return None
        for key in keys:
            value = getattr(offer, key, None)
            if value is not None:
                return value
        return None

    value = get(spec.name)
    if value is None and spec.derive is not None:
        return spec.derive(get, spec)
    return value
