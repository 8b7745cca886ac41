"""The job ``pasar launch`` sends, from a spec file, from an inline command, or both, with
the flags users of ``sky launch`` expect laid over it.

- ``pasar launch job.yaml``: the file, as it is;
- ``pasar launch -- python train.py``: an inline job, its ``run`` the command (quoted as the
  shell would need), with defaults for what a file must say (price cap, duration);
- ``--env K=V`` (repeat), ``--secret K=V`` (repeat; private, never printed), ``--cpus``,
  ``--memory``, ``--gpus A100:1``, ``--max-price``, ``--max-duration``, ``--name`` override
  the file's fields;
- ``--workdir DIR``: every file under DIR travels as an input, named by its path under DIR
  (the job's working directory holds the same tree), and DIR is the base for the spec's own
  relative inputs.

Every override goes through the spec's own validation, so a bad value gets the same error,
naming its flag, as the field would in a file.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pasar.cli.spec import read_draft_file
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.spec import SpecError
from pasar.core.spec_draft import Draft

#: what an inline job gets when the flags do not say (the SDK's defaults for @remote)
INLINE_MAX_PRICE = "0.50 USDC"
INLINE_MAX_DURATION = "1h"
SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Overrides:
    """The flags of ``pasar launch`` that change the job (None: leave the field as it is)."""

    envs: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    cpus: str | None = None
    memory: str | None = None
    gpus: str | None = None
    max_price: str | None = None
    max_duration: str | None = None
    name: str | None = None
    workdir: Path | None = None


def _envs(pairs: list[str], flag: str = "--env") -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PasarError(
                f"{flag} takes KEY=VALUE, got {pair!r}"
                if flag == "--env"
                else f"{flag} takes KEY=VALUE",  # a secret's value is never echoed
                code="invalid_argument",
                field=flag,
                hint=f"e.g. {flag} NAME=VALUE (repeat {flag} for more)",
            )
        out[key] = value
    return out


def _workdir_inputs(workdir: Path) -> list[str]:
    if not workdir.is_dir():
        raise PasarError(
            f"--workdir {workdir} is not a folder",
            code="invalid_argument",
            field="--workdir",
            hint="pass the folder whose files the job needs, e.g. --workdir .",
        )
    return sorted(p.name for p in workdir.iterdir() if not p.name.startswith("."))


def is_spec_file(args: list[str]) -> bool:
    """One argument naming a YAML file is a spec; anything else is a command to run."""
    return len(args) == 1 and args[0].endswith(SPEC_SUFFIXES)


def build_launch_spec(args: list[str], flags: Overrides) -> tuple[Draft, Path, str]:
    """``(spec, base folder for its inputs, where it came from)`` for ``pasar launch ARGS``;
    the spec may still leave its price cap and duration to :mod:`pasar.client.defaults`."""
    if not args:
        raise PasarError(
            "nothing to launch",
            code="invalid_argument",
            field="SPEC",
            hint="pass a spec file (pasar launch job.yaml) or a command after -- "
            "(pasar launch -- python train.py)",
        )
    if is_spec_file(args):
        path = Path(args[0])
        read = read_draft_file(path)
        notes: tuple[str, ...] = read.notes
        required = read.required
        fields: dict[str, Any] = read.checked().to_dict()
        for key in read.missing:
            fields.pop(key)
        base = path.absolute().parent
        source = str(path)
    else:
        command = shlex.join(args)
        from pasar.client.settings import get_setting
        from pasar.crypto.identity import pasar_home

        fields = {
            "name": Path(args[0]).name or "job",
            "run": command,
            "max_price_per_hour": get_setting(pasar_home(), "max_price") or INLINE_MAX_PRICE,
            "max_duration": INLINE_MAX_DURATION,
        }
        base = Path.cwd()
        source = "the command line"
        notes = ()
        required = ()
    if flags.workdir is not None:
        base = flags.workdir.absolute()
        fields["inputs"] = sorted({*fields.get("inputs", []), *_workdir_inputs(flags.workdir)})
    resources = dict(fields.get("resources") or {})
    for key, value in (("cpus", flags.cpus), ("memory", flags.memory)):
        if value is not None:
            resources[key] = value
    if flags.gpus is not None:
        resources["accelerators"] = flags.gpus
    if resources:
        fields["resources"] = resources
    if flags.envs:
        fields["envs"] = {**fields.get("envs", {}), **_envs(flags.envs)}
    if flags.secrets:  # like --env, but private and never printed (SkyPilot's --secret)
        fields["secrets"] = {**(fields.get("secrets") or {}), **_envs(flags.secrets, "--secret")}
    if flags.max_price is not None:
        fields["max_price_per_hour"] = Money.parse(flags.max_price, field="--max-price").to_json()
    if flags.max_duration is not None:
        fields["max_duration"] = flags.max_duration
    if flags.name is not None:
        fields["name"] = flags.name
    try:
        draft = replace(Draft.of(fields, source=source), notes=notes, required=required)
    except SpecError as err:  # name the flag a user typed, where a flag set the field
        raise _with_flags(err, source) from None
    if (unmet := draft.unmet()) is not None:  # a null env no --env gave
        raise unmet
    return draft, base, source


_FLAG_OF = {
    "resources.cpus": "--cpus",
    "resources.memory": "--memory",
    "resources.accelerators": "--gpus",
    "max_duration": "--max-duration",
    "name": "--name",
}


def _with_flags(err: SpecError, source: str) -> SpecError:
    return SpecError.of(
        source,
        [replace(d, field=_FLAG_OF[d.field]) if d.field in _FLAG_OF else d for d in err.details],
    )
