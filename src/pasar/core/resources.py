"""What a job needs, what a provider has, and whether the one fits the other.

Three ideas live here:

* **GPU names are normalized once.** NVML says "NVIDIA A100-SXM4-80GB", a user types
  "a100-80gb" or "A100"; both become a :class:`GpuModel` (family, VRAM, interface) whose
  canonical string is ``A100-80GB-SXM``. An unknown name is an error with the nearest known
  names as a hint, never a request that silently matches nothing.
* **A request is looser than a device.** A provider's GPU always has a VRAM size (the family's
  default when the name does not say), but a request for "A100" accepts every A100 while
  "A100-80GB" accepts only the 80 GB one. So requests hold :class:`GpuSelector`, inventories hold
  :class:`GpuModel`.
* **A refusal explains itself.** :func:`fit` returns either an :class:`Allocation` or one
  plain-words reason per unmet constraint ("needs 2× A100, has 1× RTX4090-24GB"), so the market can
  tell a client why no provider matched.
* **A GPU belongs to someone.** Every device of an inventory has an identity, its NVML index and
  UUID (:class:`GpuDevice`), and an :class:`Allocation` names the devices it holds, so two leases
  on one machine can never be handed the same GPU. Devices are chosen by :func:`choose_slots`
  alone, the lowest free indices first: a pure function of the state, so ``pasar audit`` replays
  the market's choice exactly, and the one rule :func:`fit` and the book index both follow.

Quantities of CPUs, memory and disk are :class:`~decimal.Decimal` (half a CPU is a real request;
a binary float is not a real quantity). Memory and disk are in GB, VRAM in whole GB.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from pasar.core.errors import PasarError
from pasar.core.gpus import ALIAS_INDEX, FAMILY_BY_NAME, compact, known_names


class GpuError(PasarError):
    """An unknown GPU name, or a VRAM size its family never shipped with."""


class ResourceError(PasarError):
    """A malformed resource request or inventory (negative counts, non-finite amounts)."""


class Interface(StrEnum):
    """How a GPU is attached; kept when a name states it, otherwise unknown (None)."""

    PCIE = "PCIe"
    SXM = "SXM"
    NVLINK = "NVLink"


# -- GPU names -------------------------------------------------------------------------------------

#: Words vendors put around the product name that say nothing about which product it is.
_NOISE = frozenset(
    {
        "NVIDIA", "GEFORCE", "TESLA", "QUADRO", "AMD", "INSTINCT", "RADEON", "GPU", "GENERATION",
        "HBM2", "HBM2E", "HBM3", "HBM3E", "GDDR6", "GDDR6X", "GDDR7", "OAM",
    }
)  # fmt: skip
_INTERFACE_TOKENS: dict[str, Interface] = {
    "PCIE": Interface.PCIE,
    "SXM": Interface.SXM,
    "SXM2": Interface.SXM,
    "SXM3": Interface.SXM,
    "SXM4": Interface.SXM,
    "SXM5": Interface.SXM,
    "SXM6": Interface.SXM,
    "NVLINK": Interface.NVLINK,
}
_VRAM_TOKEN = re.compile(r"^(\d{1,4})(?:GB|GIB|G)$")
_SPLIT = re.compile(r"[^A-Z0-9]+")
_FAMOUS = "A100, H100, L4, RTX4090, MI300X"


@dataclass(frozen=True)
class _Parsed:
    family: str
    vram_gb: int | None
    interface: Interface | None


def _unknown(text: str, key: str, field_: str | None) -> GpuError:
    by_key = {compact(name): name for name in known_names()}
    close = difflib.get_close_matches(key or compact(text), list(by_key), n=3, cutoff=0.5)
    hint = (
        "did you mean " + " or ".join(by_key[c] for c in close) + "?"
        if close
        else f"known GPUs include {_FAMOUS}; write a family, optionally with VRAM: A100-80GB"
    )
    return GpuError(f"unknown GPU model {text!r}", code="unknown_gpu", field=field_, hint=hint)


def _parse_name(text: object, field_: str | None) -> _Parsed:
    """Split any spelling into family, stated VRAM (or None) and stated interface (or None)."""
    if not isinstance(text, str) or not text.strip():
        raise GpuError(
            f"expected a GPU model name, found {text!r}",
            code="unknown_gpu",
            field=field_,
            hint=f"write a model such as {_FAMOUS}",
        )
    upper = re.sub(r"(\d)\s+(GB|GIB)\b", r"\1\2", text.upper())
    vram: int | None = None
    interface: Interface | None = None
    rest: list[str] = []
    for token in _SPLIT.split(upper):
        if not token or token in _NOISE:
            continue
        if token in _INTERFACE_TOKENS:
            interface = _INTERFACE_TOKENS[token]
            continue
        m = _VRAM_TOKEN.match(token)
        if m:
            vram = int(m.group(1))
            continue
        rest.append(token)
    key = "".join(rest)
    alias = ALIAS_INDEX.get(key)
    if alias is None and len(rest) > 1 and rest[-1].isdigit() and vram is None:
        # "A100 80": a bare trailing number that is one of the family's sizes.
        head = ALIAS_INDEX.get("".join(rest[:-1]))
        if head is not None and int(rest[-1]) in FAMILY_BY_NAME[head.family].vram_gb:
            alias, vram = head, int(rest[-1])
    if alias is None:
        raise _unknown(text, key, field_)
    fam = FAMILY_BY_NAME[alias.family]
    if alias.vram_gb is not None:
        if vram is not None and vram != alias.vram_gb:
            raise GpuError(
                f"GPU model {text!r} says {vram} GB, but that card has {alias.vram_gb} GB",
                code="unknown_gpu",
                field=field_,
                hint=f"write {fam.name}-{alias.vram_gb}GB",
            )
        vram = alias.vram_gb
    if vram is not None and vram not in fam.vram_gb:
        sizes = " or ".join(f"{gb}" for gb in fam.vram_gb)
        raise GpuError(
            f"{fam.name} comes with {sizes} GB of VRAM, not {vram} GB (in {text!r})",
            code="unknown_gpu",
            field=field_,
            hint="write "
            + " or ".join(f"{fam.name}-{gb}GB" for gb in fam.vram_gb)
            + f", or {fam.name} for any of them",
        )
    return _Parsed(fam.name, vram, interface)


def _canonical(family: str, vram_gb: int | None, interface: Interface | None) -> str:
    parts = [family]
    if vram_gb is not None:
        parts.append(f"{vram_gb}GB")
    if interface is not None:
        parts.append(interface.value)
    return "-".join(parts)


@dataclass(frozen=True)
class GpuModel:
    """A concrete GPU as a provider has it: always a family and a VRAM size."""

    family: str
    vram_gb: int
    interface: Interface | None = None

    def __post_init__(self) -> None:
        fam = FAMILY_BY_NAME.get(self.family)
        if fam is None or self.vram_gb not in fam.vram_gb:
            raise _unknown(_canonical(self.family, self.vram_gb, self.interface), "", None)

    @classmethod
    def parse(
        cls, text: object, *, memory_mib: int | None = None, field: str | None = None
    ) -> GpuModel:
        """Normalize any spelling. Without a stated VRAM, ``memory_mib`` (as NVML measures it)
        picks the nearest variant, and failing that the family's default is used."""
        p = _parse_name(text, field)
        fam = FAMILY_BY_NAME[p.family]
        vram = p.vram_gb
        if vram is None and memory_mib is not None and memory_mib > 0:
            vram = min(fam.vram_gb, key=lambda gb: (abs(gb * 1024 - memory_mib), gb))
        return cls(p.family, vram if vram is not None else fam.default_vram_gb, p.interface)

    @property
    def canonical(self) -> str:
        """``A100-80GB``, or ``A100-80GB-SXM`` when the interface is known."""
        return _canonical(self.family, self.vram_gb, self.interface)

    def __str__(self) -> str:
        return self.canonical


