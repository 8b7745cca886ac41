"""The parse memo behind ``JobSpec.from_public`` answers exactly what a parse would."""

from __future__ import annotations

import enum
from typing import Any

import pytest

from pasar.core.spec import JobSpec
from pasar.core.spec_memo import ParseMemo, plain_key
from pasar.core.spec_yaml import SpecError

PUBLIC = {"max_price_per_hour": "0.01 USDC", "max_duration": 60, "resources": {"cpus": 1}}


class Color(enum.Enum):
    RED = "red"


class Tag(str):
    """A str subclass: its JSON text is a plain string's."""


def _nested(depth: int) -> dict[str, Any]:
    data: dict[str, Any] = {"x": 1}
    for _ in range(depth):
        data = {"n": [data]}
    return data


def counting(memo: ParseMemo[Any], data: object, source: str = "s") -> tuple[Any, int]:
    calls = []

    def parse() -> object:
        calls.append(1)
        return {"parsed": data}

    return memo.parse(data, source, parse), len(calls)


def test_equal_plain_data_is_parsed_once_and_key_order_counts() -> None:
    """Key order is part of the key: a parse keeps the order of a mapping's keys (a job's
    ``envs``), so data differing only in its order is parsed again, never answered with the
    other order's spec."""
    memo: ParseMemo[Any] = ParseMemo()
    first, n1 = counting(memo, {"a": 1, "b": [True, None, "x"]})
    again, n2 = counting(memo, {"a": 1, "b": [True, None, "x"]})
    assert (n1, n2) == (1, 0) and again is first
    reordered, n3 = counting(memo, {"b": [True, None, "x"], "a": 1})
    assert n3 == 1 and reordered is not first
    _, n4 = counting(memo, {"a": 1, "b": [True, None, "x"]}, source="other")  # errors name it
    assert n4 == 1


@pytest.mark.parametrize(
    "data",
    [
        {"a": 1.0},  # a float: its text may equal an int's
        {"a": (1, 2)},  # a tuple reads like a list
        {"a": Color.RED},  # an enum reads like its value
        {"a": 2**70},  # past 64 bits
        {1: "a"},  # a non-string key
        [{"a": "x"}] * 2 + [object()],
        {"a": [["x", [1.5]]]},  # a float deep in lists
        {"a": {"b": Tag("x")}},  # a str subclass reads like a str
        [True, None, Tag("x")],
        _nested(40),  # deeper than the check goes
    ],
)
def test_data_that_is_not_plain_json_is_never_memoized(data: object) -> None:
    memo: ParseMemo[Any] = ParseMemo()
    assert plain_key(data) is None
    assert [counting(memo, data)[1] for _ in range(2)] == [1, 1]


def test_failures_are_not_kept_and_the_memo_is_bounded() -> None:
    memo: ParseMemo[Any] = ParseMemo(size=2)

    def refuse() -> object:
        raise ValueError("refused")

    for _ in range(2):
        with pytest.raises(ValueError):
            memo.parse({"a": 1}, "s", refuse)
    for i in range(5):
        counting(memo, {"i": i})
    assert counting(memo, {"i": 4})[1] == 0 and counting(memo, {"i": 0})[1] == 1


def test_from_public_gives_the_same_spec_and_still_refuses_each_time() -> None:
    parsed = JobSpec.from_public(dict(PUBLIC), source="body.spec")
    assert JobSpec.from_public(dict(PUBLIC), source="body.spec") is parsed
    assert parsed == JobSpec.from_dict({**PUBLIC, "run": parsed.run}, source="body.spec")
    bad = {**PUBLIC, "max_duration": -5}
    for _ in range(2):
        with pytest.raises(SpecError) as err:
            JobSpec.from_public(bad, source="body.spec")
        assert "max_duration" in str(err.value)
