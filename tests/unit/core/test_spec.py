"""The job spec: forms it accepts, the errors it reports (all at once, with lines), round trips."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.resources import GpuSelector, Inventory, fit
from pasar.core.spec import Accelerators, JobSpec, SpecError, load_spec

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
BASE = 'run: echo hi\nmax_price_per_hour: "1.5 USDC"\nmax_duration: 2h\n'


def spec(extra: str = "") -> JobSpec:
    return load_spec(BASE + extra, "job.yaml")


def errors_of(text: str, source: str = "job.yaml") -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(text, source)
    return info.value


def fields(err: SpecError) -> dict[str, Any]:
    return {d.field: d for d in err.details}


# -- valid specs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hello.yaml", "gpu-train.yaml"])
def test_examples_are_valid(name: str) -> None:
    path = EXAMPLES / name
    job = load_spec(path.read_text(encoding="utf-8"), str(path))
    assert load_spec(job.to_yaml(), "again") == job


def test_minimal_spec_gets_explicit_defaults() -> None:
    job = spec()
    assert job.to_dict() == {
        "resources": {"cpus": 1, "memory": 1, "disk": 1},
        "run": "echo hi",
        "envs": {},
        "inputs": [],
        "outputs": [],
        "max_price_per_hour": "1.50 USDC",
        "max_duration": 7200,
        "num_nodes": 1,
        "shards": 1,
        "privacy": "none",
        "network": False,
    }
    assert job.max_price_per_hour == Money(1_500_000, "USDC")
    assert job.pricing is None and job.verification is None


@pytest.mark.parametrize(
    "form",
    [
        '"A100:2"',
        "{A100: 2, H100: 2}",
        '["A100:2", "H100:2"]',
        "[A100:2, h100-sxm:2]",
        "{models: [A100, H100], count: 2}",
    ],
)
def test_accelerator_forms_normalize_alike(form: str) -> None:
    acc = spec(f"resources:\n  accelerators: {form}\n").resources.accelerators
    assert acc is not None and acc.count == 2
    assert acc.models[0] == "A100"
    assert set(acc.models) <= {"A100", "H100", "H100-SXM"}


def test_accelerators_shorthand_details() -> None:
    acc = spec("resources: {accelerators: a100-80gb}\n").resources.accelerators
    assert acc == Accelerators(models=("A100-80GB",), count=1)
    assert acc.selectors() == (GpuSelector("A100", 80),)
    any_two = spec("resources: {accelerators: {count: 2}}\n").resources.accelerators
    assert any_two == Accelerators(models=(), count=2)
    dup = spec("resources: {accelerators: [A100:1, a100:1]}\n").resources.accelerators
    assert dup is not None and dup.models == ("A100",)


def test_gpu_ram_alone_asks_for_one_gpu() -> None:
    job = spec("resources: {gpu_ram: 24+}\n")
    request = job.to_request()
    assert request.gpu_count == 1 and request.gpu_models == () and request.min_vram_gb == 24


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4", 4), ("4+", 4), ('"4+"', 4), ("0.5", Decimal("0.5")), ('"16GB+"', 16), ("16 GB", 16)],
)
def test_quantities(text: str, expected: Decimal) -> None:
    field = "memory" if "GB" in text else "cpus"
    res = spec(f"resources:\n  {field}: {text}\n").resources
    assert getattr(res, field) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("2m", 120),
        ("4h", 14400),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("1d", 86400),
        ("600", 600),
        ('"600"', 600),
        ("1h 30m 15s", 5415),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    job = load_spec(f'run: x\nmax_price_per_hour: "1 USDC"\nmax_duration: {text}\n', "d.yaml")
    assert job.max_duration == seconds


def test_verification_forms() -> None:
    assert spec("verification: replicate:0.1\n").replication_rate == Fraction(1, 10)
    assert spec("verification: replicate:25%\n").verification == "replicate:0.25"
    assert spec("verification: replicate\n").verification == "replicate:1"
    assert spec("verification: pol\n").replication_rate is None
    for kind in ("receipt", "pol", "tee"):
        assert spec(f"verification: {kind}\n").verification == kind


def test_envs_are_text_and_sorted() -> None:
    job = spec("envs: {B: 1, A: true, C: hello}\n")
    assert job.envs == {"A": "true", "B": "1", "C": "hello"}
    assert list(job.to_dict()["envs"]) == ["A", "B", "C"]


def test_request_and_escrow() -> None:
    job = spec(
        "resources: {accelerators: [A100:2, H100:2], gpu_ram: 40+,"
        " cpus: 8, memory: 64, disk: 100}\n"
    )
    request = job.to_request()
    assert request.gpu_count == 2
    assert request.gpu_models == (GpuSelector("A100"), GpuSelector("H100"))
    inv = Inventory.build(gpus={"H100": 2}, cpus=8, memory_gb=64, disk_gb=100)
    assert fit(request, inv).ok
    assert job.max_escrow() == Money.parse("3 USDC")  # 1.5 USDC/h × 2 h


def test_escrow_rounds_down_and_counts_every_lease() -> None:
    job = load_spec('run: x\nmax_price_per_hour: "1 USDC"\nmax_duration: 1s\nshards: 3\n', "s.yaml")
    assert job.max_escrow_per_lease() == Money(277, "USDC")  # 1e6 / 3600 = 277.7…
    assert job.lease_count == 3
    assert job.max_escrow() == Money(831, "USDC")


def test_merge_keys_and_anchors_work() -> None:
    job = spec("resources:\n  <<: {cpus: 4, memory: 8}\n  memory: 16\n")
    assert job.resources.cpus == 4 and job.resources.memory == 16  # explicit beats merged
    alias = spec("envs: {A: &v hello, B: *v}\n")
    assert alias.envs == {"A": "hello", "B": "hello"}


# -- from Python -----------------------------------------------------------------------------------


def test_built_from_python_like_the_sdk() -> None:
    job = JobSpec(
        run="python train.py",
        resources={"accelerators": "A100:8"},
        max_price_per_hour=Money.parse("12 USDC"),
        max_duration=3600,
    )
    assert job.to_request().gpu_count == 8
    assert JobSpec.build(**job.to_dict()) == job
    assert JobSpec.from_dict(job.to_dict()) == job
    with pytest.raises(pydantic.ValidationError):
        job.run = "other"  # type: ignore[misc]


def test_build_raises_one_spec_error() -> None:
    with pytest.raises(SpecError) as info:
        JobSpec.build(run="x", max_price_per_hour=1.5, max_duration="2h", gpus=2)
    err = info.value
    assert isinstance(err, PasarError)
    assert "<python>" in err.message
    assert set(fields(err)) == {"max_price_per_hour", "gpus"}


def test_json_schema_is_available_for_the_api() -> None:
    schema = JobSpec.model_json_schema()
    assert "max_price_per_hour" in schema["properties"]
    json.dumps(schema)


# -- errors ----------------------------------------------------------------------------------------


def test_float_money_is_refused_with_a_hint() -> None:
    err = errors_of("run: x\nmax_price_per_hour: 1.5\nmax_duration: 1h\n")
    (detail,) = err.details
    assert detail.code == "float_money" and err.code == "float_money"
    assert detail.field == "max_price_per_hour" and detail.line == 2
    assert detail.hint is not None and '"1.5 USDC"' in detail.hint
    assert "job.yaml" in err.message and "line 2" in err.message


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ('"1.5"', "missing_currency"),
        ('"0 USDC"', "invalid_amount"),
        ('"1.1234567 USDC"', "too_precise"),
        ("[1]", "invalid_amount"),
        ('"-1 USDC"', "invalid_amount"),
    ],
)
def test_bad_money(value: str, code: str) -> None:
    err = errors_of(f"run: x\nmax_price_per_hour: {value}\nmax_duration: 1h\n")
    assert err.details[0].code == code and err.details[0].field == "max_price_per_hour"


@pytest.mark.parametrize("value", ["1.5", "0", "-5", "soon", "1w", "[]", "1.5s", "true"])
def test_bad_durations(value: str) -> None:
    err = errors_of(f'run: x\nmax_price_per_hour: "1 USDC"\nmax_duration: {value}\n')
    assert err.details[0].code == "invalid_duration"
    assert err.details[0].field == "max_duration" and err.details[0].line == 3


def test_typos_name_the_nearest_key_and_the_line() -> None:
    err = errors_of(BASE + "resources:\n  acelerators: A100:2\nnetwrk: true\n")
    by_field = fields(err)
    assert by_field["resources.acelerators"].line == 5
    assert by_field["resources.acelerators"].hint == "did you mean 'accelerators'?"
    assert by_field["resources.acelerators"].code == "unknown_field"
    assert by_field["netwrk"].line == 6 and by_field["netwrk"].hint == "did you mean 'network'?"


def test_every_mistake_is_reported_in_one_run() -> None:
    text = """\
