"""The executor ends every lease it cannot finish with a failure receipt (no market, no job).

A fake market API records what the executor sends; the runtime is never reached (inputs that
conflict) or breaks (``internal_error``). Output checks run on a real workdir holding a FIFO,
which must be refused from ``lstat`` alone: opening it would block the test forever.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from pasar.api.leases import GpuDeviceView, LogAppended
from pasar.api.receipts import FileEntry
from pasar.api.txs import Receipt, TxAnswer
from pasar.core.receipts import FAILURE_FAULTS
from pasar.core.spec import JobSpec
from pasar.core.tx_parsing import MAX_OUTPUT_PARTS
from pasar.provider.executor import (
    LeaseExecutor,
    LeaseFailedError,
    clear_workroot,
    workroot_for,
)
from pasar.provider.lease_job import LeaseJob
from pasar.provider.lease_outputs import missing_failure
from pasar.provider.market_api import MarketAPI


class FakeAPI:
    """What the executor says to the market, recorded; heartbeats answer 'lease over'."""

    def __init__(self) -> None:
        self.receipts: list[dict[str, Any]] = []
        self.logs: list[str] = []
        self.blobs: list[Path] = []
        self.attached: dict[str, bytes] = {}

    def challenge(self, lease_id: str) -> Any:
        from pasar.core.errors import PasarError

        raise PasarError("over", code="not_found", status=404)

    def append_logs(self, lease_id: str, offset: int, data: str) -> LogAppended:
        self.logs.append(data)
        return LogAppended(ok=True, size=offset + len(data.encode()))

    def receipt(self, body: Receipt, attachments: dict[str, bytes] | None = None) -> TxAnswer:
        self.receipts.append(body.body())  # what would be signed
        self.attached.update(attachments or {})
        return TxAnswer(ok=True, type="receipt")

    small_output = staticmethod(MarketAPI.small_output)  # reads the file: nothing to fake

    def get_blob(self, sha256: str, dest: Path) -> str:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"x")
        return sha256

    def put_blob(self, path: Path, *, part_bytes: int | None = None) -> FileEntry:
        self.blobs.append(path)
        size = path.stat().st_size
        if part_bytes and size > part_bytes:
            parts = ["1" * 64] * -(-size // part_bytes)
            return FileEntry(path=path.name, sha256="0" * 64, size=size, parts=parts)
        return FileEntry(path=path.name, sha256="0" * 64, size=size)


class BrokenRuntime:
    def start(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the sandbox fell over")


def _executor(
    tmp_path: Path,
    *,
    inputs: tuple[dict[str, Any], ...] = (),
    outputs: tuple[str, ...] = (),
    api: FakeAPI | None = None,
) -> tuple[LeaseExecutor, FakeAPI]:
    api = api or FakeAPI()
    job = LeaseJob(
        lease_id="o-1-0",
        order_id="o-1",
        shard=0,
        shards=1,
        spec=JobSpec.from_dict(
            {
                "run": "true",
                "max_duration": 60,
                "max_price_per_hour": "1 USDC",
                "outputs": list(outputs),
            }
        ),
        inputs=tuple(FileEntry.model_validate(x) for x in inputs),
    )
    executor = LeaseExecutor(
        api,  # type: ignore[arg-type]
        BrokenRuntime(),  # type: ignore[arg-type]
        job,
        workroot=tmp_path / "work",
        allow_network=False,
        max_blob_bytes=1000,
    )
    return executor, api


def _failure(api: FakeAPI) -> dict[str, Any]:
    (receipt,) = api.receipts
    failure: dict[str, Any] = receipt["failure"]
    assert failure["fault"] == FAILURE_FAULTS[failure["reason"]]
    assert receipt["outputs"] == []
    return failure


def test_conflicting_inputs_end_in_an_input_conflict_receipt(tmp_path: Path) -> None:
    inputs = (
        {"path": "a", "sha256": "1" * 64, "size": 1},
        {"path": "a/b", "sha256": "2" * 64, "size": 1},
    )
    executor, api = _executor(tmp_path, inputs=inputs)
    executor.run()
    failure = _failure(api)
    assert failure["reason"] == "input_conflict" and "'a/b'" in failure["detail"]
    assert not executor.workdir.exists()


def test_an_executor_error_ends_in_an_internal_error_receipt(tmp_path: Path) -> None:
    executor, api = _executor(tmp_path)
    executor.run()  # the runtime raises: a bug or a broken machine, not the job's fault
    failure = _failure(api)
    assert failure["reason"] == "internal_error" and failure["fault"] == "provider"


def _collect_within(executor: LeaseExecutor, seconds: float = 5.0) -> Any:
    """Run ``_collect_outputs`` on a thread: a FIFO opened by mistake would block forever."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = executor._collect_outputs()
        except Exception as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "collecting outputs blocked (a FIFO was opened)"
    return box


