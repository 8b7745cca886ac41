"""GPU name normalization, requests, inventories and fit()."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pasar.core.errors import PasarError
from pasar.core.gpus import FAMILIES, FAMILY_BY_NAME, known_names
from pasar.core.resources import (
    GpuError,
    GpuModel,
    GpuSelector,
    GpuSpec,
    Interface,
    Inventory,
    ResourceError,
    ResourceRequest,
    fit,
    normalize_gpu_name,
)

# -- the catalogue -------------------------------------------------------------------------------


def test_catalogue_has_the_families_the_market_needs() -> None:
    for name in [
        "H100", "H200", "A100", "A10", "A10G", "A40", "L4", "L40", "L40S", "V100", "T4",
        "RTX3060", "RTX3070", "RTX3080", "RTX3090", "RTX4060", "RTX4070", "RTX4080", "RTX4090",
        "RTX5090", "RTXA4000", "RTXA5000", "RTXA6000", "RTX6000Ada", "GB200", "B200",
        "MI250", "MI300X",
    ]:  # fmt: skip
        assert name in FAMILY_BY_NAME
    assert FAMILY_BY_NAME["A100"].vram_gb == (40, 80)
    assert FAMILY_BY_NAME["H100"].vram_gb == (80, 94)
    assert FAMILY_BY_NAME["V100"].vram_gb == (16, 32)
    assert all(f.default_vram_gb in f.vram_gb for f in FAMILIES)


# -- normalization -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("A100", "A100-40GB"),
        ("a100-80gb", "A100-80GB"),
        ("A100-80G", "A100-80GB"),
        ("A100 80 GB", "A100-80GB"),
        ("A100 80", "A100-80GB"),
        ("NVIDIA A100-SXM4-80GB", "A100-80GB-SXM"),
        ("NVIDIA A100-PCIE-40GB", "A100-40GB-PCIe"),
        ("NVIDIA A100 80GB PCIe", "A100-80GB-PCIe"),
        ("Tesla V100-SXM2-16GB", "V100-16GB-SXM"),
        ("Tesla V100S-PCIE-32GB", "V100-32GB-PCIe"),
        ("h100", "H100-80GB"),
        ("NVIDIA H100 80GB HBM3", "H100-80GB"),
        ("NVIDIA H100 NVL", "H100-94GB"),
        ("NVIDIA H100 PCIe", "H100-80GB-PCIe"),
        ("NVIDIA H200", "H200-141GB"),
        ("rtx4090", "RTX4090-24GB"),
        ("NVIDIA GeForce RTX 4090", "RTX4090-24GB"),
        ("4090", "RTX4090-24GB"),
        ("NVIDIA GeForce RTX 3060 Ti", "RTX3060Ti-8GB"),
        ("NVIDIA GeForce RTX 4060 Ti 16GB", "RTX4060Ti-16GB"),
        ("NVIDIA RTX A6000", "RTXA6000-48GB"),
        ("a6000", "RTXA6000-48GB"),
        ("NVIDIA RTX 6000 Ada Generation", "RTX6000Ada-48GB"),
        ("NVIDIA A10G", "A10G-24GB"),
        ("NVIDIA A10", "A10-24GB"),
        ("NVIDIA L40S", "L40S-48GB"),
        ("Tesla T4", "T4-16GB"),
        ("AMD Instinct MI300X", "MI300X-192GB"),
        ("NVIDIA B200", "B200-180GB"),
        ("A100-80GB-NVLink", "A100-80GB-NVLink"),
    ],
)
def test_spellings_normalize_to_one_canonical_form(spelling: str, canonical: str) -> None:
    assert GpuModel.parse(spelling).canonical == canonical


def test_a10g_is_not_a10_with_10_gb() -> None:
    assert GpuModel.parse("A10G") == GpuModel("A10G", 24)
    assert GpuModel.parse("A10") == GpuModel("A10", 24)


def test_measured_memory_picks_the_nearest_variant() -> None:
    # NVML reports an 80 GB H100 as 81559 MiB and a 40 GB A100 as 40960 MiB
    assert GpuModel.parse("NVIDIA H100 PCIe", memory_mib=81559).vram_gb == 80
    assert GpuModel.parse("NVIDIA A100-PCIE", memory_mib=40960).vram_gb == 40
    assert GpuModel.parse("NVIDIA A100-PCIE", memory_mib=81920).vram_gb == 80
    # a stated size wins over the measurement
    assert GpuModel.parse("A100-40GB", memory_mib=81920).vram_gb == 40


def test_selector_keeps_vram_unstated() -> None:
    assert GpuSelector.parse("A100") == GpuSelector("A100")
    assert GpuSelector.parse("nvidia a100-sxm4-80gb") == GpuSelector("A100", 80, Interface.SXM)
    assert str(GpuSelector.parse("a100-80gb")) == "A100-80GB"


def test_a_request_for_a_family_accepts_every_variant() -> None:
    any_a100 = GpuSelector.parse("A100")
    only_80 = GpuSelector.parse("A100-80GB")
    a40, a80 = GpuModel.parse("A100-40GB"), GpuModel.parse("NVIDIA A100-SXM4-80GB")
    assert any_a100.matches(a40) and any_a100.matches(a80)
    assert only_80.matches(a80) and not only_80.matches(a40)
    assert not any_a100.matches(GpuModel.parse("H100"))
    sxm_only = GpuSelector.parse("A100-SXM")
    assert sxm_only.matches(a80) and not sxm_only.matches(GpuModel.parse("A100-80GB-PCIe"))


@pytest.mark.parametrize(
    ("bad", "suggestion"),
    [("A1000", "A100"), ("rtx 4900", "RTX4090"), ("H10", "H100"), ("mi300", "MI300X")],
)
def test_unknown_names_suggest_the_nearest(bad: str, suggestion: str) -> None:
    with pytest.raises(GpuError) as info:
        GpuModel.parse(bad, field="resources.accelerators")
    err = info.value
    assert isinstance(err, PasarError)
    assert err.code == "unknown_gpu"
    assert err.field == "resources.accelerators"
    assert err.hint is not None and suggestion in err.hint
    assert bad in err.message


@pytest.mark.parametrize("bad", ["", "   ", "banana", "80GB", 42, None])
def test_nonsense_is_an_unknown_gpu_with_a_hint(bad: object) -> None:
    with pytest.raises(GpuError) as info:
        GpuSelector.parse(bad)
    assert info.value.code == "unknown_gpu" and info.value.hint


def test_a_vram_size_the_family_never_had_is_refused() -> None:
    with pytest.raises(GpuError) as info:
        GpuSelector.parse("A100-48GB")
    assert "40 or 80" in info.value.message
    assert info.value.hint is not None and "A100-80GB" in info.value.hint
    with pytest.raises(GpuError):
        GpuSelector.parse("H100 NVL 80GB")  # the NVL is the 94 GB card


def test_models_and_selectors_validate_their_fields() -> None:
    with pytest.raises(GpuError):
        GpuModel("A100", 48)
    with pytest.raises(GpuError):
        GpuSelector("NOPE")


@given(st.sampled_from(known_names()), st.sampled_from([None, *Interface]))
def test_normalization_is_idempotent(name: str, interface: Interface | None) -> None:
    text = name if interface is None else f"{name}-{interface.value}"
    once = normalize_gpu_name(text)
    assert normalize_gpu_name(once) == once
    assert GpuSelector.parse(once) == GpuSelector.parse(text)
    model = GpuModel.parse(text)
    assert GpuModel.parse(model.canonical) == model


@given(st.sampled_from(known_names()), st.sampled_from(["", "NVIDIA ", "nvidia geforce "]))
def test_case_prefix_and_separators_do_not_matter(name: str, prefix: str) -> None:
    variants = [name.lower(), prefix + name, name.replace("-", " "), name.replace("-", "_")]
    assert {normalize_gpu_name(v) for v in variants} == {normalize_gpu_name(name)}


# -- requests and inventories ----------------------------------------------------------------------


def test_request_build_normalizes_and_validates() -> None:
    req = ResourceRequest.build(gpus=2, models=["a100", "h100-80gb"], cpus="0.5", memory_gb=16)
    assert req.gpu_models == (GpuSelector("A100"), GpuSelector("H100", 80))
    assert req.cpus == Decimal("0.5") and req.memory_gb == Decimal(16)
    assert req.describe() == "2× A100 or H100-80GB, 0.5 CPUs, 16 GB memory, 1 GB disk"
    with pytest.raises(ResourceError):
        ResourceRequest.build(gpus=0, models=["A100"])
    with pytest.raises(ResourceError):
        ResourceRequest.build(cpus=-1)
    with pytest.raises(ResourceError):
        ResourceRequest.build(cpus="NaN")
    with pytest.raises(ResourceError):
        ResourceRequest.build(cpus=1.5)  # type: ignore[arg-type]
    with pytest.raises(ResourceError):
        ResourceRequest(gpu_count=-1)


def test_inventory_build_and_devices() -> None:
    inv = Inventory.build(gpus=["RTX4090", "rtx4090", "A100-80GB"], cpus=16, memory_gb=64)
    assert inv.gpus == (GpuSpec(GpuModel("RTX4090", 24), 2), GpuSpec(GpuModel("A100", 80), 1))
    assert inv.gpu_count == 3
    assert [str(m) for m in inv.devices()] == ["RTX4090-24GB", "RTX4090-24GB", "A100-80GB"]
    assert inv.describe_gpus() == "2× RTX4090-24GB, 1× A100-80GB"
    assert Inventory.build(gpus={"H100": 8}).gpus == (GpuSpec(GpuModel("H100", 80), 8),)
    assert Inventory().describe_gpus() == "no GPUs"
    with pytest.raises(ResourceError):
        GpuSpec(GpuModel("H100", 80), 0)


# -- fit -------------------------------------------------------------------------------------------


def test_fit_allocates_gpus_of_one_model_in_request_order() -> None:
    inv = Inventory.build(
        gpus=["A100-80GB", "H100", "H100", "A100-40GB", "A100-40GB"],
        cpus=32,
        memory_gb=256,
        disk_gb=1000,
    )
    req = ResourceRequest.build(gpus=2, models=["A100", "H100"], cpus=8, memory_gb=64, disk_gb=100)
    result = fit(req, inv)
    assert result.ok and result.reasons == ()
    alloc = result.allocation
    assert alloc is not None
    assert alloc.gpu == GpuSpec(GpuModel("A100", 40), 2)  # A100 first; the 40 GB pair fits
    assert alloc.gpu_slots == (3, 4)
    assert (alloc.cpus, alloc.memory_gb, alloc.disk_gb) == (8, 64, 100)
    left = inv.minus(alloc)
    assert left.gpu_count == 3 and left.cpus == 24 and left.memory_gb == 192
    # the next identical request gets the H100 pair
    again = fit(req, left)
    assert again.allocation is not None
    assert again.allocation.gpu == GpuSpec(GpuModel("H100", 80), 2)


def test_fit_reports_every_unmet_constraint_in_plain_words() -> None:
    inv = Inventory.build(gpus={"RTX4090": 1}, cpus=4, memory_gb=8, disk_gb=50)
    req = ResourceRequest.build(gpus=2, models=["A100"], cpus=8, memory_gb=16, disk_gb=100)
    result = fit(req, inv)
    assert not result and result.allocation is None
    assert result.reasons == (
        "needs 2× A100, has 1× RTX4090-24GB",
        "needs 8 CPUs, has 4",
        "needs 16 GB memory, has 8 GB",
        "needs 100 GB disk, has 50 GB",
    )


def test_fit_explains_vram_and_one_model_rules() -> None:
    small = Inventory.build(gpus=["RTX4090"], cpus=4, memory_gb=8, disk_gb=10)
    needs_vram = ResourceRequest.build(gpus=1, min_vram_gb=48)
    assert fit(needs_vram, small).reasons == (
        "needs 1 GPU with at least 48 GB VRAM, has 1× RTX4090-24GB",
    )
    mixed = Inventory.build(gpus=["A100", "H100"], cpus=4, memory_gb=8, disk_gb=10)
    two = ResourceRequest.build(gpus=2, models=["A100", "H100"])
    (reason,) = fit(two, mixed).reasons
    assert "all of one model" in reason and "1× A100-40GB, 1× H100-80GB" in reason
    no_gpus = Inventory.build(cpus=4, memory_gb=8, disk_gb=10)
    assert fit(ResourceRequest.build(gpus=1), no_gpus).reasons == ("needs 1 GPU, has no GPUs",)


def test_cpu_only_request_fits_anywhere_with_room() -> None:
    inv = Inventory.build(cpus=2, memory_gb=4, disk_gb=10)
    result = fit(ResourceRequest(), inv)
    assert result.allocation is not None
    assert result.allocation.gpu is None and result.allocation.gpu_slots == ()


def test_minus_refuses_an_allocation_from_elsewhere() -> None:
    big = Inventory.build(gpus={"H100": 8}, cpus=64, memory_gb=512, disk_gb=1000)
    alloc = fit(ResourceRequest.build(gpus=8, cpus=64), big).allocation
    assert alloc is not None
    with pytest.raises(ResourceError):
        Inventory.build(gpus={"H100": 1}, cpus=64, memory_gb=512, disk_gb=1000).minus(alloc)
    with pytest.raises(ResourceError):
        Inventory.build(gpus={"H100": 8}, cpus=1, memory_gb=512, disk_gb=1000).minus(alloc)


_MODELS = st.sampled_from(["A100-40GB", "A100-80GB", "H100", "RTX4090", "L4", "T4"])


@given(
    devices=st.lists(_MODELS, max_size=8),
    have=st.tuples(*[st.integers(0, 64)] * 3),
    gpus=st.integers(0, 4),
    models=st.lists(st.sampled_from(["A100", "H100", "RTX4090", "A100-80GB"]), max_size=2),
    min_vram=st.one_of(st.none(), st.sampled_from([16, 24, 40, 80])),
    need=st.tuples(*[st.integers(0, 64)] * 3),
)
def test_fit_is_sound_and_complete(
    *,
    devices: list[str],
    have: tuple[int, int, int],
    gpus: int,
    models: list[str],
    min_vram: int | None,
    need: tuple[int, int, int],
) -> None:
    inv = Inventory.build(gpus=devices, cpus=have[0], memory_gb=have[1], disk_gb=have[2])
    req = ResourceRequest.build(
        gpus=gpus,
        models=models if gpus else [],
        min_vram_gb=min_vram,
        cpus=need[0],
        memory_gb=need[1],
        disk_gb=need[2],
    )
    result = fit(req, inv)
    assert (result.allocation is None) == bool(result.reasons)
    slots = inv.devices()
    # complete: a fit exists iff some accepted model has enough devices and the rest is there
    counts: dict[GpuModel, int] = {}
    for m in slots:
        if req.accepts(m):
            counts[m] = counts.get(m, 0) + 1
    gpu_ok = gpus == 0 or any(n >= gpus for n in counts.values())
    rest_ok = all(n <= h for n, h in zip(need, have, strict=True))
    assert result.ok == (gpu_ok and rest_ok)
    # one reason per unmet constraint
    unmet = (not gpu_ok) + sum(n > h for n, h in zip(need, have, strict=True))
    assert len(result.reasons) == unmet
    if result.allocation is not None:  # sound: what was given is what was asked, and exists
        alloc = result.allocation
        assert len(alloc.gpu_slots) == gpus == len(set(alloc.gpu_slots))
        assert all(req.accepts(slots[i]) for i in alloc.gpu_slots)
        assert len({slots[i] for i in alloc.gpu_slots}) <= 1
        left = inv.minus(alloc)
        assert left.gpu_count == inv.gpu_count - gpus
        assert left.cpus == inv.cpus - req.cpus
