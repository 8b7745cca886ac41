"""The executor and the warm pool: a lease takes a warm sandbox before its inputs come and runs
in it; a broken one sends the lease cold, in the same workdir; one taken but never started is
discarded, never handed to another lease. Fakes only (the real pool: tests/attacks).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from test_executor_failures import FakeAPI

from pasar.api.receipts import FileEntry
from pasar.core.spec import JobSpec
from pasar.provider.executor import LeaseExecutor
from pasar.provider.lease_job import LeaseJob
from pasar.provider.runtime.base import Limits, Outcome
from pasar.provider.runtime.warm import REMOTE_RUN, WarmKey, WarmSandboxBrokenError
from pasar.provider.timeline import Timeline


class FakeHandle:
    def __init__(self, exit_code: int = 0) -> None:
        self.outcome = Outcome(exit_code, None, 1, 2, 0.0, 0)

    def lines(self, timeout_s: float | None = None) -> Iterator[str]:
        yield "hello\n"

    def wait(self, timeout: float | None = None) -> Outcome:
        return self.outcome

    ended = wait

    def kill(self, reason: str = "cancel") -> None:
        pass


class FakeRuntime:
    """The cold path: records where it was asked to start."""

    def __init__(self) -> None:
        self.started: list[Path] = []

    def start(self, workdir: Path, command: str, env: Mapping[str, str], limits: Limits,
              *, image: str | None = None) -> FakeHandle:  # fmt: skip
        assert workdir.is_dir()
        self.started.append(workdir)
        return FakeHandle()


class FakeWarm:
    def __init__(self, root: Path, *, broken: bool = False) -> None:
        self.workdir = root / ".warm-fake"
        self.workdir.mkdir(parents=True)
        self.broken = broken
        self.discarded = False
        self.started: list[tuple[str, bool, list[str]]] = []
        self.claimed_holding: list[str] | None = None  # what the workdir held when claimed

    def claim(self, workdir: Path) -> None:
        self.workdir.rename(workdir)
        self.workdir = workdir
        self.claimed_holding = sorted(p.name for p in workdir.iterdir())

    def start(self, command: str, env: Mapping[str, str], limits: Limits, *, inline: bool
              ) -> FakeHandle:  # fmt: skip
        # the inputs are in place before the job's go
        self.started.append((command, inline, sorted(p.name for p in self.workdir.iterdir())))
        if self.broken:
            raise WarmSandboxBrokenError("the zygote refused its go")
        return FakeHandle()

    def discard(self) -> None:
        self.discarded = True


class FakePool:
    def __init__(self, warm: FakeWarm | None) -> None:
        self.warm = warm
        self.asked: list[WarmKey] = []
        self.finished_keys: list[WarmKey] = []
        self.threads: list[threading.Thread] = []  # where each take was made

    def take(self, limits: Limits) -> FakeWarm | None:
        self.asked.append(WarmKey.of(limits))
        self.threads.append(threading.current_thread())
        warm, self.warm = self.warm, None
        return warm

    def finished(self, limits: Limits) -> None:
        self.finished_keys.append(WarmKey.of(limits))


def _lease(tmp_path: Path, pool: FakePool, runtime: FakeRuntime, **spec: Any
           ) -> tuple[LeaseExecutor, FakeAPI]:  # fmt: skip
    api = FakeAPI()
    job = LeaseJob(
        lease_id="o-1-0",
        order_id="o-1",
        shard=0,
        shards=1,
        spec=JobSpec.from_dict(
            {"run": REMOTE_RUN, "max_duration": 60, "max_price_per_hour": "1 USDC", **spec}
        ),
        inputs=(FileEntry(path="pasar_call.pkl", sha256="1" * 64, size=1),),
    )
    executor = LeaseExecutor(
        api,  # type: ignore[arg-type]
        runtime,  # type: ignore[arg-type]
        job,
        workroot=tmp_path / "work",
        allow_network=False,
        pool=pool,  # type: ignore[arg-type]
    )
    return executor, api


def test_a_lease_runs_in_the_warm_sandbox_it_took(tmp_path: Path) -> None:
    warm = FakeWarm(tmp_path / "work")
    runtime = FakeRuntime()
    pool = FakePool(warm)
    executor, api = _lease(tmp_path, pool, runtime)
    executor.run()
    assert pool.finished_keys == pool.asked  # its replacement starts once the lease is over
    (started,) = warm.started
    _command, inline, files = started
    assert inline and "pasar_call.pkl" in files
    assert warm.workdir == executor.workdir  # the sandbox's /work became the lease's workdir
    assert runtime.started == [] and not warm.discarded
    assert api.receipts[0]["exit_code"] == 0
    assert not executor.workdir.exists()  # removed with the lease


def test_a_broken_warm_sandbox_sends_the_lease_cold_in_the_same_workdir(tmp_path: Path) -> None:
    warm = FakeWarm(tmp_path / "work", broken=True)
    runtime = FakeRuntime()
    executor, api = _lease(tmp_path, FakePool(warm), runtime)
    executor.run()
    assert runtime.started == [executor.workdir]
    assert api.receipts[0]["exit_code"] == 0


def test_a_job_that_sets_a_startup_variable_is_not_run_in_process(tmp_path: Path) -> None:
    warm = FakeWarm(tmp_path / "work")
    executor, _ = _lease(tmp_path, FakePool(warm), FakeRuntime(), envs={"PYTHONPATH": "/work"})
    executor.run()
    assert warm.started[0][1] is False


def test_a_warm_sandbox_taken_for_a_lease_that_never_starts_is_discarded(
    tmp_path: Path,
) -> None:
    warm = FakeWarm(tmp_path / "work")
    executor, api = _lease(tmp_path, FakePool(warm), FakeRuntime())
    api.get_blob = lambda sha256, dest: "0" * 64  # type: ignore[method-assign]  # a bad input
    executor.run()
    assert warm.started == [] and warm.discarded
    assert api.receipts[0]["exit_code"] == 125


def test_a_lease_whose_inputs_all_came_inline_takes_its_sandbox_on_its_own_thread(
    tmp_path: Path,
) -> None:
    """Nothing to fetch, nothing to overlap: no thread is started for the take, and the
    sandbox's folder is the lease's workdir before the inputs are written into it."""
    sha = hashlib.sha256(b"call").hexdigest()
    inputs = (FileEntry(path="pasar_call.pkl", sha256=sha, size=4),)
    for inline, elsewhere in (({sha: b"call"}, False), ({}, True)):
        warm = FakeWarm(tmp_path / f"work-{elsewhere}")
        pool = FakePool(warm)
        executor, api = _lease(tmp_path, pool, FakeRuntime())
        executor.job = LeaseJob(**{**executor.job.__dict__, "inline": inline, "inputs": inputs})
        if inline:  # the input is written from the view, never fetched
            api.get_blob = None  # type: ignore[method-assign,assignment]
        executor.run()
        assert (pool.threads[0] is not threading.current_thread()) is elsewhere
        assert warm.claimed_holding == (["pasar_call.pkl"] if elsewhere else [])
        assert "pasar_call.pkl" in warm.started[0][2]
        assert warm.started and not warm.discarded
        assert api.receipts[0]["exit_code"] == 0


def test_image_and_cheat_leases_take_no_warm_sandbox(tmp_path: Path) -> None:
    pool = FakePool(FakeWarm(tmp_path / "work"))
    executor, _ = _lease(tmp_path, pool, FakeRuntime(), image="python:3.11")
    executor.run()
    assert pool.asked == []


def test_the_timeline_names_each_step_from_the_feed() -> None:
    timeline = Timeline("o-1-0", start=0.0)
    timeline.mark("lease")
    timeline.mark("receipt")
    line = timeline.line()
    assert line.startswith("lease o-1-0 timeline (ms): seen 0.0 | lease ")
    assert line.index("lease ", 10) < line.index("receipt")


def test_a_warm_sandbox_taken_while_inputs_failed_to_lay_out_is_discarded(
    tmp_path: Path,
) -> None:
    warm = FakeWarm(tmp_path / "work")
    executor, api = _lease(tmp_path, FakePool(warm), FakeRuntime())
    executor.job = LeaseJob(  # inputs that cannot both be laid out: the lease fails
        **{
            **executor.job.__dict__,
            "inputs": (
                FileEntry(path="a", sha256="1" * 64, size=1),
                FileEntry(path="a/b", sha256="2" * 64, size=1),
            ),
        }
    )
    executor.run()
    assert warm.started == [] and warm.discarded
    assert api.receipts[0]["failure"]["reason"] == "input_conflict"


def test_a_lease_with_pip_requirements_runs_cold_with_its_install(tmp_path: Path) -> None:
    class FakePip:
        @contextlib.contextmanager
        def holding(self, requirements: Any, timeout_s: float | None) -> Iterator[Path]:
            assert tuple(requirements) == ("tinypkg==0.1",)
            yield tmp_path / "site"

    started: list[Limits] = []

    class Recording(FakeRuntime):
        def start(self, workdir: Path, command: str, env: Mapping[str, str], limits: Limits,
                  *, image: str | None = None) -> FakeHandle:  # fmt: skip
            started.append(limits)
            return super().start(workdir, command, env, limits, image=image)

    pool = FakePool(FakeWarm(tmp_path / "work"))
    executor, api = _lease(tmp_path, pool, Recording(), pip=["tinypkg==0.1"])
    executor.pip = FakePip()  # type: ignore[assignment]
    executor.run()
    assert pool.asked == []  # no warm sandbox: the install is bound as the sandbox starts
    assert [x.pip_site for x in started] == [tmp_path / "site"]
    assert api.receipts[0]["exit_code"] == 0
