"""Every command's --help ends with an example (issue 14: "examples in every command's
--help"), and each example names the command it belongs to, so a renamed command cannot keep
a stale example. Walks the whole command tree, so a new command without one fails here."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

import typer

from pasar.cli.main import app


def _leaves(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """The commands under ``command`` (typer vendors its own click: groups are duck-typed)."""
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            if not sub.hidden:
                yield from _leaves(sub, (*path, name))
    else:
        yield path, command


def test_every_command_has_an_example_of_itself() -> None:
    root = typer.main.get_command(app)
    leaves = list(_leaves(root, ()))
    assert len(leaves) > 30  # the walk reached the groups' commands too
    missing = [
        " ".join(path)
        for path, command in leaves
        if "Example: pasar " + " ".join(path) not in (command.help or "")
    ]
    assert missing == [], f"commands without an example of themselves in --help: {missing}"


def test_every_example_parses_as_its_command() -> None:
    """The example's options exist and its required arguments are there (nothing runs)."""
    root = typer.main.get_command(app)
    wrong = []
    for path, command in _leaves(root, ()):
        paragraph = (command.help or "").split("Example: ", 1)[1].split("\n\n", 1)[0]
        for example in paragraph.splitlines():  # one example per line
            args = shlex.split(example)[1 + len(path) :]
            try:
                command.make_context(" ".join(path), args)
            except Exception as exc:  # a click usage error, whichever click typer vendors
                wrong.append(f"{example}: {exc}")
    assert wrong == []
