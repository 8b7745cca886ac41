"""The ``pasar`` entry point: builds the typer app and turns every PasarError into exit code 2.

Command groups live in their own modules and are registered here, so this file stays a table
of contents. Errors are raised as :class:`pasar.core.errors.PasarError` anywhere below and
rendered once, here: plain text on stderr, or the JSON error shape on stdout under ``--json``.
"""

from __future__ import annotations

import os
import sys

import click
import typer

from pasar.cli import (
    audit,
    config,
    devnet,
    doctor,
    jobs,
    keys,
    market,
    network,
    presets,
    provider,
    seal,
    spec,
    tee,
    verifier,
)
from pasar.cli.help_text import reflow_commands
from pasar.cli.output import print_error
from pasar.core.errors import PasarError

app = typer.Typer(
    name="pasar",
    help="pasar: an open, decentralized GPU/CPU compute market.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
)


def _version_callback(value: bool) -> None:
    if value:
        import pasar  # the version is read from the installed metadata only when asked

        typer.echo(f"pasar {pasar.__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """pasar: an open, decentralized GPU/CPU compute market."""


app.command("doctor")(doctor.doctor)
app.command("audit")(audit.audit)
app.command("launch")(jobs.launch)
app.command("status")(jobs.status)
app.command("logs")(jobs.logs)
app.command("result")(jobs.result)
app.command("approve")(jobs.approve)
app.command("reject")(jobs.reject)
app.command("cancel")(jobs.cancel)
app.command("explain")(jobs.explain)
app.command("seal-agent")(seal.seal_agent)
app.command("offers")(network.offers)
app.command("gpus")(network.gpus)
app.command("stats")(network.stats)
app.command("balance")(network.balance)
app.command("faucet")(network.faucet)
app.add_typer(keys.app, name="keys")
app.add_typer(spec.app, name="spec")
app.add_typer(presets.app, name="presets")
app.add_typer(provider.app, name="provider")
app.add_typer(verifier.app, name="verifier")
app.add_typer(market.app, name="market")
app.add_typer(devnet.app, name="devnet")
app.add_typer(tee.app, name="tee")
app.add_typer(config.app, name="config")
reflow_commands(app)


def _usage_errors() -> tuple[type[Exception], ...]:
    """Click's usage-error class, and typer's own copy of it (typer >= 0.20 vendors click)."""
    found: list[type[Exception]] = [click.exceptions.UsageError]
    try:
        from typer._click import exceptions as vendored  # type: ignore[import-not-found,unused-ignore]

        found.append(vendored.UsageError)
    except ImportError:
        pass
    return tuple(found)


USAGE_ERRORS = _usage_errors()


def _param_name(err: Exception) -> str | None:
    param = getattr(err, "param", None)
    opts = getattr(param, "opts", None)
    return str(opts[0]) if opts else None


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a PasarError becomes a readable message and exit code 2, never a traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    json_mode = "--json" in args
    # pydantic looks for plugins (an entry-point scan, ~12 ms) when it builds its first model;
    # pasar uses none, and the CLI's start is what people feel (issue 14.10)
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
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
