"""SkyPilot task files (issue 18): every task file of tests/fixtures/skypilot is read with a line
per decision, the refused ones name their field, hostile alternatives are refused, and no
SkyPilot field survives normalization (the signed spec is pasar's vocabulary only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_state import make_state

from pasar.core.money import Money
from pasar.core.order_checks import order_mechanism
from pasar.core.quotes import UNCAPPED_UNITS, uncapped_spec
from pasar.core.skypilot import MAX_ALTERNATIVES
from pasar.core.spec import JobSpec, SpecError, load_spec
from pasar.core.spec_draft import Draft, load_draft

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "skypilot"
ACCEPTED = sorted(
    p for p in FIXTURES.rglob("*.yaml") if "refused" not in p.parts and p.name != ".skyignore"
)
REFUSED = {  # file: (the field named, a word of the message)
    "ports.yaml": ("resources.ports", "services"),
    "bucket-mount.yaml": ("file_mounts.~/data", "bucket"),
    "storage-mount.yaml": ("file_mounts./checkpoints", "storage mount"),
    "service.yaml": ("service", "SkyServe"),
    "nested-any-of.yaml": ("resources.any_of[0].any_of", "alternatives of its own"),
    "empty-any-of.yaml": ("resources.any_of", "empty list"),
    "git-workdir.yaml": ("workdir", "git"),
    "mount-over-proc.yaml": ("file_mounts./proc", "sandbox needs"),
}


def draft_of(name: str) -> Draft:
    path = FIXTURES / name
    return load_draft(path.read_text(encoding="utf-8"), str(path))


def refusal(data: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as info:
        Draft.of({"run": "true", **data})
    return info.value


@pytest.mark.parametrize("path", ACCEPTED, ids=lambda p: p.name)
def test_each_task_file_is_read_and_normalizes_to_pasars_fields_only(path: Path) -> None:
    draft = load_draft(path.read_text(encoding="utf-8"), str(path))
    spec = draft.checked()
    data = spec.to_dict()
    assert JobSpec.from_dict(data).to_dict() == data  # a fixpoint: nothing left to translate
    sky = {"any_of", "ordered", "candidates", "disk_size", "image_id", "max_hourly_cost"}
    assert not sky & set(data.get("resources", {}))
    for note in draft.notes:  # one line per decision, naming the field
        field = note.split(":", 1)[0]
        assert field and " " not in field, note


@pytest.mark.parametrize(("name", "expected"), sorted(REFUSED.items()))
def test_refused_task_files_name_the_field(name: str, expected: tuple[str, str]) -> None:
    field, word = expected
    with pytest.raises(SpecError) as info:
        draft_of(f"refused/{name}")
    err = info.value
    assert [d.field for d in err.details] == [field], err.details
    assert word in err.details[0].message and err.details[0].hint
    assert err.details[0].line is not None


def test_the_two_node_task_leaves_price_and_duration_to_the_client() -> None:
    draft = draft_of("ddp-two-nodes.yaml")
    assert draft.missing == ("max_price_per_hour", "max_duration")
    assert "resources.use_spot: ignored" in "\n".join(draft.notes)
    with pytest.raises(SpecError) as info:  # a complete spec is needed to sign
        draft.spec()
    assert {d.field for d in info.value.details} == {"max_price_per_hour", "max_duration"}
    assert all("pasar launch" in (d.hint or "") for d in info.value.details)
    spec = draft.spec(max_price_per_hour="0.10 USDC", max_duration="1h")
    assert spec.num_nodes == 2 and spec.setup == 'echo "setup on $(hostname)"'
    assert spec.envs == {"MASTER_PORT": "29500"}


def test_skypilot_price_field_is_honoured_in_dollars() -> None:
    draft = draft_of("ray-train.yaml")
    assert draft.missing == ("max_duration",)
    spec = draft.spec(max_duration=60)
    assert spec.max_price_per_hour == Money.parse("4.5 USDC")
    assert spec.resources.disk == 256
    err = refusal({"max_price_per_hour": "1 USDC", "resources": {"max_hourly_cost": 2}})
    assert err.field == "resources.max_hourly_cost" and err.code == "conflicting_fields"
    for bad in (0, -1, "cheap", True):
        assert refusal({"resources": {"max_hourly_cost": bad}}).code == "invalid_amount"


def test_alternatives_merge_the_base_resources_and_keep_their_order() -> None:
    spec = draft_of("any-of.yaml").checked()
    assert spec.resources.pick == "cheapest"
    choices = spec.choices()
    assert [c.to_request().describe_gpus() for c in choices] == ["1× A100", "1× H100", "2× L4"]
    assert all(c.resources.cpus == 4 for c in choices)  # the base's cpus: 4+ in each
    assert choices[1].resources.memory == 32 and choices[0].resources.memory == 1
    assert all(c.resources.alternatives is None for c in choices)
    assert draft_of("ordered.yaml").checked().resources.pick == "ordered"
    assert draft_of("candidates.yaml").checked().resources.pick == "cheapest"


def test_hostile_alternatives_are_refused_naming_the_field() -> None:
    many = [{"cpus": i + 1} for i in range(100)]
    err = refusal({"resources": {"any_of": many}})
    assert err.field == "resources.any_of" and err.code == "too_many_alternatives"
    assert str(MAX_ALTERNATIVES) in err.message
    err = refusal({"resources": {"ordered": [{"ordered": [{"cpus": 1}]}]}})
    assert err.field == "resources.ordered[0].ordered" and err.code == "nested_alternatives"
    assert refusal({"resources": {"any_of": []}}).field == "resources.any_of"
    assert refusal({"resources": {"any_of": "A100"}}).field == "resources.any_of"
    err = refusal({"resources": {"any_of": [{"cpus": 1}], "ordered": [{"cpus": 2}]}})
    assert err.code == "conflicting_fields"
    err = refusal({"resources": {"any_of": [{"cpus": 1, "bogus": 2}]}})
    assert err.field == "resources.alternatives[0].bogus" and err.code == "unknown_field"
    # the normalized form, hand-made hostile: nested, too many, or alternatives without pick
    alt = {"cpus": 1, "alternatives": [{"cpus": 2}], "pick": "cheapest"}
    assert refusal({"resources": {"alternatives": [alt], "pick": "cheapest"}}).details
    many_alts = {"alternatives": [{"cpus": 1}] * 100, "pick": "ordered"}
    assert refusal({"resources": many_alts}).code == "too_many_alternatives"
    assert refusal({"resources": {"alternatives": [{"cpus": 1}]}}).code == "conflicting_fields"


def test_the_market_takes_an_order_carrying_its_alternatives() -> None:
    """The spec with its alternatives passes the checks order.create and the quote share (the
    market chooses among them when it matches: tests/unit/core/test_alternatives.py); hostile
    alternatives are refused above, by the spec itself."""
    spec = draft_of("any-of.yaml").spec(max_price_per_hour="1 USDC", max_duration=60)
    state = make_state()
    assert spec.resources.alternatives is not None
    order_mechanism(state.preset, spec)
    for choice in spec.choices():
        order_mechanism(state.preset, choice)  # each alternative alone is fine too


def test_secrets_are_private_and_cloud_knobs_are_one_line_each() -> None:
    draft = draft_of("envs-secrets.yaml")
    spec = draft.spec(max_price_per_hour="1 USDC", max_duration=60)
    assert spec.secrets == {
        "HF_TOKEN": "hf_this_is_not_a_real_token",
        "WANDB_API_KEY": "wandb_not_real_either",
    }
    assert "secrets" not in spec.public_dict() and "envs" not in spec.public_dict()
    assert "hf_this" not in repr(spec.public_dict())
    assert "hf_this" not in "\n".join(draft.notes)  # a note never shows a value
    notes = draft_of("cloud-knobs.yaml").notes
    for key in ("cloud", "region", "zone", "infra", "use_spot", "instance_type"):
        assert sum(n.startswith(f"resources.{key}: ignored") for n in notes) == 1, notes
    assert refusal({"secrets": ["HF_TOKEN"]}).field == "secrets"
    assert refusal({"secrets": {"PASAR_X": "1"}}).field == "secrets.PASAR_X"


def test_lists_of_lines_image_and_disk_size() -> None:
    spec = Draft.of(
        {
            "run": ["echo a", "echo b"],
            "setup": ["pip install x"],
            "resources": {"image_id": "docker:ubuntu:22.04", "disk_size": "50GB"},
        }
    ).checked()
    assert spec.run == "echo a\necho b" and spec.setup == "pip install x"
    assert spec.image == "ubuntu:22.04" and spec.resources.disk == 50
    assert refusal({"run": ["echo", 3]}).field == "run"
    assert refusal({"resources": {"image_id": {"us-east-1": "ami-1"}}}).field == (
        "resources.image_id"
    )
    assert refusal({"resources": {"disk": 1, "disk_size": 2}}).code == "conflicting_fields"


def test_a_complete_spec_loads_as_before_and_typos_point_at_skypilot_names() -> None:
    spec = load_spec("run: x\nmax_price_per_hour: 1 USDC\nmax_duration: 1h\n")
    assert spec.notes == () and spec.secrets is None
    assert "secrets" not in spec.to_dict()  # old specs keep their canonical form
    err = refusal({"resources": {"any_off": [{"cpus": 1}]}})
    assert err.code == "unknown_field" and err.hint == "did you mean 'any_of'?"


def test_a_quote_without_a_cap_is_quoted_uncapped_in_the_markets_currency() -> None:
    assert uncapped_spec({"run": "x"}, "USDC")["max_price_per_hour"] == (
        f"{UNCAPPED_UNITS}.00 USDC"
    )
    assert uncapped_spec({"max_price_per_hour": "1 USDC"}, "USDC") == {
        "max_price_per_hour": "1 USDC"
    }


def test_null_envs_and_secrets_are_left_to_launch_never_dropped() -> None:
    draft = draft_of("envs-from-launch.yaml")
    assert draft.required == ("envs.DATASET", "secrets.HF_TOKEN")
    assert "envs.DATASET: no value in the file: give it at launch (--env DATASET=...)" in (
        draft.notes
    )
    assert draft.checked().envs == {"MODEL": "llama-3-8b"}  # spec check accepts it
    with pytest.raises(SpecError) as info:  # but it is never signed without them
        draft.spec(max_price_per_hour="1 USDC", max_duration=60)
    assert [d.field for d in info.value.details] == ["envs.DATASET", "secrets.HF_TOKEN"]
    assert info.value.details[0].line == 5 and "--env DATASET=VALUE" in (
        info.value.details[0].hint or ""
    )
    given = draft.with_fields(
        envs={"MODEL": "m", "DATASET": "d"}, secrets={"HF_TOKEN": "t"}, max_duration=60
    )
    assert given.spec(max_price_per_hour="1 USDC").secrets == {"HF_TOKEN": "t"}
    with pytest.raises(SpecError) as info:  # a complete spec (the SDK, the market) too
        JobSpec.from_dict({"run": "x", "envs": {"A": None}, "max_price_per_hour": "1 USDC",
                           "max_duration": 60})  # fmt: skip
    assert info.value.field == "envs.A"
