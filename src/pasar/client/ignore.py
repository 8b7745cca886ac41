"""Which files of a ``workdir`` stay home: the folder's ``.skyignore``, else its ``.gitignore``.

SkyPilot uploads a workdir less what ``.skyignore`` (or, without one, ``.gitignore``) lists, so a
SkyPilot task's folder of checkpoints and virtual environments is not sent; pasar does the same.
A small matcher, not a dependency: the rules of gitignore that such files use —

- blank lines and ``#`` comments are skipped; ``!pattern`` re-includes what an earlier rule
  excluded (the last rule that matches decides);
- ``name/`` matches folders only; a pattern with a ``/`` before its end is anchored at the
  workdir (``/build``, ``docs/tmp``), one without matches the name at any depth (``*.pyc``);
- ``*`` and ``?`` do not cross ``/``, ``**`` does (``logs/**``, ``**/cache``), ``[abc]`` is a class;
- an excluded folder is not entered, so nothing below it can be re-included (git's rule too).

Only the file at the workdir's top is read (not nested ones), and ``.git`` is never uploaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILES = (".skyignore", ".gitignore")
ALWAYS_SKIPPED = frozenset({".git"})


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    negated: bool
    dirs_only: bool
    anchored: bool


def _regex(glob: str) -> str:
    out = []
    i = 0
    while i < len(glob):
        ch = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[" and (end := glob.find("]", i + 1)) > i + 1:
            body = glob[i + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        elif ch == "\\" and i + 1 < len(glob):
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def parse_rules(text: str) -> tuple[Rule, ...]:
    """The rules of one ignore file's text (see the module docstring)."""
    rules = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = line[1:] if negated else line
        dirs_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        line = line.lstrip("/")
        if not line:
            continue
        rules.append(Rule(re.compile(f"^{_regex(line)}$"), negated, dirs_only, anchored))
    return tuple(rules)


@dataclass(frozen=True)
class IgnoreRules:
    """The rules of a workdir, and the file they came from (None: nothing is ignored)."""

    rules: tuple[Rule, ...] = ()
    source: str | None = None

    @classmethod
    def of_workdir(cls, root: Path) -> IgnoreRules:
        for name in IGNORE_FILES:
            path = root / name
            if path.is_file():
                return cls(parse_rules(path.read_text(encoding="utf-8", errors="replace")), name)
        return cls()

    def ignored(self, rel: str, *, is_dir: bool) -> bool:
        """Whether ``rel`` (a path below the workdir, ``/``-separated) stays home."""
        if rel.split("/", 1)[0] in ALWAYS_SKIPPED:
            return True
        name = rel.rsplit("/", 1)[-1]
        verdict = False
        for rule in self.rules:
            if rule.dirs_only and not is_dir:
                continue
            if rule.pattern.match(rel if rule.anchored else name):
                verdict = not rule.negated
        return verdict


def files_below(root: Path, rules: IgnoreRules) -> list[Path]:
    """Every file below ``root`` that ``rules`` keep, in a stable order; an ignored folder is
    not entered. Links to directories are not followed (as :mod:`pasar.client.inputs`)."""
    import os

    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = sorted(d for d in dirnames if not rules.ignored(prefix + d, is_dir=True))
        for f in sorted(filenames):
            if (here / f).is_file() and not rules.ignored(prefix + f, is_dir=False):
                out.append(here / f)
    return out
