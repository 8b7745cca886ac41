"""``py_modules``: a local helper module travels by value inside the call's pickle."""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import cloudpickle
import pytest

from pasar.client.remote import _pickle_calls, remote
from pasar.core.errors import PasarError

HELPER = "def triple(x):\n    return 3 * x\n"


@pytest.fixture
def helper(tmp_path: Path) -> Iterator[ModuleType]:
    """A module importable here only (its folder is on this process's path, not elsewhere)."""
    (tmp_path / "pasar_test_helper_mod.py").write_text(HELPER)
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("pasar_test_helper_mod")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("pasar_test_helper_mod", None)


def _load_elsewhere(blob: bytes, tmp_path: Path) -> str:
    """Unpickle and call in a fresh interpreter that cannot import the helper."""
    (tmp_path / "call.pkl").write_bytes(blob)
    code = (
        "import pickle, sys\n"
        "fn, calls = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "args, kwargs = calls[0]\n"
        "print(fn(*args, **kwargs))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "call.pkl")],
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )
    return out.stdout.strip() or out.stderr


def _uses(helper: ModuleType) -> object:
    return lambda x: helper.triple(x) + 1


def test_a_helper_module_named_in_py_modules_loads_where_it_is_not_installed(
    helper: ModuleType, tmp_path: Path
) -> None:
    fn = _uses(helper)
    body = _pickle_calls(fn, [((4,), {})], (helper,))
    # the envelope's body is cloudpickle((fn, calls)); load that part in another interpreter
    blob = pickle.loads(body)["body"]
    assert _load_elsewhere(blob, tmp_path) == "13"
    # without py_modules the helper is pickled by reference and the other side cannot find it
    bare = pickle.loads(_pickle_calls(fn, [((4,), {})]))["body"]
    assert "No module named 'pasar_test_helper_mod'" in _load_elsewhere(bare, tmp_path)
    # the by-value registration lasted only while pickling
    assert "pasar_test_helper_mod" not in cloudpickle.list_registry_pickle_by_value()


def test_py_modules_must_be_modules_and_options_can_change_them(helper: ModuleType) -> None:
    with pytest.raises(PasarError) as err:
        remote(py_modules=["pasar_test_helper_mod"])(_uses)  # type: ignore[list-item]
    assert err.value.field == "py_modules[0]" and "import" in (err.value.hint or "")
    fn = remote(py_modules=[helper])(_uses)
    assert fn.py_modules == (helper,)
    assert fn.options(max_duration="1h").py_modules == (helper,)
    assert fn.options(py_modules=[]).py_modules == ()
