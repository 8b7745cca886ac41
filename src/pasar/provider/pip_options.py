"""Where a provider's pip installs come from: ``pasar provider start --pip-*`` and ``[pip]`` in
``$PASAR_HOME/config.toml``.

Why the provider's choice only: a job names requirements (``pip: [pandas==2.2]``), never an
index, a link or an option (:mod:`pasar.core.pip_requirements` refuses them), so a job cannot
point the provider's pip at a server of its choosing. The provider says where wheels come from::

    [pip]
    index_url = "https://pypi.org/simple"   # --pip-index-url (default: pip's own configuration)
    find_links = ["/srv/wheels"]            # --pip-find-links DIR (repeatable)
    no_index = true                         # --pip-no-index: only the find-links folders
    cache_max_mb = 10240                    # --pip-cache-max-mb: installs kept, least used go

A flag given on the command line wins over the file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from pasar.client.settings import config_path, load_config
from pasar.core.errors import PasarError
from pasar.provider.pip_cache import DEFAULT_CAP_BYTES

MB = 1 << 20
_KEYS = ("index_url", "find_links", "no_index", "cache_max_mb")


def _bad(message: str, field: str, hint: str) -> PasarError:
    return PasarError(message, code="invalid_argument", field=field, hint=hint)


@dataclass(frozen=True)
class PipOptions:
    """The provider's pip options (see the module docstring)."""

    index_url: str | None = None
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    cache_max_mb: int | None = None

    @property
    def cap_bytes(self) -> int:
        return DEFAULT_CAP_BYTES if self.cache_max_mb is None else self.cache_max_mb * MB

    def pip_args(self) -> list[str]:
        """What goes on pip's command line before the (checked) requirements."""
        args: list[str] = []
        if self.index_url:
            args += ["--index-url", self.index_url]
        for link in self.find_links:
            args += ["--find-links", link]
        if self.no_index:
            args.append("--no-index")
        return args

    def checked(self, where: str = "--pip") -> PipOptions:
        """Refuse what pip would misread, naming the flag or key (exit 2, not a failed lease)."""
        if self.index_url is not None and not self.index_url.startswith(
            ("http://", "https://", "file://")
        ):
            raise _bad(
                f"the pip index {self.index_url!r} is not an http(s) or file URL",
                f"{where}-index-url",
                "e.g. --pip-index-url https://pypi.org/simple",
            )
        for link in self.find_links:
            if not link.startswith(("http://", "https://")) and not Path(link).is_dir():
                raise _bad(
                    f"the pip find-links {link!r} is neither a folder nor an http(s) URL",
                    f"{where}-find-links",
                    "give a folder of wheels (built with `pip wheel`), e.g. --pip-find-links "
                    "/srv/wheels",
                )
        if self.no_index and not self.find_links:
            raise _bad(
                "--pip-no-index without --pip-find-links leaves pip nowhere to install from",
                f"{where}-no-index",
                "add --pip-find-links DIR, or leave --pip-no-index out",
            )
        if self.cache_max_mb is not None and self.cache_max_mb < 1:
            raise _bad(
                "the pip cache must be allowed at least 1 MB",
                f"{where}-cache-max-mb",
                "e.g. --pip-cache-max-mb 10240",
            )
        return self

    def with_flags(
        self,
        *,
        index_url: str | None = None,
        find_links: list[str] | None = None,
        no_index: bool = False,
        cache_max_mb: int | None = None,
    ) -> PipOptions:
        """These options with the command line's flags laid over them (a flag wins)."""
        out = self
        if index_url is not None:
            out = replace(out, index_url=index_url)
        if find_links:
            out = replace(out, find_links=tuple(find_links))
        if no_index:
            out = replace(out, no_index=True)
        if cache_max_mb is not None:
            out = replace(out, cache_max_mb=cache_max_mb)
        return out


def pip_options_from_config(home: Path) -> PipOptions:
    """The ``[pip]`` table of ``$PASAR_HOME/config.toml`` (no table: pip's defaults)."""
    table = load_config(home).get("pip", {})
    where = f"{config_path(home)} [pip]"
    if not isinstance(table, dict):
        raise _bad(f"{where} must be a table", "pip", "write [pip] on a line of its own")
    unknown = sorted(k for k in table if k not in _KEYS)
    if unknown:
        raise _bad(f"{where}: unknown key {unknown[0]!r}", f"pip.{unknown[0]}",
                   "one of: " + ", ".join(_KEYS))  # fmt: skip
    index_url = table.get("index_url")
    links = table.get("find_links", [])
    links = [links] if isinstance(links, str) else links
    no_index = table.get("no_index", False)
    cap = table.get("cache_max_mb")
    if index_url is not None and not isinstance(index_url, str):
        raise _bad(f"{where}: index_url must be text", "pip.index_url", 'index_url = "https://..."')
    if not isinstance(links, list) or not all(isinstance(x, str) for x in links):
        raise _bad(f"{where}: find_links must be a list of folders", "pip.find_links",
                   'find_links = ["/srv/wheels"]')  # fmt: skip
    if not isinstance(no_index, bool):
        raise _bad(f"{where}: no_index must be true or false", "pip.no_index", "no_index = true")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int)):
        raise _bad(f"{where}: cache_max_mb must be a whole number", "pip.cache_max_mb",
                   "cache_max_mb = 10240")  # fmt: skip
    return PipOptions(index_url, tuple(links), no_index, cap)