name: bad name!
resources:
  accelerators: A1000:2
  cpus: many
run: echo
envs:
  PASAR_LEASE: x
  ok: 1.5
outputs: [/etc/passwd]
max_price_per_hour: 1.5
max_duration: forever
pricing: auctoin
privacy: secret
num_nodes: 0
network: maybe
verification: replicate:2
"""
    err = errors_of(text, "many.yaml")
    assert err.message == "many.yaml: 13 problems in the job spec"
    got = {d.field: (d.line, d.code) for d in err.details}
    assert got == {
        "name": (1, "invalid_value"),
        "resources.accelerators": (3, "unknown_gpu"),
        "resources.cpus": (4, "invalid_quantity"),
        "envs.PASAR_LEASE": (7, "reserved_env"),
        "envs.ok": (8, "invalid_type"),
        "outputs[0]": (9, "invalid_value"),
        "max_price_per_hour": (10, "float_money"),
        "max_duration": (11, "invalid_duration"),
        "pricing": (12, "invalid_choice"),
        "privacy": (13, "invalid_choice"),
        "num_nodes": (14, "invalid_value"),
        "network": (15, "invalid_value"),
        "verification": (16, "invalid_choice"),
    }
    assert [d.line for d in err.details] == sorted(d.line or 0 for d in err.details)
    assert fields(err)["pricing"].hint == "did you mean 'auction'?"
    assert "A100" in (fields(err)["resources.accelerators"].hint or "")
    body = err.to_dict()["error"]
    assert body["code"] == "invalid_spec" and len(body["details"]) == 13


def test_missing_fields_are_named_with_a_hint() -> None:
    err = errors_of("name: x\n")
    missing = fields(err)
    assert set(missing) == {"run", "max_price_per_hour", "max_duration"}
    assert all(d.code == "missing_field" and d.hint and d.line == 1 for d in missing.values())


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("run: x\n  bad: indent\n", 2),
        ("run: [1, 2\nx: 3\n", 2),
        ("a: 'open\n", 2),
        ("run: x\n---\nrun: y\n", 2),
    ],
)
def test_yaml_syntax_errors_have_lines(text: str, line: int) -> None:
    err = errors_of(text)
    (detail,) = err.details
    assert detail.code == "yaml_syntax" and detail.line == line and detail.hint


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("- run: x\n", "invalid_type"),
        ("just text\n", "invalid_type"),
        ("", "empty_spec"),
        ("# only a comment\n", "empty_spec"),
    ],
)
def test_the_top_level_must_be_a_mapping(text: str, code: str) -> None:
    err = errors_of(text)
    assert err.details[0].code == code and err.details[0].line == 1


def test_duplicate_keys_and_custom_tags_are_refused() -> None:
    err = errors_of(BASE + "run: again\n")
    assert err.details[0].line == 4 and "duplicate" in err.details[0].message
    err = errors_of(BASE + "name: !python/object x\n")
    assert err.details[0].line == 4 and err.details[0].field == "name"


def test_accelerator_errors() -> None:
    mixed = errors_of(BASE + "resources: {accelerators: [A100:2, H100:4]}\n").details[0]
    assert mixed.code == "invalid_accelerators" and "same number" in mixed.message
    digits = errors_of(BASE + "resources: {accelerators: 4090:2}\n").details[0]
    assert digits.hint is not None and "quote" in digits.hint
    zero = errors_of(BASE + "resources: {accelerators: {models: [A100], count: 0}}\n")
    assert zero.details[0].field == "resources.accelerators.count"
    extra = errors_of(BASE + "resources: {accelerators: {models: [A100], cuont: 2}}\n")
    assert extra.details[0].hint == "did you mean 'count'?"
    vram = errors_of(BASE + "resources: {accelerators: A100-40GB, gpu_ram: 80}\n").details[0]
    assert vram.code == "unsatisfiable" and "A100-40GB has 40 GB" in vram.message
    huge = errors_of(BASE + "resources: {gpu_ram: 1000}\n").details[0]
    assert huge.code == "unsatisfiable"


def test_nodes_and_shards_are_exclusive() -> None:
    err = errors_of(BASE + "num_nodes: 2\nshards: 4\n")
    assert err.details[0].code == "conflicting_fields"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("inputs: data/\n", "inputs"),
        ("envs: [A]\n", "envs"),
        ("envs: {1A: x}\n", "envs.1A"),
        ("image: 'two words'\n", "image"),
        ("outputs: ['../up']\n", "outputs[0]"),
        ("setup: 42\n", "setup"),
        ("resources: 4\n", "resources"),
        ("workdir: ''\n", "workdir"),
        ("shards: 1.5\n", "shards"),
        ("network: 'yes'\n", "network"),
    ],
)
def test_field_errors_name_their_field(extra: str, field: str) -> None:
    err = errors_of(BASE + extra)
    assert [d.field for d in err.details] == [field]
    assert err.details[0].line == 4


# -- properties ------------------------------------------------------------------------------------

_FIELDS = [
    "name", "resources", "image", "setup", "run", "workdir", "envs", "inputs", "outputs",
    "max_price_per_hour", "max_duration", "num_nodes", "shards", "pricing", "verification",
    "privacy", "network",
]  # fmt: skip
_GARBAGE = st.one_of(
    st.just(1.5),
    st.just(-3),
    st.just([{"x": 1}]),
    st.just({"nested": {"deep": 1}}),
    st.just("?? not valid ??"),
    st.just(True),
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(_FIELDS), _GARBAGE, min_size=1, max_size=6))
def test_every_error_names_its_field_and_line(garbage: dict[str, object]) -> None:
    good = yaml.safe_load(BASE)
    text = yaml.safe_dump({**good, **garbage}, sort_keys=False)
    try:
        load_spec(text, "fuzz.yaml")
    except SpecError as err:
        assert err.details
        assert "fuzz.yaml" in err.message
        for d in err.details:
            assert d.field, d
            assert d.line is not None and d.line >= 1, d
            assert d.field.split(".")[0].split("[")[0] in garbage, d


_NAMES = st.sampled_from(["A100", "a100-80gb", "H100", "rtx4090", "NVIDIA L4", "MI300X"])
_SPECS = st.fixed_dictionaries(
    {
        "run": st.text(min_size=1, max_size=20).filter(str.strip),
        "max_price_per_hour": st.builds(
            lambda micros, cur: str(Money(micros, cur)),
            st.integers(1, 10**12),
            st.sampled_from(["USDC", "AKT", "IO"]),
        ),
        "max_duration": st.one_of(
            st.integers(1, 10**7), st.sampled_from(["90s", "2m", "4h", "1h30m", "1d"])
        ),
    },
    optional={
        "name": st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True),
        "resources": st.fixed_dictionaries(
            {},
            optional={
                "accelerators": st.one_of(
                    st.builds(lambda n, c: f"{n}:{c}", _NAMES, st.integers(1, 8)),
                    st.builds(
                        dict.fromkeys,
                        st.lists(_NAMES, min_size=1, max_size=3),
                        st.integers(1, 8),
                    ),
                ),
                "cpus": st.one_of(st.integers(0, 256), st.sampled_from(["0.5", "4+", "1.25"])),
                "memory": st.one_of(st.integers(0, 2048), st.sampled_from(["16+", "0.5"])),
                "disk": st.integers(0, 10_000),
            },
        ),
        "envs": st.dictionaries(
            st.from_regex(r"[A-OQ-Z_][A-Z0-9_]{0,8}", fullmatch=True),
            st.one_of(st.text(max_size=10), st.integers(), st.booleans()),
            max_size=3,
        ),
        "inputs": st.lists(st.sampled_from(["data/", "a.txt", "/abs/path"]), max_size=3),
        "outputs": st.lists(st.sampled_from(["out/", "model.pt", "logs/run.txt"]), max_size=3),
        "num_nodes": st.integers(1, 16),
        "pricing": st.sampled_from(["auction", "book", "performance", "tender", "stake"]),
        "verification": st.sampled_from(["receipt", "replicate:0.1", "replicate:5%", "pol", "tee"]),
        "privacy": st.sampled_from(["none", "sealed"]),
        "network": st.booleans(),
    },
)


@settings(max_examples=150, deadline=None)
@given(_SPECS)
def test_round_trip_through_to_dict_yaml_and_json(data: dict[str, Any]) -> None:
    job = load_spec(yaml.safe_dump(data, sort_keys=False), "gen.yaml")
    canonical = job.to_dict()
    again = load_spec(yaml.safe_dump(canonical), "again.yaml")
    assert again == job
    assert again.to_dict() == canonical  # normalization is idempotent
    assert JobSpec.from_dict(json.loads(json.dumps(canonical))) == job


@pytest.mark.parametrize(
    ("said", "meant", "where"),
    [
        ("gpus: 1000", "accelerators", "resources.gpus"),
        ("ram: 8", "memory", "resources.ram"),
        ("vram: 24", "gpu_ram", "resources.vram"),
    ],
)
def test_names_from_other_tools_point_at_ours(said: str, meant: str, where: str) -> None:
    """Issue 14.9: `resources.gpus: 1000` suggests accelerators (difflib would say cpus)."""
    err = errors_of(BASE + f"resources: {{{said}}}\n")
    (detail,) = err.details
    assert (detail.field, detail.hint) == (where, f"did you mean {meant!r}?")


def test_a_non_ascii_name_is_refused_saying_ascii() -> None:
    err = errors_of(BASE + "name: tést\n")
    (detail,) = err.details
    assert detail.field == "name" and "ASCII letters" in detail.message


def test_outputs_may_be_optional_and_required_ones_keep_their_canonical_form() -> None:
    """Issue 14.4: ``{path, optional: true}`` beside bare paths; a spec written before it
    reads and serializes exactly as it did, and ``compare`` checks against the paths."""
    s = spec("outputs: [a.csv, {path: debug.log, optional: true}, {path: b.csv}]\n"
             "compare: {a.csv: exact}\n")  # fmt: skip
    assert [(o.path, o.optional) for o in s.outputs] == [
        ("a.csv", False),
        ("debug.log", True),
        ("b.csv", False),
    ]
    assert s.to_dict()["outputs"] == ["a.csv", {"path": "debug.log", "optional": True}, "b.csv"]
    assert JobSpec.from_dict(s.to_dict()) == s
    assert spec("outputs: [a.csv]\n").to_dict()["outputs"] == ["a.csv"]
    err = errors_of(BASE + "outputs: [{path: a.csv, optinal: true}, 3, {optional: true}]\n")
    found = fields(err)
    assert "outputs[0].optinal" in found and "outputs[1]" in found and "outputs[2].path" in found
    err = errors_of(BASE + "outputs: [{path: x.csv, optional: true}]\ncompare: {a.csv: exact}\n")
    assert "a.csv" in str(err.details)
