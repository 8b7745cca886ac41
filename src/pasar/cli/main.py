"""The ``pasar`` entry point: builds the typer app and turns every PasarError into exit code 2.

Command groups live in their own modules and are listed here (:data:`COMMANDS`,
:data:`GROUPS`), so this file stays a table of contents. Errors are raised as
:class:`pasar.core.errors.PasarError` anywhere below and rendered once, here: plain text on
stderr, or the JSON error shape on stdout under ``--json``.

**One command, one module.** ``pasar balance`` imports the module that defines ``balance`` and
builds the ``pasar`` tree with that one command (or group) in it; only ``pasar``, ``pasar
--help``, ``--version`` and shell completion build the whole tree (:func:`full_app`).
Importing every command module and letting typer read ~40 signatures cost ~50 ms of every
start (issue 14.10: status and balance in < 300 ms). The usage lines, the help and the errors
are the same either way: the command sits at the same place in the same-named tree.
"""

from __future__ import annotations

import importlib
import os
import sys
from functools import cache
from typing import Any

import typer

from pasar.cli.help_text import reflow_commands
from pasar.cli.output import print_error
from pasar.core.errors import PasarError

#: ``pasar NAME`` → (module under pasar.cli, function), in the order ``--help`` lists them
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("doctor", "doctor"),
    "audit": ("audit", "audit"),
    "launch": ("jobs", "launch"),
    "status": ("jobs", "status"),
    "logs": ("jobs", "logs"),
    "result": ("jobs", "result"),
    "approve": ("jobs", "approve"),
    "reject": ("jobs", "reject"),
    "cancel": ("jobs", "cancel"),
    "explain": ("jobs", "explain"),
    "seal-agent": ("seal", "seal_agent"),
    "offers": ("network", "offers"),
    "gpus": ("network", "gpus"),
    "stats": ("network", "stats"),
    "balance": ("network", "balance"),
    "faucet": ("network", "faucet"),
}
#: ``pasar NAME ...`` → the module under pasar.cli whose ``app`` is that group
GROUPS: dict[str, str] = {
    name: name
    for name in (
        "keys",
        "spec",
        "presets",
        "provider",
        "verifier",
        "market",
        "devnet",
        "tee",
        "cluster",
        "dashboard",
    )
} | {"config": "config"}
HELP = "pasar: an open, decentralized GPU/CPU compute market."


def _function(name: str) -> Any:
    module, function = COMMANDS[name]
    return getattr(importlib.import_module(f"pasar.cli.{module}"), function)


def _group(name: str) -> typer.Typer:
    app: typer.Typer = importlib.import_module(f"pasar.cli.{GROUPS[name]}").app
    return app


def _version_callback(value: bool) -> None:
    if value:
        import pasar  # the version is read from the installed metadata only when asked

        typer.echo(f"pasar {pasar.__version__}")
        raise typer.Exit(0)


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """pasar: an open, decentralized GPU/CPU compute market."""


def _tree(commands: list[str], groups: list[str], *, completion: bool) -> typer.Typer:
    """The ``pasar`` app with these commands and groups (and the root's ``--version``)."""
    app = typer.Typer(
        name="pasar",
        help=HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=completion,  # --install-completion / --show-completion: bash, zsh, fish
    )
    app.callback()(_root)
    for name in commands:
        app.command(name)(_function(name))
    for name in groups:
        app.add_typer(_group(name), name=name)
    reflow_commands(app)
    return app


@cache
def full_app() -> typer.Typer:
    """Every command and group: what ``pasar --help`` lists and completion walks."""
    return _tree(list(COMMANDS), list(GROUPS), completion=True)


def app_for(args: list[str]) -> typer.Typer:
    """The app that runs ``pasar ARGS``: the tree of just the command or group the first
    argument names (the same usage, help and errors), else the whole tree."""
    name = args[0] if args else ""
    if name == "--version":  # eager: answered before any command is looked up
        return _tree([], [], completion=False)
    if name in COMMANDS:
        return _tree([name], [], completion=False)
    if name in GROUPS:
        return _tree([], [name], completion=False)
    return full_app()


def __getattr__(name: str) -> Any:
    """``pasar.cli.main.app``: the whole tree, built when first asked for (tests walk it)."""
    if name == "app":
        return full_app()
    raise AttributeError(name)


def _usage_errors() -> tuple[type[Exception], ...]:
    """The usage-error class of the click that typer runs on: typer's own copy (typer >= 0.20
    vendors click), else click's. Importing click where typer does not use it cost ~15 ms of
    every start (issue 14.10); no pasar command uses click directly."""
    try:
        from typer._click import exceptions as vendored  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        import click

        return (click.exceptions.UsageError,)
    return (vendored.UsageError,)


USAGE_ERRORS = _usage_errors()


def _param_name(err: Exception) -> str | None:
    param = getattr(err, "param", None)
    opts = getattr(param, "opts", None)
    return str(opts[0]) if opts else None


def _skip_httpx_command_line() -> None:
    """Keep httpx from importing its own command line (``httpx._main``: pygments, rich.syntax,
    rich.progress; ~5% of ``pasar balance``'s start), which its package imports whenever click
    and rich are installed, as they are here. A ``None`` in ``sys.modules`` makes that one
    import fail, and httpx handles the failure (its ``httpx.main`` then says its CLI extras are
    missing); nothing in pasar runs httpx's command line. Only the ``pasar`` process does this,
    and only before httpx is loaded: the SDK imported as a library gets httpx untouched."""
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a PasarError becomes a readable message and exit code 2, never a traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    json_mode = "--json" in args
    # pydantic looks for plugins (an entry-point scan, ~12 ms) when it builds its first model;
    # pasar uses none, and the CLI's start is what people feel (issue 14.10)
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    _skip_httpx_command_line()
    try:
        app = app_for(args)
        if json_mode:
            # Let click's usage errors reach us, so that they too come out in the error shape.
            result = app(args=args, prog_name="pasar", standalone_mode=False)
            return result if isinstance(result, int) else 0
        app(args=args, prog_name="pasar", standalone_mode=True)
    except USAGE_ERRORS as err:
        print_error(
            PasarError(
                str(getattr(err, "format_message", err.__str__)()),
                code="invalid_argument",
                field=_param_name(err),
                hint="run the command with --help to see its arguments",
            ),
            json_mode=json_mode,
        )
        return 2
    except typer.Abort:
        return 130
    except PasarError as err:
        print_error(err, json_mode=json_mode)
        return 2
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: say so plainly, show the traceback only on request
        if os.environ.get("PASAR_DEBUG"):
            raise
        print_error(
            PasarError(
                f"internal error: {type(exc).__name__}: {exc}",
                code="internal",
                hint="this is a bug in pasar; rerun with PASAR_DEBUG=1 to see the traceback",
            ),
            json_mode=json_mode,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
