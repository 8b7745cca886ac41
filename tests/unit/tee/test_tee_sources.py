"""Quote sources exist only on TEE hardware; this machine has none, so only "not present" is
tested: detection says so, and ``--tee tdx`` refuses plainly."""

from __future__ import annotations

from pathlib import Path

import pytest

from pasar.core.errors import PasarError
from pasar.tee.sources import ConfigfsTsm, DstackSocket, QuoteSource, detect


def absent(tmp_path: Path) -> list[QuoteSource]:
    return [ConfigfsTsm(tmp_path / "no-tsm"), DstackSocket(tmp_path / "no-dstack.sock")]


def test_absent_sources_are_not_available(tmp_path: Path) -> None:
    assert not any(s.available() for s in absent(tmp_path))


def test_auto_finds_nothing_and_none_asks_nothing(tmp_path: Path) -> None:
    assert detect("auto", absent(tmp_path)) is None
    assert detect("none", absent(tmp_path)) is None


def test_tdx_without_hardware_says_there_is_no_tee(tmp_path: Path) -> None:
    with pytest.raises(PasarError) as err:
        detect("tdx", absent(tmp_path))
    assert err.value.code == "no_tee"
    assert "no TEE" in err.value.message


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(PasarError, match="--tee"):
        detect("sev")
