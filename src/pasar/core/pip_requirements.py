"""Pip requirements a remote function declares (``pip=["pandas==2.2"]``), checked and keyed.

Why a strict subset of PEP 508: a requirement string ends up on a provider's ``pip install``
command line, run outside the sandbox. Anything beyond ``name[extras] <op> version, ...`` is
refused, so no option (``--index-url``, ``--extra-index-url``, ``-e``), URL, direct reference
(``name @ https://...``), local path or environment marker can be smuggled in as a
"requirement": the provider alone chooses where wheels come from.

Why a key: installs are cached per set of requirements and Python version, so two leases that
need the same packages share one read-only install; the key is the hash of the sorted,
normalised requirements and the ``major.minor`` Python version.

Pure: no I/O (core/ rules). Used by the spec's ``pip:`` field (:mod:`pasar.core.spec`) and the
provider's install (:mod:`pasar.provider.pip_cache`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from pasar.core.errors import PasarError

MAX_REQUIREMENTS = 64
MAX_LENGTH = 200

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_VERSION = r"[A-Za-z0-9.*+!_-]+"
_SPEC = rf"(?:===|==|!=|~=|<=|>=|<|>)\s*{_VERSION}"
_REQUIREMENT = re.compile(
    rf"^(?P<name>{_NAME})\s*"
    rf"(?:\[\s*(?P<extras>{_NAME}(?:\s*,\s*{_NAME})*)\s*\])?\s*"
    rf"(?P<specs>{_SPEC}(?:\s*,\s*{_SPEC})*)?$"
)
HINT = (
    'a requirement is a package name with optional extras and versions, e.g. "pandas==2.2" '
    'or "requests[socks]>=2,<3"; options, URLs, paths and markers are refused (the provider '
    "chooses the index and installs binary wheels only, --only-binary :all:)"
)


def canonical_name(name: str) -> str:
    """PEP 503 normalised project name (``Foo_Bar`` and ``foo-bar`` are one project)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def check_requirement(text: object, field: str) -> str:
    """One requirement, normalised (canonical name, sorted extras, no spaces); refused with
    a 400 naming ``field`` unless it is in the subset the module docstring describes."""
    if not isinstance(text, str) or not text.strip():
        raise PasarError(
            f"{field} must be a non-empty requirement string", field=field, hint=HINT, status=400
        )
    if len(text) > MAX_LENGTH:
        raise PasarError(
            f"{field} is longer than {MAX_LENGTH} characters", field=field, hint=HINT, status=400
        )
    found = _REQUIREMENT.match(text.strip())
    if found is None:
        raise PasarError(
            f"{field} is not a plain requirement: {text!r}",
            code="bad_requirement",
            field=field,
            hint=HINT,
            status=400,
        )
    name = canonical_name(found["name"])
    extras = sorted({canonical_name(e.strip()) for e in (found["extras"] or "").split(",") if e})
    specs = ",".join(sorted(re.sub(r"\s+", "", s) for s in (found["specs"] or "").split(",") if s))
    return name + (f"[{','.join(extras)}]" if extras else "") + specs


def check_requirements(items: object, field: str = "pip") -> tuple[str, ...]:
    """The whole list, each normalised, sorted, without duplicates."""
    if not isinstance(items, (list, tuple)):
        raise PasarError(
            f"{field} must be a list of requirement strings", field=field, hint=HINT, status=400
        )
    if len(items) > MAX_REQUIREMENTS:
        raise PasarError(
            f"{field} lists more than {MAX_REQUIREMENTS} requirements",
            field=field,
            hint="install fewer packages, or use an image that has them",
            status=400,
        )
    return tuple(sorted({check_requirement(x, f"{field}[{i}]") for i, x in enumerate(items)}))


def cache_key(requirements: Sequence[str], python: str) -> str:
    """The install's cache key: the same packages for the same Python share one install."""
    body = "\n".join([f"python={python}", *sorted(requirements)])
    return hashlib.sha256(body.encode()).hexdigest()[:32]
