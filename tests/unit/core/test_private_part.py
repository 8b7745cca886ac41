"""The private part of a job (issue 12 §1): what the chain commits to but never carries."""

from __future__ import annotations

from typing import Any

import pytest

from pasar.core.errors import PasarError
from pasar.core.private_part import PrivatePart, order_fields
from pasar.core.spec import PRIVATE_FIELDS, JobSpec
from pasar.crypto.canonical import canonical_json
from pasar.crypto.hashing import sha256_hex

SPEC = {
    "run": "python train.py --secret-flag",
    "setup": "pip list",
    "envs": {"API_TOKEN": "s3cr3t"},
    "outputs": ["out.csv"],
    "compare": {"out.csv": "numeric:rtol=1e-5"},
    "resources": {"cpus": 2},
    "max_price_per_hour": "1 USDC",
    "max_duration": "1h",
}
INPUTS = [{"path": "data/a.csv", "sha256": "0" * 64, "size": 3}]


def _part(salt: bytes = b"\x07" * 32) -> PrivatePart:
    return PrivatePart.of(JobSpec.from_dict(SPEC), INPUTS, salt)


def test_the_order_fields_carry_nothing_private() -> None:
    fields = order_fields(JobSpec.from_dict(SPEC), _part())
    assert not PRIVATE_FIELDS & set(fields["spec"])
    text = canonical_json(fields).decode()
    for secret in ("secret-flag", "s3cr3t", "API_TOKEN", "pip list", "out.csv", "data/a.csv"):
        assert secret not in text
    assert fields["tolerant"] is True  # public: the market checks verdicts without the part
    assert fields["private"] == _part().commitment


def test_the_private_part_round_trips_and_rebuilds_the_whole_spec() -> None:
    part = _part()
    again = PrivatePart.parse(part.to_bytes())
    assert again == part
    whole = again.job_spec(order_fields(SPEC, part)["spec"])
    assert whole == JobSpec.from_dict(SPEC)
    assert again.inputs == tuple(INPUTS)


def test_the_salt_hides_a_guessed_command() -> None:
    """Without the salt, hashing a guessed private part would confirm it: two salts, two
    unrelated commitments for the same spec."""
    assert _part(b"\x01" * 32).commitment != _part(b"\x02" * 32).commitment
    unsalted = sha256_hex(canonical_json({"spec": _part().spec, "inputs": INPUTS}))
    assert unsalted != _part().commitment


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"salt": "00", "spec": {}, "inputs": []}, "private.salt"),
        (
            {"salt": "0" * 64, "spec": {"resources": {"cpus": 1}}, "inputs": []},
            "private.spec.resources",
        ),
        ({"salt": "0" * 64, "spec": [], "inputs": []}, "private.spec"),
        ({"salt": "0" * 64, "spec": {}, "inputs": [], "x": 1}, "private.x"),
        (
            {
                "salt": "0" * 64,
                "spec": {},
                "inputs": [{"path": "../etc/passwd", "sha256": "0" * 64}],
            },
            "inputs[0].path",
        ),
        (
            {"salt": "0" * 64, "spec": {}, "inputs": [{"path": "a.txt", "sha256": "XYZ"}]},
            "inputs[0].sha256",
        ),
        (
            {
                "salt": "0" * 64,
                "spec": {},
                "inputs": [{"path": "a", "sha256": "0" * 64, "size": -1}],
            },
            "inputs[0].size",
        ),
        ({"salt": "0" * 64, "spec": {}, "inputs": "a.txt"}, "inputs"),
    ],
)
def test_a_bad_private_part_is_refused_naming_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(PasarError) as err:
        PrivatePart.parse(canonical_json(doc))
    assert err.value.status == 422
    assert err.value.field is not None and err.value.field.endswith(field), err.value.to_dict()


def test_conflicting_inputs_are_refused() -> None:
    doc = {
        "salt": "0" * 64,
        "spec": {},
        "inputs": [
            {"path": "a/b", "sha256": "0" * 64, "size": 1},
            {"path": "a", "sha256": "1" * 64, "size": 1},
        ],
    }
    with pytest.raises(PasarError) as err:
        PrivatePart.parse(canonical_json(doc))
    assert "inside 'a'" in err.value.message


def test_non_canonical_bytes_and_oversized_parts_are_refused() -> None:
    with pytest.raises(PasarError) as err:
        PrivatePart.parse(b'{"salt": "' + b"0" * 64 + b'", "spec": {}, "inputs": []}')
    assert "canonical" in err.value.message
    with pytest.raises(PasarError) as big:
        PrivatePart.parse(b" " * (2 << 20))
    assert big.value.code == "invalid_private_part"
    with pytest.raises(PasarError) as junk:
        PrivatePart.parse(b"\xff not json")
    assert junk.value.code == "invalid_private_part"
