"""Canonical JSON: the one byte form of a value that pasar signs and hashes.

A signature covers bytes, but programs exchange values; two honest encoders must therefore turn
one value into the same bytes. Ours: keys sorted, no whitespace, UTF-8, produced by orjson.

What is refused, and why:

- **floats** (and NaN/Infinity): money is an integer number of micro-units, and float text
  differs between languages (``1e21`` vs ``1000000000000000000000``, ``0.1`` vs
  ``0.10000000000000001``), so a float in signed data is a signature that another implementation
  cannot reproduce;
- **integers outside signed 64-bit**: what Go, Rust and SQL ``BIGINT`` can hold (JavaScript
  clients need a BigInt-aware parser above 2**53);
- **non-string keys**: JSON has none, and coercing ``1`` to ``"1"`` would let two values sign alike;
- **anything else** (dataclasses, datetimes, bytes, sets): convert it explicitly first, so the
  encoding is a decision of the caller and not an accident of a library;
- **nesting deeper than** :data:`MAX_DEPTH`: nothing pasar signs is that deep, and a limit keeps
  untrusted input from exhausting the stack.

:func:`parse_json` is the other direction, for untrusted bytes: strict RFC 8259 (valid UTF-8, no
NaN, no lone surrogates) and no duplicate keys, because parsers disagree on which duplicate wins.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from pasar.core.errors import PasarError

MAX_DEPTH = 64
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1


class CanonicalError(PasarError):
    """A value that has no canonical JSON form, or bytes that are not acceptable JSON."""


class _RefusedError(Exception):
    """Internal: a refused value, with the path to it collected while unwinding."""

    def __init__(self, message: str, code: str, hint: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint
        self.path: list[str | int] = []


def _check(value: object, depth: int) -> None:
    # isinstance order matters: bool is an int, and both are fine; float is checked before the
    # catch-all so that it gets its own message.
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise _RefusedError(
                f"integer {value} is outside the signed 64-bit range",
                "int_out_of_range",
                "amounts are integers of micro-units and fit in 64 bits; split or rescale",
            )
        return
    if isinstance(value, float):
        raise _RefusedError(
            f"floats are not allowed in signed data (got {value!r})",
            "float_not_allowed",
            "use an integer (e.g. money in micro-units, durations in milliseconds) or a string",
        )
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise _RefusedError(f"nesting deeper than {MAX_DEPTH} levels", "too_deep", None)
        for key, item in value.items():
            if not isinstance(key, str):
                raise _RefusedError(
                    f"object keys must be strings, got {type(key).__name__} {key!r}",
                    "non_string_key",
                    "convert the key to a string explicitly",
                )
            try:
                _check(item, depth + 1)
            except _RefusedError as refused:
                refused.path.append(key)
                raise
        return
    if isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            raise _RefusedError(f"nesting deeper than {MAX_DEPTH} levels", "too_deep", None)
        for index, item in enumerate(value):
            try:
                _check(item, depth + 1)
            except _RefusedError as refused:
                refused.path.append(index)
                raise
        return
    raise _RefusedError(
        f"{type(value).__name__} has no canonical JSON form",
        "unsupported_type",
        "use only dict, list, str, int, bool and None; convert other values explicitly",
    )


def _render_path(path: list[str | int], root: str | None) -> str | None:
    parts = [root] if root else []
    for step in reversed(path):
        if isinstance(step, int):
            parts.append(f"[{step}]")
        else:
            parts.append(("." if parts else "") + step)
    return "".join(parts) or None


def check_canonical(value: object, *, field: str | None = None) -> None:
    """Raise :class:`CanonicalError` (naming the offending path) if ``value`` cannot be signed."""
    try:
        _check(value, 0)
    except _RefusedError as refused:
        where = _render_path(refused.path, field)
        raise CanonicalError(
            refused.message + (f" at {where}" if where else ""),
            code=refused.code,
            field=where,
            hint=refused.hint,
        ) from None


def canonical_json(value: object, *, field: str | None = None) -> bytes:
    """The canonical bytes of ``value``: sorted keys, compact, UTF-8.

    ``field`` names where ``value`` sits in a larger document, so that an error says e.g.
    ``body.price`` instead of ``price``.
    """
    check_canonical(value, field=field)
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:  # e.g. a str holding a lone surrogate
        raise CanonicalError(
            f"value cannot be encoded as UTF-8 JSON: {exc}",
            code="unencodable",
            field=field,
            hint="strings must be valid Unicode text (no lone surrogates)",
        ) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise CanonicalError(
                f"duplicate key {key!r} in a JSON object",
                code="duplicate_key",
                field=key,
                hint="send each key once; parsers disagree on which duplicate wins",
            )
        out[key] = value
    return out


# one decoder for every parse: ``json.loads`` with a hook builds a new decoder (and scanner)
# per call, which cost as much as the parse of a small document
_STRICT_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def parse_json(data: bytes | bytearray | memoryview | str, *, what: str = "input") -> Any:
    """Parse untrusted JSON strictly; raise :class:`CanonicalError` saying where it is broken.

    orjson checks the grammar and UTF-8; a second pass with the standard library's hook refuses
    duplicate keys, which orjson would silently collapse. Floats are returned as floats here:
    whether they are acceptable is the caller's rule (signed data refuses them on re-encoding).
    """
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CanonicalError(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            code="malformed_json",
            hint="send one UTF-8 JSON document (RFC 8259)",
        ) from None
    text = data if isinstance(data, str) else bytes(data).decode("utf-8")
    try:
        return _STRICT_DECODER.decode(text)
    except RecursionError:
        raise CanonicalError(
            f"{what} is nested too deeply", code="too_deep", hint="flatten the document"
        ) from None
