"""Comparing a re-run's output with the provider's: exactly, or within a declared tolerance."""

from __future__ import annotations

import io

import numpy as np
import pytest

from pasar.core.compare import CompareError, is_numeric_file, numbers_match, parse_rule


def test_rules_parse_and_print_back() -> None:
    assert parse_rule("exact").text() == "exact"
    rule = parse_rule("numeric:rtol=1e-5,atol=1e-8")
    assert rule.kind == "numeric" and parse_rule(rule.text()) == rule
    for bad in ("fuzzy", "numeric", "numeric:rtol=x", "numeric:rtol=-1", "numeric:tol=1", 3):
        with pytest.raises(CompareError):
            parse_rule(bad)


def test_numbers_within_tolerance_match_and_others_do_not() -> None:
    rule = parse_rule("numeric:rtol=1e-6")
    assert numbers_match(b"1.0,2.0\n3.0\n", b"1.0000001,2.0\n3.0\n", "loss.csv", rule)
    assert not numbers_match(b"1.0,2.0\n", b"1.1,2.0\n", "loss.csv", rule)
    assert not numbers_match(b"1.0,2.0\n", b"1.0\n", "loss.csv", rule)  # a number missing
    assert not numbers_match(b"1.0\n", b"one\n", "loss.csv", rule)  # not a number
    assert numbers_match(b'{"a": [1.0, 2.0]}', b'{"a": [1.0000001, 2.0]}', "m.json", rule)
    assert not numbers_match(b"1.0\n", b"1.0000001\n", "x.csv", parse_rule("exact"))


def test_npy_arrays_compare_by_value() -> None:
    def npy(values: list[float]) -> bytes:
        buf = io.BytesIO()
        np.save(buf, np.array(values, dtype=np.float32))
        return buf.getvalue()

    rule = parse_rule("numeric:rtol=1e-5")
    assert numbers_match(npy([1.0, 2.0]), npy([1.000001, 2.0]), "w.npy", rule)
    assert not numbers_match(npy([1.0, 2.0]), npy([1.5, 2.0]), "w.npy", rule)
    assert not numbers_match(npy([1.0]), b"not an array", "w.npy", rule)


def test_only_files_of_numbers_take_a_tolerance() -> None:
    assert is_numeric_file("out/loss.CSV") and is_numeric_file("w.npy")
    assert not is_numeric_file("frame.png")
