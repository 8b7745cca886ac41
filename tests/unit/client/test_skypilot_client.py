"""The client's side of SkyPilot task files (issue 18): what it decides for a spec that leaves
its price cap, duration or resources open (from the market's quotes and ``pasar config``), the
workdir's ignore rules, and the SKYPILOT_* variables a provider gives every node."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from pasar.api.leases import NodeView
from pasar.api.quote import AwardView, QuotedOfferView, QuoteResponse
from pasar.client.defaults import Settings, decide, needs_deciding
from pasar.client.ignore import IgnoreRules, files_below, parse_rules
from pasar.client.inputs import collect_inputs, load_draft_job
from pasar.client.settings import write_setting
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.spec_draft import Draft
from pasar.provider.job_environment import gang_environment, skypilot_environment
from pasar.provider.lease_job import LeaseJob

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "skypilot"
SETTINGS = Settings(Fraction(5, 4), 3600, "1.25", "1h")


def offer(provider: str, price: str | None, leases: int = 0) -> QuotedOfferView:
    return QuotedOfferView(
        provider=provider,
        price_per_hour=price,
        reputation="1/2",
        score=10,
        leases=leases,
        chosen=leases > 0,
        reason=None,
    )


def quote(
    awards: list[tuple[str, str]] = (),  # type: ignore[assignment]
    offers: list[QuotedOfferView] = (),  # type: ignore[assignment]
    *,
    cap: str = "1000000 USDC",
    takes_bids: bool = False,
    fits_anywhere: bool = True,
    leases: int = 1,
) -> QuoteResponse:
    return QuoteResponse(
        mechanism="book",
        takes_bids=takes_bids,
        request="1 CPU",
        leases=leases,
        max_price_per_hour=cap,
        escrow_per_lease="1 USDC",
        escrow="1 USDC",
        chosen=awards[0][0] if awards else None,
        price_per_hour=awards[0][1] if awards else None,
        awards=[AwardView(provider=p, price_per_hour=m, leases=1) for p, m in awards],
        unfilled=0 if awards else leases,
        fits_anywhere=fits_anywhere,
        providers_fit=len(offers),
        note=None,
        decided_by="bids" if takes_bids else None,
        offers=list(offers),
        reasons={},
    )


class Market:
    """A quoter that answers per request (by cpus), and remembers what it was asked."""

    def __init__(self, by_cpus: Mapping[int, QuoteResponse]) -> None:
        self.by_cpus = by_cpus
        self.asked: list[dict[str, Any]] = []

    def __call__(self, body: Mapping[str, Any]) -> QuoteResponse:
        spec = dict(body["spec"])
        self.asked.append(spec)
        return self.by_cpus[int(spec["resources"]["cpus"])]


def test_a_spec_without_cap_or_duration_gets_them_from_the_quote_and_config() -> None:
    draft = Draft.of({"run": "true", "num_nodes": 2})
    assert needs_deciding(draft)
    market = Market({1: quote([("p1", "0.05 USDC"), ("p2", "0.08 USDC")], leases=2)})
    decided = decide(draft, market, SETTINGS)
    assert "max_price_per_hour" not in market.asked[0]  # quoted uncapped: no price derived here
    assert decided.spec.max_price_per_hour == Money.parse("0.10 USDC")  # 1.25 × the dearest
    assert decided.spec.max_duration == 3600
    assert (decided.max_price_from, decided.max_duration_from) == ("quote", "config")
    text = "\n".join(decided.lines)
    assert "0.10 USDC = 1.25 × 0.08 USDC" in text and "1h (3600 s)" in text
    assert decided.to_dict()["max_price_per_hour"] == "0.10 USDC"


def test_a_spec_that_says_everything_is_not_quoted() -> None:
    draft = Draft.of({"run": "true", "max_price_per_hour": "1 USDC", "max_duration": 60})
    assert not needs_deciding(draft)
    decided = decide(draft, Market({}), SETTINGS)  # no quote asked: Market({}) would fail
    assert decided.max_price_from == "spec" and decided.spec.max_duration == 60


def test_no_price_to_start_from_is_refused_naming_the_field() -> None:
    draft = Draft.of({"run": "true"})
    cases = [
        quote(takes_bids=True, offers=[offer("p1", None)]),  # an auction: bids decide
        quote(offers=[]),  # nobody fits
        # a mechanism that prices at the cap (stake): the cap is no market price
        quote([("p1", "1000000 USDC")], [offer("p1", "1000000 USDC", 1)]),
    ]
    for case in cases:
        with pytest.raises(PasarError) as info:
            decide(draft, Market({1: case}), SETTINGS)
        assert info.value.field == "max_price_per_hour" and "--max-price" in (info.value.hint or "")
    # nobody free now, but an ask fits: the cheapest ask is the basis
    decided = decide(draft, Market({1: quote([], [offer("p1", "0.40 USDC")])}), SETTINGS)
    assert decided.spec.max_price_per_hour == Money.parse("0.50 USDC")


def test_any_of_takes_the_cheapest_and_ordered_the_first_that_fits() -> None:
    market = Market(
        {
            64: quote(offers=[], fits_anywhere=False),  # nobody has 64 CPUs
            2: quote([("p2", "0.30 USDC")], [offer("p2", "0.30 USDC", 1)]),
            1: quote([("p1", "0.20 USDC")], [offer("p1", "0.20 USDC", 1)]),
        }
    )
    alts = [{"cpus": 64}, {"cpus": 2}, {"cpus": 1}]
    cheapest = decide(Draft.of({"run": "x", "resources": {"any_of": alts}}), market, SETTINGS)
    assert cheapest.alternative == 2  # what the market would take now
    # the order carries them all: the market chooses when it matches (a waiting order too)
    assert cheapest.spec.resources.alternatives is not None
    assert [c.resources.cpus for c in cheapest.spec.choices()] == [64, 2, 1]
    assert cheapest.spec.resources.pick == "cheapest"
    # one cap for every alternative: the dearest of those priced now (1.25 × 0.30)
    assert cheapest.spec.max_price_per_hour == Money.parse("0.375 USDC")
    line = next(x for x in cheapest.lines if x.startswith("resources.alternatives"))
    assert "[0] 64 CPUs" in line and "0 provider(s) fit" in line
    assert "[1] 2 CPUs" in line and "cap 0.375 USDC" in line  # each alternative's own cap
    assert "(p1), cap 0.25 USDC <- the market would take it now" in line
    cap_line = next(x for x in cheapest.lines if x.startswith("max_price_per_hour"))
    assert "the dearest of the alternatives' caps: [1]" in cap_line
    ordered = decide(Draft.of({"run": "x", "resources": {"ordered": alts}}), market, SETTINGS)
    assert ordered.alternative == 1 and ordered.spec.resources.pick == "ordered"
    assert ordered.spec.max_price_per_hour == Money.parse("0.375 USDC")
    # nobody fits any now: the first a registered provider could ever hold (it waits)
    waiting = Market({64: quote(fits_anywhere=False), 2: quote(), 1: quote()})
    alts_priced = {"any_of": alts}
    draft = Draft.of({"run": "x", "max_price_per_hour": "1 USDC", "resources": alts_priced})
    assert decide(draft, waiting, SETTINGS).alternative == 1


def test_settings_come_from_pasar_config_and_bad_ones_are_refused(tmp_path: Path) -> None:
    assert Settings.read(tmp_path).price_margin == Fraction(5, 4)
    write_setting(tmp_path, "price_margin", "1.5")
    write_setting(tmp_path, "default_duration", "2h")
    settings = Settings.read(tmp_path)
    assert settings.price_margin == Fraction(3, 2) and settings.default_duration_s == 7200
    for key, bad in (("price_margin", "0.5"), ("price_margin", "11"), ("price_margin", "x")):
        with pytest.raises(PasarError) as info:
            write_setting(tmp_path, key, bad)
        assert info.value.field == "price_margin"
    with pytest.raises(PasarError) as info:
        write_setting(tmp_path, "default_duration", "soon")
    assert info.value.field == "default_duration"


def test_the_workdir_goes_up_less_its_skyignore() -> None:
    draft, base = load_draft_job(FIXTURES / "workdir-app" / "task.yaml", None)
    names = {f.name for f in collect_inputs(draft.checked(), base)}
    assert "src/main.py" in names and "src/keep.tmp" in names  # re-included by !keep.tmp
    assert "src/debug.tmp" not in names and not any(n.startswith("checkpoints/") for n in names)
    assert "data/train.csv" in names and ".skyignore" in names


def test_ignore_rules_follow_gitignore(tmp_path: Path) -> None:
    rules = IgnoreRules(parse_rules("# c\n\n/build\nlogs/**\n**/cache\n*.py[co]\ntmp/\n!a.pyc\n"))
    assert rules.ignored("build", is_dir=True) and not rules.ignored("src/build", is_dir=True)
    assert rules.ignored("logs/a/b.txt", is_dir=False)
    assert rules.ignored("x/y/cache", is_dir=True) and rules.ignored("cache", is_dir=False)
    assert rules.ignored("m.pyc", is_dir=False) and rules.ignored("d/m.pyo", is_dir=False)
    assert not rules.ignored("a.pyc", is_dir=False)  # negated
    assert rules.ignored("tmp", is_dir=True) and not rules.ignored("tmp", is_dir=False)
    assert rules.ignored(".git", is_dir=True)  # never uploaded
    (tmp_path / ".gitignore").write_text("*.log\n")
    (tmp_path / "a.log").write_text("x")
    (tmp_path / "b.txt").write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("x")
    kept = files_below(tmp_path, IgnoreRules.of_workdir(tmp_path))
    assert sorted(p.name for p in kept) == [".gitignore", "b.txt"]
    (tmp_path / ".skyignore").write_text("b.txt\n")  # .skyignore wins over .gitignore
    kept = files_below(tmp_path, IgnoreRules.of_workdir(tmp_path))
    assert sorted(p.name for p in kept) == [".gitignore", ".skyignore", "a.log"]


def _lease(spec: dict[str, Any], shard: int, nodes: int) -> LeaseJob:
    from pasar.core.spec import JobSpec

    full = {"run": "x", "max_price_per_hour": "1 USDC", "max_duration": 60, **spec}
    return LeaseJob(
        lease_id=f"l-{shard}",
        order_id="o-1",
        shard=shard,
        shards=nodes,
        spec=JobSpec.from_dict(full),
        inputs=(),
        nodes=tuple(
            NodeView(rank=i, lease_id=f"l-{i}", provider=f"p{i}", address=f"10.0.0.{i + 1}")
            for i in range(nodes if nodes > 1 else 0)
        ),
    )


def test_skypilot_variables_on_every_node() -> None:
    gang = _lease({"num_nodes": 2, "resources": {"accelerators": "A100:2"}}, 1, 2)
    env = skypilot_environment(gang)
    assert env == {
        "SKYPILOT_NODE_RANK": "1",
        "SKYPILOT_NODE_IPS": "10.0.0.1\n10.0.0.2",
        "SKYPILOT_NUM_NODES": "2",
        "SKYPILOT_NUM_GPUS_PER_NODE": "2",
        "SKYPILOT_TASK_ID": "o-1",
    }
    assert env["SKYPILOT_NODE_IPS"] == gang_environment(gang)["PASAR_NODE_IPS"]  # aliases
    alone = skypilot_environment(_lease({}, 0, 1))
    assert alone["SKYPILOT_NODE_RANK"] == "0" and alone["SKYPILOT_NODE_IPS"] == "127.0.0.1"
    assert alone["SKYPILOT_NUM_NODES"] == "1" and alone["SKYPILOT_NUM_GPUS_PER_NODE"] == "0"


def test_launch_flags_give_the_values_a_task_file_leaves_to_launch() -> None:
    from pasar.cli.launch_spec import Overrides, build_launch_spec

    task = str(FIXTURES / "envs-from-launch.yaml")
    with pytest.raises(PasarError) as info:
        build_launch_spec([task], Overrides(envs=["DATASET=d"]))
    assert info.value.field == "secrets.HF_TOKEN" and "--secret HF_TOKEN" in (info.value.hint or "")
    draft, _, _ = build_launch_spec([task], Overrides(envs=["DATASET=d"], secrets=["HF_TOKEN=t"]))
    assert draft.unmet() is None
    spec = draft.spec(max_price_per_hour="1 USDC", max_duration=60)
    assert spec.envs == {"DATASET": "d", "MODEL": "llama-3-8b"} and spec.secrets == {
        "HF_TOKEN": "t"
    }
    with pytest.raises(PasarError) as info:
        build_launch_spec([task], Overrides(secrets=["HF_TOKEN"]))
    assert info.value.field == "--secret" and "HF_TOKEN" not in info.value.message


def test_the_launch_question_names_the_cap_and_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    from pasar.cli import jobs

    asked: list[str] = []
    monkeypatch.setattr(jobs.sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(typer, "confirm", lambda text, **_: asked.append(text) or False)
    assert not jobs._confirm("0.125 USDC", " (cap 0.0625 USDC/h per lease, at most 3600 s)")
    assert asked == ["launch and escrow 0.125 USDC (cap 0.0625 USDC/h per lease, at most 3600 s)?"]


def test_a_lease_runs_the_alternative_the_market_matched_it_under() -> None:
    """The provider sizes the job by the lease's alternative (limits, GPUs, SKYPILOT_*), not
    by the base resources; a view naming an alternative the spec lacks is the market's fault."""
    from pasar.api.leases import LeaseView
    from pasar.core.spec import JobSpec
    from pasar.provider.lease_job import limits_for

    spec = JobSpec.from_dict(
        {
            "run": "x",
            "max_price_per_hour": "1 USDC",
            "max_duration": 60,
            "resources": {"any_of": [{"accelerators": "A100:2"}, {"cpus": 3, "memory": 5}]},
        }
    )

    def view(alternative: int | None) -> LeaseView:
        return LeaseView(
            lease_id="l-1",
            order_id="o-1",
            provider="p1",
            client="c",
            shard=0,
            status="running",
            price_per_hour="0.1 USDC",
            started_at=0,
            spec=spec.to_dict(),
            **({"alternative": alternative} if alternative is not None else {}),
        )

    cpu = LeaseJob.from_view(view(1))
    assert cpu.spec.resources.alternatives is None and cpu.spec.resources.cpus == 3
    limits = limits_for(cpu.spec, allow_network=False)
    assert limits.cpus == 3 and limits.memory_bytes == 5 * 1024**3
    assert skypilot_environment(cpu)["SKYPILOT_NUM_GPUS_PER_NODE"] == "0"
    gpu = LeaseJob.from_view(view(0))
    assert skypilot_environment(gpu)["SKYPILOT_NUM_GPUS_PER_NODE"] == "2"
    for bad in (None, 2, -1):
        with pytest.raises(PasarError) as info:
            LeaseJob.from_view(view(bad))
        assert info.value.code == "bad_response"
