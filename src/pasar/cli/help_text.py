"""Command help that reads as prose at any width.

Why: typer keeps a docstring's single line breaks in ``--help`` (in the command list too), so a
sentence that the source wraps at 100 columns came out broken mid-line and ragged at 80. Each
paragraph is joined into one line here, once, when the commands are registered; rich then wraps
it to the terminal. Paragraphs that are laid out on purpose keep their lines: examples (one
command per line) and lists.
"""

from __future__ import annotations

import inspect
from typing import Any

import typer

#: a paragraph starting with one of these keeps its line breaks
LAID_OUT = ("Example", "- ", "* ", "\b")


def reflow(text: str) -> str:
    """``text`` with every prose paragraph on one line (blank lines still separate them)."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        p if p.startswith(LAID_OUT) or "\n- " in p else " ".join(p.split()) for p in paragraphs
    )


def reflow_commands(app: typer.Typer) -> None:
    """Give every command and group of ``app`` (recursively) its reflowed docstring as help."""
    infos: list[Any] = [*app.registered_commands]
    if app.registered_callback is not None:
        infos.append(app.registered_callback)
    for info in infos:
        doc = info.help if isinstance(info.help, str) else inspect.getdoc(info.callback)
        if doc:
            info.help = reflow(doc)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            reflow_commands(group.typer_instance)
