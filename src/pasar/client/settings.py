"""``$PASAR_HOME/config.toml``'s top-level settings, read and written one key at a time.

The file is TOML. Its top-level keys are the client's settings; tables below them (``[tls_pins]``,
written by :mod:`pasar.crypto.tls`) are left exactly as they are:

```toml
market = "http://127.0.0.1:8420"   # the market, when neither --market nor $PASAR_MARKET says
max_price = "0.50 USDC"            # `pasar launch -- CMD`'s price cap when --max-price is not given
output = "table"                   # the CLI's default for -o: table, json, yaml or csv
price_margin = "1.25"              # a spec without max_price_per_hour: the quote × this
default_duration = "1h"            # a spec without max_duration runs at most this long
tls_ca = "/etc/ssl/market-ca.pem"  # a CA bundle for a market with a public certificate

[tls_pins]
"https://market.example:8420" = "sha256:…"
```

Each key has a check, applied when it is set (``pasar config set``) and when it is read, so a
hand-edited file with a bad value fails with the key named, never with a traceback.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from pasar.core.errors import PasarError
from pasar.core.money import Money, parse_rate

#: the margins a client may set: a cap above 10× the quote is a typo, not a choice
MAX_PRICE_MARGIN = 10
DEFAULT_PRICE_MARGIN = "1.25"
DEFAULT_DURATION = "1h"

CONFIG_FILE = "config.toml"
OUTPUT_FORMATS = ("table", "json", "yaml", "csv")


def checked_market_url(url: str, source: str) -> str:
    """A market's base URL as the SDK uses it: http(s), no trailing slash, no /v1."""
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


def _market(value: str) -> str:
    return checked_market_url(value, CONFIG_FILE)


def _max_price(value: str) -> str:
    return Money.parse(value, field="max_price").to_json()


def _price_margin(value: str) -> str:
    try:
        margin = parse_rate(value, field="price_margin")
    except PasarError:
        margin = Fraction(-1)
    if not 1 <= margin <= MAX_PRICE_MARGIN:
        raise PasarError(
            f"price_margin must be a number from 1 to {MAX_PRICE_MARGIN}, not {value!r}",
            code="invalid_config",
            field="price_margin",
            hint="e.g. pasar config set price_margin 1.25 (25% above the market's quote)",
        )
    return value.strip()


def _duration(value: str) -> str:
    from pydantic_core import PydanticCustomError

    from pasar.core.spec_fields import parse_duration

    try:
        parse_duration(value.strip())
    except PydanticCustomError as exc:
        raise PasarError(
            f"default_duration: {exc.message()}",
            code="invalid_config",
            field="default_duration",
            hint="e.g. pasar config set default_duration 2h",
        ) from None
    return value.strip()


def _output(value: str) -> str:
    if value not in OUTPUT_FORMATS:
        raise PasarError(
            f"output must be one of {', '.join(OUTPUT_FORMATS)}, not {value!r}",
            code="invalid_config",
            field="output",
            hint="e.g. pasar config set output yaml",
        )
    return value


def _path(value: str) -> str:
    return str(Path(value).expanduser())


#: every setting: its check (which returns the value as stored) and what it is for
SETTINGS: dict[str, tuple[Callable[[str], str], str]] = {
    "market": (_market, "the market's URL (after --market and $PASAR_MARKET)"),
    "max_price": (_max_price, "price cap per hour of `pasar launch -- CMD` without --max-price"),
    "price_margin": (
        _price_margin,
        "a spec without max_price_per_hour is capped at the market's quote × this (1.25)",
    ),
    "default_duration": (
        _duration,
        "max_duration of a spec that sets none (1h); says how long the job may run",
    ),
    "output": (_output, "the CLI's default -o: table, json, yaml or csv"),
    "tls_ca": (_path, "a CA bundle file for a market whose certificate a CA signed"),
}


def config_path(home: Path) -> Path:
    return home / CONFIG_FILE


def _known(key: str) -> Callable[[str], str]:
    if key not in SETTINGS:
        raise PasarError(
            f"unknown setting {key!r}",
            code="invalid_argument",
            field="key",
            hint="one of: " + ", ".join(SETTINGS),
        )
    return SETTINGS[key][0]


def load_config(home: Path) -> dict[str, object]:
    """The whole file as TOML data (empty if there is none): the one reader of config.toml,
    for the settings here and the TLS pins and CA of :mod:`pasar.crypto.tls`."""
    path = config_path(home)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PasarError(
            f"cannot read {path}: {exc}",
            code="invalid_config",
            field="config.toml",
            hint=f"fix or remove {path}",
        ) from None


def read_settings(home: Path) -> dict[str, str]:
    """The top-level settings in the file (none if it does not exist), each checked."""
    path = config_path(home)
    data = load_config(home)
    found: dict[str, str] = {}
    for key, value in data.items():
        if key not in SETTINGS or isinstance(value, dict):
            continue  # a table ([tls_pins]) or a key of a newer pasar: not ours to judge
        if not isinstance(value, str):
            raise PasarError(
                f"{path}: {key} must be text, found {type(value).__name__}",
                code="invalid_config",
                field=key,
                hint=f'write {key} = "..."',
            )
        found[key] = _known(key)(value)
    return found


def get_setting(home: Path, key: str) -> str | None:
    _known(key)
    return read_settings(home).get(key)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def write_setting(home: Path, key: str, value: str | None) -> str | None:
    """Set ``key`` (checked first) or, with ``value`` None, remove it; every other line of the
    file — tables, comments, other keys — stays where it was. Returns the stored value."""
    stored = None if value is None else _known(key)(value)
    if value is None:
        _known(key)
    path = config_path(home)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    first_table = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("[")), None)
    top = lines if first_table is None else lines[:first_table]
    rest = [] if first_table is None else lines[first_table:]
    top = [ln for ln in top if ln.split("=", 1)[0].strip() != key]
    if stored is not None:
        top.append(f"{key} = {_toml_string(stored)}")
    home.mkdir(parents=True, exist_ok=True)
    text = "\n".join(top + rest)
    path.write_text(text + "\n" if text else "", encoding="utf-8")
    read_settings(home)  # what was written reads back (a hand-broken file fails here, named)
    return stored
