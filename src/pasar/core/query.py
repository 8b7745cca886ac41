"""The offer query language: ``gpu_name=A100 num_gpus>=2 dph<1.5 region in [eu,us]``.

It follows vast.ai's ``search offers`` language, which renters of GPU markets already know:

- terms are ``field op value``, separated by spaces, all of which must hold (implicit AND);
- operators ``= != < <= > >= in notin``; ``in``/``notin`` take a list ``[eu,us]``;
- values are bare words, quoted strings (``"RTX 4090"``), exact decimals, ``true``/``false``;
- ``gpu=A100:2`` is shorthand for ``gpu_name=A100 num_gpus>=2``; ``gpu_ram=24+`` means ``>=24``;
- ``field=any`` drops a default condition (and otherwise matches everything);
- sort orders are ``dph,reliability-``: a trailing ``-`` sorts that key descending.

Why strict: a query that silently ignored a misspelt field would list offers the renter meant
to exclude, and they would pay for it. So every character must be consumed, and every error
names the column, draws a caret under it and suggests the nearest field.

Why exact: prices and ratios are compared as integers/Fractions, never floats, so that
``dph<1.5`` never admits an offer at 1.5000000001 nor excludes one at 1.49.

Defaults (shown by :meth:`Query.explain`): ``rentable=true`` unless the query names
``rentable`` (``rentable=any`` lists everything); the order is ``dph`` ascending unless given.
A field an offer lacks (or holds as a float or unreadable value) matches no condition, not even
``!=`` or ``notin``, and sorts last in either direction.

Parse once, evaluate many: :func:`parse_query` compiles each condition to a closure.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from pasar.core.errors import PasarError
from pasar.core.query_eval import SortItem, compile_condition, reader_for, sort_value
from pasar.core.query_fields import (
    BY_NAME,
    FIELDS,
    NUMERIC_TYPES,
    SHORTHAND_GPU,
    FieldSpec,
    FieldType,
    decimal_literal,
    known_names,
    micros_of,
    ops_for,
)
from pasar.core.query_values import (
    STOP_CHARS,
    Condition,
    Normalizer,
    OrderKey,
    Price,
    Scalar,
    render_scalar,
)

__all__ = [
    "DEFAULT_ORDER",
    "MAX_QUERY_LENGTH",
    "Condition",
    "Normalizer",
    "OrderKey",
    "Price",
    "Query",
    "QueryError",
    "apply",
    "parse_order",
    "parse_query",
    "render_order",
    "sort_key",
]

T = TypeVar("T")

MAX_QUERY_LENGTH = 4096  # a query is typed by a person; anything longer is a mistake or abuse
DEFAULT_ORDER = "dph"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT = re.compile(r"[+-]?\d{1,40}")
_PRICE = re.compile(r"(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))(?P<cur>[A-Za-z][A-Za-z0-9]{1,9})?")
_TYPE_WORDS = {
    FieldType.INT: "an integer",
    FieldType.NUMBER: "a number",
    FieldType.RATIO: "a ratio from 0 to 1 (e.g. 0.98 or 98%)",
    FieldType.MONEY: "an amount (e.g. 100 or 100USDC)",
    FieldType.MONEY_PER_HOUR: "a price per hour (e.g. 1.5 or 1.5USDC)",
    FieldType.BOOL: "true or false",
    FieldType.STR: "a string",
    FieldType.LIST: "a string",
}


class QueryError(PasarError):
    """A query or sort order that cannot be read; the message points at the column."""

    def __init__(
        self,
        reason: str,
        *,
        text: str,
        column: int,
        code: str = "invalid_query",
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(
            f"{reason}\n{_caret(text, column)}", code=code, field=field, hint=hint, status=400
        )
        self.reason = reason
        self.text = text
        self.column = column  # 1-based; len(text) + 1 means "at the end"


def _caret(text: str, column: int) -> str:
    """Two lines: the text (whitespace flattened, long text windowed) and a caret under it."""
    flat = "".join(" " if c.isspace() else c for c in text)
    start = max(0, column - 60)
    end = start + 100
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(flat) else ""
    return f"  {prefix}{flat[start:end]}{suffix}\n  {' ' * (len(prefix) + column - 1 - start)}^"


def _suggest(name: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name.lower(), list(candidates), n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else None


# --- the scanner -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    text: str
    column: int  # 1-based
    quoted: bool = False


class _Scanner:
    """Reads words, operators, quoted strings and lists off the text, tracking columns."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, reason: str, column: int | None = None, **kw: Any) -> QueryError:
        return QueryError(reason, text=self.text, column=column or self.pos + 1, **kw)

    @property
    def column(self) -> int:
        return self.pos + 1

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def word(self) -> _Token:
        start = self.pos
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c.isspace() or c in STOP_CHARS:
                break
            self.pos += 1
        return _Token(self.text[start : self.pos], start + 1)

    def operator(self) -> _Token | None:
        start = self.pos
        two = self.text[self.pos : self.pos + 2]
        if two in ("<=", ">=", "!=", "=="):
            self.pos += 2
            return _Token("=" if two == "==" else two, start + 1)
        if two[:1] in ("<", ">", "="):
            self.pos += 1
            return _Token(two[:1], start + 1)
        if two[:1] == "!":
            raise self.error(f"'!' must be followed by '=' (write !=) at column {start + 1}")
        return None

    def quoted(self) -> _Token:
        quote, start = self.peek(), self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            self.pos += 1
            if c == quote:
                return _Token("".join(out), start + 1, quoted=True)
            out.append(c)
        raise self.error(
            f"unterminated string starting at column {start + 1}",
            column=start + 1,
            hint=f"close it with {quote}",
        )

    def value(self) -> _Token:
        if self.peek() in ('"', "'"):
            return self.quoted()
        return self.word()