@dataclass(frozen=True)
class GpuSelector:
    """Which GPUs a request accepts: a family, and optionally one VRAM size and interface."""

    family: str
    vram_gb: int | None = None
    interface: Interface | None = None

    def __post_init__(self) -> None:
        fam = FAMILY_BY_NAME.get(self.family)
        if fam is None or (self.vram_gb is not None and self.vram_gb not in fam.vram_gb):
            raise _unknown(_canonical(self.family, self.vram_gb, self.interface), "", None)

    @classmethod
    def parse(cls, text: object, *, field: str | None = None) -> GpuSelector:
        """``"A100"`` accepts any A100; ``"a100-80gb"`` only the 80 GB one."""
        if isinstance(text, GpuSelector):
            return text
        p = _parse_name(text, field)
        return cls(p.family, p.vram_gb, p.interface)

    def matches(self, model: GpuModel) -> bool:
        return (
            model.family == self.family
            and (self.vram_gb is None or model.vram_gb == self.vram_gb)
            and (self.interface is None or model.interface == self.interface)
        )

    @property
    def canonical(self) -> str:
        return _canonical(self.family, self.vram_gb, self.interface)

    def __str__(self) -> str:
        return self.canonical


def normalize_gpu_name(text: object, *, field: str | None = None) -> str:
    """The canonical spelling of a GPU *selector*: idempotent (``normalize(normalize(x))``)."""
    return GpuSelector.parse(text, field=field).canonical


