"""A damaged database: ``pasar audit --db`` says what is damaged and exits 2, never "a bug".

The market's SQLite file can be damaged below the rows (a disk error, a bad copy, a partial
restore): SQLite then refuses to read a page ("database disk image is malformed"). The audit
is what an operator runs at such a moment, so it must name the file and the damage and point at
the remedy (restore from a copy), and must not create a database where none was.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attacklib import Party, assert_audit_passes
from pasar_integration_conftest import MarketLauncher

PAGE_GARBAGE = b"\xde\xad\xbe\xef"  # 0xde is no b-tree page type: the page cannot be read


@pytest.fixture(scope="module")
def market_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the database of a real market that accepted and sealed some transactions."""
    launcher = MarketLauncher()
    root = tmp_path_factory.mktemp("damaged-store")
    market = launcher.start(root / "market")
    try:
        party = Party(market)
        for _ in range(40):
            party.fund("1 USDC")
        party.launch(run="true")  # no provider: it stays open, with its escrow
        assert_audit_passes(market.url)  # every transaction sealed into a block
    finally:
        launcher.stop_all()
    copy = root / "market-copy.db"
    with sqlite3.connect(market.home / "market.db") as source, sqlite3.connect(copy) as dest:
        source.backup(dest)  # one self-contained file (the WAL folded in)
    yield copy


def audit(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pasar", "audit", "--db", f"sqlite:///{db}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def damage_a_page(src: Path, dest: Path) -> None:
    """Overwrite one whole page in the middle of the file (not the header page)."""
    shutil.copy(src, dest)
    with sqlite3.connect(src) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    assert pages >= 6, "the market database is too small to damage a middle page"
    with dest.open("r+b") as f:
        f.seek((pages // 2) * page_size)
        f.write(PAGE_GARBAGE * (page_size // len(PAGE_GARBAGE)))


def error_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(done.stdout)["error"]
    return error


def test_the_undamaged_copy_audits_clean(market_db: Path) -> None:
    done = audit(market_db)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_damaged_page_exits_2_naming_the_file_and_the_damage(
    market_db: Path, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged.db"
    damage_a_page(market_db, damaged)
    done = audit(damaged)
    assert done.returncode == 2, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert "bug" not in out
    assert str(damaged) in out and "damaged" in out
    # SQLite words it one of two ways, by which page was hit: a page the replay reads raises
    # "malformed"; one only the integrity check visits (an index, a free page) is listed by it
    assert "malformed" in out or "integrity check" in out, out
    assert "restore" in out
    error = error_of(audit(damaged, "--json"))
    assert error["code"] == "store_damaged" and error["field"] == "--db"
    assert "restore" in error["hint"]


def test_a_file_that_is_not_a_database_exits_2(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_bytes(b"these are my notes, not a database\n" * 200)
    done = audit(bogus, "--json")
    assert done.returncode == 2, done.stdout + done.stderr
    error = error_of(done)
    assert error["code"] == "store_damaged"
    assert str(bogus) in error["message"] and "not a database" in error["message"]
    assert bogus.read_bytes() == b"these are my notes, not a database\n" * 200  # untouched


def test_a_missing_file_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "market.db"
    done = audit(missing, "--json")
    assert done.returncode == 2, done.stdout + done.stderr
    error = error_of(done)
    assert error["code"] == "no_database" and str(missing) in error["message"]
    assert not missing.exists() and not missing.parent.exists()
