"""How the CLI shows values that travel in more than one exact form (issue 14.9)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pasar.cli.common import reputation


@pytest.mark.parametrize(
    ("wire", "shown"),
    [("2/3", "0.67"), (Decimal(2) / Decimal(3), "0.67"), ("1", "1.00"), (0.5, "0.50")],
)
def test_reputation_reads_the_same_whichever_form_the_wire_used(wire: object, shown: str) -> None:
    assert reputation(wire) == shown


def test_a_missing_or_odd_reputation_is_shown_not_raised() -> None:
    assert reputation(None) == "-" and reputation("n/a") == "n/a"
