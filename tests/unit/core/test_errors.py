"""The one error shape: what an SDK user sees when all they have is the exception."""

from __future__ import annotations

import pytest

from pasar.core.errors import PasarError


def test_str_carries_the_hint_so_a_traceback_shows_the_way_out() -> None:
    err = PasarError("no provider took the job", code="not_matched", hint="raise max_price")
    assert str(err) == "no provider took the job (hint: raise max_price)"
    assert err.message == "no provider took the job"  # the wire keeps them apart
    assert err.to_dict() == {
        "error": {
            "code": "not_matched",
            "message": "no provider took the job",
            "hint": "raise max_price",
        }
    }


def test_str_without_a_hint_is_the_message() -> None:
    assert str(PasarError("bad field", field="x")) == "bad field"


def test_a_raised_error_prints_its_hint() -> None:
    with pytest.raises(PasarError, match=r"\(hint: check `pasar offers`\)"):
        raise PasarError("nothing fits", hint="check `pasar offers`")
