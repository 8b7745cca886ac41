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


def test_prose_is_one_line_per_paragraph_and_examples_keep_theirs() -> None:
    """A docstring's source line breaks never reach --help (typer keeps them: sentences came
    out broken mid-line at 80 columns); an example list keeps one command per line."""
    from pasar.cli.help_text import reflow

    doc = """First sentence that the source
    wrapped here.

    Second paragraph,
    also wrapped.

    Example: pasar audit --market URL
    pasar audit --db sqlite:///m.db
    """
    assert reflow(doc) == (
        "First sentence that the source wrapped here.\n\n"
        "Second paragraph, also wrapped.\n\n"
        "Example: pasar audit --market URL\npasar audit --db sqlite:///m.db"
    )
    root = typer.main.get_command(app)
    for path, command in _leaves(root, ()):
        for paragraph in (command.help or "").split("\n\n"):
            if not paragraph.startswith("Example"):
                assert "\n" not in paragraph, f"pasar {' '.join(path)}: {paragraph!r}"
