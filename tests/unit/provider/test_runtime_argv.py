"""The pure parts of the runtimes: command lines, limits, kill-reason heuristics, registry."""

from __future__ import annotations

import itertools
import signal
from pathlib import Path

import pytest

from pasar.core.errors import PasarError
from pasar.provider.runtime import RUNTIMES, get_runtime
from pasar.provider.runtime.base import (
    GpuGrant,
    Limits,
    classify_exit,
    cuda_visible_devices,
    prlimit_argv,
)
from pasar.provider.runtime.docker import docker_argv, docker_gpu_env
from pasar.provider.runtime.sandbox import VENV_MOUNT, HostLayout, bwrap_argv, gpu_devices

MIB = 1024 * 1024
LIMITS = Limits(
    memory_bytes=256 * MIB,
    cpu_seconds=60,
    max_processes=64,
    max_file_bytes=100 * MIB,
    wall_seconds=30,
)
USER_HOST = HostLayout(
    top_level=(("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", None)),
    python_base="/opt/python3.11",
    python_venv="/home/p/venv",
    python_bin="python3",
    as_root=False,
)
ROOT_HOST = HostLayout(
    top_level=(("bin", "usr/bin"),),
    python_base="/root/.pyenv/versions/3.11.7",
    python_venv=None,
    python_bin="python3",
    as_root=True,
)


def pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    """The (source, dest) pairs that follow each ``flag`` in ``argv``."""
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def test_prlimit_sets_every_limit_soft_equals_hard() -> None:
    argv = prlimit_argv(LIMITS)
    assert argv[0] == "prlimit" and argv[-1] == "--"
    assert f"--as={256 * MIB}" in argv
    assert "--cpu=60:61" in argv  # SIGXCPU first, SIGKILL a second later
    assert f"--fsize={100 * MIB}" in argv
    assert "--nproc=64" in argv
    assert not any(a.startswith("--nproc") for a in prlimit_argv(LIMITS, processes=False))


def test_gpu_jobs_get_no_address_space_limit_cuda_would_fail_under() -> None:
    gpu = Limits(**{**LIMITS.__dict__, "gpus": (GpuGrant(0, "GPU-a", 0),)})
    argv = prlimit_argv(gpu)
    assert not any(a.startswith("--as=") for a in argv)
    assert "--cpu=60:61" in argv and f"--fsize={100 * MIB}" in argv and "--nproc=64" in argv


def test_sandbox_as_user_unshares_everything_and_maps_an_unprivileged_uid() -> None:
    argv = bwrap_argv(Path("/srv/jobs/1"), "echo hi", {"A": "1"}, LIMITS, USER_HOST)
    assert argv[0] == "bwrap"
    for flag in ("--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"):
        assert flag in argv
    assert argv[argv.index("--uid") + 1] == "1000"
    assert "--share-net" not in argv
    assert "setpriv" not in argv  # not needed: the user namespace maps to the provider's uid
    assert argv[-3:] == ["/bin/sh", "-c", "echo hi"]


def test_sandbox_binds_only_the_system_python_and_workdir() -> None:
    argv = bwrap_argv(Path("/srv/jobs/1"), "true", {}, LIMITS, USER_HOST)
    ro = pairs(argv, "--ro-bind")
    assert ("/usr", "/usr") in ro
    assert ("/lib64", "/lib64") in ro  # a real directory on this host
    assert ("/opt/python3.11", "/opt/python3.11") in ro
    assert ("/home/p/venv", VENV_MOUNT) in ro  # the venv, away from /home and /work
    assert pairs(argv, "--bind") == [("/srv/jobs/1", "/work")]  # the only writable bind
    assert ("usr/bin", "/bin") in pairs(argv, "--symlink")
    assert argv[argv.index("--chdir") + 1] == "/work"
    assert argv[argv.index("--remount-ro") + 1] == "/"
    sources = [s for s, _ in ro + pairs(argv, "--ro-bind-try") + pairs(argv, "--bind")]
    for secret in ("/root", "/home", "/home/p", "/home/p/.pasar", "/etc", "/etc/passwd"):
        assert secret not in sources
    assert "/etc/resolv.conf" not in sources  # no network, no resolver
    tmpfs_at = argv.index("--tmpfs")
    assert argv[tmpfs_at + 1] == "/tmp"
    assert argv[tmpfs_at - 4 : tmpfs_at] == ["--perms", "1777", "--size", str(256 * MIB)]