# -- quantities ------------------------------------------------------------------------------------


def quantity(value: int | str | Decimal, *, what: str = "quantity") -> Decimal:
    """An exact, finite, non-negative amount; floats are refused (pass ``str(x)`` if you must)."""
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise ResourceError(
            f"{what} must be an int, a decimal string or a Decimal, not {type(value).__name__}",
            code="invalid_resources",
        )
    try:
        dec = Decimal(value)
    except InvalidOperation as exc:
        raise ResourceError(f"cannot read {value!r} as a {what}", code="invalid_resources") from exc
    if not dec.is_finite() or dec < 0:
        raise ResourceError(
            f"{what} must be finite and >= 0, got {value}", code="invalid_resources"
        )
    return dec


def fmt_qty(value: Decimal) -> str:
    """``Decimal("16.0")`` → ``"16"``; ``Decimal("0.50")`` → ``"0.5"``."""
    return format(value.normalize(), "f")


def _check_qty(owner: object, name: str) -> None:
    value = getattr(owner, name)
    object.__setattr__(owner, name, quantity(value, what=name.replace("_gb", "")))


def _plural(n: int | Decimal, word: str) -> str:
    return word if n == 1 else word + "s"


# -- GPU groups, requests, inventories -------------------------------------------------------------

#: What a GPU UUID may be made of: NVML's ``GPU-<hex>-...`` (and ``MIG-...``). No commas, quotes
#: or spaces, since the id travels into ``CUDA_VISIBLE_DEVICES`` and docker's ``--gpus`` list.
GPU_UUID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,95}$")


@dataclass(frozen=True, order=True)
class GpuDevice:
    """One physical GPU of a provider: its NVML index and, when known, its UUID.

    The index is what allocations are ordered and chosen by (NVML numbers devices in PCI bus
    order, stable across reboots of one machine); the UUID is what a runtime hands the job, since
    it names the same card whatever numbering a container or ``CUDA_VISIBLE_DEVICES`` applies.
    Inventories written without devices get indices ``0..n-1`` and no UUID.
    """

    index: int
    uuid: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise ResourceError(
                f"a GPU's index must be a whole number >= 0, got {self.index!r}",
                code="invalid_inventory",
                hint="use the NVML index (nvidia-smi --query-gpu=index,uuid --format=csv)",
            )
        if self.uuid is not None and (
            not isinstance(self.uuid, str) or not GPU_UUID.match(self.uuid)
        ):
            raise ResourceError(
                f"a GPU's uuid must be letters, digits and dashes, got {self.uuid!r}",
                code="invalid_inventory",
                hint="use the UUID NVML reports, e.g. GPU-5f1c3a2e-...",
            )

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "uuid": self.uuid}