@pytest.mark.parametrize("declared", ["pipe", "out"])
def test_a_fifo_output_is_refused_without_being_opened(tmp_path: Path, declared: str) -> None:
    executor, api = _executor(tmp_path, outputs=(declared,))
    (executor.workdir / "out").mkdir(parents=True)
    (executor.workdir / "out" / "fine.txt").write_text("ok")
    os.mkfifo(executor.workdir / ("pipe" if declared == "pipe" else "out/pipe"))
    box = _collect_within(executor)
    error = box.get("error")
    assert isinstance(error, LeaseFailedError), box
    assert error.reason == "output_rejected" and "FIFO" in error.detail
    assert api.blobs == []


def test_an_output_over_the_blob_limit_goes_in_parts(tmp_path: Path) -> None:
    executor, api = _executor(tmp_path, outputs=("small.txt", "big.bin"))
    executor.workdir.mkdir(parents=True)
    (executor.workdir / "small.txt").write_text("ok")
    (executor.workdir / "big.bin").write_bytes(b"\0" * 2500)  # the blob limit is 1000
    outputs, missing = executor._upload_outputs()
    assert missing == []
    by_path = {o.path: o.wire() for o in outputs}  # as the receipt carries them
    assert len(by_path["big.bin"]["parts"]) == 3 and by_path["big.bin"]["size"] == 2500
    assert "parts" not in by_path["small.txt"]
    assert [p.name for p in api.blobs] == ["big.bin"]  # the small one goes with the receipt
    assert executor._attached == {hashlib.sha256(b"ok").hexdigest(): b"ok"}


def test_an_output_too_big_even_in_parts_fails_before_any_upload(tmp_path: Path) -> None:
    executor, api = _executor(tmp_path, outputs=("small.txt", "huge.bin"))
    executor.workdir.mkdir(parents=True)
    (executor.workdir / "small.txt").write_text("ok")
    with (executor.workdir / "huge.bin").open("wb") as f:  # sparse: no disk is used
        f.truncate(1000 * MAX_OUTPUT_PARTS + 1)
    with pytest.raises(LeaseFailedError) as err:
        executor._upload_outputs()
    assert err.value.reason == "output_too_large" and "1000 bytes" in err.value.detail
    assert api.blobs == []  # nothing was sent before the check


def test_symlinked_outputs_are_skipped(tmp_path: Path) -> None:
    executor, api = _executor(tmp_path, outputs=("out", "link"))
    (executor.workdir / "out").mkdir(parents=True)
    (executor.workdir / "out" / "real.txt").write_text("ok")
    (executor.workdir / "out" / "passwd").symlink_to("/etc/passwd")
    (executor.workdir / "link").symlink_to("out/real.txt")
    outputs, missing = executor._upload_outputs()
    assert [o.path for o in outputs] == ["out/real.txt"]
    assert missing == ["link"]
    assert api.blobs == []  # small: it goes with the receipt, and only it
    assert list(executor._attached.values()) == [b"ok"]


def test_leftover_workdirs_are_removed_on_start(tmp_path: Path) -> None:
    root = workroot_for(tmp_path)
    (root / "o-old-0" / "deep").mkdir(parents=True)
    (root / "o-old-0" / "deep" / "file").write_text("left behind by a crash")
    (root / "stray").write_text("x")
    clear_workroot(tmp_path)
    assert root.is_dir() and list(root.iterdir()) == []


