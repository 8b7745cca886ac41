"""The GPU catalogue: every accelerator family pasar knows by name, with its VRAM variants.

Why a catalogue at all: providers report GPUs the way NVML spells them ("NVIDIA GeForce RTX
4090", "NVIDIA A100-SXM4-80GB") and users type them the way SkyPilot or a cloud console does
("A100:2", "a100-80gb", "rtx4090"). Matching the two needs one canonical family per product and
the list of memory sizes it ships with, so that "A100-48GB" is an error rather than a request no
provider can ever fill. The parsing lives in :mod:`pasar.core.resources`; this module is data.

Family names are the SkyPilot spelling where one exists (``A100``, ``RTX4090``, ``RTXA6000``),
upper-case except for the product suffixes ``Ti``, ``Super`` and ``Ada``. Apple M-series chips are
left out on purpose: their memory is unified and sized per machine, so a VRAM variant list would
be fiction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Vendor = Literal["nvidia", "amd"]


@dataclass(frozen=True)
class GpuFamily:
    """One product line: ``name`` is canonical; ``vram_gb`` lists the sizes it ships with."""

    name: str
    vendor: Vendor
    vram_gb: tuple[int, ...]
    default_vram_gb: int
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.default_vram_gb not in self.vram_gb:  # pragma: no cover - a catalogue typo
            raise ValueError(f"{self.name}: default VRAM {self.default_vram_gb} not a variant")


@dataclass(frozen=True)
class Alias:
    """A spelling that names a family, and possibly a fixed VRAM (``H100 NVL`` is 94 GB)."""

    family: str
    vram_gb: int | None = None


def _f(
    name: str,
    vram: tuple[int, ...],
    default: int | None = None,
    *,
    vendor: Vendor = "nvidia",
    aliases: tuple[str, ...] = (),
) -> GpuFamily:
    return GpuFamily(name, vendor, vram, vram[0] if default is None else default, aliases)


# fmt: off
FAMILIES: tuple[GpuFamily, ...] = (
    # data-centre NVIDIA, newest first
    _f("GB200", (186, 192)),
    _f("B200", (180, 192)),
    _f("H200", (141,)),
    _f("H100", (80, 94)),
    _f("A100", (40, 80)),
    _f("A40", (48,)),
    _f("A30", (24,)),
    _f("A10", (24,)),
    _f("A10G", (24,)),
    _f("L40S", (48,)),
    _f("L40", (48,)),
    _f("L4", (24,)),
    _f("V100", (16, 32)),
    _f("T4", (16,)),
    _f("P100", (16, 12)),
    # workstation NVIDIA
    _f("RTX6000Ada", (48,), aliases=("RTX6000ADAGENERATION", "6000ADA")),
    _f("RTXA6000", (48,), aliases=("A6000",)),
    _f("RTXA5000", (24,), aliases=("A5000",)),
    _f("RTXA4000", (16,), aliases=("A4000",)),
    # consumer NVIDIA (GeForce)
    _f("RTX5090", (32,)),
    _f("RTX5080", (16,)),
    _f("RTX5070Ti", (16,)),
    _f("RTX5070", (12,)),
    _f("RTX4090", (24,)),
    _f("RTX4080Super", (16,)),
    _f("RTX4080", (16,)),
    _f("RTX4070TiSuper", (16,)),
    _f("RTX4070Ti", (12,)),
    _f("RTX4070Super", (12,)),
    _f("RTX4070", (12,)),
    _f("RTX4060Ti", (8, 16)),
    _f("RTX4060", (8,)),
    _f("RTX3090Ti", (24,)),
    _f("RTX3090", (24,)),
    _f("RTX3080Ti", (12,)),
    _f("RTX3080", (10, 12)),
    _f("RTX3070Ti", (8,)),
    _f("RTX3070", (8,)),
    _f("RTX3060Ti", (8,)),
    _f("RTX3060", (12, 8)),
    # AMD Instinct
    _f("MI325X", (256,), vendor="amd"),
    _f("MI300X", (192,), vendor="amd"),
    _f("MI250X", (128,), vendor="amd"),
    _f("MI250", (128,), vendor="amd"),
    _f("MI210", (64,), vendor="amd"),
)
# fmt: on

#: Spellings that pin a VRAM variant, beyond what the name's "80GB" part says.
_FIXED_VRAM_ALIASES: dict[str, Alias] = {
    "H100NVL": Alias("H100", 94),
    "H200NVL": Alias("H200", 141),
    "V100S": Alias("V100", 32),
}


def compact(text: str) -> str:
    """The lookup key of a spelling: upper-case letters and digits (``rtx-4090`` → ``RTX4090``)."""
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def _build_index() -> dict[str, Alias]:
    index: dict[str, Alias] = {}

    def add(key: str, alias: Alias) -> None:
        existing = index.get(key)
        if existing is not None and existing != alias:  # pragma: no cover - a catalogue typo
            raise ValueError(f"GPU alias {key!r} is ambiguous: {existing} vs {alias}")
        index[key] = alias

    for fam in FAMILIES:
        add(compact(fam.name), Alias(fam.name))
        for spelling in fam.aliases:
            add(compact(spelling), Alias(fam.name))
        # GeForce cards are often written by number alone ("4090", "3060 Ti").
        if fam.name.startswith("RTX") and fam.name[3:4].isdigit() and "ADA" not in fam.name.upper():
            add(compact(fam.name[3:]), Alias(fam.name))
    for key, fixed in _FIXED_VRAM_ALIASES.items():
        add(key, fixed)
    return index


FAMILY_BY_NAME: MappingProxyType[str, GpuFamily] = MappingProxyType(
    {fam.name: fam for fam in FAMILIES}
)
#: compact spelling → family (and fixed VRAM, for the few names that pin one).
ALIAS_INDEX: MappingProxyType[str, Alias] = MappingProxyType(_build_index())


def family(name: str) -> GpuFamily:
    """The family with canonical name ``name`` (a KeyError for anything else: data, not input)."""
    return FAMILY_BY_NAME[name]


def known_names() -> list[str]:
    """Canonical names a user may type, families and their VRAM variants (``A100-80GB``)."""
    names: list[str] = []
    for fam in FAMILIES:
        names.append(fam.name)
        if len(fam.vram_gb) > 1:
            names.extend(f"{fam.name}-{gb}GB" for gb in fam.vram_gb)
    return names
