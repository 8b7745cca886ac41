"""Signed envelopes: sign/verify, the four distinct refusals, and tamper-evidence."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pasar.core.errors import PasarError
from pasar.crypto.canonical import INT_MAX, INT_MIN, canonical_json, parse_json
from pasar.crypto.envelope import (
    ENVELOPE_DOMAIN,
    MAX_SKEW_MS,
    BadSignature,
    EnvelopeError,
    MalformedEnvelope,
    StaleTimestamp,
    VerifiedEnvelope,
    WrongSigner,
    new_nonce,
    sign,
    signing_message,
    verify,
    wall_clock_ms,
)
from pasar.crypto.identity import Identity, verify_signature

NOW = 1_700_000_000_000
ALICE = Identity.from_seed(b"a" * 32)
BOB = Identity.from_seed(b"b" * 32)
M = Identity.from_seed(b"m" * 32).account_id  # the market the envelopes are for
BODY: dict[str, Any] = {"type": "order.create", "price": 1_500_000, "tags": ["gpu", "h100"]}

json_bodies = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=INT_MIN, max_value=INT_MAX)
        | st.text(max_size=12),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
        max_leaves=12,
    ),
    max_size=6,
)


def _env(**changes: Any) -> dict[str, Any]:
    env = sign(BODY, ALICE, market=M, now_ms=NOW)
    env.update(changes)
    return env


def test_sign_shape() -> None:
    env = sign(BODY, ALICE, market=M, now_ms=NOW)
    assert set(env) == {"body", "market", "signer", "nonce", "ts", "sig"}
    assert env["signer"] == ALICE.account_id and env["market"] == M
    assert env["ts"] == NOW
    assert len(env["nonce"]) == 32 and len(env["sig"]) == 128
    assert env["body"] == BODY and env["body"] is not BODY


def test_verify_round_trip_through_the_wire() -> None:
    env = sign(BODY, ALICE, market=M, now_ms=NOW)
    got = verify(parse_json(canonical_json(env)), market=M, now_ms=NOW + 1000)
    assert isinstance(got, VerifiedEnvelope)
    assert got.body == BODY and got.signer == ALICE.account_id and got.ts == NOW
    assert got.to_dict() == env
    assert len(got.digest) == 64


def test_signature_covers_domain_separated_canonical_message() -> None:
    env = sign(BODY, ALICE, market=M, now_ms=NOW, nonce="00" * 16)
    message = ENVELOPE_DOMAIN + canonical_json(
        {"body": BODY, "market": M, "signer": ALICE.account_id, "nonce": "00" * 16, "ts": NOW}
    )
    assert signing_message(BODY, ALICE.account_id, "00" * 16, NOW, M) == message
    assert verify_signature(ALICE.public_key, message, bytes.fromhex(env["sig"]))
    # the same signature is not valid over the bare canonical JSON (no domain prefix)
    assert not verify_signature(
        ALICE.public_key, message[len(ENVELOPE_DOMAIN) :], bytes.fromhex(env["sig"])
    )


def test_deterministic_with_given_nonce() -> None:
    a = sign(BODY, ALICE, market=M, now_ms=NOW, nonce="ab" * 16)
    b = sign(dict(reversed(list(BODY.items()))), ALICE, market=M, now_ms=NOW, nonce="ab" * 16)
    assert a == b
    assert verify(a, market=M, now_ms=NOW).digest == verify(b, market=M, now_ms=NOW).digest


def test_nonces_are_random() -> None:
    assert new_nonce() != new_nonce()
    assert (
        sign(BODY, ALICE, market=M, now_ms=NOW)["nonce"]
        != sign(BODY, ALICE, market=M, now_ms=NOW)["nonce"]
    )


def test_wall_clock_ms_is_plausible() -> None:
    assert wall_clock_ms() > NOW


# ----------------------------------------------------------------- the four refusals


def test_bad_signature_on_changed_body() -> None:
    env = _env()
    env["body"] = {**BODY, "price": 1}
    with pytest.raises(BadSignature) as info:
        verify(env, market=M, now_ms=NOW)
    assert info.value.status == 401 and info.value.code == "bad_signature"


def test_bad_signature_when_signer_swapped() -> None:
    env = _env(signer=BOB.account_id)
    with pytest.raises(BadSignature):
        verify(env, market=M, now_ms=NOW)


def test_bad_signature_beats_wrong_signer_and_stale() -> None:
    # a forgery is only ever a bad signature: no claim about who or when is believed
    env = _env(signer=BOB.account_id)
    with pytest.raises(BadSignature):
        verify(env, market=M, now_ms=NOW + 10 * MAX_SKEW_MS, expected_signer=ALICE.account_id)


def test_wrong_signer() -> None:
    with pytest.raises(WrongSigner) as info:
        verify(_env(), market=M, now_ms=NOW, expected_signer=BOB.account_id)
    assert info.value.status == 403 and info.value.code == "wrong_signer"
    verify(_env(), market=M, now_ms=NOW, expected_signer=ALICE.account_id)


@pytest.mark.parametrize("delta", [MAX_SKEW_MS + 1, -(MAX_SKEW_MS + 1), 10**9])
def test_stale_timestamp(delta: int) -> None:
    with pytest.raises(StaleTimestamp) as info:
        verify(_env(), market=M, now_ms=NOW + delta)
    assert info.value.status == 401 and info.value.code == "stale_timestamp"
    assert "behind" in info.value.message if delta > 0 else "ahead of" in info.value.message


@pytest.mark.parametrize("delta", [0, MAX_SKEW_MS, -MAX_SKEW_MS])
def test_within_skew_accepted(delta: int) -> None:
    verify(_env(), market=M, now_ms=NOW + delta)


def test_custom_skew() -> None:
    with pytest.raises(StaleTimestamp):
        verify(_env(), market=M, now_ms=NOW + 2000, max_skew_ms=1000)


def test_all_refusals_are_pasar_errors() -> None:
    for cls in (MalformedEnvelope, BadSignature, WrongSigner, StaleTimestamp):
        assert issubclass(cls, EnvelopeError) and issubclass(cls, PasarError)
    assert len({MalformedEnvelope, BadSignature, WrongSigner, StaleTimestamp}) == 4


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e.pop("sig"), "sig"),
        (lambda e: e.pop("body"), "body"),
        (lambda e: e.update(extra=1), "extra"),
        (lambda e: e.update(body=[1]), "body"),
        (lambda e: e.update(signer="pa1nope"), "signer"),
        (lambda e: e.update(signer=None), "signer"),
        (lambda e: e.update(nonce="xyz"), "nonce"),
        (lambda e: e.update(nonce=e["nonce"].upper()), "nonce"),
        (lambda e: e.update(nonce="ab"), "nonce"),
        (lambda e: e.update(ts="1700000000000"), "ts"),
        (lambda e: e.update(ts=True), "ts"),
        (lambda e: e.update(ts=-1), "ts"),
        (lambda e: e.update(ts=1.7e12), "ts"),
        (lambda e: e.update(sig=e["sig"].upper()), "sig"),
        (lambda e: e.update(sig=e["sig"][:-2]), "sig"),
        (lambda e: e.update(sig="zz" * 64), "sig"),
        (lambda e: e.update(sig=5), "sig"),
        (lambda e: e["body"].update(price=1.5), "body.price"),
    ],
)
def test_malformed(mutate: Any, field: str) -> None:
    env = copy.deepcopy(_env())
    mutate(env)
    with pytest.raises(MalformedEnvelope) as info:
        verify(env, market=M, now_ms=NOW)
    err = info.value
    assert err.status == 400 and err.code == "malformed_envelope"
    assert err.field == field


def test_malformed_reports_every_problem() -> None:
    with pytest.raises(MalformedEnvelope) as info:
        verify({"body": 1, "ts": "x", "other": 2}, market=M, now_ms=NOW)
    fields = {d.field for d in info.value.details}
    assert {"nonce", "sig", "signer", "other", "body", "ts"} <= fields
    assert "problems" in info.value.message


@pytest.mark.parametrize("not_an_envelope", [None, [], "x", 5])
def test_not_an_object(not_an_envelope: object) -> None:
    with pytest.raises(MalformedEnvelope):
        verify(not_an_envelope, market=M, now_ms=NOW)


def test_sign_refuses_unsignable_body() -> None:
    with pytest.raises(MalformedEnvelope) as info:
        sign({"price": 0.5}, ALICE, market=M, now_ms=NOW)
    assert info.value.field == "body.price"
    assert info.value.hint and "integer" in info.value.hint


def test_sign_refuses_bad_nonce_and_ts() -> None:
    with pytest.raises(MalformedEnvelope):
        sign(BODY, ALICE, market=M, now_ms=NOW, nonce="NOTHEX")
    with pytest.raises(MalformedEnvelope):
        sign(BODY, ALICE, market=M, now_ms=-5)
    with pytest.raises(MalformedEnvelope):
        sign([1], ALICE, market=M, now_ms=NOW)  # type: ignore[arg-type]


# ----------------------------------------------------------------- properties


@given(json_bodies)
def test_any_body_signs_and_verifies(body: dict[str, Any]) -> None:
    env = sign(body, ALICE, market=M, now_ms=NOW)
    assert verify(parse_json(canonical_json(env)), market=M, now_ms=NOW).body == body


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(json_bodies, st.data())
def test_any_byte_change_fails_verification(body: dict[str, Any], data: st.DataObject) -> None:
    wire = canonical_json(sign(body, ALICE, market=M, now_ms=NOW))
    pos = data.draw(st.integers(0, len(wire) - 1), label="position")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != wire[pos]), label="byte")
    tampered = wire[:pos] + bytes([new]) + wire[pos + 1 :]
    with pytest.raises(PasarError):
        verify(parse_json(tampered), market=M, now_ms=NOW)


@given(json_bodies, st.data())
def test_truncation_and_extension_fail(body: dict[str, Any], data: st.DataObject) -> None:
    wire = canonical_json(sign(body, ALICE, market=M, now_ms=NOW))
    cut = data.draw(st.integers(0, len(wire) - 1))
    with pytest.raises(PasarError):
        verify(parse_json(wire[:cut]), market=M, now_ms=NOW)
    with pytest.raises(PasarError):
        verify(parse_json(wire + b"x"), market=M, now_ms=NOW)


def test_an_envelope_signed_for_one_market_is_refused_by_another() -> None:
    other = Identity.from_seed(b"o" * 32).account_id
    env = sign(BODY, ALICE, market=M, now_ms=NOW)
    with pytest.raises(EnvelopeError) as err:
        verify(env, market=other, now_ms=NOW)
    assert err.value.code == "wrong_market" and err.value.status == 403
    relabelled = {**env, "market": other}  # claiming the other market breaks the signature
    with pytest.raises(EnvelopeError) as forged:
        verify(relabelled, market=other, now_ms=NOW)
    assert forged.value.code == "bad_signature"