@dataclass(frozen=True)
class GpuSpec:
    """``count`` identical GPUs of one model, e.g. 8× ``H100-80GB-SXM``."""

    model: GpuModel
    count: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ResourceError(
                f"a GPU count must be a whole number >= 1, got {self.count!r}",
                code="invalid_resources",
            )

    def __str__(self) -> str:
        return f"{self.count}× {self.model}"


@dataclass(frozen=True)
class ResourceRequest:
    """What one node of a job needs. ``gpu_models`` is any-of; empty means any GPU model.

    The ``gpu_count`` GPUs come from one model (a training job does not want one A100 and one
    H100). ``min_vram_gb`` applies to each GPU. CPUs, memory and disk are minimums.
    """

    gpu_count: int = 0
    gpu_models: tuple[GpuSelector, ...] = ()
    min_vram_gb: int | None = None
    cpus: Decimal = Decimal(1)
    memory_gb: Decimal = Decimal(1)
    disk_gb: Decimal = Decimal(1)

    def __post_init__(self) -> None:
        if isinstance(self.gpu_count, bool) or not isinstance(self.gpu_count, int):
            raise ResourceError("gpu_count must be an int", code="invalid_resources")
        if self.gpu_count < 0:
            raise ResourceError("gpu_count must be >= 0", code="invalid_resources")
        if self.gpu_models and self.gpu_count == 0:
            raise ResourceError(
                "GPU models are named but the GPU count is 0",
                code="invalid_resources",
                hint="ask for at least one GPU, e.g. A100:1",
            )
        if self.min_vram_gb is not None and (
            isinstance(self.min_vram_gb, bool)
            or not isinstance(self.min_vram_gb, int)
            or self.min_vram_gb < 0
        ):
            raise ResourceError("min_vram_gb must be a whole number >= 0", code="invalid_resources")
        object.__setattr__(self, "gpu_models", tuple(self.gpu_models))
        for name in ("cpus", "memory_gb", "disk_gb"):
            _check_qty(self, name)

    @classmethod
    def build(
        cls,
        *,
        gpus: int = 0,
        models: Iterable[str | GpuSelector] = (),
        min_vram_gb: int | None = None,
        cpus: int | str | Decimal = 1,
        memory_gb: int | str | Decimal = 1,
        disk_gb: int | str | Decimal = 1,
    ) -> ResourceRequest:
        """Build from loose values: GPU names are normalized, quantities made exact."""
        return cls(
            gpu_count=gpus,
            gpu_models=tuple(GpuSelector.parse(m) for m in models),
            min_vram_gb=min_vram_gb,
            cpus=quantity(cpus, what="cpus"),
            memory_gb=quantity(memory_gb, what="memory"),
            disk_gb=quantity(disk_gb, what="disk"),
        )

    def describe_gpus(self) -> str:
        """``2× A100 or H100 with at least 40 GB VRAM each``; empty when no GPU is needed."""
        if self.gpu_count == 0:
            return ""
        if self.gpu_models:
            text = f"{self.gpu_count}× " + " or ".join(str(s) for s in self.gpu_models)
        else:
            text = f"{self.gpu_count} {_plural(self.gpu_count, 'GPU')}"
        if self.min_vram_gb:
            each = " each" if self.gpu_count > 1 else ""
            text += f" with at least {self.min_vram_gb} GB VRAM{each}"
        return text

    def describe(self) -> str:
        """One line for people: ``2× A100, 8 CPUs, 64 GB memory, 100 GB disk``."""
        parts = [self.describe_gpus()] if self.gpu_count else []
        parts.append(f"{fmt_qty(self.cpus)} {_plural(self.cpus, 'CPU')}")
        parts.append(f"{fmt_qty(self.memory_gb)} GB memory")
        parts.append(f"{fmt_qty(self.disk_gb)} GB disk")
        return ", ".join(parts)

    def accepts(self, model: GpuModel) -> bool:
        """Whether one GPU of ``model`` satisfies the model and VRAM constraints."""
        if self.min_vram_gb is not None and model.vram_gb < self.min_vram_gb:
            return False
        return not self.gpu_models or any(s.matches(model) for s in self.gpu_models)


