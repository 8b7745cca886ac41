"""What this machine really has: NVIDIA GPUs through NVML, CPU, memory and disk through psutil.

Nothing is invented: a machine without an NVIDIA driver reports no GPUs and says why, so a
provider can never advertise hardware it does not have.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pasar.core.errors import PasarError


@dataclass(frozen=True)
class GpuInfo:
    """One NVIDIA GPU as NVML reports it.

    ``index`` is NVML's (PCI bus order), what the market allocates by; ``minor`` is the N of
    the card's device node ``/dev/nvidiaN``, which the driver assigns on its own and which is
    what a sandbox must bind (None where NVML cannot say: the node is then taken to be the
    index's).
    """

    index: int
    name: str
    memory_mib: int
    uuid: str
    utilization_pct: int | None = None
    minor: int | None = None

    @property
    def node_minor(self) -> int:
        return self.index if self.minor is None else self.minor


@dataclass(frozen=True)
class GpuReport:
    """The GPUs found, plus the driver/CUDA versions, or the reason NVML could not be used."""

    gpus: tuple[GpuInfo, ...] = ()
    driver_version: str | None = None
    cuda_version: str | None = None
    unavailable_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """What ``scripts/gpu-check`` prints and :func:`load_gpu_report` reads back."""
        return {
            "gpus": [asdict(g) for g in self.gpus],
            "driver_version": self.driver_version,
            "cuda_version": self.cuda_version,
            "unavailable_reason": self.unavailable_reason,
        }


def load_gpu_report(path: Path) -> GpuReport:
    """A GPU report recorded as JSON (:meth:`GpuReport.to_json`), in place of asking NVML.

    For tests and rehearsals on machines without the GPUs (the agent then *registers* them, and
    the market's capacity checks are what keep such a claim honest), and for a machine whose
    NVML is only reachable by another tool. Every field is checked: an error names it.
    """
    where = f"--gpu-report {path}"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PasarError(
            f"cannot read the GPU report {path}: {exc}", code="invalid_gpu_report", field=where
        ) from None
    items = data.get("gpus") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise PasarError(
            "a GPU report is {gpus: [{index, name, memory_mib, uuid}], ...}",
            code="invalid_gpu_report",
            field=where,
        )
    gpus: list[GpuInfo] = []
    for i, item in enumerate(items):
        try:
            gpu = GpuInfo(**item)
            ok = (
                all(
                    isinstance(v, int) and not isinstance(v, bool)
                    for v in (gpu.index, gpu.memory_mib)
                )
                and isinstance(gpu.name, str)
                and isinstance(gpu.uuid, str)
                and (gpu.minor is None or isinstance(gpu.minor, int))
            )
        except TypeError:
            ok = False
        if not ok:
            raise PasarError(
                f"gpus[{i}] of the GPU report must be {{index, name, memory_mib, uuid[, minor]}}",
                code="invalid_gpu_report",
                field=where,
            )
        gpus.append(gpu)
    return GpuReport(
        gpus=tuple(gpus),
        driver_version=data.get("driver_version"),
        cuda_version=data.get("cuda_version"),
        unavailable_reason=data.get("unavailable_reason"),
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def detect_nvidia_gpus() -> GpuReport:
    """Query NVML; any failure to load or initialise it means "no NVIDIA GPU usable here"."""
    try:
        import pynvml
    except ImportError:
        return GpuReport(unavailable_reason="nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return GpuReport(unavailable_reason=f"NVML could not start: {exc}")
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda_raw = int(pynvml.nvmlSystemGetCudaDriverVersion())
        cuda = f"{cuda_raw // 1000}.{(cuda_raw % 1000) // 10}"
        gpus: list[GpuInfo] = []
        for i in range(int(pynvml.nvmlDeviceGetCount())):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                util: int | None = int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except pynvml.NVMLError:
                util = None
            try:  # /dev/nvidiaN: the driver's numbering, not always NVML's
                minor: int | None = int(pynvml.nvmlDeviceGetMinorNumber(handle))
            except pynvml.NVMLError:
                minor = None
            gpus.append(
                GpuInfo(
                    index=i,
                    name=_text(pynvml.nvmlDeviceGetName(handle)),
                    memory_mib=int(mem.total) // (1024 * 1024),
                    uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                    utilization_pct=util,
                    minor=minor,
                )
            )
        return GpuReport(gpus=tuple(gpus), driver_version=driver, cuda_version=cuda)
    except pynvml.NVMLError as exc:
        return GpuReport(unavailable_reason=f"NVML query failed: {exc}")
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()
