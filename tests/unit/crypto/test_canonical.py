"""Canonical JSON: one byte form per value, refusals that name the path, strict parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pasar.crypto.canonical import (
    INT_MAX,
    INT_MIN,
    MAX_DEPTH,
    CanonicalError,
    canonical_json,
    check_canonical,
    parse_json,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=INT_MIN, max_value=INT_MAX)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


def test_sorted_compact_utf8() -> None:
    assert (
        canonical_json({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()
    )


def test_nested_keys_sorted() -> None:
    assert canonical_json({"z": {"y": 1, "x": 2}}) == b'{"z":{"x":2,"y":1}}'


def test_tuples_encode_as_lists() -> None:
    assert canonical_json([1, (2, 3)]) == b"[1,[2,3]]"


@given(json_values)
def test_round_trip_is_stable(value: Any) -> None:
    data = canonical_json(value)
    assert canonical_json(parse_json(data)) == data


@given(st.dictionaries(st.text(max_size=5), st.integers(0, 9), max_size=8))
def test_key_order_does_not_matter(d: dict[str, int]) -> None:
    reversed_d = dict(reversed(list(d.items())))
    assert canonical_json(d) == canonical_json(reversed_d)


@given(json_values)
def test_agrees_with_stdlib_sorted_compact(value: Any) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == expected.encode("utf-8")


@pytest.mark.parametrize("bad", [1.5, 0.0, float("nan"), float("inf")])
def test_floats_refused_with_path(bad: float) -> None:
    with pytest.raises(CanonicalError) as info:
        canonical_json({"order": {"prices": [1, bad]}})
    assert info.value.code == "float_not_allowed"
    assert info.value.field == "order.prices[1]"
    assert info.value.hint and "integer" in info.value.hint
    assert info.value.status == 400


def test_field_prefix_in_error() -> None:
    with pytest.raises(CanonicalError) as info:
        canonical_json({"price": 0.1}, field="body")
    assert info.value.field == "body.price"


def test_non_string_keys_refused() -> None:
    with pytest.raises(CanonicalError) as info:
        canonical_json({1: "a"})
    assert info.value.code == "non_string_key"


@pytest.mark.parametrize("n", [INT_MAX + 1, INT_MIN - 1, 2**64])
def test_big_ints_refused(n: int) -> None:
    with pytest.raises(CanonicalError) as info:
        canonical_json([n])
    assert info.value.code == "int_out_of_range"


def test_int_bounds_accepted() -> None:
    assert canonical_json([INT_MIN, INT_MAX]) == f"[{INT_MIN},{INT_MAX}]".encode()


@pytest.mark.parametrize("bad", [b"x", {1, 2}, object()])
def test_other_types_refused(bad: object) -> None:
    with pytest.raises(CanonicalError) as info:
        canonical_json({"k": bad})
    assert info.value.code == "unsupported_type"


def test_lone_surrogate_refused() -> None:
    with pytest.raises(CanonicalError) as info:
        canonical_json({"k": "\ud800"})
    assert info.value.code == "unencodable"


def test_depth_limit() -> None:
    deep: Any = 1
    for _ in range(MAX_DEPTH):
        deep = [deep]
    check_canonical(deep)
    with pytest.raises(CanonicalError) as info:
        check_canonical([deep])
    assert info.value.code == "too_deep"


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"{'a':1}", b"NaN", b"[1,]", b"\xff", b'"\\ud800"', b"1 2", '{"a":}'],
)
def test_parse_refuses_malformed(data: bytes | str) -> None:
    with pytest.raises(CanonicalError) as info:
        parse_json(data, what="request body")
    assert info.value.code == "malformed_json"
    assert "request body is not valid JSON" in info.value.message


def test_parse_refuses_duplicate_keys() -> None:
    with pytest.raises(CanonicalError) as info:
        parse_json(b'{"a":{"b":1,"b":2}}')
    assert info.value.code == "duplicate_key"
    assert info.value.field == "b"


def test_parse_accepts_str_bytes_and_whitespace() -> None:
    assert parse_json('{ "a" : [1, 2] }') == {"a": [1, 2]}
    assert parse_json(memoryview(b"[true]")) == [True]


def test_parse_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(CanonicalError):
        parse_json(b"[" * 5000 + b"]" * 5000)
