"""Absolute ``file_mounts`` on the provider's side (issue 18): the client names their files
under ``.pasar-mounts/``, the executor stages them per lease, and each runtime binds them
read-write at their destination — or refuses clearly."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest
from test_executor_failures import FakeAPI

from pasar.api.checks import CheckView
from pasar.api.receipts import FileEntry
from pasar.client.inputs import collect_inputs
from pasar.core.errors import PasarError
from pasar.core.spec import JobSpec
from pasar.provider.executor import LeaseExecutor
from pasar.provider.file_mounts import mounts_of, stage_mounts
from pasar.provider.lease_failure import LeaseFailedError
from pasar.provider.lease_job import LeaseJob
from pasar.provider.runtime import get_runtime
from pasar.provider.runtime.base import Limits
from pasar.provider.runtime.docker import docker_argv
from pasar.provider.runtime.sandbox import HostLayout, bwrap_argv
from pasar.verifier.rerun import CheckExecutor

MIB = 1024 * 1024
LIMITS = Limits(
    memory_bytes=256 * MIB, cpu_seconds=60, max_processes=64, max_file_bytes=MIB, wall_seconds=30
)
HOST = HostLayout(
    top_level=(("bin", "usr/bin"),),
    python_base="/root/.pyenv/versions/3.11.7",
    python_venv=None,
    python_bin="python3",
    as_root=True,
)


def spec(mounts: dict[str, str]) -> JobSpec:
    return JobSpec.from_dict(
        {"run": "true", "max_price_per_hour": "1 USDC", "max_duration": 60, "file_mounts": mounts}
    )


def pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def test_the_client_uploads_absolute_mounts_under_their_staged_names(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "x.txt").write_text("x")
    (tmp_path / "d" / "sub" / "y.txt").write_text("y")
    (tmp_path / "cfg.yaml").write_text("a: 1")
    job = spec({"/data": "./d", "/app/config.yaml": "./cfg.yaml", "rel": "./d"})
    names = sorted(f.name for f in collect_inputs(job, tmp_path))
    assert names == [
        ".pasar-mounts/app/config.yaml",
        ".pasar-mounts/data/sub/y.txt",
        ".pasar-mounts/data/x.txt",
        "rel/sub/y.txt",
        "rel/x.txt",
    ]


def test_no_other_input_may_use_the_mounts_folder(tmp_path: Path) -> None:
    (tmp_path / ".pasar-mounts" / "etc").mkdir(parents=True)
    (tmp_path / ".pasar-mounts" / "etc" / "passwd").write_text("root::0:0")
    job = JobSpec.from_dict(
        {"run": "true", "max_price_per_hour": "1 USDC", "max_duration": 60, "workdir": "."}
    )
    with pytest.raises(PasarError) as err:
        collect_inputs(job, tmp_path)
    assert err.value.code == "reserved_input_name" and err.value.field == "inputs"


def test_the_executor_binds_each_staged_copy_at_its_destination(tmp_path: Path) -> None:
    job = spec({"/data": "./d", "/app/config.yaml": "c", "rel": "r"})
    mounts = mounts_of(job, tmp_path)
    assert mounts == (
        (tmp_path / ".pasar-mounts/app/config.yaml", "/app/config.yaml"),
        (tmp_path / ".pasar-mounts/data", "/data"),
    )
    limits = Limits(**{**LIMITS.__dict__, "mounts": mounts})
    argv = bwrap_argv(tmp_path, "true", {}, limits, HOST, job_uid=7)
    binds = pairs(argv, "--bind")
    assert binds == [
        (str(tmp_path), "/work"),
        (str(tmp_path / ".pasar-mounts/app/config.yaml"), "/app/config.yaml"),
        (str(tmp_path / ".pasar-mounts/data"), "/data"),
    ]
    # after /proc, /dev and /tmp: nothing of the sandbox's own lies over a mount
    assert argv.index("/data") > argv.index("/tmp") > argv.index("/proc")
    assert ("--dir", "/app") in list(itertools.pairwise(argv))  # a traversable parent
    plain = bwrap_argv(tmp_path, "true", {}, LIMITS, HOST, job_uid=7)
    assert pairs(plain, "--bind") == [(str(tmp_path), "/work")]


def test_a_mount_over_this_hosts_python_is_refused_by_the_sandbox(tmp_path: Path) -> None:
    limits = Limits(**{**LIMITS.__dict__, "mounts": ((tmp_path / "x", "/root"),)})
    with pytest.raises(PasarError) as err:
        bwrap_argv(tmp_path, "true", {}, limits, HOST, job_uid=7)
    assert err.value.code == "mount_conflict" and err.value.field == "file_mounts./root"


def test_docker_binds_them_and_the_process_runtime_refuses(tmp_path: Path) -> None:
    limits = Limits(**{**LIMITS.__dict__, "mounts": ((tmp_path / "m", "/data"),)})
    argv = docker_argv(tmp_path, "true", {}, limits, image="python:3.11", name="n", user="1")
    assert ("-v", f"{tmp_path / 'm'}:/data") in list(itertools.pairwise(argv))
    with pytest.raises(PasarError) as err:
        get_runtime("process").start(tmp_path, "true", {}, limits)
    assert err.value.code == "unsupported_mount" and err.value.field == "file_mounts./data"


def test_staging_makes_empty_folders_and_refuses_links(tmp_path: Path) -> None:
    job = spec({"/data": "./d", "/empty": "./e"})
    mounts = mounts_of(job, tmp_path)
    (tmp_path / ".pasar-mounts" / "data").mkdir(parents=True)
    (tmp_path / ".pasar-mounts" / "data" / "x").write_text("x")
    stage_mounts(mounts)
    assert (tmp_path / ".pasar-mounts" / "empty").is_dir()  # an empty source: an empty folder
    os.rmdir(tmp_path / ".pasar-mounts" / "empty")
    (tmp_path / ".pasar-mounts" / "empty").symlink_to("/etc")
    with pytest.raises(LeaseFailedError) as err:
        stage_mounts(mounts)
    assert err.value.reason == "input_conflict" and "file_mounts./empty" in err.value.detail


class RecordingRuntime:
    """Records what the executor asks a runtime to bind, and whether the staged copy was there
    when it asked; then fails the start (nothing to run here)."""

    def __init__(self) -> None:
        self.limits: Limits | None = None
        self.staged: list[bool] = []

    def start(self, workdir: Path, command: str, env: Any, limits: Limits, **_: Any) -> Any:
        self.limits = limits
        self.staged = [source.exists() for source, _dest in limits.mounts]
        raise RuntimeError("recorded")


MOUNT_SPEC = {
    "run": "cat /data/x",
    "max_duration": 60,
    "max_price_per_hour": "1 USDC",
    "file_mounts": {"/data": "./d", "/empty": "./e"},
}
MOUNT_INPUTS = [{"path": ".pasar-mounts/data/x", "sha256": "1" * 64, "size": 1}]


def _mount_job() -> LeaseJob:
    return LeaseJob(
        lease_id="o-1-0",
        order_id="o-1",
        shard=0,
        shards=1,
        spec=JobSpec.from_dict(MOUNT_SPEC),
        inputs=tuple(FileEntry.model_validate(x) for x in MOUNT_INPUTS),
    )


def test_a_lease_and_a_verifiers_rerun_bind_the_same_mounts(tmp_path: Path) -> None:
    """The provider's executor stages each mount and hands the runtime its binds; a verifier's
    re-run (the same executor, reading the same spec and manifest) asks for the same ones."""
    runtime = RecordingRuntime()
    executor = LeaseExecutor(
        FakeAPI(),  # type: ignore[arg-type]
        runtime,  # type: ignore[arg-type]
        _mount_job(),
        workroot=tmp_path / "work",
        allow_network=False,
    )
    executor.run()
    assert runtime.limits is not None
    work = tmp_path / "work" / "o-1-0"
    assert runtime.limits.mounts == (
        (work / ".pasar-mounts/data", "/data"),
        (work / ".pasar-mounts/empty", "/empty"),
    )
    assert runtime.staged == [True, True]  # fetched, and an empty one made
    assert not work.exists()  # the staged copies go with the workdir

    check = CheckView.model_construct(
        check_id="c-1", lease_id="o-1-0", order_id="o-1", verifier="v", status="assigned",
        assigned_at=0, deadline_ms=0, shard=0, shards=1, spec=MOUNT_SPEC,
        inputs=[FileEntry.model_validate(x) for x in MOUNT_INPUTS], private=None,
    )  # fmt: skip
    rerun = RecordingRuntime()
    checker = CheckExecutor(FakeAPI(), rerun, check, workroot=tmp_path / "v")  # type: ignore[arg-type]
    checker.run()
    assert rerun.limits is not None
    assert [dest for _src, dest in rerun.limits.mounts] == ["/data", "/empty"]
    assert rerun.staged == [True, True]
