"""``pasar config``: show, get, set and unset the client's settings in ``$PASAR_HOME/config.toml``
(the file and its keys: :mod:`pasar.client.settings`)."""

from __future__ import annotations

import typer

from pasar.cli.output import console, print_json
from pasar.client.settings import SETTINGS, config_path, get_setting, read_settings, write_setting
from pasar.crypto.identity import pasar_home

app = typer.Typer(
    no_args_is_help=True,
    help="The client's settings in $PASAR_HOME/config.toml (market, max_price, output, tls_ca).",
)

_JSON = typer.Option(False, "--json", help="Print JSON instead of text.")


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False, soft_wrap=True)


@app.command("show")
def show(json: bool = _JSON) -> None:
    """Every setting: its value (or unset) and what it is for.

    Example: pasar config show
    """
    home = pasar_home()
    found = read_settings(home)
    if json:
        print_json({"file": str(config_path(home)), "settings": found})
        return
    _say(f"# {config_path(home)}")
    for key, (_, what) in SETTINGS.items():
        value = found.get(key)
        _say(f"{key} = {value!r}" if value is not None else f"# {key}: unset ({what})")


@app.command("get")
def get(key: str = typer.Argument(..., help="One of: " + ", ".join(SETTINGS))) -> None:
    """Print one setting's value; exit 1 when it is unset.

    Example: pasar config get market
    """
    value = get_setting(pasar_home(), key)
    if value is None:
        raise typer.Exit(1)
    _say(value)


@app.command("set")
def set_(
    key: str = typer.Argument(..., help="One of: " + ", ".join(SETTINGS)),
    value: str = typer.Argument(..., help="The value (checked before it is written)."),
) -> None:
    """Set one setting (checked first: a bad value changes nothing).

    Example: pasar config set market http://127.0.0.1:8420
    """
    stored = write_setting(pasar_home(), key, value)
    _say(f"{key} = {stored!r}")


@app.command("unset")
def unset(key: str = typer.Argument(..., help="One of: " + ", ".join(SETTINGS))) -> None:
    """Remove one setting from the file.

    Example: pasar config unset output
    """
    write_setting(pasar_home(), key, None)
    _say(f"{key} unset")
