"""The offer query language: parsing, every operator and field type, errors, order, properties."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.query import (
    Condition,
    OrderKey,
    Price,
    Query,
    QueryError,
    apply,
    parse_order,
    parse_query,
    render_order,
    sort_key,
)
from pasar.core.query_fields import BY_NAME, FIELDS, FieldSpec, FieldType, describe_fields, ops_for


def offer(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "gpu_name": "A100",
        "num_gpus": 4,
        "gpu_ram": 80,
        "cpus": 32,
        "memory": 256,
        "disk": 1000,
        "dph": Money.parse("4.00 USDC"),
        "reliability": Fraction(99, 100),
        "reputation": 10,
        "score": 19500,
        "region": "eu",
        "provider": "AbC123",
        "verified": True,
        "rentable": True,
        "stake": Money.parse("100 USDC"),
        "interface": ["sxm", "nvlink"],
        "runtime": ["docker", "sandbox"],
    }
    base.update(kw)
    return base


def conds(text: str) -> tuple[Condition, ...]:
    return parse_query(text).conditions


def m(text: str, o: object) -> bool:
    return parse_query(text).matches(o)


# --- parsing ------------------------------------------------------------------------------------


def test_the_issue_example_parses_into_typed_conditions() -> None:
    q = parse_query("gpu_name=A100 num_gpus>=2 dph<1.5 reliability>0.98 region in [eu,us]")
    assert q.conditions == (
        Condition("gpu_name", "=", "A100"),
        Condition("num_gpus", ">=", 2),
        Condition("dph", "<", Price(1_500_000)),
        Condition("reliability", ">", Decimal("0.98")),
        Condition("region", "in", ("eu", "us")),
    )
    assert q.defaults == (Condition("rentable", "=", True),)


def test_empty_query_keeps_only_defaults() -> None:
    q = parse_query("   ")
    assert q.conditions == ()
    assert [c.field for c in q.defaults] == ["rentable"]
    assert q.matches(offer())
    assert not q.matches(offer(rentable=False))


def test_spaces_around_operators_and_double_equals() -> None:
    assert conds("num_gpus >= 2  region  =  eu gpu_name==A100") == (
        Condition("num_gpus", ">=", 2),
        Condition("region", "=", "eu"),
        Condition("gpu_name", "=", "A100"),
    )


def test_aliases_resolve_to_canonical_names_and_case_is_ignored() -> None:
    assert conds("gpu_model=H100 cpu_cores>=8 price<2 vram>=24 NUM_GPUS=1") == (
        Condition("gpu_name", "=", "H100"),
        Condition("cpus", ">=", 8),
        Condition("dph", "<", Price(2_000_000)),
        Condition("gpu_ram", ">=", Decimal(24)),
        Condition("num_gpus", "=", 1),
    )


def test_gpu_shorthand_expands_to_model_and_count() -> None:
    assert conds("gpu=A100:2") == (
        Condition("gpu_name", "=", "A100"),
        Condition("num_gpus", ">=", 2),
    )
    assert conds("gpu=A100:2+") == conds("gpu=A100:2")
    assert conds("gpu=A100") == (Condition("gpu_name", "=", "A100"),)
    assert conds('gpu="RTX 4090:8"') == (
        Condition("gpu_name", "=", "RTX 4090"),
        Condition("num_gpus", ">=", 8),
    )


def test_trailing_plus_means_at_least() -> None:
    assert conds("gpu_ram=24+") == (Condition("gpu_ram", ">=", Decimal(24)),)
    assert conds("num_gpus=2+ dph=1+") == (
        Condition("num_gpus", ">=", 2),
        Condition("dph", ">=", Price(1_000_000)),
    )


def test_quoted_strings_and_escapes() -> None:
    assert conds("gpu_name=\"RTX 4090\" region='us east'") == (
        Condition("gpu_name", "=", "RTX 4090"),
        Condition("region", "=", "us east"),
    )
    assert conds(r'provider="a\"b\\c"') == (Condition("provider", "=", 'a"b\\c'),)
    assert conds('region=""') == (Condition("region", "=", ""),)


def test_quoted_any_is_a_literal_not_a_waiver() -> None:
    q = parse_query('region="any"')
    assert q.conditions == (Condition("region", "=", "any"),)
    assert q.waived == frozenset()


def test_lists_accept_spaces_quotes_and_typed_items() -> None:
    assert conds('region in [ eu , "us east" ]') == (Condition("region", "in", ("eu", "us east")),)
    assert conds("num_gpus notin [1,2]") == (Condition("num_gpus", "notin", (1, 2)),)
    assert conds("dph in [1,2.5USDC]") == (
        Condition("dph", "in", (Price(1_000_000), Price(2_500_000, "USDC"))),
    )


def test_ratio_accepts_percent_exactly() -> None:
    assert conds("reliability>98%") == (Condition("reliability", ">", Decimal("0.98")),)
    assert conds("reliability>=99.95%") == (Condition("reliability", ">=", Decimal("0.9995")),)


def test_money_literal_is_exact_micros_with_optional_currency() -> None:
    assert conds("dph<0.000001 stake>=1000usdc") == (
        Condition("dph", "<", Price(1)),
        Condition("stake", ">=", Price(1_000_000_000, "USDC")),
    )


def test_booleans() -> None:
    assert conds("verified=true rentable!=FALSE") == (
        Condition("verified", "=", True),
        Condition("rentable", "!=", False),
    )


# --- defaults, waivers, explain ---------------------------------------------------------------


def test_naming_a_defaulted_field_replaces_the_default() -> None:
    q = parse_query("rentable=false")
    assert q.defaults == ()
    assert q.matches(offer(rentable=False))
    assert not q.matches(offer())


def test_any_waives_the_default() -> None:
    q = parse_query("rentable=any")
    assert q.defaults == () and q.waived == frozenset({"rentable"})
    assert q.matches(offer(rentable=False)) and q.matches(offer())
    assert q.render() == "rentable=any"


def test_defaults_can_be_switched_off() -> None:
    q = parse_query("", defaults=False)
    assert q.defaults == ()
    assert q.matches({})


def test_explain_is_json_and_marks_defaults() -> None:
    q = parse_query("gpu=A100:2 region in [eu,us]", order="reliability-", limit=5)
    out = q.explain()
    json.dumps(out)
    assert out["query"] == "gpu=A100:2 region in [eu,us]"
    assert out["canonical"] == "gpu_name=A100 num_gpus>=2 region in [eu,us]"
    assert out["conditions"] == [
        {"field": "gpu_name", "op": "=", "value": "A100", "type": "str", "default": False},
        {"field": "num_gpus", "op": ">=", "value": "2", "type": "int", "default": False},
        {"field": "region", "op": "in", "value": "[eu,us]", "type": "str", "default": False},
        {"field": "rentable", "op": "=", "value": "true", "type": "bool", "default": True},
    ]
    assert out["order"] == [{"field": "reliability", "descending": True, "default": False}]
    assert out["limit"] == 5


def test_explain_shows_the_default_order() -> None:
    out = parse_query("").explain()
    assert out["order"] == [{"field": "dph", "descending": False, "default": True}]


def test_describe_fields_covers_the_table() -> None:
    rows = describe_fields()
    assert [r["name"] for r in rows] == [f.name for f in FIELDS]
    json.dumps(rows)
    rentable = next(r for r in rows if r["name"] == "rentable")
    assert rentable["default"] == "rentable=true"


def test_required_fields_exist() -> None:
    required = [
        *("gpu_name", "gpu_model", "num_gpus", "gpu_ram", "total_gpu_ram", "cpus", "cpu_cores"),
        *("memory", "disk", "dph", "price", "dph_per_gpu", "reliability", "reputation", "score"),
        *("region", "provider", "verified", "rentable", "stake", "interface"),
    ]
    for name in required:
        assert name in BY_NAME, name


# --- evaluation: every operator, every type --------------------------------------------------

NUMERIC_CASES = [
    ("num_gpus=4", True),
    ("num_gpus!=4", False),
    ("num_gpus<4", False),
    ("num_gpus<=4", True),
    ("num_gpus>4", False),
    ("num_gpus>=4", True),
    ("num_gpus in [2,4]", True),
    ("num_gpus notin [2,4]", False),
    ("num_gpus notin [1,2]", True),
]


@pytest.mark.parametrize(("text", "expected"), NUMERIC_CASES)
def test_every_operator_on_an_int_field(text: str, expected: bool) -> None:
    assert m(text, offer()) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpu_ram=80", True),
        ("gpu_ram=80.0", True),
        ("gpu_ram>79.5", True),
        ("gpu_ram<80.000001", True),
        ("gpu_ram>80", False),
        ("memory>=256 disk<=1000", True),
        ("score>19499.99", True),
        ("reputation!=10", False),
    ],
)
def test_number_fields_compare_exactly(text: str, expected: bool) -> None:
    assert m(text, offer()) is expected


def test_ratio_fields_compare_exactly_across_representations() -> None:
    for value in (Fraction(98, 100), Decimal("0.98"), "0.98"):
        o = offer(reliability=value)
        assert m("reliability>=0.98", o)
        assert not m("reliability>0.98", o)
        assert m("reliability=98%", o)


def test_price_comparisons_are_exact_in_micros() -> None:
    assert m("dph<4.000001", offer())
    assert not m("dph<4", offer())
    assert m("dph<=4", offer())
    assert m("dph=4USDC", offer())
    assert not m("dph=4EUR", offer())  # a currency in the literal must match the offer's
    assert not m("dph<5EUR", offer())
    assert m("dph!=4EUR", offer())
    assert m("dph<4.5", offer(dph="4.2"))  # strings with or without currency are read exactly
    assert m("dph<4.5usdc", offer(dph="4.2 USDC"))
    assert m("dph<4.5", offer(dph=Decimal("4.2")))
    assert m("stake>=100", offer())
    assert not m("stake>100", offer())


def test_string_fields_fold_case_except_provider_ids() -> None:
    assert m("region=EU", offer())
    assert m("region in [us,Eu]", offer())
    assert not m("region notin [EU]", offer())
    assert m("region!=us", offer())
    assert m("provider=AbC123", offer())
    assert not m("provider=abc123", offer())


def test_gpu_name_default_normalizer_is_case_insensitive() -> None:
    assert m("gpu_name=a100", offer())
    assert not m("gpu_name=a100-sxm4", offer())


def test_gpu_name_uses_the_injected_normalizer() -> None:
    def normalize(name: str) -> str:
        key = name.lower().replace(" ", "").replace("-", "")
        if key.startswith("a100"):
            return "A100"
        if key.startswith("rtx4090") or key == "4090":
            return "RTX 4090"
        raise PasarError(f"unknown GPU model {name!r}", hint="see pasar gpus")

    q = parse_query("gpu=a100-sxm4-80gb:2", normalize=normalize)
    assert q.matches(offer(gpu_name="NVIDIA A100 80GB"[7:]))
    assert q.matches(offer(gpu_name="A100-PCIE"))
    assert not q.matches(offer(gpu_name="H100"))  # the normalizer refuses it: no match, no crash
    assert parse_query("gpu_name in [4090, 'rtx 4090']", normalize=normalize).matches(
        offer(gpu_name="RTX-4090")
    )
    with pytest.raises(QueryError) as err:
        parse_query("num_gpus>1 gpu_name=B9000", normalize=normalize)
    assert err.value.column == 21
    assert err.value.field == "gpu_name"
    assert err.value.hint == "see pasar gpus"
    # a normalizer given to matches() overrides the query's
    plain = parse_query("gpu_name=A100-80GB")
    assert not plain.matches(offer(gpu_name="a100 pcie"))
    assert plain.matches(offer(gpu_name="a100 pcie"), normalize=normalize)


def test_bool_fields() -> None:
    assert m("verified=true", offer())
    assert not m("verified!=true", offer())
    assert m("verified=false", offer(verified=False))
    assert not m("verified=true", offer(verified="true"))  # not a bool: absent


def test_list_fields_mean_contains() -> None:
    assert m("interface=SXM", offer())
    assert not m("interface!=sxm", offer())
    assert m("interface!=pcie", offer())
    assert m("runtime in [process,docker]", offer())
    assert not m("runtime notin [process,docker]", offer())
    assert m("runtime notin [process]", offer())
    assert m("interface=pcie", offer(interface="pcie"))  # one string is a list of one


def test_derived_fields_when_the_offer_lacks_them() -> None:
    assert m("total_gpu_ram=320", offer())
    assert m("total_gpu_ram=100", offer(total_gpu_ram=100))  # given beats derived
    assert m("dph_per_gpu=1", offer())
    o = offer(num_gpus=3, dph=Money.parse("1 USDC"))
    assert m("dph_per_gpu>0.333333", o)  # exactly 1/3, not rounded down to 0.333333
    assert m("dph_per_gpu<0.333334", o)
    assert not m("dph_per_gpu>0", offer(num_gpus=0))


def test_missing_or_unreadable_fields_never_match_and_never_crash() -> None:
    bare: dict[str, object] = {"rentable": True}
    for text in [
        "num_gpus=1",
        "num_gpus!=1",
        "num_gpus notin [1]",
        "region!=eu",
        "region notin [eu]",
        "interface!=pcie",
        "verified!=true",
        "dph!=1",
        "total_gpu_ram>0",
        "dph_per_gpu>0",
    ]:
        assert not m(text, bare), text
    for junk in (1.5, None, object(), [1], float("nan"), True):
        for text in ("num_gpus>=0", "reliability>=0", "dph>=0", "region!=x", "interface!=x"):
            field = text.split("!")[0].split(">")[0]
            assert not m(text, offer(**{field: junk})), (text, junk)


def test_offers_may_be_objects_with_attributes() -> None:
    @dataclass
    class Offer:
        gpu_name: str
        num_gpus: int
        dph: Money
        rentable: bool = True

    o = Offer("A100", 2, Money.parse("2 USDC"))
    assert m("gpu=A100:2 dph_per_gpu<=1", o)
    assert not m("region=eu", o)


def test_alias_keys_in_offers_are_read() -> None:
    assert m("dph<5", {"price": "4 USDC", "rentable": True})


# --- errors ---------------------------------------------------------------------------------

ERRORS = [
    # (query, column, code, field, hint fragment)
    ("gpu_nam=A100 num_gpus>=2", 1, "unknown_query_field", "gpu_nam", "did you mean gpu_name?"),
    ("num_gpus>=2 realiability>0.9", 13, "unknown_query_field", None, "reliability"),
    ("num_gpus>=two", 11, "invalid_query_value", "num_gpus", None),
    ("region > eu", 8, "invalid_query_operator", "region", "=, !=, in, notin"),
    ("verified<true", 9, "invalid_query_operator", "verified", "=, !="),
    ("region in [eu,us", 11, "invalid_query", "region", "]"),
    ("region in [eu us]", 15, "invalid_query", "region", None),
    ("region in []", 11, "invalid_query", "region", None),
    ("region in eu", 11, "invalid_query", "region", "[a,b]"),
    ("region=[eu]", 8, "invalid_query", "region", "in [a,b]"),
    ('gpu_name="A100', 10, "invalid_query", None, None),
    ("num_gpus>=2 ]", 13, "invalid_query", None, None),
    ("num_gpus>=2]", 12, "invalid_query", None, "spaces"),
    ("num_gpus>=2,", 12, "invalid_query", None, None),
    ("gpu_name=RTX 4090", 14, "invalid_query", None, 'gpu_name="RTX 4090"'),
    ("gpu_name A100", 10, "invalid_query_operator", "gpu_name", None),
    ("region not in [eu]", 8, "invalid_query_operator", "region", "notin"),
    ("num_gpus", 9, "invalid_query_operator", "num_gpus", None),
    ("num_gpus>=", 11, "invalid_query", "num_gpus", None),
    ("num_gpus!2", 9, "invalid_query", None, None),
    ("reliability>98", 13, "invalid_query_value", "reliability", "0.98 or 98%"),
    ("reliability>-0.1", 13, "invalid_query_value", "reliability", None),
    ("dph<1.0000001", 5, "invalid_query_value", "dph", "0.000001"),
    ("dph<cheap", 5, "invalid_query_value", "dph", None),
    ("gpu_ram>1e3", 9, "invalid_query_value", "gpu_ram", None),
    ("rentable=yes", 10, "invalid_query_value", "rentable", "rentable=true"),
    ("num_gpus>2+", 10, "invalid_query", "num_gpus", "num_gpus>2"),
    ("region!=any", 9, "invalid_query", "region", None),
    ("num_gpus<any", 10, "invalid_query", "num_gpus", None),
    ("gpu>=A100", 4, "invalid_query_operator", "gpu", None),
    ("gpu=A100:two", 10, "invalid_query_value", "num_gpus", None),
    ("gpu=:2", 5, "invalid_query", "gpu", None),
    ("=2", 1, "invalid_query", None, None),
    ("4090=x", 1, "invalid_query", None, None),
    ("gpu.ram=24", 1, "invalid_query", None, None),
]


@pytest.mark.parametrize(("text", "column", "code", "field", "hint"), ERRORS)
def test_errors_point_at_the_column(
    text: str, column: int, code: str, field: str | None, hint: str | None
) -> None:
    with pytest.raises(QueryError) as err:
        parse_query(text)
    e = err.value
    assert (e.column, e.code) == (column, code), e.message
    if field is not None:
        assert e.field == field
    if hint is not None:
        assert e.hint is not None and hint in e.hint, e.hint
    assert e.status == 400
    # the message carries the text and a caret under the column
    lines = e.message.split("\n")
    assert lines[1] == "  " + text
    assert lines[2] == "  " + " " * (column - 1) + "^"


def test_error_message_wording() -> None:
    with pytest.raises(QueryError) as err:
        parse_query("gpu_nam=A100")
    assert err.value.message.startswith("unknown field 'gpu_nam' at column 1\n")
    assert err.value.to_dict()["error"]["hint"] == "did you mean gpu_name?"
    with pytest.raises(QueryError) as err:
        parse_query("num_gpus=two")
    assert err.value.reason == "num_gpus expects an integer, found 'two' at column 10"


def test_unknown_field_without_a_near_name_lists_the_fields() -> None:
    with pytest.raises(QueryError) as err:
        parse_query("zzzzzz=1")
    assert err.value.hint is not None and err.value.hint.startswith("known fields:")


def test_long_queries_are_windowed_and_capped() -> None:
    text = "num_gpus>=1 " * 30 + "bogus=1"
    with pytest.raises(QueryError) as err:
        parse_query(text)
    line, caret = err.value.message.split("\n")[1:3]
    assert line[caret.index("^") : caret.index("^") + 5] == "bogus"
    with pytest.raises(QueryError):
        parse_query("num_gpus>=1 " * 1000)


def test_limit_is_checked() -> None:
    for bad in (0, -1, True):
        with pytest.raises(PasarError) as err:
            parse_query("", limit=bad)
        assert err.value.code == "invalid_limit"


# --- order, sort, apply --------------------------------------------------------------------


def test_parse_order() -> None:
    assert parse_order("dph,reliability-") == (
        OrderKey("dph"),
        OrderKey("reliability", descending=True),
    )
    assert parse_order(" price+ , score- ") == (OrderKey("dph"), OrderKey("score", True))
    assert parse_order("") == ()
    assert render_order(parse_order("dph,reliability-")) == "dph,reliability-"


@pytest.mark.parametrize(
    ("spec", "column", "hint"),
    [
        ("dph,relability-", 5, "did you mean reliability?"),
        ("dph,,score", 5, "single commas"),
        ("-dph", 1, "dph-"),
        ("dph, gpu", 6, None),
    ],
)
def test_order_errors(spec: str, column: int, hint: str | None) -> None:
    with pytest.raises(QueryError) as err:
        parse_order(spec)
    assert err.value.column == column
    assert err.value.code == "invalid_order"
    if hint is not None:
        assert err.value.hint is not None and hint in err.value.hint


def test_sort_key_orders_with_missing_values_last_either_way() -> None:
    a = offer(provider="a", reliability=Fraction(9, 10), dph=Money.parse("3 USDC"))
    b = offer(provider="b", reliability=Fraction(99, 100), dph=Money.parse("3 USDC"))
    c = offer(provider="c", reliability=None, dph=Money.parse("1 USDC"))
    d = offer(provider="d", reliability=Fraction(99, 100), dph=Money.parse("5 USDC"))

    def ids(xs: list[dict[str, object]]) -> list[object]:
        return [x["provider"] for x in xs]

    assert ids(sorted([a, b, c, d], key=sort_key("reliability-"))) == ["b", "d", "a", "c"]
    assert ids(sorted([a, b, c, d], key=sort_key("reliability"))) == ["a", "b", "d", "c"]
    assert ids(sorted([a, b, c, d], key=sort_key("dph,reliability-"))) == ["c", "b", "a", "d"]
    assert ids(sorted([d, c, b, a], key=sort_key("interface,provider-"))) == ["d", "c", "b", "a"]


def test_apply_filters_sorts_and_limits() -> None:
    offers = [
        offer(provider="p1", dph=Money.parse("3 USDC"), num_gpus=2),
        offer(provider="p2", dph=Money.parse("1 USDC"), num_gpus=1),
        offer(provider="p3", dph=Money.parse("2 USDC"), num_gpus=8),
        offer(provider="p4", dph=Money.parse("0.5 USDC"), num_gpus=8, rentable=False),
    ]
    got = apply(offers, "num_gpus>=2")
    assert [o["provider"] for o in got] == ["p3", "p1"]  # default order: dph ascending
    got = apply(offers, "num_gpus>=2 rentable=any", order="num_gpus-,dph", limit=2)
    assert [o["provider"] for o in got] == ["p4", "p3"]
    q = parse_query("", order="dph-", limit=1)
    assert [o["provider"] for o in apply(offers, q)] == ["p1"]
    assert [o["provider"] for o in apply(offers, q, order="")] == ["p1"]  # no sort: input order


def test_query_built_by_hand_is_validated() -> None:
    assert Query((Condition("num_gpus", ">=", 2),)).matches({"num_gpus": 2})
    with pytest.raises(PasarError):
        Query((Condition("region", ">", "eu"),))
    with pytest.raises(PasarError):
        Query((Condition("gpu_model", "=", "A100"),))  # aliases are resolved by the parser


# --- properties -------------------------------------------------------------------------------

_WORD = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:+/@",
    min_size=1,
    max_size=8,
)
_STRING = st.one_of(_WORD, st.text(max_size=8))
_DEC = st.decimals(
    min_value=-(10**6), max_value=10**6, places=4, allow_nan=False, allow_infinity=False
)
_RATIO = st.decimals(min_value=0, max_value=1, places=5, allow_nan=False, allow_infinity=False)
_PRICE = st.builds(
    Price, st.integers(-(10**12), 10**12), st.one_of(st.none(), st.sampled_from(["USDC", "EUR"]))
)


def _scalar(ftype: FieldType) -> st.SearchStrategy[object]:
    return {
        FieldType.STR: _STRING,
        FieldType.LIST: _STRING,
        FieldType.INT: st.integers(-(10**9), 10**9),
        FieldType.NUMBER: _DEC,
        FieldType.RATIO: _RATIO,
        FieldType.MONEY: _PRICE,
        FieldType.MONEY_PER_HOUR: _PRICE,
        FieldType.BOOL: st.booleans(),
    }[ftype]


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    spec = draw(st.sampled_from(FIELDS))
    op = draw(st.sampled_from(ops_for(spec.type)))
    if op in ("in", "notin"):
        value = tuple(draw(st.lists(_scalar(spec.type), min_size=1, max_size=3)))
    else:
        value = draw(_scalar(spec.type))
    return Condition(spec.name, op, value)  # type: ignore[arg-type]


@given(st.lists(conditions(), max_size=6), st.lists(st.sampled_from(FIELDS), max_size=2))
@settings(max_examples=300)
def test_render_then_parse_is_identity(cs: list[Condition], waived: list[FieldSpec]) -> None:
    text = " ".join([c.render() for c in cs] + [f"{f.name}=any" for f in waived])
    q = parse_query(text)
    assert q.conditions == tuple(cs)
    assert parse_query(q.render(), order=render_order(q.order)) == q


_NUMERIC_FIELDS = [
    f for f in FIELDS if f.type in (FieldType.INT, FieldType.NUMBER, FieldType.RATIO)
]


@given(
    st.sampled_from(_NUMERIC_FIELDS),
    st.decimals(min_value=0, max_value=1, places=3, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=0, max_value=1, places=3, allow_nan=False, allow_infinity=False),
)
def test_less_than_and_at_least_partition_offers_having_the_field(
    spec: FieldSpec, x: Decimal, have: Decimal
) -> None:
    name = spec.name
    held: object = have
    if spec.type is FieldType.INT:
        x, held = Decimal(int(x * 10)), int(have * 10)
    o = {name: held, "rentable": True}
    lit = format(x, "f")
    assert m(f"{name}<{lit}", o) != m(f"{name}>={lit}", o)
    assert m(f"{name}>{lit}", o) != m(f"{name}<={lit}", o)
    assert m(f"{name}={lit}", o) != m(f"{name}!={lit}", o)
    assert m(f"{name} in [{lit}]", o) != m(f"{name} notin [{lit}]", o)
    assert not m(f"{name}<{lit}", {"rentable": True})
    assert not m(f"{name}>={lit}", {"rentable": True})


@given(st.integers(0, 10**7), st.integers(0, 10**7))
def test_price_partition(micros: int, have: int) -> None:
    o = {"dph": Money(have, "USDC"), "rentable": True}
    lit = str(Price(micros))
    assert m(f"dph<{lit}", o) != m(f"dph>={lit}", o)
    assert m(f"dph<{lit}", o) == (have < micros)


_QUERYISH = st.text(alphabet=" \t=!<>[],\"'\\+-.:%abgnpuiersdhty0123456789_AZ", max_size=40)


@given(st.one_of(_QUERYISH, st.text(max_size=40)))
@settings(max_examples=500)
def test_garbage_parses_or_raises_query_error(text: str) -> None:
    try:
        q = parse_query(text)
    except QueryError as err:
        assert 1 <= err.column <= len(text) + 1
        return
    # whatever parsed renders to something that parses to the same query
    assert parse_query(q.render()) == q


@given(st.text(alphabet="dphscoreliabty,-+ _", max_size=30))
def test_garbage_orders_parse_or_raise_query_error(text: str) -> None:
    try:
        parse_order(text)
    except QueryError as err:
        assert 1 <= err.column <= len(text) + 1


@given(
    st.lists(
        st.builds(
            lambda p, r, n: {
                "dph": Money(p, "USDC"),
                "reliability": r,
                "num_gpus": n,
                "rentable": True,
            },
            st.integers(0, 10**7),
            st.one_of(st.none(), st.fractions(0, 1)),
            st.integers(0, 8),
        ),
        max_size=20,
    ),
    st.integers(1, 10),
)
def test_apply_returns_a_sorted_subset(offers: list[dict[str, object]], limit: int) -> None:
    got = apply(offers, "num_gpus>=2", order="dph,reliability-", limit=limit)
    expected = [o for o in offers if o["num_gpus"] >= 2]  # type: ignore[operator]
    assert len(got) == min(limit, len(expected))
    assert all(o["num_gpus"] >= 2 for o in got)  # type: ignore[operator]
    prices = [o["dph"].micros for o in got]  # type: ignore[attr-defined]
    assert prices == sorted(prices)


def test_a_model_name_selects_every_more_specific_model() -> None:
    from pasar.core.resources import normalize_gpu_name

    offers = [
        {"gpu_name": "A100-80GB", "num_gpus": 2, "rentable": True},
        {"gpu_name": "A100-40GB-SXM", "num_gpus": 4, "rentable": True},
        {"gpu_name": "A10-24GB", "num_gpus": 2, "rentable": True},
    ]
    found = apply(offers, "gpu=A100:2", normalize=normalize_gpu_name)
    assert [o["gpu_name"] for o in found] == ["A100-80GB", "A100-40GB-SXM"]
    found = apply(offers, "gpu_name=a100-80gb", normalize=normalize_gpu_name)
    assert [o["gpu_name"] for o in found] == ["A100-80GB"]
    found = apply(offers, "gpu_name!=A100", normalize=normalize_gpu_name)
    assert [o["gpu_name"] for o in found] == ["A10-24GB"]
    found = apply(offers, "gpu_name in [A10, H100]", normalize=normalize_gpu_name)
    assert [o["gpu_name"] for o in found] == ["A10-24GB"]