@dataclass(frozen=True)
class Inventory:
    """What a provider can still give: GPU groups in device order, CPUs, memory and disk.

    Device order matters: :meth:`devices` numbers GPUs in the order the groups list them, and
    slot *i* is the physical device ``gpu_ids[i]``. Slots are in ascending NVML index, so the
    lowest free slot is the lowest free index; an inventory left after an allocation keeps the
    identities of the devices it still has (slot 0 of what is free may be device 1).
    ``gpu_ids`` may be left out: then device *i* is NVML index *i*, with no UUID.
    """

    gpus: tuple[GpuSpec, ...] = ()
    cpus: Decimal = Decimal(0)
    memory_gb: Decimal = Decimal(0)
    disk_gb: Decimal = Decimal(0)
    gpu_ids: tuple[GpuDevice, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "gpus", tuple(self.gpus))
        for name in ("cpus", "memory_gb", "disk_gb"):
            _check_qty(self, name)
        count = sum(spec.count for spec in self.gpus)
        ids = tuple(self.gpu_ids) or tuple(GpuDevice(i) for i in range(count))
        if len(ids) != count:
            raise ResourceError(
                f"the inventory lists {count} GPUs but {len(ids)} device ids",
                code="invalid_inventory",
            )
        indices = [d.index for d in ids]
        if indices != sorted(set(indices)):
            raise ResourceError(
                "GPU indices must be distinct and listed in ascending order, got "
                + ", ".join(map(str, indices)),
                code="invalid_inventory",
                hint="list each GPU once, by its NVML index",
            )
        uuids = [d.uuid for d in ids if d.uuid is not None]
        if len(uuids) != len(set(uuids)):
            raise ResourceError("two GPUs share one uuid", code="invalid_inventory")
        object.__setattr__(self, "gpu_ids", ids)

    @classmethod
    def build(
        cls,
        *,
        gpus: Mapping[str, int] | Iterable[str | GpuModel | GpuSpec] = (),
        cpus: int | str | Decimal = 0,
        memory_gb: int | str | Decimal = 0,
        disk_gb: int | str | Decimal = 0,
        devices: Iterable[GpuDevice] = (),
    ) -> Inventory:
        """``Inventory.build(gpus={"RTX4090": 2}, cpus=16, memory_gb=64, disk_gb=500)``;
        ``gpus`` may also list one name (or model) per device. ``devices`` names the GPUs, one
        per device in the order ``gpus`` lists them (any order of indices: they are sorted);
        without it the GPUs are indices ``0..n-1``."""
        specs: list[GpuSpec] = []
        if isinstance(gpus, Mapping):
            specs = [GpuSpec(GpuModel.parse(name), count) for name, count in gpus.items()]
        else:
            for item in gpus:
                if isinstance(item, GpuSpec):
                    specs.append(item)
                elif isinstance(item, GpuModel):
                    specs.append(GpuSpec(item))
                else:
                    specs.append(GpuSpec(GpuModel.parse(item)))
        models = [s.model for s in specs for _ in range(s.count)]
        ids = tuple(devices)
        if ids:
            if len(ids) != len(models):
                raise ResourceError(
                    f"{len(models)} GPUs but {len(ids)} device ids", code="invalid_inventory"
                )
            pairs = sorted(zip(ids, models, strict=True), key=lambda pair: pair[0].index)
            ids = tuple(d for d, _ in pairs)
            models = [m for _, m in pairs]
        return cls(
            gpus=_regroup(models),
            cpus=quantity(cpus, what="cpus"),
            memory_gb=quantity(memory_gb, what="memory"),
            disk_gb=quantity(disk_gb, what="disk"),
            gpu_ids=ids,
        )

    def devices(self) -> tuple[GpuModel, ...]:
        """One entry per GPU, in slot order."""
        return tuple(spec.model for spec in self.gpus for _ in range(spec.count))

    def without(self, indices: Iterable[int]) -> tuple[tuple[GpuModel, ...], tuple[GpuDevice, ...]]:
        """The models and ids of the devices left once those with NVML ``indices`` are taken."""
        taken = set(indices)
        pairs = zip(self.devices(), self.gpu_ids, strict=True)
        kept = [(m, d) for m, d in pairs if d.index not in taken]
        return tuple(m for m, _ in kept), tuple(d for _, d in kept)

    @property
    def gpu_count(self) -> int:
        return sum(spec.count for spec in self.gpus)

    def describe_gpus(self) -> str:
        """``1× A100-80GB, 4× RTX4090-24GB`` or ``no GPUs``."""
        totals: dict[GpuModel, int] = {}
        for model in self.devices():
            totals[model] = totals.get(model, 0) + 1
        return ", ".join(f"{n}× {m}" for m, n in totals.items()) or "no GPUs"

    def minus(self, allocation: Allocation) -> Inventory:
        """What is left after ``allocation`` (made by :func:`fit` against this inventory)."""
        devices = self.devices()
        if any(slot < 0 or slot >= len(devices) for slot in allocation.gpu_slots) or any(
            self.gpu_ids[slot] != device
            for slot, device in zip(allocation.gpu_slots, allocation.devices, strict=True)
        ):
            raise ResourceError("allocation names GPU slots this inventory does not have")
        left, left_ids = self.without(d.index for d in allocation.devices)
        cpus, memory, disk = (
            self.cpus - allocation.cpus,
            self.memory_gb - allocation.memory_gb,
            self.disk_gb - allocation.disk_gb,
        )
        if min(cpus, memory, disk) < 0:
            raise ResourceError(
                "allocation is larger than this inventory", code="invalid_resources"
            )
        return Inventory(_regroup(left), cpus, memory, disk, left_ids)


