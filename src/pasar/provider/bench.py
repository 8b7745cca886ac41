"""The provider's benchmark score: GFLOP/s of a timed float32 matrix multiplication.

The score is what performance pricing charges by (cost = score × hours × rate) and what the
market's capacity challenge holds the provider to, so it must be honest and repeatable:

* **Where it runs.** ``device="auto"`` uses torch on ``cuda:0`` only when torch imports and
  ``torch.cuda.is_available()``; otherwise numpy on the CPU (all cores, through its BLAS).
  Asking for ``cuda`` where there is none is an error, never a CPU number labelled as a GPU one.
* **What is counted.** One ``n×n @ n×n`` product is ``2·n³`` floating-point operations. Timing
  uses :func:`time.perf_counter_ns`, so ``FLOP / ns`` *is* GFLOP/s and the score is an integer
  division, no float in sight. TF32 and other reduced-precision modes are left at torch's
  default (off for matmuls): the score is true float32 work.
* **Which run counts.** One untimed warm-up (BLAS thread pools, CUDA context and kernels), then
  as many timed products as fit in ``seconds`` (at least :data:`MIN_REPEATS`); the score is the
  **median**. A buyer pays per score-hour, so the score should be what a typical second of work
  delivers: the median ignores a slow straggler (another process woke up) and a lucky burst
  (turbo clocks before the package heats up) alike.

:func:`cached_benchmark` keeps the result in ``<home>/bench.json`` (mode 0600: a score someone
else could edit would make this provider claim hardware it lacks) and measures again when the
hardware fingerprint, device, backend or size changes, or after ``max_age_s``.

**One at a time per machine.** Providers started together on one machine (a devnet starts N
at once) used to benchmark concurrently on the same cores, and each registered a fraction of
the machine (33 GFLOP/s where the machine measured alone gives 205) — a score the capacity
proof would then hold it to. :func:`cached_benchmark` measures under a machine-wide lock
(:data:`LOCK_FILE` in the temp directory, ``flock``), so each measures an idle machine; the
cache is read again once the lock is held (another agent with the same home may have just
measured).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import logging
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pasar.core.errors import PasarError

__all__ = [
    "BENCH_FILE",
    "CPU_SIZE",
    "GPU_SIZE",
    "MIN_REPEATS",
    "BenchResult",
    "benchmark",
    "cached_benchmark",
    "resolve_device",
]

log = logging.getLogger(__name__)

BENCH_FILE = "bench.json"
LOCK_FILE = "pasar-bench.lock"  # in the temp directory: one benchmark at a time per machine
CPU_SIZE = 1024  # 2.1 GFLOP a product: tens of milliseconds on a laptop core
GPU_SIZE = 8192  # 1.1 TFLOP a product: large enough to fill an H100, still ~20 ms
MIN_REPEATS = 3
MAX_REPEATS = 10_000
WEEK_S = 7 * 24 * 3600
_VERSION = 1

Backend = Literal["numpy", "torch"]


@dataclass(frozen=True)
class BenchResult:
    """One measurement. ``gflops`` is the market's ``score`` field."""

    gflops: int
    device: str  # "cpu" or "cuda:N"
    backend: Backend
    size: int
    repeats: int
    fingerprint: str
    measured_at: int  # unix seconds

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _import_torch() -> Any:
    """torch, untyped: it is an optional extra, absent where mypy runs.

    CUDA numbers devices fastest first unless told otherwise; NVML (and so the inventory's
    slots) numbers them by PCI bus. Asking CUDA for PCI order before it starts makes ``cuda:0``
    the GPU NVML calls 0, so a GPU score is priced as the right model.
    """
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    return importlib.import_module("torch")


#: device nodes a CUDA driver needs (Linux; /dev/dxg is WSL2's): with none, no GPU is usable
CUDA_DEVICE_NODES = ("/dev/nvidiactl", "/dev/dxg")