# --- the parser --------------------------------------------------------------------------------


def _bad_value(scan: _Scanner, spec: FieldSpec, tok: _Token, hint: str | None = None) -> QueryError:
    return scan.error(
        f"{spec.name} expects {_TYPE_WORDS[spec.type]}, found {tok.text!r} at column {tok.column}",
        column=tok.column,
        code="invalid_query_value",
        field=spec.name,
        hint=hint,
    )


def _parse_scalar(scan: _Scanner, spec: FieldSpec, tok: _Token) -> Scalar:
    text = tok.text
    ftype = spec.type
    if ftype in (FieldType.STR, FieldType.LIST):
        return text
    if ftype is FieldType.BOOL:
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise _bad_value(scan, spec, tok, hint=f"write {spec.name}=true or {spec.name}=false")
    if ftype is FieldType.INT:
        if _INT.fullmatch(text):
            return int(text)
        raise _bad_value(scan, spec, tok)
    if ftype is FieldType.NUMBER:
        dec = decimal_literal(text)
        if dec is None:
            raise _bad_value(scan, spec, tok)
        return dec
    if ftype is FieldType.RATIO:
        percent = text.endswith("%")
        dec = decimal_literal(text[:-1] if percent else text)
        if dec is None:
            raise _bad_value(scan, spec, tok)
        if percent:
            sign, digits, exp = dec.as_tuple()
            dec = Decimal((sign, digits, int(exp) - 2))  # exact: no context rounding
        if not 0 <= dec <= 1:
            hint = f"write {format(dec / 100, 'f')} or {text}%" if dec > 1 else None
            raise _bad_value(scan, spec, tok, hint=hint)
        return dec
    # money
    match = _PRICE.fullmatch(text) if len(text) <= 64 else None
    if match is None:
        raise _bad_value(scan, spec, tok)
    micros = micros_of(match.group("num"))
    if micros is None:
        raise scan.error(
            f"{spec.name} has more than 6 decimals in {text!r} at column {tok.column}",
            column=tok.column,
            code="invalid_query_value",
            field=spec.name,
            hint="the smallest amount is 0.000001",
        )
    cur = match.group("cur")
    return Price(micros, cur.upper() if cur else None)


def _resolve_field(scan: _Scanner, tok: _Token) -> FieldSpec | None:
    """The field named by ``tok`` (None for the ``gpu`` shorthand), or an error with a hint."""
    name = tok.text.lower()
    if name == SHORTHAND_GPU:
        return None
    spec = BY_NAME.get(name)
    if spec is None:
        raise scan.error(
            f"unknown field {tok.text!r} at column {tok.column}",
            column=tok.column,
            code="unknown_query_field",
            field=tok.text,
            hint=_suggest(name, known_names()) or "known fields: " + ", ".join(sorted(BY_NAME)),
        )
    return spec