def _regroup(models: Iterable[GpuModel]) -> tuple[GpuSpec, ...]:
    groups: list[GpuSpec] = []
    for model in models:
        if groups and groups[-1].model == model:
            groups[-1] = GpuSpec(model, groups[-1].count + 1)
        else:
            groups.append(GpuSpec(model))
    return tuple(groups)


@dataclass(frozen=True)
class Allocation:
    """What a fitting provider sets aside: GPUs of one model, CPUs, memory, disk.

    ``gpu_slots`` are positions in the inventory the allocation was fitted against (what
    :meth:`Inventory.minus` takes away); ``devices`` are the physical GPUs behind them, which is
    what the lease holds, what the market subtracts from the provider and what the agent runs
    the job on. Both list the same GPUs in the same order.
    """

    gpu: GpuSpec | None
    gpu_slots: tuple[int, ...]
    cpus: Decimal
    memory_gb: Decimal
    disk_gb: Decimal
    devices: tuple[GpuDevice, ...] = ()

    def __post_init__(self) -> None:
        count = 0 if self.gpu is None else self.gpu.count
        if len(self.gpu_slots) != count or len(self.devices) != count:
            raise ResourceError(
                f"an allocation of {count} GPUs names {len(self.gpu_slots)} slots and "
                f"{len(self.devices)} devices",
                code="invalid_resources",
            )


