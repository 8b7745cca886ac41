"""Requirement strings: the plain subset passes (normalised), anything that could steer pip
(options, URLs, paths, markers) is refused with a 400 naming the field; the cache key."""

from __future__ import annotations

import pytest

from pasar.core.errors import PasarError
from pasar.core.pip_requirements import cache_key, check_requirement, check_requirements
from pasar.core.spec import PRIVATE_FIELDS, JobSpec, SpecError


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("pandas==2.2", "pandas==2.2"),
        ("Foo_Bar >= 1.0 , < 2", "foo-bar<2,>=1.0"),
        ("requests[socks, Security]~=2.31", "requests[security,socks]~=2.31"),
        ("numpy", "numpy"),
    ],
)
def test_plain_requirements_are_normalised(text: str, normal: str) -> None:
    assert check_requirement(text, "pip[0]") == normal


@pytest.mark.parametrize(
    "text",
    [
        "--extra-index-url https://evil.example/simple",
        "--index-url=https://evil.example/simple",
        "-e .",
        "-r requirements.txt",
        "pandas --extra-index-url https://evil.example",
        "https://evil.example/pkg-1.0-py3-none-any.whl",
        "pkg @ https://evil.example/pkg.whl",
        "pkg @ file:///etc/passwd",
        "./local/pkg",
        "/tmp/pkg-1.0-py3-none-any.whl",
        "../pkg.tar.gz",
        "pkg; python_version > '3'",
        "pkg==1.0\n--index-url x",
        "",
        "   ",
    ],
)
def test_options_urls_paths_and_markers_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(PasarError) as err:
        check_requirement(text, "pip[3]")
    assert err.value.field == "pip[3]" and err.value.status == 400
    assert "--only-binary" in (err.value.hint or "")


def test_the_list_is_checked_sorted_and_deduplicated() -> None:
    assert check_requirements(["b==1", "A==2", "a==2"]) == ("a==2", "b==1")
    with pytest.raises(PasarError) as err:
        check_requirements(["ok==1", 7])
    assert err.value.field == "pip[1]"
    with pytest.raises(PasarError) as err:
        check_requirements("pandas==2.2")
    assert err.value.field == "pip"
    with pytest.raises(PasarError):
        check_requirements([f"p{i}" for i in range(65)])


def test_the_cache_key_depends_on_the_set_and_the_python_version_not_the_order() -> None:
    one = cache_key(["a==1", "b==2"], "3.11")
    assert one == cache_key(["b==2", "a==1"], "3.11")
    assert one != cache_key(["a==1", "b==2"], "3.12")
    assert one != cache_key(["a==1"], "3.11")
    assert len(one) == 32 and all(c in "0123456789abcdef" for c in one)


# -- the spec's pip: field -------------------------------------------------------------------


def _spec(**fields: object) -> JobSpec:
    return JobSpec.build(run="python job.py", max_price_per_hour="1 USDC", max_duration=60,
                         **fields)  # fmt: skip


def test_pip_in_a_spec_is_private_normalised_and_read_from_yaml() -> None:
    spec = _spec(pip=["NumPy == 2.0", "requests[socks]>=2"])
    assert spec.pip == ("numpy==2.0", "requests[socks]>=2")
    assert "pip" in PRIVATE_FIELDS and "pip" not in spec.public_dict()
    assert "pip" not in _spec().to_dict()  # unset: every older spec keeps its canonical form
    text = 'run: x\nmax_price_per_hour: "1 USDC"\nmax_duration: 60\npip: [numpy==2.0]\n'
    assert JobSpec.from_yaml(text).pip == ("numpy==2.0",)


@pytest.mark.parametrize(
    "bad",
    [["--extra-index-url x"], ["https://evil.example/x.whl"], ["/tmp/x.whl"], "numpy", [3]],
)
def test_pip_in_a_spec_refuses_options_urls_paths_naming_the_field(bad: object) -> None:
    with pytest.raises(SpecError) as err:
        _spec(pip=bad)
    assert err.value.field == "pip" and err.value.status == 400
    assert "--only-binary" in (err.value.hint or "")


def test_pip_with_an_image_is_refused() -> None:
    with pytest.raises(SpecError) as err:
        _spec(pip=["numpy"], image="python:3.11-slim")
    assert "image" in err.value.message and err.value.hint
