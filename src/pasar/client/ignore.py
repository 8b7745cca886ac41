"""Which files of a ``workdir`` stay home: the folder's ``.skyignore``, else its ``.gitignore``
files (the top one and every nested one, as git reads them).

SkyPilot uploads a workdir less what ``.skyignore`` (or, without one, git's ignore rules) lists,
so a SkyPilot task's folder of checkpoints and virtual environments is not sent; pasar does the
same. SkyPilot reads only the ``.skyignore`` at the workdir's top, and so does pasar; without
one, a ``.gitignore`` in any folder applies below that folder, as git applies it. A small
matcher, not a dependency: the rules of gitignore that such files use —

- blank lines and ``#`` comments are skipped; ``!pattern`` re-includes what an earlier rule
  excluded (the last rule that matches decides);
- ``name/`` matches folders only; a pattern with a ``/`` before its end is anchored at the
  workdir (``/build``, ``docs/tmp``), one without matches the name at any depth (``*.pyc``);
- ``*`` and ``?`` do not cross ``/``, ``**`` does (``logs/**``, ``**/cache``), ``[abc]`` is a class;
- an excluded folder is not entered, so nothing below it can be re-included (git's rule too);
- a nested ``.gitignore``'s patterns are relative to its own folder (``/x`` and ``a/b`` are
  anchored there), apply only below it, and come after its parents' rules: the deeper file
  decides where both match.

``.git`` (at any depth: a nested repository's too) is never uploaded. Tests compare the files
kept with ``git ls-files --others --exclude-standard`` on generated trees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SKYIGNORE = ".skyignore"
GITIGNORE = ".gitignore"
IGNORE_FILES = (SKYIGNORE, GITIGNORE)
ALWAYS_SKIPPED = frozenset({".git"})


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    negated: bool
    dirs_only: bool
    anchored: bool
    base: str = ""  # the folder of the file it came from, relative to the workdir ("": the top)


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


def parse_rules(text: str, base: str = "") -> tuple[Rule, ...]:
    """The rules of one ignore file's text (see the module docstring), found in the folder
    ``base`` (relative to the workdir, ``/``-separated; ``""`` for the top)."""
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
        pattern = re.compile(f"^{_regex(line)}$")
        rules.append(Rule(pattern, negated, dirs_only, anchored, base))
    return tuple(rules)


@dataclass(frozen=True)
class IgnoreRules:
    """The rules of a workdir, and the file they came from (None: nothing is ignored).
    ``nested``: folders' own ``.gitignore`` files add to them (:meth:`below`)."""

    rules: tuple[Rule, ...] = ()
    source: str | None = None
    nested: bool = False

    @classmethod
    def of_workdir(cls, root: Path) -> IgnoreRules:
        sky = root / SKYIGNORE
        if sky.is_file():  # SkyPilot's: the top one only, instead of git's rules
            return cls(parse_rules(_read(sky)), SKYIGNORE)
        git = root / GITIGNORE
        if git.is_file():
            return cls(parse_rules(_read(git)), GITIGNORE, nested=True)
        return cls(nested=True)

    def below(self, folder: Path, rel: str) -> IgnoreRules:
        """The rules for what lies in ``folder`` (at ``rel`` below the workdir): these, then its
        own ``.gitignore``'s, which match relative to it and win where both match."""
        own = folder / GITIGNORE
        if not self.nested or not rel or not own.is_file():
            return self
        return IgnoreRules(self.rules + parse_rules(_read(own), rel), self.source, nested=True)

    def ignored(self, rel: str, *, is_dir: bool) -> bool:
        """Whether ``rel`` (a path below the workdir, ``/``-separated) stays home."""
        name = rel.rsplit("/", 1)[-1]
        if name in ALWAYS_SKIPPED:
            return True
        verdict = False
        for rule in self.rules:
            if rule.dirs_only and not is_dir:
                continue
            if rule.base:
                if not rel.startswith(rule.base + "/"):
                    continue
                path = rel[len(rule.base) + 1 :]
            else:
                path = rel
            if rule.pattern.match(path if rule.anchored else name):
                verdict = not rule.negated
        return verdict


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def files_below(root: Path, rules: IgnoreRules) -> list[Path]:
    """Every file below ``root`` that ``rules`` keep, in a stable order; an ignored folder is
    not entered. Links to directories are not followed (as :mod:`pasar.client.inputs`)."""
    import os

    out: list[Path] = []
    rules_in: dict[str, IgnoreRules] = {"": rules}  # each folder's rules, set by its parent
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        prefix = rel_dir + "/" if rel_dir else ""
        here_rules = rules_in.pop(rel_dir)
        dirnames[:] = sorted(d for d in dirnames if not here_rules.ignored(prefix + d, is_dir=True))
        for d in dirnames:  # a folder's own .gitignore applies to what is in it, not to it
            rules_in[prefix + d] = here_rules.below(here / d, prefix + d)
        for f in sorted(filenames):
            if (here / f).is_file() and not here_rules.ignored(prefix + f, is_dir=False):
                out.append(here / f)
    return out
