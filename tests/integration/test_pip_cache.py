"""The provider's pip cache with a real ``pip`` and a local wheel directory (no network):
``--find-links DIR --no-index`` is the provider's choice; the job's requirements are checked.

The wheel is built by the test from a tiny source package as a zip (the venv's setuptools
cannot build wheels without the ``wheel`` package, which is not installed here offline).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from pasar.core.errors import PasarError
from pasar.provider.pip_cache import COMPLETE, PipInstallError, ensure_install


def build_wheel(out: Path, name: str = "tinypkg", version: str = "1.0") -> Path:
    """A pure-Python wheel of a one-module package."""
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": 'def hello():\n    return "hi from the wheel"\n',
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in {**files, f"{info}/RECORD": record}.items():
            zf.writestr(path, text)
    return wheel


def build_sdist(out: Path, name: str = "onlysdist", version: str = "1.0") -> Path:
    """A source distribution only (installing it would run its build code)."""
    out.mkdir(parents=True, exist_ok=True)
    src = out / f"{name}-{version}"
    src.mkdir()
    (src / "setup.py").write_text("raise SystemExit('setup.py must never run')\n")
    sdist = out / f"{name}-{version}.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf:
        tf.add(src, arcname=src.name)
    return sdist


def offline(links: Path) -> list[str]:
    return ["--no-index", "--find-links", str(links)]


def test_a_wheel_installs_once_read_only_and_is_reused(tmp_path: Path) -> None:
    links = tmp_path / "wheels"
    build_wheel(links)
    root = tmp_path / "cache"
    site = ensure_install(root, ["tinypkg==1.0"], pip_args=offline(links))
    out = subprocess.run(
        [sys.executable, "-c", "import tinypkg; print(tinypkg.hello())"],
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "hi from the wheel"
    assert not (site / "tinypkg" / "__init__.py").stat().st_mode & 0o222  # no write bits
    # a second call (another lease, same key) reuses the install: the wheels are not needed
    for wheel in links.iterdir():
        wheel.unlink()
    assert ensure_install(root, ["TinyPkg == 1.0"], pip_args=offline(links)) == site
    assert (site.parent / COMPLETE).exists()


def test_an_sdist_only_or_missing_package_is_refused_naming_it(tmp_path: Path) -> None:
    links = tmp_path / "wheels"
    build_sdist(links)
    for req in ("onlysdist==1.0", "nosuchpkg==9"):
        with pytest.raises(PipInstallError) as err:
            ensure_install(tmp_path / "cache", [req], pip_args=offline(links))
        assert req.split("==")[0] in str(err.value)
        assert "--only-binary" in (err.value.hint or "") and err.value.field == "pip"
    # nothing half-installed stays behind in the cache
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]


@pytest.mark.parametrize(
    "req",
    ["--extra-index-url=https://evil.example/simple", "/tmp/x.whl", "https://evil.example/x.whl"],
)
def test_smuggled_options_paths_and_urls_never_reach_pip(tmp_path: Path, req: str) -> None:
    with pytest.raises(PasarError) as err:
        ensure_install(tmp_path / "cache", [req], pip_args=offline(tmp_path))
    assert err.value.field == "pip[0]" and not isinstance(err.value, PipInstallError)
    assert not (tmp_path / "cache").exists()


def test_the_cache_is_capped_least_recently_used_first(tmp_path: Path) -> None:
    links = tmp_path / "wheels"
    build_wheel(links, "pkga")
    build_wheel(links, "pkgb")
    root = tmp_path / "cache"
    first = ensure_install(root, ["pkga"], pip_args=offline(links), cap_bytes=10**9)
    second = ensure_install(root, ["pkgb"], pip_args=offline(links), cap_bytes=1)
    assert not first.exists() and second.exists()  # the older one went; the one in use stays


def test_concurrent_leases_with_one_key_share_one_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from pasar.provider import pip_cache

    links = tmp_path / "wheels"
    build_wheel(links)
    runs: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(argv: list[str], **kwargs: object) -> object:
        runs.append(argv)
        return real_run(argv, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(pip_cache.subprocess, "run", counting_run)
    cache = pip_cache.PipCache(tmp_path / "cache", offline(links))
    sites: list[Path] = []
    inside = threading.Barrier(2, timeout=30)

    def lease(spelling: str) -> None:
        with cache.holding([spelling], timeout_s=60) as site:
            sites.append(site)
            inside.wait()  # both hold the install at once

    threads = [threading.Thread(target=lease, args=(s,)) for s in ("tinypkg==1.0", "TinyPkg==1.0")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(sites) == 2 and sites[0] == sites[1]
    assert len([argv for argv in runs if "install" in argv]) == 1  # one pip install, shared


def test_an_install_a_running_lease_holds_is_never_evicted(tmp_path: Path) -> None:
    from pasar.provider.pip_cache import PipCache

    links = tmp_path / "wheels"
    build_wheel(links, "pkga")
    build_wheel(links, "pkgb")
    cache = PipCache(tmp_path / "cache", offline(links), cap_bytes=1)
    with (
        cache.holding(["pkga"], timeout_s=60) as held,
        cache.holding(["pkgb"], timeout_s=60) as other,
    ):
        assert held.exists() and other.exists()  # over the cap, but both in use
    with cache.holding(["pkgb"], timeout_s=60):
        assert not held.exists()  # released: the least recently used goes