def test_sandbox_parents_of_binds_are_traversable_by_the_job() -> None:
    argv = bwrap_argv(Path("/w"), "true", {}, LIMITS, ROOT_HOST, job_uid=7)
    made = [argv[i + 1] for i, a in enumerate(argv) if a == "--dir"]
    assert made[:1] == ["/etc"]
    assert {"/root", "/root/.pyenv", "/root/.pyenv/versions"} <= set(made)
    assert "/root/.pyenv/versions/3.11.7" not in made  # the bind itself, not a --dir
    for i, a in enumerate(argv):
        if a == "--dir":
            assert argv[i - 2 : i] == ["--perms", "0755"]
    assert argv.index("--dir") < argv.index("--ro-bind-try")


def test_sandbox_env_is_set_inside_by_env_i_and_the_python_is_on_path() -> None:
    argv = bwrap_argv(Path("/w"), "true", {"FOO": "bar baz", "PATH": "/x"}, LIMITS, USER_HOST)
    assert "--clearenv" in argv
    env_at = argv.index("env")
    assert argv[env_at : env_at + 3] == ["env", "-i", "--"]
    assigned = argv[env_at + 3 : -3]
    assert "FOO=bar baz" in assigned and "HOME=/work" in assigned
    assert "PATH=/x" in assigned  # the job's own PATH wins inside the sandbox
    default = bwrap_argv(Path("/w"), "true", {}, LIMITS, USER_HOST)
    path = next(a for a in default if a.startswith("PATH="))
    assert path.startswith(f"PATH={VENV_MOUNT}/bin:/opt/python3.11/bin:")
    # rlimits are applied inside, after the namespaces exist, and before the job's env
    assert default.index("bwrap") < default.index("prlimit") < default.index("env")


def test_sandbox_network_only_when_the_limits_allow_it() -> None:
    net = Limits(**{**LIMITS.__dict__, "network": True})
    argv = bwrap_argv(Path("/w"), "true", {}, net, USER_HOST)
    assert "--share-net" in argv
    assert ("/etc/resolv.conf", "/etc/resolv.conf") in pairs(argv, "--ro-bind-try")
    root = bwrap_argv(Path("/w"), "true", {}, net, ROOT_HOST, job_uid=1_500_000_001)
    assert "--unshare-net" not in root
    assert "--unshare-net" in bwrap_argv(Path("/w"), "true", {}, LIMITS, ROOT_HOST, job_uid=7)


def test_sandbox_as_root_drops_to_an_unprivileged_uid_before_the_job() -> None:
    argv = bwrap_argv(Path("/w"), "true", {}, LIMITS, ROOT_HOST, job_uid=1_500_000_001)
    assert "--unshare-user" not in argv and "--unshare-all" not in argv
    for flag in ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert {argv[i + 1] for i, a in enumerate(argv) if a == "--cap-add"} == {
        "CAP_SETUID",
        "CAP_SETGID",
    }
    sp = argv.index("setpriv")
    assert sp < argv.index("prlimit") < argv.index("env")  # the job env arrives last
    assert "--reuid=1500000001" in argv and "--no-new-privs" in argv
    assert "--bounding-set=-all" in argv
    with pytest.raises(ValueError):
        bwrap_argv(Path("/w"), "true", {}, LIMITS, ROOT_HOST)


def test_sandbox_refuses_env_names_env_would_misread() -> None:
    for bad in ("A=B", "1X", "", "A B"):
        with pytest.raises(PasarError) as err:
            bwrap_argv(Path("/w"), "true", {bad: "v"}, LIMITS, USER_HOST)
        assert err.value.code == "invalid_env"
    with pytest.raises(PasarError):
        bwrap_argv(Path("/w"), "true", {"A": "x\0y"}, LIMITS, USER_HOST)


