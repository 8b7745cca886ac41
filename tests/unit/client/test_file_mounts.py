"""``file_mounts`` (SkyPilot's): each destination in the job names its local file or folder
(issue 14, `pasar launch` like `sky launch`). The spec checks the destinations and refuses
bucket sources; the client uploads the files under the names the destinations give."""

from __future__ import annotations

from pathlib import Path

import pytest

from pasar.client.inputs import collect_inputs
from pasar.core.errors import PasarError
from pasar.core.spec import JobSpec, SpecError

BASE = {"run": "true", "max_price_per_hour": "0.5 USDC", "max_duration": "1m"}


def _spec(mounts: object, **more: object) -> JobSpec:
    return JobSpec.from_dict({**BASE, "file_mounts": mounts, **more}, source="<test>")


def test_destinations_are_places_in_the_working_directory() -> None:
    job = _spec({"~/data/": "ds", "conf.toml": "/etc/hostname"})
    assert job.file_mounts == {"data": "ds", "conf.toml": "/etc/hostname"}
    assert "file_mounts" not in job.public_dict()  # local paths: the parties' business only
    assert "file_mounts" not in _spec(None).to_dict()  # unset stays unset


@pytest.mark.parametrize(
    ("mounts", "says"),
    [
        ({"/proc": "ds"}, "which the job's sandbox needs"),  # absolute: tests/unit/core/test_mounts
        ({"../up": "ds"}, "not a place in the job's working directory"),
        ({"~": "ds"}, "not a place in the job's working directory"),
        ({"data": "s3://bucket/data"}, "is a bucket or URL"),
        ({"data": "gs://bucket/data"}, "is a bucket or URL"),
        (["data"], "expected a mapping of destination: local path"),
    ],
)
def test_what_no_provider_could_place_is_refused_naming_the_field(
    mounts: object, says: str
) -> None:
    with pytest.raises(SpecError) as err:
        _spec(mounts)
    assert says in str(err.value) and "file_mounts" in str(err.value)


def test_files_are_named_by_their_destination_from_anywhere(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"  # outside the base: the destination names it anyway
    (elsewhere / "sub").mkdir(parents=True)
    (elsewhere / "a.txt").write_text("a")
    (elsewhere / "sub" / "b.txt").write_text("b")
    base = tmp_path / "project"
    base.mkdir()
    (base / "c.toml").write_text("c")
    job = _spec({"data": str(elsewhere), "conf/app.toml": "c.toml"})
    names = [f.name for f in collect_inputs(job, base)]
    assert names == ["data/a.txt", "data/sub/b.txt", "conf/app.toml"]


def test_a_mount_that_collides_with_an_input_or_is_missing_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.txt").write_text("other")
    twice = _spec({"data": "other"}, inputs=["data"])
    with pytest.raises(PasarError) as err:
        collect_inputs(twice, tmp_path)
    assert err.value.code == "duplicate_input" and "data/a.txt" in str(err.value)
    with pytest.raises(PasarError) as err:
        collect_inputs(_spec({"data": "nowhere"}), tmp_path)
    assert err.value.code == "input_not_found" and err.value.field == "file_mounts.data"
