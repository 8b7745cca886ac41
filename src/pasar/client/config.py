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

from pasar.client.settings import checked_market_url, config_path, get_setting
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


def market_url(market: str | None = None, *, home: str | os.PathLike[str] | None = None) -> str:
    """The market's base URL: argument, then ``$PASAR_MARKET``, then the home's config.toml."""
    if market:
        return checked_market_url(market, "the market argument")
    env = os.environ.get(MARKET_ENV)
    if env:
        return checked_market_url(env, f"${MARKET_ENV}")
    where = pasar_home(home)
    config = config_path(where)
    found = get_setting(where, "market")
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