@dataclass(frozen=True)
class FitResult:
    """Either an allocation, or every reason the inventory falls short (never both)."""

    allocation: Allocation | None
    reasons: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.allocation is not None

    def __bool__(self) -> bool:
        return self.ok


def choose_slots(free_slots: Iterable[int], count: int) -> tuple[int, ...]:
    """Which of the free GPUs (slots of one model) a lease gets: the ``count`` lowest.

    Slots are in ascending NVML index (:class:`Inventory`), so these are the lowest free
    indices. The one rule for it: :func:`fit` and :class:`~pasar.core.pricing.book.BookIndex`
    both call this, so they name the same devices, and it depends on nothing but the state, so
    replaying the chain (``pasar audit``) makes the same choice. LookupError when too few.
    """
    chosen = tuple(sorted(free_slots)[:count])
    if len(chosen) < count:
        raise LookupError
    return chosen


def allocation_of(
    inventory: Inventory, model: GpuModel | None, slots: tuple[int, ...], request: ResourceRequest
) -> Allocation:
    """The allocation of ``slots`` (GPUs of ``model`` in ``inventory``) plus the request's CPUs,
    memory and disk, naming the physical devices behind the slots."""
    return Allocation(
        None if model is None else GpuSpec(model, len(slots)),
        slots,
        request.cpus,
        request.memory_gb,
        request.disk_gb,
        tuple(inventory.gpu_ids[s] for s in slots),
    )


def _pick_gpus(request: ResourceRequest, inventory: Inventory) -> tuple[GpuModel, tuple[int, ...]]:
    """The first model (request order, then slot order) with enough free GPUs, or raise."""
    slots_by_model: dict[GpuModel, list[int]] = {}
    for slot, model in enumerate(inventory.devices()):
        if request.accepts(model):
            slots_by_model.setdefault(model, []).append(slot)
    selectors: tuple[GpuSelector | None, ...] = request.gpu_models or (None,)
    for selector in selectors:
        for model, slots in slots_by_model.items():
            if (selector is None or selector.matches(model)) and len(slots) >= request.gpu_count:
                return model, choose_slots(slots, request.gpu_count)
    raise LookupError


def fit(request: ResourceRequest, inventory: Inventory) -> FitResult:
    """Allocate ``request`` from ``inventory``, or say in plain words everything that is missing.

    GPUs: ``gpu_count`` devices of a single model that the request accepts, the first such model
    in the request's order of preference (then in slot order), the lowest free indices of it
    (:func:`choose_slots`). CPUs, memory and disk: exactly the
    requested minimums, so the rest of the provider stays free for other leases.
    """
    reasons: list[str] = []
    model: GpuModel | None = None
    slots: tuple[int, ...] = ()
    if request.gpu_count:
        try:
            model, slots = _pick_gpus(request, inventory)
        except LookupError:
            want = request.describe_gpus()
            fitting = sum(1 for m in inventory.devices() if request.accepts(m))
            if fitting >= request.gpu_count:
                want += " (all of one model)"
            reasons.append(f"needs {want}, has {inventory.describe_gpus()}")
    for label, need, have in (
        ("CPU", request.cpus, inventory.cpus),
        ("memory", request.memory_gb, inventory.memory_gb),
        ("disk", request.disk_gb, inventory.disk_gb),
    ):
        if need > have:
            if label == "CPU":
                reasons.append(f"needs {fmt_qty(need)} {_plural(need, 'CPU')}, has {fmt_qty(have)}")
            else:
                reasons.append(f"needs {fmt_qty(need)} GB {label}, has {fmt_qty(have)} GB")
    if reasons:
        return FitResult(None, tuple(reasons))
    return FitResult(allocation_of(inventory, model, slots, request), ())