class _Parser:
    def __init__(self, text: str, normalize: Normalizer | None) -> None:
        self.scan = _Scanner(text)
        self.normalize = normalize
        self.conditions: list[Condition] = []
        self.waived: set[str] = set()
        self.last_bare_str: tuple[str, str] | None = None  # (field, value) for quoting hints

    def parse(self) -> None:
        scan = self.scan
        while True:
            scan.skip_space()
            if scan.at_end():
                return
            self.term()
            if not scan.at_end() and not scan.peek().isspace():
                raise scan.error(
                    f"unexpected {scan.peek()!r} at column {scan.column}",
                    hint="separate conditions with spaces; quote values that contain "
                    "spaces or any of [ ] , = ! < > \" '",
                )

    def term(self) -> None:
        scan = self.scan
        name = scan.word()
        if not name.text:
            raise scan.error(
                f"unexpected {scan.peek()!r} at column {scan.column}",
                hint="a condition starts with a field name, e.g. num_gpus>=2",
            )
        previous, self.last_bare_str = self.last_bare_str, None
        known = name.text.lower() in BY_NAME or name.text.lower() == SHORTHAND_GPU
        if not known and previous is not None and not self.operator_follows():
            fname, before = previous
            raise scan.error(
                f"expected a field name at column {name.column}, found {name.text!r}",
                column=name.column,
                hint=f'quote values that contain spaces: {fname}="{before} {name.text}"',
            )
        if not _IDENT.fullmatch(name.text):
            raise scan.error(
                f"expected a field name at column {name.column}, found {name.text!r}",
                column=name.column,
            )
        spec = _resolve_field(scan, name)
        scan.skip_space()
        op = self.operator(name)
        scan.skip_space()
        if spec is None:
            self.gpu_shorthand(op)
            return
        if op.text not in ops_for(spec.type):
            allowed = ", ".join(ops_for(spec.type))
            raise scan.error(
                f"{spec.name} does not support {op.text!r} at column {op.column}",
                column=op.column,
                code="invalid_query_operator",
                field=spec.name,
                hint=f"{spec.name} is {_TYPE_WORDS[spec.type]}; use one of {allowed}",
            )
        if op.text in ("in", "notin"):
            items = self.list_value(spec, op)
            self.add(Condition(spec.name, op.text, items), spec)
            return
        if scan.peek() == "[":
            raise scan.error(
                f"a list needs 'in' or 'notin', not {op.text!r} (column {scan.column})",
                field=spec.name,
                hint=f"write {spec.name} in [a,b]",
            )
        tok = scan.value()
        if not tok.text and not tok.quoted:
            raise scan.error(
                f"missing value after {spec.name}{op.text} at column {scan.column}",
                field=spec.name,
                hint=f"{spec.name} expects {_TYPE_WORDS[spec.type]}",
            )
        if not tok.quoted and tok.text.lower() == "any":
            if op.text != "=":
                raise scan.error(
                    f"'any' only goes with '=' (column {tok.column})",
                    column=tok.column,
                    field=spec.name,
                )
            self.waived.add(spec.name)
            return
        cond_op = op.text
        if not tok.quoted and spec.type in NUMERIC_TYPES and tok.text.endswith("+"):
            if op.text != "=":
                raise scan.error(
                    f"a trailing '+' means 'at least' and only goes with '=' (column {tok.column})",
                    column=tok.column,
                    field=spec.name,
                    hint=f"write {spec.name}{op.text}{tok.text[:-1]}",
                )
            tok, cond_op = _Token(tok.text[:-1], tok.column), ">="
        value = _parse_scalar(scan, spec, tok)
        if spec.type is FieldType.STR and not tok.quoted:
            self.last_bare_str = (spec.name, tok.text)
        self.add(Condition(spec.name, cond_op, value), spec, tok)

    def operator_follows(self) -> bool:
        """Look ahead (without consuming) for an operator after the word just read."""
        scan, saved = self.scan, self.scan.pos
        try:
            scan.skip_space()
            if scan.peek() in ("=", "!", "<", ">"):
                return True
            return scan.word().text.lower() in ("in", "notin")
        finally:
            scan.pos = saved

    def operator(self, name: _Token) -> _Token:
        scan = self.scan
        op = scan.operator()
        if op is not None:
            return op
        word = scan.word()
        if word.text.lower() in ("in", "notin"):
            return _Token(word.text.lower(), word.column)
        column = word.column if word.text else scan.column
        found = repr(word.text or scan.peek()) if not scan.at_end() or word.text else "the end"
        hint = (
            "write 'notin'"
            if word.text.lower() == "not"
            else "use one of " + " ".join(("=", "!=", "<", "<=", ">", ">=", "in", "notin"))
        )
        raise scan.error(
            f"expected an operator after {name.text!r} at column {column}, found {found}",
            column=column,
            code="invalid_query_operator",
            field=name.text,
            hint=hint,
        )

    def list_value(self, spec: FieldSpec, op: _Token) -> tuple[Scalar, ...]:
        scan = self.scan
        if scan.peek() != "[":
            raise scan.error(
                f"expected a list like [a,b] after {op.text!r} at column {scan.column}",
                field=spec.name,
                hint=f"write {spec.name} {op.text} [a,b]",
            )
        start = scan.column
        scan.pos += 1
        items: list[Scalar] = []
        while True:
            scan.skip_space()
            if scan.at_end():
                raise scan.error(
                    f"unterminated list starting at column {start}",
                    column=start,
                    field=spec.name,
                    hint="close it with ]",
                )
            if scan.peek() == "]" and not items:
                raise scan.error(
                    f"empty list at column {start}",
                    column=start,
                    field=spec.name,
                    hint="a list needs at least one value",
                )
            tok = scan.value()
            if not tok.text and not tok.quoted:
                raise scan.error(
                    f"expected a value at column {scan.column}, found {scan.peek()!r}",
                    field=spec.name,
                )
            items.append(self.checked(spec, tok, _parse_scalar(self.scan, spec, tok)))
            scan.skip_space()
            if scan.peek() == ",":
                scan.pos += 1
                continue
            if scan.peek() == "]":
                scan.pos += 1
                return tuple(items)
            if scan.at_end():
                continue  # reported as unterminated above
            raise scan.error(
                f"expected ',' or ']' at column {scan.column}, found {scan.peek()!r}",
                field=spec.name,
            )

    def gpu_shorthand(self, op: _Token) -> None:
        scan = self.scan
        if op.text != "=":
            raise scan.error(
                f"the gpu shorthand only takes '=' (column {op.column})",
                column=op.column,
                code="invalid_query_operator",
                field=SHORTHAND_GPU,
                hint="write gpu=A100:2, or use gpu_name and num_gpus",
            )
        tok = scan.value()
        model, sep, count = tok.text.rpartition(":") if ":" in tok.text else (tok.text, "", "")
        if not model:
            raise scan.error(
                f"gpu expects a model like A100 or A100:2 at column {tok.column}",
                column=tok.column,
                field=SHORTHAND_GPU,
            )
        name_spec, count_spec = BY_NAME["gpu_name"], BY_NAME["num_gpus"]
        self.add(Condition("gpu_name", "=", model), name_spec, tok)
        if sep:
            count_tok = _Token(count.removesuffix("+"), tok.column + len(model) + 1)
            value = _parse_scalar(scan, count_spec, count_tok)
            self.add(Condition("num_gpus", ">=", value), count_spec)

    def checked(self, spec: FieldSpec, tok: _Token, value: Scalar) -> Scalar:
        """Run the caller's normalizer on a model name now, so a bad name points at its column."""
        if spec.fold == "model" and self.normalize is not None and isinstance(value, str):
            try:
                self.normalize(value)
            except (PasarError, ValueError, KeyError, TypeError) as exc:
                hint = exc.hint if isinstance(exc, PasarError) else None
                said = exc.message if isinstance(exc, PasarError) else str(exc)
                raise self.scan.error(
                    f"{spec.name}: {said} (column {tok.column})",
                    column=tok.column,
                    code="invalid_query_value",
                    field=spec.name,
                    hint=hint,
                ) from exc
        return value

    def add(self, cond: Condition, spec: FieldSpec, tok: _Token | None = None) -> None:
        if tok is not None and isinstance(cond.value, str):
            self.checked(spec, tok, cond.value)
        self.conditions.append(cond)


