"""The scalar field types of a job spec: quantities, money, durations, names, paths, env vars,
verification policies — each parsed strictly, with the error a person can act on.

Split from :mod:`pasar.core.spec` (the models and the loading): a field type here knows nothing
of the spec it is in; it turns one YAML value into one normalized value or raises a
``PydanticCustomError`` whose hint :mod:`pasar.core.spec` carries into its :class:`SpecError`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, NoReturn, get_args

from pydantic import AfterValidator, PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from pasar.core.compare import CompareError, parse_rule
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.mounts import MountRefusedError, is_absolute, mount_destination, nested
from pasar.core.resources import fmt_qty
from pasar.core.spec_yaml import describe_value

Pricing = Literal["auction", "book", "performance", "tender", "stake"]
Privacy = Literal["none", "sealed"]
ClusterKind = Literal["ray"]  # a distributed engine started across a multi-node job's nodes
NodeLoss = Literal["fail", "replace"]  # what a multi-node job does when it loses a node
# where a multi-node job's nodes go (Ray placement groups' names): every node on a provider of
# its own (strict_spread, the default), or several on one provider when it ranks best (spread)
Placement = Literal["strict_spread", "spread"]
VERIFICATION_KINDS = ("receipt", "replicate", "pol", "approve", "tee")
SECONDS_PER_HOUR = 3600


def refuse(code: str, message: str, hint: str | None = None) -> NoReturn:
    """Raise inside a validator so pydantic collects it with its location, keeping our code."""
    raise PydanticCustomError(code, "{message}", {"message": message, "hint": hint})


def nearest(word: str, options: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word.lower(), list(options), n=1, cutoff=0.6)
    return close[0] if close else None


def choice(options: Sequence[str], what: str) -> Callable[[object], object]:
    """A before-validator accepting one of ``options`` and suggesting the nearest on a typo."""

    def check(value: object) -> object:
        if isinstance(value, str) and value in options:
            return value
        near = nearest(value, options) if isinstance(value, str) else None
        refuse(
            "invalid_choice",
            f"expected {what}: one of {', '.join(options)}; found {describe_value(value)}",
            f"did you mean {near!r}?" if near else None,
        )

    return check


def placement_choice(value: object) -> object:
    """``placement:`` as Ray spells its strategies too (``STRICT_SPREAD`` is ``strict_spread``);
    Ray's PACK and STRICT_PACK are refused with what comes nearest, rather than taken as a typo."""
    options = get_args(Placement)
    if isinstance(value, str) and value.strip().lower() in options:
        return value.strip().lower()
    if isinstance(value, str) and value.strip().lower() in ("pack", "strict_pack"):
        refuse(
            "invalid_choice",
            f"placement {value!r} is not offered: a gang is placed by strict_spread (a provider "
            "per node) or spread (several nodes on one provider where it ranks best)",
            "use placement: spread to let nodes share a provider",
        )
    near = nearest(value, options) if isinstance(value, str) else None
    refuse(
        "invalid_choice",
        f"expected a placement: one of {', '.join(options)}; found {describe_value(value)}",
        f"did you mean {near!r}?"
        if near
        else "strict_spread (the default) puts each node on a provider of its own; spread lets "
        "several nodes share one",
    )


# -- scalar field types ----------------------------------------------------------------------------

_QTY = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>GB|G)?\s*(?P<plus>\+)?\s*$", re.I)


