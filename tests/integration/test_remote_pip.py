"""``@pasar.remote(pip=[...])`` against a real market and a real sandboxed provider that installs
from a local wheel folder only (``--pip-find-links DIR --pip-no-index``: no network).

One test, one provider, in order: a call imports the wheel's package; the job cannot write into
the shared install (bound read-only); a second client's call, with the wheel gone from the
folder, is served from the cache — the same install, and nothing of the first job; a package
with only an sdist fails the lease (``pip_install_failed``, the job's fault), the SDK raises
naming it with the ``--only-binary`` hint, nothing is re-queued and the money adds up.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_provider import PRICE, Client, conserved

import pasar
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.provider.agent import PIP_CACHE_DIR
from pasar.provider.pip_cache import COMPLETE

if TYPE_CHECKING:
    from conftest import MarketProcess

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")

PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "tinypkg"
version = "0.1"

[tool.setuptools]
packages = ["tinypkg"]
"""


def build_tiny_wheel(tmp: Path, out: Path) -> Path:
    """``pip wheel --no-deps`` of a one-module package written here (no network: the
    venv's setuptools builds it, without build isolation)."""
    src = tmp / "tinypkg-src"
    (src / "tinypkg").mkdir(parents=True)
    (src / "tinypkg" / "__init__.py").write_text("def hello(x):\n    return f'tinypkg says {x}'\n")
    (src / "pyproject.toml").write_text(PYPROJECT)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", str(out), str(src)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = out.glob("tinypkg-0.1-*.whl")
    return wheel


def add_sdist_only(out: Path) -> None:
    """``onlysdist-1.0.tar.gz``: a package with no wheel (its setup.py must never run)."""
    src = out.parent / "onlysdist-1.0"
    src.mkdir()
    (src / "setup.py").write_text("raise SystemExit('setup.py must never run')\n")
    with tarfile.open(out / "onlysdist-1.0.tar.gz", "w:gz") as tf:
        tf.add(src, arcname=src.name)


def probe(marker: str) -> dict[str, Any]:
    """Runs in the sandbox: import the pip requirement, try to write into its install, leave
    a marker where a later job would look, and report what this job sees."""
    import errno
    import os

    import tinypkg  # type: ignore[import-not-found]

    here = os.path.dirname(tinypkg.__file__)
    attempts = {}
    for target in (os.path.join(here, "evil.py"), os.path.join(here, "..", "evil.pth")):
        try:
            with open(target, "w") as f:
                f.write("import os\n")
            attempts[target] = "written"
        except OSError as exc:
            attempts[target] = errno.errorcode.get(exc.errno or 0, str(exc))
    seen = {"tmp": sorted(os.listdir("/tmp")), "work": sorted(os.listdir("."))}
    for folder in ("/tmp", "."):
        with open(os.path.join(folder, marker), "w") as f:
            f.write("left behind\n")
    return {"hello": tinypkg.hello(marker), "here": here, "attempts": attempts, "seen": seen}


def test_pip_requirements_install_once_read_only_shared_and_an_sdist_only_one_fails(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Path
) -> None:
    wheels = tmp_path / "wheels"
    build_tiny_wheel(tmp_path, wheels)
    add_sdist_only(wheels)
    provider = spawn_provider(
        market_server.url,
        tmp_path / "p1",
        *PRICE,
        "--pip-find-links",
        str(wheels),
        "--pip-no-index",
    )
    alice = pasar.Client(market_server.url, home=tmp_path / "alice")
    alice.faucet("10 USDC")
    first = pasar.remote(cpus=1, client=alice, pip=["tinypkg==0.1"])(probe).remote("alice")
    assert first["hello"] == "tinypkg says alice"
    assert first["here"] == "/opt/pasar/pip/tinypkg"  # the read-only bind, first on the path
    assert set(first["attempts"].values()) <= {"EROFS", "EACCES"}, first["attempts"]
    cache = provider.home / PIP_CACHE_DIR
    installs = [d for d in cache.iterdir() if (d / COMPLETE).exists()]
    assert len(installs) == 1 and not list(installs[0].rglob("evil*"))

    # the wheel is gone: a second client's call with the same requirement (spelled otherwise)
    # can only be served by the cached install
    for wheel in wheels.glob("*.whl"):
        wheel.unlink()
    bob = pasar.Client(market_server.url, home=tmp_path / "bob")
    bob.faucet("10 USDC")
    second = pasar.remote(cpus=1, client=bob, pip=["TinyPkg == 0.1"])(probe).remote("bob")
    assert second["hello"] == "tinypkg says bob" and second["here"] == first["here"]
    assert "alice" not in second["seen"]["tmp"] and "alice" not in second["seen"]["work"]
    assert [d for d in cache.iterdir() if (d / COMPLETE).exists()] == installs

    # a package with only an sdist: the lease fails, the job's fault, named, not re-queued
    call = pasar.remote(cpus=1, client=alice, pip=["onlysdist==1.0"])(probe).spawn("x")
    with pytest.raises(PasarError) as err:
        call.get()
    assert "onlysdist" in str(err.value) and "--only-binary" in str(err.value)
    assert err.value.code == "pip_install_failed"
    order = call.job.wait()
    (lease,) = order["leases"]
    failure = lease["receipt"]["failure"]
    assert lease["status"] == "failed" and failure["reason"] == "pip_install_failed"
    assert failure["fault"] == "job" and "onlysdist" in failure["detail"]
    # the fault-job rule: the provider is paid its verified seconds, the rest comes back
    price = Money.parse(lease["price_per_hour"])
    assert lease["bill"]["billed"] == price.scale(lease["billed_ms"], 3_600_000).to_json()
    conserved(Client(market_server), "20 USDC")
