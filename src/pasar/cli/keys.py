"""`pasar keys`: create and inspect the Ed25519 keys in ``$PASAR_HOME/keys``.

Thin over :mod:`pasar.crypto.identity`, which owns the file format and the permission rules;
this module only parses options and prints. The seed is never printed.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pasar.cli.output import console, print_json
from pasar.crypto.identity import (
    DEFAULT_KEY_NAME,
    Identity,
    IdentityError,
    key_info,
    key_path,
    list_key_names,
    pasar_home,
    save_identity,
)

app = typer.Typer(no_args_is_help=True, help="Create and inspect signing keys (account ids).")

_NAME = typer.Option(DEFAULT_KEY_NAME, "--name", "-n", help="Key name (several may coexist).")
_HOME = typer.Option(None, "--home", help="pasar home (default $PASAR_HOME or ~/.pasar).")
_JSON = typer.Option(False, "--json", help="Print JSON instead of text.")


def _say(text: str) -> None:
    # Plain text, never wrapped: ids and paths must survive copy-paste from a narrow terminal.
    console.print(text, highlight=False, markup=False, soft_wrap=True)


@app.command("new")
def new(
    name: str = _NAME,
    home: Path | None = _HOME,
    force: bool = typer.Option(False, "--force", help="Replace an existing key of this name."),
    json: bool = _JSON,
) -> None:
    """Create a key; an existing one is kept (and shown) unless --force replaces it.

    Example: pasar keys new --name work
    """
    if not force and key_path(name, home).exists():
        _already_have(name, home, json=json)
        return
    identity = Identity.generate()
    path = save_identity(identity, name, home, overwrite=force)
    if json:
        print_json(
            {"name": name, "account_id": identity.account_id, "path": str(path), "created": True}
        )
    else:
        _say(f"created key {name}")
        _say(f"  account id: {identity.account_id}")
        _say(f"  file:       {path} (mode 0600)")
        _say("  back this file up: losing it loses the account")


def _already_have(name: str, home: Path | None, *, json: bool) -> None:
    """``keys new`` for a name that exists: nothing to do, and say so. The usual case is the
    default key, which the first signed command (``pasar faucet``, the SDK) creates by itself;
    failing there would tell a newcomer they did something wrong."""
    info = key_info(name, home)  # a damaged or loose-permission file still fails, with its hint
    if json:
        print_json({**info.to_dict(), "name": name, "created": False})
        return
    _say(f"you already have a key {name!r}: nothing changed")
    _say(f"  account id: {info.account_id}")
    _say(f"  file:       {info.path}")
    if name == DEFAULT_KEY_NAME:
        _say("  (pasar creates the default key the first time a command signs a request)")
    _say("  another key: pasar keys new --name NAME; replace this one: --force (the old")
    _say("  account is lost unless you keep a copy of the file)")


@app.command("show")
def show(name: str = _NAME, home: Path | None = _HOME, json: bool = _JSON) -> None:
    """Show a key's account id and file; fails if the file is readable by others.

    Example: pasar keys show --name work
    """
    info = key_info(name, home)
    if json:
        print_json(info.to_dict())
    else:
        _say(f"key {info.name}")
        _say(f"  account id:  {info.account_id}")
        _say(f"  file:        {info.path}")
        _say(f"  permissions: {info.mode:04o} (ok)")


@app.command("list")
def list_(home: Path | None = _HOME, json: bool = _JSON) -> None:
    """List the keys in the pasar home, with each one's account id or why it cannot be used.

    Example: pasar keys list
    """
    rows: list[dict[str, object]] = []
    for name in list_key_names(home):
        try:
            rows.append({"name": name, "ok": True, **key_info(name, home).to_dict()})
        except IdentityError as err:
            rows.append(
                {"name": name, "ok": False, "path": str(key_path(name, home)), "error": err.message}
            )
    if json:
        print_json({"home": str(pasar_home(home)), "keys": rows})
        return
    if not rows:
        _say(f"no keys in {pasar_home(home)}; create one with `pasar keys new`")
    for row in rows:
        detail = row["account_id"] if row["ok"] else f"unusable: {row['error']}"
        _say(f"{row['name']}\t{detail}")