class RecordingRuntime:
    """Records the limits the executor asks for, then breaks (no job runs in these tests)."""

    def __init__(self) -> None:
        self.limits: list[Any] = []
        self.env: list[dict[str, str]] = []

    def start(self, workdir: Path, command: str, env: Any, limits: Any, **kw: Any) -> Any:
        self.limits.append(limits)
        self.env.append(dict(env))
        raise RuntimeError("recorded")


def _env_spec() -> JobSpec:
    return JobSpec.from_dict({"run": "env", "max_duration": 60, "max_price_per_hour": "1 USDC"})


def test_the_runtime_is_asked_for_exactly_the_leases_gpus(tmp_path: Path) -> None:
    """The agent registered two GPUs (as data: no GPU is here); the lease holds device 1."""
    from pasar.provider.hardware import GpuInfo, GpuReport
    from pasar.provider.inventory import detect_inventory
    from pasar.provider.runtime.base import GpuGrant

    report = GpuReport(
        gpus=(
            GpuInfo(0, "NVIDIA H100 80GB HBM3", 81559, "GPU-aaaa", minor=0),
            GpuInfo(1, "NVIDIA H100 80GB HBM3", 81559, "GPU-bbbb", minor=5),
        )
    )
    machine = detect_inventory(tmp_path / "home", gpu_report=report)
    for devices, expected in (
        ([{"index": 1, "uuid": "GPU-bbbb"}], (GpuGrant(1, "GPU-bbbb", 5),)),
        ([], ()),
    ):
        runtime = RecordingRuntime()
        job = LeaseJob(
            "o-1-0", "o-1", 0, 1, _env_spec(), (), tuple(map(GpuDeviceView.model_validate, devices))
        )
        LeaseExecutor(
            FakeAPI(),  # type: ignore[arg-type]
            runtime,  # type: ignore[arg-type]
            job,
            workroot=tmp_path / "work",
            allow_network=False,
            gpus=machine.grants,
        ).run()
        (limits,) = runtime.limits
        assert limits.gpus == expected


def test_a_lease_naming_a_gpu_this_machine_lacks_fails_as_the_providers_fault(
    tmp_path: Path,
) -> None:
    runtime = RecordingRuntime()
    api = FakeAPI()
    job = LeaseJob("o-1-0", "o-1", 0, 1, _env_spec(), (), (GpuDeviceView(index=0, uuid=None),))
    LeaseExecutor(
        api,  # type: ignore[arg-type]
        runtime,  # type: ignore[arg-type]
        job,
        workroot=tmp_path / "work",
        allow_network=False,
    ).run()  # the default resolver: this provider registered no GPUs
    assert runtime.limits == []  # never started on some other card
    failure = _failure(api)
    assert failure["reason"] == "internal_error" and "registered none" in failure["detail"]


def test_a_missing_required_output_fails_only_a_job_that_exited_0(tmp_path: Path) -> None:
    """Issue 14.4: missing_outputs (the job's fault) for a required output; an optional one is a
    warning in the log."""
    from pasar.core.spec import Output

    executor, api = _executor(tmp_path, outputs=("out.txt", "extra.log"))
    executor.job = dataclasses.replace(
        executor.job,
        spec=executor.job.spec.model_copy(
            update={"outputs": (Output(path="out.txt"), Output(path="extra.log", optional=True))}
        ),
    )
    assert executor._missing_note(["extra.log"]) == "missing outputs: extra.log (optional)"
    assert api.logs[-1] == "pasar: warning: missing outputs: extra.log (optional)\n"
    declared = executor.job.spec.outputs
    assert missing_failure(["extra.log"], declared) is None  # optional only: no failure
    failure = missing_failure(["out.txt", "extra.log"], declared)
    assert failure is not None and failure.reason == "missing_outputs"
    assert failure.fault == FAILURE_FAULTS["missing_outputs"] == "job"
    assert "out.txt" in failure.detail and "extra.log" not in failure.detail