# --- the query ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """A parsed query: explicit conditions, the defaults that still apply, the sort order.

    Build it with :func:`parse_query`. Two queries are equal when they select and order the
    same way; the original text and the normalizer are not part of equality.
    """

    conditions: tuple[Condition, ...] = ()
    defaults: tuple[Condition, ...] = ()
    waived: frozenset[str] = frozenset()
    order: tuple[OrderKey, ...] = ()
    limit: int | None = None
    order_is_default: bool = field(default=False, compare=False)
    text: str = field(default="", compare=False)
    normalize: Normalizer | None = field(default=None, compare=False, repr=False)
    _predicates: tuple[Callable[[object], bool], ...] = field(
        default=(), init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        compiled = tuple(compile_condition(c, self.normalize) for c in self.all_conditions)
        object.__setattr__(self, "_predicates", compiled)

    @property
    def all_conditions(self) -> tuple[Condition, ...]:
        return self.conditions + self.defaults

    def matches(self, offer: object, normalize: Normalizer | None = None) -> bool:
        """Whether every condition holds for ``offer`` (a mapping, or an object's attributes).

        A ``normalize`` other than the query's recompiles the conditions on each call; to test
        many offers that way, parse with the normalizer (or use :func:`apply`).
        """
        if normalize is not None and normalize is not self.normalize:
            return all(compile_condition(c, normalize)(offer) for c in self.all_conditions)
        return all(p(offer) for p in self._predicates)

    def render(self) -> str:
        """Canonical text that parses back to an equal query (defaults left implicit)."""
        parts = [c.render() for c in self.conditions]
        parts += [f"{name}=any" for name in sorted(self.waived)]
        return " ".join(parts)

    def __str__(self) -> str:
        return self.render()

    def explain(self) -> dict[str, Any]:
        """The parsed form as JSON: every condition as strings, defaults marked, the order."""

        def row(c: Condition, default: bool) -> dict[str, Any]:
            value = (
                "[" + ",".join(render_scalar(v) for v in c.value) + "]"
                if isinstance(c.value, tuple)
                else render_scalar(c.value)
            )
            spec = BY_NAME[c.field]
            return {
                "field": c.field,
                "op": c.op,
                "value": value,
                "type": str(spec.type),
                "default": default,
            }

        return {
            "query": self.text,
            "canonical": self.render(),
            "conditions": [row(c, False) for c in self.conditions]
            + [row(c, True) for c in self.defaults],
            "waived": sorted(self.waived),
            "order": [
                {"field": k.field, "descending": k.descending, "default": self.order_is_default}
                for k in self.order
            ],
            "limit": self.limit,
        }


def _default_conditions(named: set[str]) -> tuple[Condition, ...]:
    out: list[Condition] = []
    for spec in FIELDS:
        if spec.default is not None and spec.name not in named:
            op, value = spec.default
            assert isinstance(value, str | int | Decimal | bool | Price)
            out.append(Condition(spec.name, op, value))
    return tuple(out)


def parse_query(
    text: str = "",
    *,
    order: str | Sequence[OrderKey] | None = None,
    limit: int | None = None,
    normalize: Normalizer | None = None,
    defaults: bool = True,
) -> Query:
    """Parse ``text`` (and an optional sort ``order`` and ``limit``) into a :class:`Query`.

    ``normalize`` maps any spelling of a GPU model to one canonical name (e.g.
    ``pasar.core.resources.normalize_gpu_model``); without it models compare case-insensitively.
    ``defaults=False`` drops the default conditions (as vast.ai's ``-n`` does).
    Raises :class:`QueryError` for anything it cannot read, never another exception.
    """
    if not isinstance(text, str):
        raise PasarError("a query must be text", code="invalid_query")
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(
            f"query longer than {MAX_QUERY_LENGTH} characters",
            text=text[:MAX_QUERY_LENGTH],
            column=MAX_QUERY_LENGTH,
        )
    parser = _Parser(text, normalize)
    parser.parse()
    named = {c.field for c in parser.conditions} | parser.waived
    keys = parse_order(order if order is not None else DEFAULT_ORDER)
    return Query(
        conditions=tuple(parser.conditions),
        defaults=_default_conditions(named) if defaults else (),
        waived=frozenset(parser.waived),
        order=keys,
        limit=_check_limit(limit),
        order_is_default=order is None,
        text=text,
        normalize=normalize,
    )


def _check_limit(limit: object) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise PasarError(
            f"limit must be a positive integer, got {limit!r}",
            code="invalid_limit",
            field="limit",
            hint="e.g. --limit 20",
        )
    return limit


# --- ordering -----------------------------------------------------------------------------------


def parse_order(spec: str | Sequence[OrderKey] | None) -> tuple[OrderKey, ...]:
    """``"dph,reliability-"`` → keys; a trailing ``-`` sorts descending, ``+`` ascending."""
    if spec is None:
        return ()
    if not isinstance(spec, str):
        given = tuple(spec)
        for k in given:
            if not isinstance(k, OrderKey) or BY_NAME.get(k.field) is None:
                raise PasarError(f"invalid sort key {k!r}", code="invalid_order", field="order")
        return tuple(OrderKey(BY_NAME[k.field].name, k.descending) for k in given)
    if len(spec) > MAX_QUERY_LENGTH:
        raise QueryError("sort order too long", text=spec[:80], column=1, code="invalid_order")
    if not spec.strip():
        return ()
    keys: list[OrderKey] = []
    pos = 0
    for part in spec.split(","):
        lead = len(part) - len(part.lstrip())
        item = part.strip()
        column = pos + lead + 1
        pos += len(part) + 1
        if not item:
            raise QueryError(
                f"empty sort key at column {column}",
                text=spec,
                column=column,
                code="invalid_order",
                field="order",
                hint="separate keys with single commas, e.g. dph,reliability-",
            )
        if item[0] in "+-":
            raise QueryError(
                f"the direction goes after the key: {item[1:]}{item[0]} (column {column})",
                text=spec,
                column=column,
                code="invalid_order",
                field="order",
                hint=f"write {item[1:]}{'-' if item[0] == '-' else ''} "
                "(a trailing - sorts descending)",
            )
        descending = item.endswith("-")
        name = item[:-1] if item[-1] in "+-" else item
        found = BY_NAME.get(name.lower())
        if found is None:
            raise QueryError(
                f"unknown sort key {name!r} at column {column}",
                text=spec,
                column=column,
                code="invalid_order",
                field=name,
                hint=_suggest(name, BY_NAME) or "sort by one of " + ", ".join(sorted(BY_NAME)),
            )
        keys.append(OrderKey(found.name, descending))
    return tuple(keys)


def render_order(keys: Iterable[OrderKey]) -> str:
    return ",".join(k.render() for k in keys)


def sort_key(
    order: str | Sequence[OrderKey], normalize: Normalizer | None = None
) -> Callable[[object], tuple[SortItem, ...]]:
    """A key for ``sorted`` following ``order``; offers lacking a key sort after the others."""
    keys = parse_order(order)
    getters = [
        (sort_value(BY_NAME[k.field], reader_for(BY_NAME[k.field], normalize)), k.descending)
        for k in keys
    ]

    def key(offer: object) -> tuple[SortItem, ...]:
        return tuple(SortItem(get(offer), desc) for get, desc in getters)

    return key


def apply(
    offers: Iterable[T],
    query: Query | str = "",
    order: str | Sequence[OrderKey] | None = None,
    limit: int | None = None,
    *,
    normalize: Normalizer | None = None,
) -> list[T]:
    """Filter ``offers`` by ``query``, sort (stably) and cut to ``limit``.

    ``order``/``limit`` given here override those of the query.
    """
    q = query if isinstance(query, Query) else parse_query(query, normalize=normalize)
    norm = normalize if normalize is not None else q.normalize
    keys = parse_order(order) if order is not None else q.order
    cut = _check_limit(limit) if limit is not None else q.limit
    if norm is not q.normalize:
        q = dataclasses.replace(q, normalize=norm)  # compile once, not once per offer
    picked = [o for o in offers if q.matches(o)]
    if keys:
        picked.sort(key=sort_key(keys, norm))
    return picked if cut is None else picked[:cut]