def _torch_cuda() -> Any | None:
    """The torch module when it imports and sees a CUDA device, else None (lazy: torch is an
    optional extra and importing it costs seconds). A machine without a CUDA driver's device
    node has no usable GPU, so torch is not even imported there: with the ml extra installed,
    importing it only to learn that added ~1.5 s to every provider's start."""
    if not any(os.path.exists(node) for node in CUDA_DEVICE_NODES):
        return None
    try:
        torch = _import_torch()
    except ImportError:
        return None
    try:
        return torch if torch.cuda.is_available() else None
    except Exception:  # a broken driver install must mean "no GPU", not a crash
        log.debug("torch.cuda.is_available() failed", exc_info=True)
        return None


def resolve_device(device: str = "auto") -> tuple[str, Backend]:
    """``"auto"`` → ``("cuda:0", "torch")`` or ``("cpu", "numpy")``; ``"cpu"`` and
    ``"cuda[:N]"`` are checked, so no GPU score is ever claimed without a GPU."""
    if device == "cpu":
        return "cpu", "numpy"
    if device not in {"auto", "cuda"} and not device.startswith("cuda:"):
        raise PasarError(
            f"unknown benchmark device {device!r}",
            code="invalid_device",
            field="device",
            hint='use "auto", "cpu", "cuda" or "cuda:N"',
        )
    torch = _torch_cuda()
    if torch is None:
        if device == "auto":
            return "cpu", "numpy"
        raise PasarError(
            f"cannot benchmark {device}: no CUDA device is usable from torch",
            code="no_gpu",
            field="device",
            hint='install the ml extra (pip install "pasar[ml]") on a machine with an NVIDIA '
            'driver, or use device "cpu"',
        )
    index = 0 if device in {"auto", "cuda"} else _cuda_index(device)
    count = int(torch.cuda.device_count())
    if index >= count:
        raise PasarError(
            f"cannot benchmark {device}: torch sees {count} CUDA device(s)",
            code="no_gpu",
            field="device",
        )
    return f"cuda:{index}", "torch"


def _cuda_index(device: str) -> int:
    text = device.removeprefix("cuda:")
    if not text.isdigit():
        raise PasarError(
            f"unknown benchmark device {device!r}", code="invalid_device", field="device"
        )
    return int(text)


