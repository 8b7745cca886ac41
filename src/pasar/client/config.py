"""Where the SDK's market is and which key signs for it.

The market address is taken from, in this order, the first that is set:

1. the ``market`` argument (``Client("http://...")``, ``--market``);
2. the ``PASAR_MARKET`` environment variable;
3. ``market = "http://..."`` in ``$PASAR_HOME/config.toml`` (``pasar devnet up`` writes it).

None set is an error with a hint, never a guessed default: a client that silently talked to
``localhost`` would launch (and pay for) jobs on whatever happens to listen there.

The client key is ``$PASAR_HOME/keys/<name>.key`` (name ``default`` unless told otherwise).
:func:`client_identity` creates it on first use — exactly what ``pasar keys new`` would — and
logs a warning naming the file, because that file *is* the account: losing it loses the money.
"""

from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path

from pasar.core.errors import PasarError
from pasar.crypto.identity import (
    DEFAULT_KEY_NAME,
    Identity,
    key_path,
    load_identity,
    pasar_home,
    save_identity,
)

log = logging.getLogger("pasar.client")

MARKET_ENV = "PASAR_MARKET"
CONFIG_FILE = "config.toml"


def _checked_url(url: str, source: str) -> str:
    url = url.strip()
    if not url.startswith(("http://", "https://")) or len(url) <= len("https://"):
        raise PasarError(
            f"the market address from {source} is not an http(s) URL: {url!r}",
            code="invalid_market_url",
            field="market",
            hint="write it like http://127.0.0.1:8420",
        )
    url = url.rstrip("/")
    if url.endswith("/v1"):  # the API's prefix: the SDK adds it to every path itself
        raise PasarError(
            f"the market address from {source} ends in /v1: {url!r}",
            code="invalid_market_url",
            field="market",
            hint=f"drop the /v1: {url.removesuffix('/v1')}",
        )
    return url


def _from_config(path: Path) -> str | None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PasarError(
            f"cannot read {path}: {exc}",
            code="invalid_config",
            field="market",
            hint=f"fix or remove {path}",
        ) from None
    value = data.get("market")
    if value is None:
        return None
    if not isinstance(value, str):
        raise PasarError(
            f"{path}: market must be text, found {type(value).__name__}",
            code="invalid_config",
            field="market",
            hint='write market = "http://127.0.0.1:8420"',
        )
    return _checked_url(value, str(path))


def market_url(market: str | None = None, *, home: str | os.PathLike[str] | None = None) -> str:
    """The market's base URL: argument, then ``$PASAR_MARKET``, then the home's config.toml."""
    if market:
        return _checked_url(market, "the market argument")
    env = os.environ.get(MARKET_ENV)
    if env:
        return _checked_url(env, f"${MARKET_ENV}")
    config = pasar_home(home) / CONFIG_FILE
    found = _from_config(config)
    if found is not None:
        return found
    raise PasarError(
        "no market address: pass one, set PASAR_MARKET, or write it in " + str(config),
        code="no_market",
        field="market",
        hint="start a local network with `pasar devnet up`, or "
        "`export PASAR_MARKET=http://HOST:PORT`",
    )


def client_identity(
    name: str = DEFAULT_KEY_NAME, *, home: str | os.PathLike[str] | None = None
) -> Identity:
    """Load the client key ``name``, creating it (mode 0600) if there is none yet."""
    path = key_path(name, home)
    if path.exists():
        return load_identity(name, home)
    identity = Identity.generate()
    save_identity(identity, name, home)
    log.warning(
        "created client key %r at %s (account %s); back this file up: it is the account",
        name,
        path,
        identity.account_id,
    )
    return identity
