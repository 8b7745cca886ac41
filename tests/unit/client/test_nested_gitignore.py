"""Nested ``.gitignore`` files (issue 18): the workdir's files kept by pasar are exactly the ones
git would list as untracked and not ignored, on generated trees with ignore files at several
depths; a ``.skyignore`` stays top-level only and replaces git's rules, as in SkyPilot."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pasar.client.ignore import IgnoreRules, files_below

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is missing")

FILES = (
    "x.txt", "keep.log", "other.log", "local.txt", "file1.dat", "file10.dat", "a.bin", "c.bin",
    "z.txt", "a/x.txt", "a/local.txt", "a/t.tmp", "a/keep.log", "a/b/x.txt", "a/b/c.txt",
    "a/b/deep.txt", "a/b/z.txt", "a/b/e/z.txt", "a/build/out.o", "build/out.o", "logs/1/2.txt",
    "a/logs/q.txt", "c/b", "c/d/b/f.txt", "c/d/x.log", ".hidden/h.txt", "sub/.git/config",
)  # fmt: skip

CASES = {
    "negation-and-nested-anchor": {
        ".gitignore": "*.log\n!keep.log\n",
        "a/.gitignore": "/local.txt\n*.tmp\n",
    },
    "nested-reincludes-a-folder": {".gitignore": "build/\n", "a/.gitignore": "!build/\n"},
    "nested-anchored-is-relative-to-its-folder": {"a/.gitignore": "/x.txt\n"},
    "middle-slash-is-anchored-to-its-folder": {"a/.gitignore": "b/c.txt\n"},
    "double-star": {
        ".gitignore": "a/**/z.txt\nlogs/**\n",
        "a/.gitignore": "**/deep.txt\n",
    },
    "deeper-file-overrides": {".gitignore": "*.txt\n", "a/b/.gitignore": "!*.txt\n"},
    "excluded-folder-is-not-entered": {".gitignore": "a/\n", "a/.gitignore": "!x.txt\n"},
    "classes-and-question-marks": {".gitignore": "file?.dat\n[ab].bin\n"},
    "dirs-only-in-a-nested-file": {"c/.gitignore": "b/\n"},
    "nested-negates-a-parent-name-rule": {
        ".gitignore": "*.log\n",
        "c/d/.gitignore": "!x.log\n",
        "a/.gitignore": "!keep.log\n",
    },
    "comments-blanks-and-escapes": {
        ".gitignore": "# local.txt\n\n\\#not\n.hidden\n",
        "a/b/e/.gitignore": "*\n!.gitignore\n",
    },
}


def tree(root: Path, ignores: dict[str, str]) -> None:
    for name in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    for name, text in ignores.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def git_keeps(root: Path) -> set[str]:
    """What git lists as untracked and not ignored (no global or repository excludes)."""
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    out = subprocess.run(
        ["git", "-c", "core.excludesFile=/dev/null", "ls-files", "--others",
         "--exclude-standard", "-z"],
        cwd=root, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    return {p for p in out.split("\0") if p}


def pasar_keeps(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in files_below(root, IgnoreRules.of_workdir(root))}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_files_kept_are_the_ones_git_keeps(tmp_path: Path, case: str) -> None:
    tree(tmp_path, CASES[case])
    ours = pasar_keeps(tmp_path)  # before git init: its .git is skipped anyway
    theirs = git_keeps(tmp_path)
    theirs = {p for p in theirs if not p.startswith("sub/")}  # git stops at a nested repo
    ours = {p for p in ours if not p.startswith("sub/")}
    assert ours == theirs
    assert set(FILES) - {"sub/.git/config"} - ours  # each case ignores something


def test_a_nested_repositorys_git_folder_is_never_uploaded(tmp_path: Path) -> None:
    tree(tmp_path, {})
    assert "sub/.git/config" not in pasar_keeps(tmp_path)


def test_skyignore_is_read_at_the_top_only_and_replaces_gitignore(tmp_path: Path) -> None:
    tree(tmp_path, {".skyignore": "*.log\n", "a/.skyignore": "x.txt\n", "a/.gitignore": "*\n"})
    kept = pasar_keeps(tmp_path)
    assert "keep.log" not in kept and "c/d/x.log" not in kept  # the top .skyignore
    assert "a/x.txt" in kept and "a/b/c.txt" in kept  # nested .skyignore and .gitignore: unread