def _quantity(
    what: str, example: str, *, unit: bool, whole: bool = False
) -> Callable[[object], Decimal]:
    """A before-validator for ``4``, ``"4+"``, ``"16GB+"``, ``"0.5"`` → an exact Decimal."""

    def check(value: object) -> Decimal:
        found = describe_value(value)
        expected = f"expected {what} such as {example}"
        if isinstance(value, bool) or value is None:
            refuse("invalid_quantity", f"{expected}; found {found}")
        if isinstance(value, Decimal):
            dec = value
        elif isinstance(value, int):
            dec = Decimal(value)
        elif isinstance(value, float):
            dec = Decimal(repr(value))  # 0.5 is a fine amount of memory, unlike of money
        elif isinstance(value, str) and (m := _QTY.match(value)) and (unit or not m["unit"]):
            dec = Decimal(m["num"])
        else:
            refuse("invalid_quantity", f"{expected}; found {found}")
        if not dec.is_finite() or dec < 0:
            refuse("invalid_quantity", f"{expected}; found {found}")
        if whole and dec != dec.to_integral_value():
            refuse("invalid_quantity", f"{expected} (a whole number); found {found}")
        return dec

    return check


def _qty_json(value: Decimal) -> int | str:
    """Whole amounts as JSON integers; fractions as exact decimal text (never a float)."""
    return int(value) if value == value.to_integral_value() else fmt_qty(value)


_NUMBER_OR_TEXT: dict[str, Any] = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
_QTY_JSON = PlainSerializer(_qty_json, return_type=int | str)

Cpus = Annotated[
    Decimal,
    PlainValidator(_quantity("a number of CPUs", "4 or 4+", unit=False)),
    _QTY_JSON,
    WithJsonSchema(_NUMBER_OR_TEXT),
]
Gigabytes = Annotated[
    Decimal,
    PlainValidator(_quantity("a size in GB", "16 or 16+", unit=True)),
    _QTY_JSON,
    WithJsonSchema(_NUMBER_OR_TEXT),
]


def _vram(value: object) -> int:
    return int(_quantity("a VRAM size in GB", "24+", unit=True, whole=True)(value))


VramGb = Annotated[int, PlainValidator(_vram), WithJsonSchema(_NUMBER_OR_TEXT)]


def _money(value: object) -> Money:
    if isinstance(value, float):
        refuse(
            "float_money",
            f"expected money written as text with its currency; found {describe_value(value)}, "
            "a float, which cannot hold an exact price",
            f'write it as a quoted string with the currency, e.g. "{value} USDC"',
        )
    try:
        money = Money.parse(value)
    except PasarError as err:
        refuse(err.code, f'{err.message}; expected money such as "1.5 USDC"', err.hint)
    if money.micros <= 0:
        refuse("invalid_amount", f"expected a price above zero; found {money}")
    return money


MoneyField = Annotated[
    Money,
    PlainValidator(_money),
    PlainSerializer(lambda m: m.to_json(), return_type=str),
    WithJsonSchema({"type": "string", "examples": ["1.5 USDC"]}),
]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])", re.I)
_DURATION = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[dhms]\s*)+$", re.I)
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_duration(value: object) -> int:
    """``"90s"``, ``"2m"``, ``"4h"``, ``"1h30m"``, ``"1.5h"``, ``"1d"``, ``600`` → seconds.

    Raises :class:`pydantic_core.PydanticCustomError` (inside validation) — use through the
    models; a fractional second is refused rather than rounded.
    """
    expected = 'expected a duration such as "90s", "2m", "4h" or a whole number of seconds'
    found = describe_value(value)
    seconds: Decimal
    if isinstance(value, bool) or value is None:
        refuse("invalid_duration", f"{expected}; found {found}")
    if isinstance(value, int):
        seconds = Decimal(value)
    elif isinstance(value, float):
        refuse("invalid_duration", f"{expected}; found {found}", f'add a unit, e.g. "{value}h"')
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = Decimal(value.strip())
    elif isinstance(value, str) and _DURATION.match(value):
        seconds = sum(
            (Decimal(n) * _UNIT_SECONDS[u.lower()] for n, u in _DURATION_PART.findall(value)),
            Decimal(0),
        )
    else:
        refuse("invalid_duration", f"{expected}; found {found}", 'e.g. max_duration: "2h"')
    if seconds <= 0 or seconds != seconds.to_integral_value():
        refuse("invalid_duration", f"expected a whole number of seconds above zero; found {found}")
    return int(seconds)


