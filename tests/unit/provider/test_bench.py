"""The benchmark score: a real timed matmul, honest about its device, cached per fingerprint."""

from __future__ import annotations

import json
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pasar.core.errors import PasarError
from pasar.provider import bench
from pasar.provider.bench import BENCH_FILE, BenchResult, benchmark, cached_benchmark

HAS_CUDA = bench._torch_cuda() is not None


def test_cpu_benchmark_is_a_positive_integer_from_numpy() -> None:
    start = time.monotonic()
    result = benchmark(seconds=0.5, device="cpu", fingerprint="fp")
    assert time.monotonic() - start < 5
    assert type(result.gflops) is int and result.gflops > 0
    assert (result.device, result.backend) == ("cpu", "numpy")
    assert result.size == bench.CPU_SIZE
    assert result.repeats >= bench.MIN_REPEATS
    assert result.fingerprint == "fp"
    assert abs(result.measured_at - time.time()) < 10


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA device")
def test_auto_without_a_gpu_is_the_cpu_and_cuda_is_refused() -> None:
    assert bench.resolve_device("auto") == ("cpu", "numpy")
    result = benchmark(seconds=0.05, size=64)
    assert (result.device, result.backend) == ("cpu", "numpy")
    for device in ("cuda", "cuda:0"):
        with pytest.raises(PasarError) as info:
            benchmark(seconds=0.05, device=device)
        assert info.value.code == "no_gpu"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"device": "tpu"}, "device"),
        ({"device": "cuda:x"}, "device"),
        ({"size": 8}, "size"),
        ({"seconds": 0}, "seconds"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(PasarError) as info:
        benchmark(**{"device": "cpu", **kwargs})
    assert info.value.field == field


def test_a_few_repeats_at_least_even_with_no_time() -> None:
    result = benchmark(seconds=1e-9, size=32, device="cpu")
    assert result.repeats == bench.MIN_REPEATS


# -- the cache -------------------------------------------------------------------------------------


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[BenchResult]:
    """Every fresh measurement ``cached_benchmark`` makes (small and quick)."""
    runs: list[BenchResult] = []
    real = bench.benchmark

    def quick(**kw: Any) -> BenchResult:
        result = real(**{**kw, "seconds": 0.02, "size": kw["size"] or 64})
        runs.append(result)
        return result

    monkeypatch.setattr(bench, "benchmark", quick)
    return runs


def test_cache_is_reused_for_the_same_fingerprint(
    tmp_path: Path, counted: list[BenchResult]
) -> None:
    first = cached_benchmark(tmp_path, "fp-1", device="cpu")
    again = cached_benchmark(tmp_path, "fp-1", device="cpu")
    assert again == first
    assert len(counted) == 1
    stored = json.loads((tmp_path / BENCH_FILE).read_text())
    assert stored["gflops"] == first.gflops
    assert stored["fingerprint"] == "fp-1"


def test_cache_is_redone_for_another_fingerprint(
    tmp_path: Path, counted: list[BenchResult]
) -> None:
    cached_benchmark(tmp_path, "fp-1", device="cpu")
    other = cached_benchmark(tmp_path, "fp-2", device="cpu")
    assert len(counted) == 2
    assert other.fingerprint == "fp-2"
    assert json.loads((tmp_path / BENCH_FILE).read_text())["fingerprint"] == "fp-2"
    cached_benchmark(tmp_path, "fp-2", device="cpu")
    assert len(counted) == 2


def test_cache_expires_and_follows_the_size(tmp_path: Path, counted: list[BenchResult]) -> None:
    first = cached_benchmark(tmp_path, "fp", device="cpu")
    week = bench.WEEK_S
    assert cached_benchmark(tmp_path, "fp", device="cpu", now=first.measured_at + week) == first
    assert len(counted) == 1
    cached_benchmark(tmp_path, "fp", device="cpu", now=first.measured_at + week + 1)
    assert len(counted) == 2
    cached_benchmark(tmp_path, "fp", device="cpu", size=96)
    assert len(counted) == 3
    assert counted[-1].size == 96
    cached_benchmark(tmp_path, "fp", device="cpu", max_age_s=-1)
    assert len(counted) == 4


def test_cache_file_is_private(tmp_path: Path, counted: list[BenchResult]) -> None:
    home = tmp_path / "new-home"
    cached_benchmark(home, "fp", device="cpu")
    assert stat.S_IMODE((home / BENCH_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert [p.name for p in home.iterdir()] == [BENCH_FILE]  # no temp file left behind


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", '{"version": 99}', '{"version": 1, "gflops": 1}'],
)
def test_unreadable_cache_is_measured_again(
    tmp_path: Path, counted: list[BenchResult], content: str
) -> None:
    (tmp_path / BENCH_FILE).write_text(content)
    result = cached_benchmark(tmp_path, "fp", device="cpu")
    assert len(counted) == 1
    assert json.loads((tmp_path / BENCH_FILE).read_text())["gflops"] == result.gflops


def test_cache_others_can_write_is_ignored(tmp_path: Path, counted: list[BenchResult]) -> None:
    cached_benchmark(tmp_path, "fp", device="cpu")
    path = tmp_path / BENCH_FILE
    data = json.loads(path.read_text())
    data["gflops"] = 10**9  # a tampered score
    path.write_text(json.dumps(data))
    path.chmod(0o666)
    result = cached_benchmark(tmp_path, "fp", device="cpu")
    assert len(counted) == 2
    assert result.gflops < 10**9
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_cache_with_a_float_score_is_refused(tmp_path: Path, counted: list[BenchResult]) -> None:
    cached_benchmark(tmp_path, "fp", device="cpu")
    path = tmp_path / BENCH_FILE
    data = json.loads(path.read_text())
    data["gflops"] = 12.5
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    assert cached_benchmark(tmp_path, "fp", device="cpu").gflops != 12.5
    assert len(counted) == 2


# -- the torch path, against a stand-in (no GPU here) ----------------------------------------------


class _FakeCuda:
    def __init__(self) -> None:
        self.synced = 0
        self.emptied = 0

    def is_available(self) -> bool:
        return True

    def device_count(self) -> int:
        return 2

    def synchronize(self, dev: str) -> None:
        self.synced += 1

    def empty_cache(self) -> None:
        self.emptied += 1


class _FakeTorch:
    """Just enough of torch for the benchmark: numpy does the arithmetic."""

    float32 = "float32"

    def __init__(self) -> None:
        self.cuda = _FakeCuda()
        self.devices: list[str] = []

    def device(self, where: str) -> str:
        self.devices.append(where)
        return where

    def Generator(self, device: str) -> Any:
        class Gen:
            def manual_seed(self, seed: int) -> Gen:
                return self

        return Gen()

    def randn(self, shape: tuple[int, int], **kw: Any) -> Any:
        import numpy as np

        return np.ones(shape, dtype=np.float32)

    def empty(self, shape: tuple[int, int], **kw: Any) -> Any:
        import numpy as np

        return np.empty(shape, dtype=np.float32)

    def matmul(self, a: Any, b: Any, out: Any) -> Any:
        import numpy as np

        return np.matmul(a, b, out=out)


def test_torch_path_times_synchronized_products(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeTorch()
    monkeypatch.setattr(bench, "CUDA_DEVICE_NODES", ("/dev/null",))  # a driver's node exists
    monkeypatch.setattr(bench, "_import_torch", lambda: fake)
    assert bench.resolve_device("auto") == ("cuda:0", "torch")
    assert bench.resolve_device("cuda:1") == ("cuda:1", "torch")
    with pytest.raises(PasarError, match="sees 2 CUDA"):
        bench.resolve_device("cuda:2")
    assert bench.resolve_device("cpu") == ("cpu", "numpy")
    result = benchmark(seconds=0.02, size=64, device="cuda")
    assert (result.device, result.backend) == ("cuda:0", "torch")
    assert result.gflops > 0
    assert fake.devices == ["cuda:0"]
    assert fake.cuda.synced == result.repeats + 1  # every timed product, and the warm-up
    assert fake.cuda.emptied == 1


def test_installing_torch_replaces_a_cpu_score(
    tmp_path: Path, counted: list[BenchResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    cached_benchmark(tmp_path, "fp", device="cpu")
    monkeypatch.setattr(bench, "CUDA_DEVICE_NODES", ("/dev/null",))
    monkeypatch.setattr(bench, "_import_torch", _FakeTorch)
    gpu = cached_benchmark(tmp_path, "fp")
    assert len(counted) == 2
    assert gpu.backend == "torch"


def test_broken_torch_means_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeTorch()

    def boom() -> bool:
        raise RuntimeError("driver too old")

    fake.cuda.is_available = boom  # type: ignore[method-assign]
    monkeypatch.setattr(bench, "CUDA_DEVICE_NODES", ("/dev/null",))
    monkeypatch.setattr(bench, "_import_torch", lambda: fake)
    assert bench.resolve_device("auto") == ("cpu", "numpy")


def test_without_a_cuda_driver_torch_is_not_even_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Importing torch costs seconds of every provider's start; with no driver device node
    there is no GPU to find, so the CPU benchmark is chosen without it."""

    def refuse() -> Any:
        raise AssertionError("torch imported on a machine without a CUDA driver")

    monkeypatch.setattr(bench, "CUDA_DEVICE_NODES", ("/nonexistent/nvidiactl",))
    monkeypatch.setattr(bench, "_import_torch", refuse)
    assert bench.resolve_device("auto") == ("cpu", "numpy")


# -- one benchmark at a time per machine -----------------------------------------------------------


def test_benchmarks_on_one_machine_run_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Providers started together used to measure concurrently on shared cores (a devnet
    provider registered 33 GFLOP/s on a machine that measures 205 alone): measurements now
    never overlap. Two homes (two providers) measure in turn, never at once."""
    monkeypatch.setattr(bench.tempfile, "gettempdir", lambda: str(tmp_path))
    events: list[str] = []
    inside = threading.Event()
    real = bench.benchmark

    def slow(**kw: Any) -> BenchResult:
        events.append("in")
        inside.set()
        time.sleep(0.2)  # long enough for the other thread to try (ordering, not timing)
        events.append("out")
        return real(**{**kw, "seconds": 0.01, "size": 64})

    monkeypatch.setattr(bench, "benchmark", slow)
    first = threading.Thread(target=cached_benchmark, args=(tmp_path / "a", "fp"))
    first.start()
    inside.wait(10)
    cached_benchmark(tmp_path / "b", "fp")
    first.join()
    assert events == ["in", "out", "in", "out"]
    assert (tmp_path / bench.LOCK_FILE).exists()


def test_a_home_measured_while_waiting_is_not_measured_again(
    tmp_path: Path, counted: list[BenchResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another agent with the same home measured while this one waited for the lock: the cache
    is read again under the lock, and its result is used."""
    monkeypatch.setattr(bench.tempfile, "gettempdir", lambda: str(tmp_path))
    home = tmp_path / "home"
    theirs = BenchResult(123, "cpu", "numpy", bench.CPU_SIZE, 3, "fp", int(time.time()))
    holding, release = threading.Event(), threading.Event()

    def other_agent() -> None:
        with bench.machine_lock():
            holding.set()
            release.wait(10)
            bench._store(home / BENCH_FILE, theirs)

    real_load = bench._load

    def load_then_release(path: Path) -> BenchResult | None:
        found = real_load(path)
        release.set()  # after our first look (nothing cached): it stores, then lets go
        return found

    monkeypatch.setattr(bench, "_load", load_then_release)
    other = threading.Thread(target=other_agent)
    other.start()
    holding.wait(10)
    mine = cached_benchmark(home, "fp", device="cpu")
    other.join()
    assert mine == theirs and counted == []
