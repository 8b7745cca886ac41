"""What this provider offers the market: measured hardware minus what the agent keeps back.

:func:`detect_inventory` joins NVML (:func:`pasar.provider.hardware.detect_nvidia_gpus`) and
psutil into a :class:`pasar.core.resources.Inventory` plus the facts behind it. Three rules:

* **Nothing is invented.** No driver means no GPUs; a GPU whose name pasar does not know is left
  out (and listed in :attr:`MachineInventory.skipped_gpus` with the reason) rather than guessed;
  a cgroup (v2) limit on CPUs or memory lowers what is offered, because a job in this container
  could never use more.
* **Round down.** Memory and disk are whole GB of 2**30 bytes, floored: the smaller reading, and
  the same unit as VRAM sizes, so a runtime that turns ``memory_gb`` back into bytes
  (``× 2**30``) never grants more than the machine holds. The wire form is integers only; the
  market reads ints or decimal strings, never floats.
* **GPUs keep their names.** Each offered GPU is registered by its NVML index and UUID (a
  skipped GPU leaves a gap in the indices, never a shift), the market allocates by index, and
  :meth:`MachineInventory.grants` turns a lease's devices back into what the runtime needs:
  the UUID for ``CUDA_VISIBLE_DEVICES`` and the device node's minor number for the sandbox.

The fingerprint (:func:`fingerprint`) changes exactly when the benchmark may change: another CPU
model or core count, memory size, or set of GPUs. Free disk and reserves are left out of it.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from pathlib import Path

import psutil

from pasar.core.errors import PasarError
from pasar.core.resources import GpuDevice, GpuModel, Inventory
from pasar.provider.hardware import GpuInfo, GpuReport, detect_nvidia_gpus
from pasar.provider.runtime.base import GpuGrant

__all__ = ["GIB", "MachineInventory", "detect_inventory", "fingerprint"]

GIB = 2**30
_CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class MachineInventory:
    """The offered :attr:`inventory`, and the facts a person or the market may want to see.

    ``cpu_count`` and ``memory_total_gb`` are what the machine (or its cgroup) has before
    reserves; ``inventory`` is what is offered after them.
    """

    inventory: Inventory
    gpus: tuple[GpuInfo, ...]
    skipped_gpus: tuple[str, ...]
    driver_version: str | None
    cuda_version: str | None
    gpu_unavailable_reason: str | None
    cpu_model: str
    cpu_count: int
    memory_total_gb: int
    disk_free_gb: int
    disk_path: Path
    fingerprint: str

    def to_wire(self) -> dict[str, object]:
        """The ``inventory`` field of ``provider.register``: one GPU name per device and, in the
        same order, its NVML index and UUID; integers for the rest."""
        inv = self.inventory
        return {
            "gpus": [model.canonical for model in inv.devices()],
            "devices": [device.to_json() for device in inv.gpu_ids],
            "cpus": int(inv.cpus),
            "memory_gb": int(inv.memory_gb),
            "disk_gb": int(inv.disk_gb),
        }

    def facts(self) -> dict[str, object]:
        """Everything measured, as JSON-ready values (for ``pasar doctor`` and logs)."""
        return {
            "gpus": [
                {
                    "index": g.index,
                    "name": g.name,
                    "memory_mib": g.memory_mib,
                    "uuid": g.uuid,
                    "minor": g.minor,
                }
                for g in self.gpus
            ],
            "skipped_gpus": list(self.skipped_gpus),
            "driver_version": self.driver_version,
            "cuda_version": self.cuda_version,
            "gpu_unavailable_reason": self.gpu_unavailable_reason,
            "cpu_model": self.cpu_model,
            "cpu_count": self.cpu_count,
            "memory_total_gb": self.memory_total_gb,
            "disk_free_gb": self.disk_free_gb,
            "disk_path": str(self.disk_path),
            "fingerprint": self.fingerprint,
        }

    def grants(self, devices: list[dict[str, object]]) -> tuple[GpuGrant, ...]:
        """The runtime's view of a lease's ``devices`` (``[{index, uuid}]`` from the market).

        Each must be a GPU this machine registered, with the same UUID: a lease naming another
        one (the market's bug, or a re-registration with other GPUs) is refused rather than
        run on whatever card happens to have that number.
        """
        by_index = {g.index: g for g in self.gpus}
        grants: list[GpuGrant] = []
        for device in devices:
            index, uuid = device.get("index"), device.get("uuid")
            gpu = by_index.get(index) if isinstance(index, int) else None
            if gpu is None or (uuid is not None and uuid != gpu.uuid):
                raise PasarError(
                    f"the lease names GPU {index} ({uuid}), which this machine did not register",
                    code="unknown_gpu_device",
                    hint="restart the agent so it registers the GPUs it has now",
                )
            grants.append(GpuGrant(gpu.index, gpu.uuid, gpu.node_minor))
        return tuple(grants)


def fingerprint(
    *, cpu_model: str, cpu_count: int, memory_total_gb: int, gpus: tuple[GpuInfo, ...]
) -> str:
    """A stable hash of what the benchmark depends on; equal machines give equal strings."""
    doc = {
        "cpu_model": cpu_model,
        "cpu_count": cpu_count,
        "memory_total_gb": memory_total_gb,
        "gpus": [[g.name, g.uuid] for g in gpus],
    }
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:32]


def detect_inventory(
    home: Path,
    *,
    reserve_cpus: int = 0,
    reserve_memory_gb: int = 1,
    disk_path: Path | None = None,
    gpu_report: GpuReport | None = None,
    cgroup_root: Path = _CGROUP_ROOT,
) -> MachineInventory:
    """Measure this machine. ``disk_path`` (default ``home``) is where job workdirs will live;
    free space is read at it or its nearest existing parent. By default one GB of memory is kept
    back for the agent and the system; no CPU is, since the scheduler shares them fairly.
    ``gpu_report`` and ``cgroup_root`` exist for tests; the agent leaves them alone."""
    for name, value in (("reserve_cpus", reserve_cpus), ("reserve_memory_gb", reserve_memory_gb)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise PasarError(
                f"{name} must be a whole number >= 0, got {value!r}",
                code="invalid_reserve",
                field=name,
            )
    report = gpu_report if gpu_report is not None else detect_nvidia_gpus()
    offered: list[GpuInfo] = []
    models: list[GpuModel] = []
    ids: list[GpuDevice] = []
    skipped: list[str] = []
    for gpu in report.gpus:
        try:
            models.append(GpuModel.parse(gpu.name, memory_mib=gpu.memory_mib))
        except PasarError as exc:
            skipped.append(f"GPU {gpu.index} ({gpu.name}): {exc.message}")
            continue
        offered.append(gpu)
        ids.append(GpuDevice(gpu.index, gpu.uuid))

    cpu_limit, memory_limit = _cgroup_limits(cgroup_root)
    cpus = psutil.cpu_count(logical=True) or 1
    cpus = min(c for c in (cpus, _affinity_count(), cpu_limit) if c is not None)
    memory_bytes = psutil.virtual_memory().total
    if memory_limit is not None:
        memory_bytes = min(memory_bytes, memory_limit)
    memory_gb = memory_bytes // GIB
    where = _existing(disk_path if disk_path is not None else home)
    disk_gb = psutil.disk_usage(str(where)).free // GIB
    cpu_model = _cpu_model()
    gpus = tuple(offered)
    return MachineInventory(
        inventory=Inventory.build(
            gpus=models,
            devices=ids,
            cpus=max(0, cpus - reserve_cpus),
            memory_gb=max(0, memory_gb - reserve_memory_gb),
            disk_gb=disk_gb,
        ),
        gpus=gpus,
        skipped_gpus=tuple(skipped),
        driver_version=report.driver_version,
        cuda_version=report.cuda_version,
        gpu_unavailable_reason=report.unavailable_reason,
        cpu_model=cpu_model,
        cpu_count=cpus,
        memory_total_gb=memory_gb,
        disk_free_gb=disk_gb,
        disk_path=where,
        fingerprint=fingerprint(
            cpu_model=cpu_model, cpu_count=cpus, memory_total_gb=memory_gb, gpus=gpus
        ),
    )


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent: the work dir may not be created yet."""
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _affinity_count() -> int | None:
    """CPUs this process may run on (``taskset``, container cpusets); None where unknown."""
    try:
        return len(psutil.Process().cpu_affinity() or []) or None
    except (AttributeError, psutil.Error, OSError):
        return None


def _cgroup_limits(root: Path) -> tuple[int | None, int | None]:
    """(whole CPUs, memory bytes) from cgroup v2 ``cpu.max`` and ``memory.max``, None if unset.

    A CPU quota of 2.5 CPUs offers 2: a job promised a third CPU would be throttled.
    """
    cpus: int | None = None
    memory: int | None = None
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max" and int(period) > 0:
            cpus = max(1, int(quota) // int(period))
    except (OSError, ValueError):
        pass
    try:
        raw = (root / "memory.max").read_text().strip()
        if raw != "max":
            memory = int(raw)
    except (OSError, ValueError):
        pass
    return cpus, memory


def _cpu_model() -> str:
    """The CPU's marketing name from ``/proc/cpuinfo`` (Linux), else what ``platform`` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in {"model name", "Model", "Hardware"} and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