# A lease's GPUs as the agent hands them to a runtime (data: no GPU is present in these tests).
# Device 1's node is /dev/nvidia3: the driver's numbering need not be NVML's.
GPU0 = GpuGrant(0, "GPU-aaaa0000-0000-0000-0000-000000000000", 0)
GPU1 = GpuGrant(1, "GPU-bbbb1111-1111-1111-1111-111111111111", 3)


def test_sandbox_binds_exactly_the_leases_gpu_nodes_and_the_control_nodes() -> None:
    assert gpu_devices(()) == []
    assert gpu_devices((GPU1,)) == [
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia-uvm-tools",
        "/dev/nvidia3",
    ]
    gpu = Limits(**{**LIMITS.__dict__, "gpus": (GPU1,)})
    argv = bwrap_argv(Path("/w"), "true", {"CUDA_VISIBLE_DEVICES": "0,1"}, gpu, USER_HOST)
    nodes = [src for src, _ in pairs(argv, "--dev-bind-try") if src.startswith("/dev/nvidia")]
    assert nodes == ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia3"]
    assert ("/dev/nvidia3", "/dev/nvidia3") in pairs(argv, "--dev-bind-try")
    env_at = argv.index("env")
    assigned = argv[env_at + 3 : -3]
    # the lease's GPU by UUID, over whatever the job's envs said
    assert f"CUDA_VISIBLE_DEVICES={GPU1.uuid}" in assigned
    assert "CUDA_VISIBLE_DEVICES=0,1" not in assigned
    plain = bwrap_argv(Path("/w"), "true", {}, LIMITS, USER_HOST)
    assert not any("nvidia" in a for a in plain)
    assert not any(a.startswith("CUDA_VISIBLE_DEVICES=") for a in plain)


def test_cuda_visible_devices_names_uuids_and_falls_back_to_indices() -> None:
    assert cuda_visible_devices((GPU0, GPU1)) == f"{GPU0.uuid},{GPU1.uuid}"
    assert cuda_visible_devices((GpuGrant(2, None, 2), GPU1)) == "2,1"


def test_docker_argv_isolates_like_the_sandbox() -> None:
    argv = docker_argv(
        Path("/srv/jobs/1"),
        "python train.py",
        {"SECRET": "s3cr3t"},
        LIMITS,
        image="python:3.11-slim",
        name="pasar-abc",
        user="1000:1000",
    )
    assert argv[:3] == ["docker", "run", "--rm"]
    assert argv[argv.index("--network") + 1] == "none"
    assert argv[argv.index("--memory") + 1] == str(256 * MIB)
    assert argv[argv.index("--memory-swap") + 1] == str(256 * MIB)
    assert argv[argv.index("--pids-limit") + 1] == "64"
    assert argv[argv.index("--user") + 1] == "1000:1000"
    assert argv[argv.index("-v") + 1] == "/srv/jobs/1:/work"
    assert argv[argv.index("-w") + 1] == "/work"
    assert "--read-only" in argv and "no-new-privileges" in argv
    assert "cpu=60:61" in argv and f"fsize={100 * MIB}:{100 * MIB}" in argv
    assert "--gpus" not in argv
    assert "SECRET" in argv and not any("s3cr3t" in a for a in argv)  # value via client env
    assert argv[-4:] == ["python:3.11-slim", "/bin/sh", "-c", "python train.py"]


