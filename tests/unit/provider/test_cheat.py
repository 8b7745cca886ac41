"""``--cheat KIND:RATE``: parsing, the per-lease choice (deterministic, at RATE), what each
kind does to a workdir, the devnet-only guard, and the agent's refusal outside a devnet."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import pytest

from pasar.core.errors import PasarError
from pasar.provider.cheat import (
    SLOW_FACTOR,
    CheatLog,
    fill_missing,
    garble_outputs,
    local_seed,
    parse_cheat,
    read_cheats,
    refuse_unless_devnet,
)


@pytest.mark.parametrize(
    ("text", "kind", "rate"),
    [
        ("garble:0.5", "garble", Fraction(1, 2)),
        ("skip:1", "skip", Fraction(1)),
        ("LAZY: 25%", "lazy", Fraction(1, 4)),
        ("slow:0", "slow", Fraction(0)),
    ],
)
def test_parse_kind_and_rate(text: str, kind: str, rate: Fraction) -> None:
    plan = parse_cheat(text, seed="s")
    assert (plan.kind, plan.rate) == (kind, rate)


@pytest.mark.parametrize(
    "text", ["garble", "steal:0.5", "garble:x", "garble:1.5", "garble:-0.1", "skip:nan", ":0.5"]
)
def test_bad_cheat_names_the_flag(text: str) -> None:
    with pytest.raises(PasarError) as err:
        parse_cheat(text, seed="s")
    assert err.value.field == "--cheat" and err.value.code == "invalid_cheat"
    assert err.value.hint and "KIND:RATE" in err.value.hint


@pytest.mark.parametrize("rate", ["0.1", "0.5", "0.9"])
def test_rate_is_honoured_over_many_leases(rate: str) -> None:
    plan = parse_cheat(f"garble:{rate}", seed="seed-1")
    chosen = sum(plan.applies(f"o-{i:016x}-0") for i in range(1000))
    assert abs(chosen / 1000 - float(rate)) < 0.05  # ~3.5 sigma at p=0.5


def test_choice_is_deterministic_and_depends_on_the_seed() -> None:
    a = parse_cheat("skip:0.5", seed="a")
    leases = [f"o-{i}-0" for i in range(200)]
    first = [a.applies(x) for x in leases]
    assert first == [parse_cheat("skip:0.5", seed="a").applies(x) for x in leases]
    assert first != [parse_cheat("skip:0.5", seed="b").applies(x) for x in leases]


def test_rate_zero_and_one_are_exact() -> None:
    assert not any(parse_cheat("garble:0", seed="s").applies(f"l{i}") for i in range(100))
    assert all(parse_cheat("garble:1", seed="s").applies(f"l{i}") for i in range(100))


def test_slow_inflates_the_score_and_others_do_not() -> None:
    assert parse_cheat("slow:1", seed="s").claimed_score(100) == 100 * SLOW_FACTOR
    assert parse_cheat("slow:0", seed="s").claimed_score(100) == 100
    assert parse_cheat("garble:1", seed="s").claimed_score(100) == 100


def test_local_seed_is_kept(tmp_path: Path) -> None:
    seed = local_seed(tmp_path)
    assert seed and local_seed(tmp_path) == seed


def test_garble_changes_every_output_hash(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"42\n")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "b.bin").write_bytes(bytes(range(200)))
    before = {
        p: hashlib.sha256((tmp_path / p).read_bytes()).hexdigest()
        for p in ("a.txt", "empty", "dir/b.bin")
    }
    garbled = garble_outputs(tmp_path, ["a.txt", "empty", "dir", "missing"])
    assert sorted(garbled) == ["a.txt", "dir/b.bin", "empty"]
    for path, sha in before.items():
        assert hashlib.sha256((tmp_path / path).read_bytes()).hexdigest() != sha
    assert (tmp_path / "dir" / "b.bin").read_bytes()[64:] == bytes(range(64, 200))


def test_fill_missing_writes_only_what_is_missing_and_stays_inside(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "done.txt").write_text("real\n")
    written = fill_missing(work, ["done.txt", "out/result.txt", "../escape.txt"], "l-1")
    assert written == ["out/result.txt"]
    assert (work / "done.txt").read_text() == "real\n"
    assert b"never computed" in (work / "out" / "result.txt").read_bytes()
    assert not (tmp_path / "escape.txt").exists()


def test_cheat_log_round_trips(tmp_path: Path) -> None:
    log = CheatLog(tmp_path)
    log.record("o-1-0", "garble", order_id="o-1")
    log.record("o-2-0", "skip", order_id="o-2")
    rows = read_cheats(tmp_path)
    assert [(r["lease_id"], r["kind"], r["order_id"]) for r in rows] == [
        ("o-1-0", "garble", "o-1"),
        ("o-2-0", "skip", "o-2"),
    ]
    assert read_cheats(tmp_path / "nowhere") == []


def test_only_a_devnet_market_allows_cheating() -> None:
    refuse_unless_devnet(True)
    with pytest.raises(PasarError) as err:
        refuse_unless_devnet(False)
    assert err.value.code == "cheat_refused" and err.value.field == "--cheat"


def test_pol_kind_names_a_harness_cheat_on_every_lease() -> None:
    from pasar.provider.cheat import POL_KINDS, cheat_environment
    from pasar.train.cheat import KINDS

    assert POL_KINDS == KINDS
    plan = parse_cheat("pol:perturb", seed="s")
    assert plan.kind == "pol:perturb" and plan.applies("any-lease")
    assert cheat_environment(plan.kind) == {"PASAR_POL_CHEAT": "perturb"}
    assert cheat_environment("pol") == {"PASAR_POL_CHEAT": "skip:0.1"}
    with pytest.raises(PasarError):
        parse_cheat("pol:wiggle", seed="s")