def test_a_pip_requirement_that_cannot_install_ends_in_a_job_fault_receipt(
    tmp_path: Path,
) -> None:
    from pasar.provider.pip_cache import PipCache

    executor, api = _executor(tmp_path)
    spec = JobSpec.build(**{**executor.job.spec.to_dict(), "pip": ["nosuchpkg==9"]})
    executor.job = dataclasses.replace(executor.job, spec=spec)
    links = tmp_path / "empty-links"
    links.mkdir()
    executor.pip = PipCache(tmp_path / "cache", ["--no-index", "--find-links", str(links)])
    executor.run()  # the runtime is never reached: the install fails first
    failure = _failure(api)
    assert failure["reason"] == "pip_install_failed" and failure["fault"] == "job"
    assert "nosuchpkg==9" in failure["detail"] and "--only-binary" in failure["detail"]
    assert any("installing nosuchpkg==9" in line for line in api.logs)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]


class BeatingAPI(FakeAPI):
    """A market whose lease wants one heartbeat (interval 0), answered slowly."""

    def __init__(self) -> None:
        super().__init__()
        self.said: list[str] = []
        self.asked = 0

    def challenge(self, lease_id: str) -> Any:
        from pasar.api.leases import Challenge

        self.asked += 1
        if self.asked > 1:
            return super().challenge(lease_id)  # the lease is over
        return Challenge(lease_id=lease_id, interval=0, challenge="c", interval_s=30, next_at_ms=0)

    def heartbeat(self, lease_id: str, interval: int, challenge: str, usage: Any) -> TxAnswer:
        threading.Event().wait(0.2)  # a busy market: the job ends before this is answered
        self.said.append(f"heartbeat {interval}")
        return TxAnswer(ok=True, type="heartbeat")

    def receipt(self, body: Receipt, attachments: dict[str, bytes] | None = None) -> TxAnswer:
        self.said.append("receipt")
        return super().receipt(body, attachments)


@pytest.mark.parametrize("runtime", ["process", "broken"])
def test_the_receipt_follows_the_first_heartbeat(tmp_path: Path, runtime: str) -> None:
    """A lease is paid for the intervals its heartbeats verified: a receipt that overtook
    the first heartbeat would end the lease unpaid (the heartbeat then refused)."""
    from pasar.provider.runtime.process import ProcessRuntime

    api = BeatingAPI()
    executor, _ = _executor(tmp_path, api=api)
    if runtime == "process":
        executor.runtime = ProcessRuntime()
    executor.run()
    assert api.said == ["heartbeat 0", "receipt"]
    if runtime == "process":
        assert api.receipts[0].get("failure") is None


def test_inputs_that_came_with_the_lease_are_fetched_only_when_they_do_not_match(
    tmp_path: Path,
) -> None:
    """Inline inputs (``inline_inputs`` of the lease's view) are checked as a download is:
    bytes that do not hash to the manifest's sha256 are never written; the input is fetched."""
    import hashlib

    from pasar.provider.lease_job import decoded

    def sha(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    call = b"the call"
    inputs = (
        {"path": "call.pkl", "sha256": sha(call), "size": len(call)},
        {"path": "sub/data", "sha256": sha(b"x"), "size": 1},
    )
    executor, api = _executor(tmp_path, inputs=inputs)
    inline = {sha(call): call, sha(b"x"): b"not x"}  # a market that lies about the second
    executor.job = dataclasses.replace(executor.job, inline=inline)
    fetched: list[str] = []
    fetch = api.get_blob

    def get_blob(sha256: str, dest: Path) -> str:
        fetched.append(sha256)
        return fetch(sha256, dest)

    api.get_blob = get_blob  # type: ignore[method-assign]
    executor.workdir.mkdir(parents=True)
    assert executor._fetch_inputs() is None
    assert (executor.workdir / "call.pkl").read_bytes() == call
    assert (executor.workdir / "sub" / "data").read_bytes() == b"x"  # fetched, not the lie
    assert fetched == [sha(b"x")]
    assert sorted(p.name for p in executor.workdir.rglob("*")) == ["call.pkl", "data", "sub"]
    assert decoded({"a": "bm90IGJhc2U2NA==", "b": "not base64!"}) == {"a": b"not base64"}
