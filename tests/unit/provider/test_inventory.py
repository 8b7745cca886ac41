"""The provider's inventory: measured, never invented, integers on the wire."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil
import pytest

from pasar.core.errors import PasarError
from pasar.core.resources import GpuDevice
from pasar.core.tx_parsing import parse_inventory
from pasar.provider.hardware import GpuInfo, GpuReport, detect_nvidia_gpus, load_gpu_report
from pasar.provider.inventory import GIB, MachineInventory, detect_inventory
from pasar.provider.runtime.base import GpuGrant

NO_GPU = GpuReport(unavailable_reason="test: no NVML")


def detect(tmp_path: Path, **kw: Any) -> MachineInventory:
    """Detect with an empty cgroup root, so only the machine itself limits what is offered."""
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir(exist_ok=True)
    return detect_inventory(tmp_path / "home", cgroup_root=cgroup, **kw)


def test_this_machine_is_reported_as_psutil_sees_it(tmp_path: Path) -> None:
    machine = detect(tmp_path, reserve_cpus=0, reserve_memory_gb=0)
    report = detect_nvidia_gpus()
    if report.gpus:  # pragma: no cover - only on a GPU machine
        assert len(machine.gpus) + len(machine.skipped_gpus) == len(report.gpus)
    else:
        assert machine.inventory.gpus == ()
        assert machine.gpus == ()
        assert machine.gpu_unavailable_reason is not None
    usable = len(psutil.Process().cpu_affinity() or [])
    assert machine.cpu_count == min(psutil.cpu_count(logical=True), usable)
    assert machine.inventory.cpus == machine.cpu_count
    assert machine.memory_total_gb == psutil.virtual_memory().total // GIB
    assert machine.inventory.memory_gb == machine.memory_total_gb
    free = psutil.disk_usage(str(tmp_path)).free // GIB
    assert abs(machine.disk_free_gb - free) <= 1
    assert machine.disk_path == tmp_path  # home does not exist yet: its nearest parent
    assert machine.cpu_model


def test_wire_form_is_integers_the_market_reads_back(tmp_path: Path) -> None:
    machine = detect(tmp_path)
    wire = machine.to_wire()
    assert set(wire) == {"gpus", "devices", "cpus", "memory_gb", "disk_gb"}
    for key in ("cpus", "memory_gb", "disk_gb"):
        assert type(wire[key]) is int
    assert json.loads(json.dumps(wire)) == wire
    rebuilt = parse_inventory(wire)  # what the market reads: the same GPUs, by index and UUID
    assert rebuilt == machine.inventory
    json.dumps(machine.facts())


def test_reserves_are_taken_off_what_is_offered(tmp_path: Path) -> None:
    machine = detect(tmp_path, reserve_cpus=1, reserve_memory_gb=2)
    assert machine.inventory.cpus == machine.cpu_count - 1
    assert machine.inventory.memory_gb == machine.memory_total_gb - 2
    greedy = detect(tmp_path, reserve_cpus=10_000, reserve_memory_gb=10_000_000)
    assert greedy.inventory.cpus == 0
    assert greedy.inventory.memory_gb == 0
    default = detect(tmp_path)
    assert default.inventory.memory_gb == default.memory_total_gb - 1


@pytest.mark.parametrize("bad", [-1, True, "2"])
def test_bad_reserves_are_refused(tmp_path: Path, bad: object) -> None:
    with pytest.raises(PasarError) as info:
        detect(tmp_path, reserve_cpus=bad)
    assert info.value.field == "reserve_cpus"


def fake_gpus() -> GpuReport:
    return GpuReport(
        gpus=(
            GpuInfo(0, "NVIDIA A100-SXM4-80GB", 81920, "GPU-aaaa"),
            GpuInfo(1, "NVIDIA GeForce GT 710", 2048, "GPU-bbbb"),
            GpuInfo(2, "NVIDIA GeForce RTX 4090", 24564, "GPU-cccc"),
            GpuInfo(3, "NVIDIA GeForce RTX 4090", 24564, "GPU-dddd", minor=7),
        ),
        driver_version="550.54.15",
        cuda_version="12.4",
    )


def test_gpus_are_canonical_and_slots_map_to_offered_devices(tmp_path: Path) -> None:
    machine = detect(tmp_path, gpu_report=fake_gpus())
    assert machine.to_wire()["gpus"] == ["A100-80GB-SXM", "RTX4090-24GB", "RTX4090-24GB"]
    # the skipped GT 710 (index 1) leaves a gap in the indices, never a shift
    assert machine.to_wire()["devices"] == [
        {"index": 0, "uuid": "GPU-aaaa"},
        {"index": 2, "uuid": "GPU-cccc"},
        {"index": 3, "uuid": "GPU-dddd"},
    ]
    assert machine.inventory.gpu_ids[1] == GpuDevice(2, "GPU-cccc")
    assert [g.uuid for g in machine.gpus] == ["GPU-aaaa", "GPU-cccc", "GPU-dddd"]
    assert [str(m) for m in machine.inventory.devices()] == machine.to_wire()["gpus"]
    assert len(machine.skipped_gpus) == 1
    assert "GT 710" in machine.skipped_gpus[0]
    assert "unknown GPU model" in machine.skipped_gpus[0]
    assert machine.driver_version == "550.54.15"
    assert machine.cuda_version == "12.4"
    assert machine.gpu_unavailable_reason is None


def test_fingerprint_is_stable_and_tracks_the_hardware(tmp_path: Path) -> None:
    a = detect(tmp_path, gpu_report=NO_GPU)
    b = detect(tmp_path, gpu_report=NO_GPU, reserve_cpus=1, disk_path=Path("/"))
    assert a.fingerprint == b.fingerprint  # reserves and disk are not hardware
    assert a.fingerprint.startswith("sha256:")
    with_gpus = detect(tmp_path, gpu_report=fake_gpus())
    assert with_gpus.fingerprint != a.fingerprint
    limited = tmp_path / "limited"
    limited.mkdir()
    (limited / "memory.max").write_text(f"{GIB}\n")
    capped = detect_inventory(tmp_path, gpu_report=NO_GPU, cgroup_root=limited)
    assert capped.fingerprint != a.fingerprint


def test_cgroup_limits_lower_what_is_offered(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs: one whole CPU
    (root / "memory.max").write_text(f"{3 * GIB + 5}\n")
    machine = detect_inventory(tmp_path, cgroup_root=root, reserve_memory_gb=0)
    assert machine.cpu_count == 1
    assert machine.memory_total_gb == min(3, psutil.virtual_memory().total // GIB)
    (root / "cpu.max").write_text("max 100000\n")
    (root / "memory.max").write_text("max\n")
    unlimited = detect_inventory(tmp_path, cgroup_root=root, reserve_memory_gb=0)
    assert unlimited.memory_total_gb == psutil.virtual_memory().total // GIB
    (root / "cpu.max").write_text("garbage\n")
    assert detect_inventory(tmp_path, cgroup_root=root).cpu_count == unlimited.cpu_count


def test_disk_is_read_where_jobs_will_live(tmp_path: Path) -> None:
    work = tmp_path / "a" / "b" / "work"
    machine = detect(tmp_path, disk_path=work)
    assert machine.disk_path == tmp_path
    (tmp_path / "a").mkdir()
    assert detect(tmp_path, disk_path=work).disk_path == tmp_path / "a"


def test_a_leases_devices_become_grants_of_this_machines_gpus_only(tmp_path: Path) -> None:
    machine = detect(tmp_path, gpu_report=fake_gpus())
    grants = machine.grants([{"index": 3, "uuid": "GPU-dddd"}, {"index": 0, "uuid": None}])
    assert grants == (GpuGrant(3, "GPU-dddd", 7), GpuGrant(0, "GPU-aaaa", 0))
    assert grants[0].node == "/dev/nvidia7"  # NVML's minor number, not the index
    for bad in (
        [{"index": 1, "uuid": "GPU-bbbb"}],  # skipped: never registered
        [{"index": 9, "uuid": None}],
        [{"index": 2, "uuid": "GPU-dddd"}],  # another card's UUID
        [{"index": "0", "uuid": "GPU-aaaa"}],
    ):
        with pytest.raises(PasarError) as err:
            machine.grants(bad)
        assert err.value.code == "unknown_gpu_device"
    assert machine.grants([]) == ()


def test_a_recorded_gpu_report_is_read_back_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "gpus.json"
    path.write_text(json.dumps(fake_gpus().to_json()))
    assert load_gpu_report(path) == fake_gpus()
    for bad in ("{", '{"gpus": 1}', '{"gpus": [{"index": 0}]}', '{"gpus": [[0]]}'):
        path.write_text(bad)
        with pytest.raises(PasarError) as err:
            load_gpu_report(path)
        assert err.value.code == "invalid_gpu_report"
    path.write_text('{"gpus": [{"index": true, "name": "x", "memory_mib": 1, "uuid": "u"}]}')
    with pytest.raises(PasarError):
        load_gpu_report(path)
