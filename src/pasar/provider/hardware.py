"""What this machine really has: NVIDIA GPUs through NVML, CPU, memory and disk through psutil.

Nothing is invented: a machine without an NVIDIA driver reports no GPUs and says why, so a
provider can never advertise hardware it does not have.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuInfo:
    """One NVIDIA GPU as NVML reports it."""

    index: int
    name: str
    memory_mib: int
    uuid: str
    utilization_pct: int | None = None


@dataclass(frozen=True)
class GpuReport:
    """The GPUs found, plus the driver/CUDA versions, or the reason NVML could not be used."""

    gpus: tuple[GpuInfo, ...] = ()
    driver_version: str | None = None
    cuda_version: str | None = None
    unavailable_reason: str | None = None


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
            gpus.append(
                GpuInfo(
                    index=i,
                    name=_text(pynvml.nvmlDeviceGetName(handle)),
                    memory_mib=int(mem.total) // (1024 * 1024),
                    uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                    utilization_pct=util,
                )
            )
        return GpuReport(gpus=tuple(gpus), driver_version=driver, cuda_version=cuda)
    except pynvml.NVMLError as exc:
        return GpuReport(unavailable_reason=f"NVML query failed: {exc}")
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()
