"""Requirement strings: the plain subset passes (normalised), anything that could steer pip
(options, URLs, paths, markers) is refused with a 400 naming the field; the cache key."""

from __future__ import annotations

import pytest

from pasar.core.errors import PasarError
from pasar.core.pip_requirements import cache_key, check_requirement, check_requirements


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
