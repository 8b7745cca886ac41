"""The provider's pip options: ``[pip]`` in config.toml, flags over it, refusals naming the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from pasar.core.errors import PasarError
from pasar.provider.pip_cache import DEFAULT_CAP_BYTES
from pasar.provider.pip_options import PipOptions, pip_options_from_config


def test_config_then_flags_make_the_pip_arguments(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (tmp_path / "config.toml").write_text(
        'market = "http://127.0.0.1:1"\n[pip]\nindex_url = "https://mirror.example/simple"\n'
        "cache_max_mb = 5\n"
    )
    base = pip_options_from_config(tmp_path)
    assert base.pip_args() == ["--index-url", "https://mirror.example/simple"]
    assert base.cap_bytes == 5 << 20
    both = base.with_flags(find_links=[str(wheels)], no_index=True).checked()
    assert both.pip_args() == [
        "--index-url", "https://mirror.example/simple", "--find-links", str(wheels), "--no-index",
    ]  # fmt: skip
    assert PipOptions().cap_bytes == DEFAULT_CAP_BYTES and PipOptions().pip_args() == []
    assert pip_options_from_config(tmp_path / "none") == PipOptions()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (PipOptions(index_url="--extra-index-url=x"), "--pip-index-url"),
        (PipOptions(find_links=("/no/such/folder",)), "--pip-find-links"),
        (PipOptions(no_index=True), "--pip-no-index"),
        (PipOptions(cache_max_mb=0), "--pip-cache-max-mb"),
    ],
)
def test_bad_options_are_refused_naming_the_flag(options: PipOptions, field: str) -> None:
    with pytest.raises(PasarError) as err:
        options.checked()
    assert err.value.field == field and err.value.hint


def test_a_bad_pip_table_names_its_key(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[pip]\nextra_index_url = 'x'\n")
    with pytest.raises(PasarError) as err:
        pip_options_from_config(tmp_path)
    assert err.value.field == "pip.extra_index_url"


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--pip-no-index"], "--pip-no-index"),
        (["--pip-find-links", "/no/such/wheels"], "/no/such/wheels"),
        (["--pip-index-url", "--extra-index-url=x"], "--extra-index-url=x"),
    ],
)
def test_provider_start_refuses_bad_pip_flags_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], named: str
) -> None:
    from pasar.cli.main import main

    home = ["--home", str(tmp_path)]
    code = main(["provider", "start", "--market", "http://127.0.0.1:9", *home, *flags])
    assert code == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "keys").exists()  # refused before the agent made its key
