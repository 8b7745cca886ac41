"""Absolute ``file_mounts`` destinations (issue 18): which the spec takes, which it refuses
(naming ``file_mounts.<destination>`` with a hint), and specs without them keep their digest."""

from __future__ import annotations

import pytest

from pasar.core.mounts import nested, staged_name
from pasar.core.private_part import PrivatePart
from pasar.core.spec import JobSpec, SpecError


def spec(mounts: dict[str, str]) -> JobSpec:
    return JobSpec.from_dict(
        {"run": "true", "max_price_per_hour": "1 USDC", "max_duration": 60, "file_mounts": mounts}
    )


@pytest.mark.parametrize(
    ("dest", "kept"),
    [
        ("/data", "/data"),
        ("/data/", "/data"),
        ("/app/config.yaml", "/app/config.yaml"),
        ("/mnt/datasets/mnist", "/mnt/datasets/mnist"),
        ("/tmp/cache", "/tmp/cache"),
        ("/opt/models", "/opt/models"),
        ("/home/user/.cache", "/home/user/.cache"),
        ("data", "data"),  # relative: in the working directory, as before
        ("~/data/", "data"),
    ],
)
def test_destinations_the_spec_takes(dest: str, kept: str) -> None:
    assert list(spec({dest: "./d"}).file_mounts or {}) == [kept]


@pytest.mark.parametrize(
    ("dest", "word"),
    [
        ("/", "whole sandbox"),
        ("/proc", "/proc"),
        ("/proc/self", "/proc"),
        ("/dev/shm/x", "/dev"),
        ("/sys", "/sys"),
        ("/etc", "/etc"),
        ("/etc/passwd", "/etc"),
        ("/usr/local/lib/x", "/usr"),
        ("/bin", "/bin"),
        ("/lib64", "/lib64"),
        ("/run/x", "/run"),
        ("/opt", "/opt/pasar"),  # covers it
        ("/opt/pasar", "/opt/pasar"),
        ("/opt/pasar/venv", "/opt/pasar"),
        ("/work", "/work"),
        ("/work/data", "relative"),
        ("/tmp", "private /tmp"),
        ("/data/../etc", "'..'"),
        ("/data/./x", "'.'"),
        ("//data", "'//'"),
        ("/a:b", "character"),
        ("/a,b", "character"),
        ("~root/x", "working directory"),
        ("../x", "working directory"),
    ],
)
def test_destinations_the_spec_refuses_name_the_field(dest: str, word: str) -> None:
    with pytest.raises(SpecError) as err:
        spec({dest: "./d"})
    assert err.value.field == f"file_mounts.{dest}"
    assert word in f"{err.value.message} {err.value.hint}", (err.value.message, err.value.hint)
    assert err.value.hint


def test_one_destination_inside_another_is_refused() -> None:
    with pytest.raises(SpecError) as err:
        spec({"/data": "./a", "/data/sub": "./b"})
    assert err.value.field == "file_mounts" and "'/data/sub' lies inside '/data'" in (
        err.value.message
    )
    assert nested(["/data", "/database"]) is None  # a prefix of the name is not inside


def test_staged_names_keep_each_destination_apart() -> None:
    assert staged_name("/data") == ".pasar-mounts/data"
    assert staged_name("/app/config.yaml") == ".pasar-mounts/app/config.yaml"


def test_a_spec_without_absolute_mounts_keeps_its_digest() -> None:
    """The commitment of a spec with relative mounts, as computed before absolute ones existed
    (main at 4724052): reading them must not change a byte."""
    relative = JobSpec.from_dict(
        {
            "run": "cat data/x",
            "max_price_per_hour": "1 USDC",
            "max_duration": 60,
            "file_mounts": {"data/": "./d", "~/.config/app.toml": "app.toml"},
        }
    )
    part = PrivatePart.of(relative, [{"path": "data/x", "sha256": "a" * 64, "size": 1}], b"\0" * 32)
    assert part.commitment == "1fd099c3b6c722988567d6d6468972f0caae5c7ac7de97d97d652ff7185fdac6"


def test_absolute_mounts_survive_the_private_part() -> None:
    """The provider and a verifier read the mounts back from the private part: the same."""
    job = spec({"/data": "./d"})
    part = PrivatePart.of(job, [], b"\1" * 32)
    again = PrivatePart.parse(part.to_bytes()).job_spec(job.public_dict())
    assert again.file_mounts == {"/data": "./d"}