def test_docker_argv_gpus_and_network() -> None:
    lim = Limits(**{**LIMITS.__dict__, "gpus": (GPU0, GPU1), "network": True})
    argv = docker_argv(Path("/w"), "true", {}, lim, image="img", name="n", user="1:1")
    assert argv[argv.index("--gpus") + 1] == f'"device={GPU0.uuid},{GPU1.uuid}"'
    assert argv[argv.index("--network") + 1] == "bridge"
    assert ("-e", "CUDA_VISIBLE_DEVICES") in itertools.pairwise(argv)  # value: client env
    assert docker_gpu_env(lim.gpus)["CUDA_VISIBLE_DEVICES"] == f"{GPU0.uuid},{GPU1.uuid}"
    # without UUIDs: NVML indices for the engine, and no CUDA_VISIBLE_DEVICES (it renumbers)
    bare = Limits(**{**LIMITS.__dict__, "gpus": (GpuGrant(0, None, 0), GpuGrant(2, None, 2))})
    argv = docker_argv(Path("/w"), "true", {}, bare, image="img", name="n", user="1:1")
    assert argv[argv.index("--gpus") + 1] == '"device=0,2"'
    assert "CUDA_VISIBLE_DEVICES" not in argv and docker_gpu_env(bare.gpus) == {}


@pytest.mark.parametrize(
    ("code", "tail", "cpu", "expected"),
    [
        (0, ["MemoryError"], 0.0, None),  # a success is a success
        (1, ["Traceback", "MemoryError"], 0.0, "memory"),
        (134, ["terminate called after throwing an instance of 'std::bad_alloc'"], 0, "memory"),
        (128 + signal.SIGXCPU, [], 60.0, "cpu_time"),
        (128 + signal.SIGKILL, [], 61.0, "cpu_time"),
        (128 + signal.SIGKILL, [], 1.0, None),
        (128 + signal.SIGXFSZ, [], 0.0, "file_size"),
        (1, ["OSError: [Errno 27] File too large"], 0.0, "file_size"),
        (2, ["sh: 1: Cannot fork"], 0.0, "processes"),
        (1, ["BlockingIOError: [Errno 11] Resource temporarily unavailable"], 0, "processes"),
        (3, ["assert failed"], 0.0, None),
    ],
)
def test_classify_exit(code: int, tail: list[str], cpu: float, expected: str | None) -> None:
    assert classify_exit(code, tail, LIMITS, cpu) == expected


def test_limits_validate() -> None:
    with pytest.raises(PasarError):
        Limits(memory_bytes=0, cpu_seconds=1, max_processes=1, max_file_bytes=1, wall_seconds=1)
    with pytest.raises(PasarError):
        Limits(memory_bytes=1, cpu_seconds=1, max_processes=1, max_file_bytes=1, wall_seconds=0)


def test_registry() -> None:
    assert set(RUNTIMES) == {"sandbox", "docker", "process"}
    for name in RUNTIMES:
        assert get_runtime(name).name == name
    with pytest.raises(PasarError) as err:
        get_runtime("vm")
    assert err.value.code == "unknown_runtime" and "sandbox" in (err.value.hint or "")


def test_image_jobs_are_refused_by_runtimes_without_images(tmp_path: Path) -> None:
    for name in ("sandbox", "process"):
        with pytest.raises(PasarError) as err:
            get_runtime(name).start(tmp_path, "true", {}, LIMITS, image="python:3.11")
        assert err.value.code == "unsupported_image"
    with pytest.raises(PasarError) as err:
        get_runtime("docker").start(tmp_path, "true", {}, LIMITS)
    assert err.value.code == "missing_image"


def test_sandbox_binds_a_pip_install_read_only_first_on_the_python_path() -> None:
    from pasar.provider.runtime.sandbox import PIP_MOUNT

    limits = Limits(**{**LIMITS.__dict__, "pip_site": Path("/p/pip-cache/k/site")})
    env = {"PYTHONPATH": "/work/lib"}
    argv = bwrap_argv(Path("/w"), "true", env, limits, ROOT_HOST, job_uid=7)
    assert ("/p/pip-cache/k/site", PIP_MOUNT) in pairs(argv, "--ro-bind")
    assert pairs(argv, "--bind") == [("/w", "/work")]  # still the only writable bind
    assert f"PYTHONPATH={PIP_MOUNT}:/work/lib" in argv  # before the job's own entries
    plain = bwrap_argv(Path("/w"), "true", {}, LIMITS, ROOT_HOST, job_uid=7)
    assert PIP_MOUNT not in plain and not any(a.startswith("PYTHONPATH=") for a in plain)