def benchmark(
    *,
    seconds: float = 1.0,
    size: int | None = None,
    device: str = "auto",
    fingerprint: str = "",
) -> BenchResult:
    """Measure now (no cache): median GFLOP/s of ``size×size`` float32 products over about
    ``seconds`` (default size :data:`CPU_SIZE` or :data:`GPU_SIZE`)."""
    if not seconds > 0:
        raise PasarError("seconds must be positive", code="invalid_bench", field="seconds")
    where, backend = resolve_device(device)
    n = size if size is not None else (GPU_SIZE if backend == "torch" else CPU_SIZE)
    if isinstance(n, bool) or not isinstance(n, int) or n < 16:
        raise PasarError(
            f"size must be a whole number >= 16, got {n!r}", code="invalid_bench", field="size"
        )
    budget_ns = int(seconds * 1e9)
    times = _time_torch(n, where, budget_ns) if backend == "torch" else _time_numpy(n, budget_ns)
    times.sort()
    median_ns = max(1, times[len(times) // 2])
    return BenchResult(
        gflops=2 * n**3 // median_ns,
        device=where,
        backend=backend,
        size=n,
        repeats=len(times),
        fingerprint=fingerprint,
        measured_at=int(time.time()),
    )


def _repeat(run: Callable[[], object], budget_ns: int) -> list[int]:
    """Time ``run()`` (which must finish its work before returning) until the budget is spent."""
    run()  # warm-up, untimed
    times: list[int] = []
    deadline = time.perf_counter_ns() + budget_ns
    while len(times) < MIN_REPEATS or (
        len(times) < MAX_REPEATS and time.perf_counter_ns() < deadline
    ):
        start = time.perf_counter_ns()
        run()
        times.append(time.perf_counter_ns() - start)
    return times


def _time_numpy(n: int, budget_ns: int) -> list[int]:
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    return _repeat(lambda: np.matmul(a, b, out=out), budget_ns)


def _time_torch(n: int, where: str, budget_ns: int) -> list[int]:
    torch = _import_torch()
    try:
        return _time_torch_on(torch, n, where, budget_ns)
    finally:
        torch.cuda.empty_cache()  # the matrices died with that frame: give their VRAM back


def _time_torch_on(torch: Any, n: int, where: str, budget_ns: int) -> list[int]:
    dev = torch.device(where)
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn((n, n), device=dev, dtype=torch.float32, generator=gen)
    b = torch.randn((n, n), device=dev, dtype=torch.float32, generator=gen)
    out = torch.empty((n, n), device=dev, dtype=torch.float32)

    def run() -> None:
        torch.matmul(a, b, out=out)
        torch.cuda.synchronize(dev)  # kernels are asynchronous: wait, or we time the launch

    return _repeat(run, budget_ns)


# -- the cache -------------------------------------------------------------------------------------


def cached_benchmark(
    home: Path,
    fingerprint: str,
    *,
    max_age_s: int = WEEK_S,
    seconds: float = 1.0,
    size: int | None = None,
    device: str = "auto",
    now: int | None = None,
) -> BenchResult:
    """The stored result when it still describes this machine, else a fresh one (stored).

    Valid means: same fingerprint, same resolved device and backend (installing torch on a GPU
    machine must replace a CPU score), same size when one is asked for, younger than
    ``max_age_s``, and a file only its owner can write.
    """
    path = home / BENCH_FILE
    where, backend = resolve_device(device)
    clock = int(time.time()) if now is None else now

    def still_valid() -> BenchResult | None:
        cached = _load(path)
        if (
            cached is not None
            and cached.fingerprint == fingerprint
            and cached.device == where
            and cached.backend == backend
            and (size is None or cached.size == size)
            and 0 <= clock - cached.measured_at <= max_age_s
        ):
            return cached
        return None

    cached = still_valid()
    if cached is not None:
        return cached
    with machine_lock():
        cached = still_valid()  # measured by another agent with this home while we waited
        if cached is not None:
            return cached
        result = benchmark(seconds=seconds, size=size, device=where, fingerprint=fingerprint)
    _store(path, result)
    return result


@contextlib.contextmanager
def machine_lock(lock_dir: Path | None = None) -> Iterator[None]:
    """Hold the machine-wide benchmark lock (blocks while another process measures). A lock
    file that cannot be opened (a read-only temp dir) measures unlocked rather than not."""
    where = Path(tempfile.gettempdir()) if lock_dir is None else lock_dir
    try:
        fd = os.open(where / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        log.warning("no benchmark lock in %s: measuring without it", where)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _load(path: Path) -> BenchResult | None:
    """The stored result, or None when absent, unreadable, malformed or writable by others."""
    try:
        if stat.S_IMODE(path.stat().st_mode) & (stat.S_IWGRP | stat.S_IWOTH):
            log.warning("ignoring %s: group or others may write it", path)
            return None
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        return None
    try:
        result = BenchResult(
            gflops=data["gflops"],
            device=data["device"],
            backend=data["backend"],
            size=data["size"],
            repeats=data["repeats"],
            fingerprint=data["fingerprint"],
            measured_at=data["measured_at"],
        )
    except (KeyError, TypeError):
        return None
    ints = (result.gflops, result.size, result.repeats, result.measured_at)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints):
        return None
    if not isinstance(result.fingerprint, str) or result.backend not in {"numpy", "torch"}:
        return None
    return result


def _store(path: Path, result: BenchResult) -> None:
    """Write atomically, mode 0600 from the first byte (a temp file, then ``os.replace``)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump({"version": _VERSION, **result.to_json()}, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