Seconds = Annotated[
    int,
    PlainValidator(parse_duration),
    WithJsonSchema(_NUMBER_OR_TEXT),
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _text(what: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        if not isinstance(value, str):
            refuse("invalid_type", f"expected {what}; found {describe_value(value)}")
        if not value.strip():
            refuse("invalid_value", f"expected {what}; found empty text")
        return value

    return check


def job_name(value: str) -> str:
    if not _NAME.match(value):
        refuse(
            "invalid_value",
            "expected a name of ASCII letters, digits, '.', '_' or '-' (at most 63, starting "
            f"with a letter or digit); found {value!r}",
            "e.g. name: train-resnet",
        )
    return value


def image_name(value: str) -> str:
    if any(ch.isspace() for ch in value):
        refuse(
            "invalid_value",
            f"expected a container image reference; found {value!r}",
            "e.g. image: pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime",
        )
    return value


def _env_name(value: str) -> str:
    if not _ENV.match(value):
        refuse(
            "invalid_value",
            f"expected an environment variable name (letters, digits, _); found {value!r}",
        )
    if value.upper().startswith("PASAR_"):
        refuse(
            "reserved_env",
            f"{value!r} is reserved: pasar sets PASAR_* variables itself (e.g. PASAR_LEASE)",
            "choose another name",
        )
    return value


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    hint = f'quote it: "{value}"' if isinstance(value, float) else None
    refuse(
        "invalid_type",
        f"expected text (or a whole number) as the value; found {describe_value(value)}",
        hint,
    )


def _output_path(value: str) -> str:
    parts = value.replace("\\", "/").split("/")
    if value.startswith(("/", "~")) or ".." in parts:
        refuse(
            "invalid_value",
            f"expected a path inside the job's working directory; found {value!r}",
            "write it relative to the job's working directory, without '..', e.g. out/model.pt",
        )
    return value


#: ``s3://bucket/x``, ``gs://…``, ``https://…``: a source no provider is given
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _mount_target(value: str) -> str:
    """A ``file_mounts`` destination: a path in the job's working directory (``~/x`` is ``x``:
    the job's home is its working directory), or an absolute path the runtime binds
    (:mod:`pasar.core.mounts`: those the sandbox needs are refused)."""
    if is_absolute(value):
        try:
            return mount_destination(value)
        except MountRefusedError as refusal:
            refuse("invalid_value", f"file_mounts: {refusal.message}", refusal.hint)
    path = value[2:] if value.startswith("~/") else value
    parts = path.replace("\\", "/").split("/")
    if path.startswith("~") or ".." in parts or not path.strip("/"):
        refuse(
            "invalid_value",
            f"file_mounts: {value!r} is not a place in the job's working directory",
            "write the destination relative to the job's working directory (data/), or "
            "as an absolute path (/data)",
        )
    return path.rstrip("/")


def mounts_apart(value: dict[str, str] | None) -> dict[str, str] | None:
    """No absolute destination inside another (``/data`` and ``/data/sub``): one folder would
    be bound twice."""
    if value:
        pair = nested(d for d in value if is_absolute(d))
        if pair is not None:
            refuse(
                "invalid_value",
                f"file_mounts: {pair[1]!r} lies inside {pair[0]!r}",
                f"put its files in the source of {pair[0]} instead, or mount it elsewhere",
            )
    return value


def _mount_source(value: str) -> str:
    """A ``file_mounts`` source: a local file or folder (cloud buckets are refused)."""
    if _URL.match(value):
        refuse(
            "unsupported_source",
            f"file_mounts: {value!r} is a bucket or URL; providers get only files you upload",
            "download it and mount the local copy, or fetch it in run: with network: true",
        )
    return value


def compare_rule(value: object) -> str:
    try:
        return parse_rule(value).text()
    except CompareError as exc:
        refuse("invalid_value", str(exc))


def verification_policy(value: object) -> str:
    expected = (
        'expected "receipt", "replicate:RATE" (e.g. replicate:0.1), "pol" (or '
        'pol:top=N,random=N,mode=auto|tolerance|bitwise), "approve" or "tee"'
    )
    if not isinstance(value, str):
        refuse("invalid_choice", f"{expected}; found {describe_value(value)}")
    kind, _, rate_text = value.partition(":")
    kind = kind.strip()
    if kind not in VERIFICATION_KINDS:
        near = nearest(kind, VERIFICATION_KINDS)
        refuse(
            "invalid_choice",
            f"{expected}; found {value!r}",
            f"did you mean {near!r}?" if near else None,
        )
    if kind == "pol" and rate_text.strip():
        return _pol_argument(value, rate_text, expected)
    if kind != "replicate":
        if rate_text:
            refuse("invalid_choice", f"{expected}; {kind!r} takes no rate, found {value!r}")
        return kind
    rate_text = rate_text.strip() or "1"
    try:
        rate = Decimal(rate_text[:-1]) / 100 if rate_text.endswith("%") else Decimal(rate_text)
    except InvalidOperation:
        refuse("invalid_choice", f"{expected}; found {value!r}")
    if not rate.is_finite() or not 0 < rate <= 1:
        refuse(
            "invalid_choice",
            f"expected a replication rate above 0 and at most 1; found {value!r}",
            "replicate:0.1 re-runs one job in ten on a verifier",
        )
    return f"replicate:{fmt_qty(rate)}"


def _pol_argument(value: str, argument: str, expected: str) -> str:
    """``pol:top=N,random=N,mode=M`` (proof of learning's sample, raised above the preset's,
    and its replay mode: :func:`pasar.core.verify.pol.parse_argument`), normalized to that
    order."""
    from pasar.core.verify.pol import parse_argument

    try:
        asked = parse_argument(argument)
    except PasarError:
        refuse(
            "invalid_choice",
            f"{expected}; found {value!r}",
            "pol:top=2,random=16 raises the preset's sample (top per epoch, random); "
            "pol:mode=tolerance replays in tolerance mode",
        )
    if not asked:
        refuse("invalid_choice", f"{expected}; found {value!r}")
    keys = ("top", "random", "mode")
    return "pol:" + ",".join(f"{k}={asked[k]}" for k in keys if k in asked)


Text = Annotated[str, PlainValidator(_text("text")), WithJsonSchema({"type": "string"})]
PathText = Annotated[str, PlainValidator(_text("a path")), WithJsonSchema({"type": "string"})]
OutputPath = Annotated[PathText, AfterValidator(_output_path)]
MountTarget = Annotated[PathText, AfterValidator(_mount_target)]
MountSource = Annotated[PathText, AfterValidator(_mount_source)]
EnvName = Annotated[
    str,
    PlainValidator(_text("a variable name")),
    AfterValidator(_env_name),
    WithJsonSchema({"type": "string"}),
]
EnvValue = Annotated[str, PlainValidator(_env_value), WithJsonSchema({"type": "string"})]


def list_of(what: str) -> Callable[[object], object]:
    def check(value: object) -> object:
        if isinstance(value, list | tuple):
            return value
        hint = f"write a list, e.g. [{value}]" if isinstance(value, str) else None
        refuse("invalid_type", f"expected a list of {what}; found {describe_value(value)}", hint)

    return check


def normalize_verification(value: object, *, field: str = "verification") -> str:
    """The normalized verification policy (``receipt``, ``replicate:0.1``, ``pol``, ``approve``,
    ``tee``),
    for callers outside a spec (presets, the API); a bad value is a PasarError naming ``field``.
    """
    try:
        return verification_policy(value)
    except PydanticCustomError as exc:
        hint = (exc.context or {}).get("hint")
        raise PasarError(
            exc.message(),
            code="invalid_verification",
            field=field,
            hint=str(hint) if hint else None,
        ) from exc
