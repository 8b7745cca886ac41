"""Which local files a job takes with it, and under which names it finds them.

**The rule.** Every local path of a spec — each entry of ``inputs`` and the ``workdir`` — is
resolved against a *base directory*: the directory of the spec file when it was loaded from
one, otherwise the current directory (or ``base_dir=`` given to ``launch``). Then:

- a file in ``inputs`` is placed in the job's working directory at its path relative to the
  base directory (``data/train.csv`` stays ``data/train.csv``);
- a directory in ``inputs`` brings every file below it, each at its path relative to the base;
- ``workdir`` brings every file below it at its path relative to the *workdir* itself, so
  ``workdir: src`` puts ``src/train.py`` at ``train.py`` (SkyPilot's meaning of workdir),
  less what its ``.skyignore`` (else ``.gitignore``) lists and ``.git``
  (:mod:`pasar.client.ignore`);
- ``file_mounts`` (SkyPilot's) names the destination itself: ``{data: ~/datasets/mnist}`` puts
  the folder's files under ``data/``, ``{conf.toml: /etc/app.toml}`` the one file at
  ``conf.toml``; its sources may be anywhere on this machine, since the name is given. An
  absolute destination (``{/data: ./d}``) travels under ``.pasar-mounts/data/`` and the
  provider binds it at ``/data`` (:mod:`pasar.core.mounts`); no other input may use that
  folder;
- a path outside the base directory is refused: its name in the job would be a guess.

Symbolic links to files are uploaded as the file they point to; links to directories are not
entered. The same name twice (e.g. from ``workdir`` and ``inputs``) is refused, as is a job of
more than :data:`MAX_INPUT_FILES` files (usually a workdir pointed at the wrong folder).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pasar.client.ignore import IgnoreRules, files_below
from pasar.core.errors import PasarError
from pasar.core.mounts import MOUNTS_DIR, is_absolute, staged_name
from pasar.core.private_part import PrivatePart
from pasar.core.spec import JobSpec
from pasar.core.spec_draft import Draft, load_draft
from pasar.crypto.hashing import sha256_file, sha256_hex
from pasar.crypto.merkle import check_path

MAX_INPUT_FILES = 10_000


@dataclass(frozen=True)
class LocalInput:
    """One file to upload: its local path (or its bytes, given to ``launch`` as ``data``), its
    name in the job, its digest and size."""

    name: str
    file: Path | bytes
    sha256: str
    size: int

    def manifest(self) -> dict[str, Any]:
        """The order's ``inputs`` entry: ``{path, sha256, size}``."""
        return {"path": self.name, "sha256": self.sha256, "size": self.size}


def _files_below(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        out.extend(Path(dirpath) / f for f in sorted(filenames) if (Path(dirpath) / f).is_file())
    return out


def _name(file: Path, relative_to: Path, field: str) -> str:
    try:
        rel = file.relative_to(relative_to)
    except ValueError:
        raise PasarError(
            f"{field}: {file} is outside {relative_to}, so it has no name in the job",
            code="input_outside_base",
            field=field,
            hint=f"move it under {relative_to}, or launch with base_dir= a folder holding it",
        ) from None
    return check_path(rel.as_posix())


def _resolve(base: Path, text: str, field: str) -> Path:
    path = Path(os.path.abspath(base / Path(text).expanduser()))
    if not path.exists():
        raise PasarError(
            f"{field}: {text!r} does not exist (looked for {path})",
            code="input_not_found",
            field=field,
            hint="inputs are local paths, relative to the spec file's folder or the current one",
        )
    return path


def collect_inputs(
    spec: JobSpec, base_dir: Path, data: Mapping[str, bytes] | None = None
) -> list[LocalInput]:
    """Every file the job takes, hashed, named by the module's rule, in a stable order. An
    ``inputs`` entry that is a key of ``data`` is those bytes, under that name: a remote call's
    pickle, which need not touch the disk to be sent."""
    base = Path(os.path.abspath(base_dir))
    named: list[tuple[str, Path | bytes]] = []
    if spec.workdir is not None:
        root = _resolve(base, spec.workdir, "workdir")
        if not root.is_dir():
            raise PasarError(
                f"workdir {spec.workdir!r} is not a directory",
                code="invalid_workdir",
                field="workdir",
            )
        rules = IgnoreRules.of_workdir(root)  # .skyignore, else .gitignore (as SkyPilot)
        named.extend((_name(f, root, "workdir"), f) for f in files_below(root, rules))
    for target, source in (spec.file_mounts or {}).items():
        field = f"file_mounts.{target}"
        path = _resolve(base, source, field)
        name = staged_name(target) if is_absolute(target) else target
        if path.is_dir():
            named.extend(
                (check_path(f"{name}/{_name(f, path, field)}"), f) for f in _files_below(path)
            )
        else:
            named.append((check_path(name), path))
    for i, text in enumerate(spec.inputs):
        field = f"inputs[{i}]"
        if data is not None and text in data:
            named.append((check_path(text), data[text]))
            continue
        path = _resolve(base, text, field)
        files = _files_below(path) if path.is_dir() else [path]
        named.extend((_name(f, base, field), f) for f in files)
    if len(named) > MAX_INPUT_FILES:
        raise PasarError(
            f"the job would upload {len(named)} files, more than {MAX_INPUT_FILES}",
            code="too_many_inputs",
            field="inputs",
            hint="pack them into an archive, or point workdir at a smaller folder",
        )
    _refuse_staged_names(spec, named)
    seen: dict[str, Path | bytes] = {}
    out: list[LocalInput] = []
    for name, file in named:
        if name in seen:
            raise PasarError(
                f"two files would be {name!r} in the job: {_source(seen[name])} and "
                f"{_source(file)}",
                code="duplicate_input",
                field="inputs",
            )
        seen[name] = file
        if isinstance(file, bytes):
            out.append(LocalInput(name, file, sha256_hex(file), len(file)))
        else:
            out.append(LocalInput(name, file, sha256_file(file), file.stat().st_size))
    return out


def _source(file: Path | bytes) -> str:
    return f"{len(file)} bytes given as data" if isinstance(file, bytes) else str(file)


def _refuse_staged_names(spec: JobSpec, named: list[tuple[str, Path | bytes]]) -> None:
    """Only absolute mounts may put files under :data:`~pasar.core.mounts.MOUNTS_DIR`: the
    provider binds what is there, and a workdir's own folder of that name would be mistaken
    for a mount (or a mount's files for the workdir's)."""
    staged = {staged_name(t) for t in spec.file_mounts or {} if is_absolute(t)}
    for name, file in named:
        if name.split("/", 1)[0] != MOUNTS_DIR:
            continue
        if not any(name == s or name.startswith(s + "/") for s in staged):
            raise PasarError(
                f"{_source(file)} would be {name!r} in the job, inside {MOUNTS_DIR}/, the folder "
                "pasar keeps for absolute file_mounts",
                code="reserved_input_name",
                field="inputs",
                hint=f"rename the folder, or leave it out with a .skyignore line {MOUNTS_DIR}/",
            )


def load_job(spec: object, base_dir: str | os.PathLike[str] | None) -> tuple[JobSpec, Path]:
    """A complete spec given as a :class:`JobSpec`, a mapping or a YAML file's path, and its
    base directory (``base_dir`` if given, else the YAML file's folder, else the current one)."""
    draft, base = load_draft_job(spec, base_dir)
    return draft.spec(), base


def load_draft_job(spec: object, base_dir: str | os.PathLike[str] | None) -> tuple[Draft, Path]:
    """Like :func:`load_job`, but a spec may leave its price cap and duration to the client
    (:mod:`pasar.client.defaults`), as a SkyPilot task does."""
    if isinstance(spec, JobSpec):
        job = Draft(spec.to_dict(), "<spec>", {}, spec.notes)
        default_base = Path.cwd()
    elif isinstance(spec, Draft):
        job = spec
        default_base = Path.cwd()
    elif isinstance(spec, Mapping):
        job = Draft.of(dict(spec), source="<spec>")
        default_base = Path.cwd()
    elif isinstance(spec, str | os.PathLike):
        path = Path(spec).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PasarError(
                f"cannot read the job spec {path}: {exc.strerror or exc}",
                code="spec_not_found",
                field="spec",
                hint="pass a JobSpec, a dict, or the path of a YAML file",
            ) from None
        job = load_draft(text, str(path))
        default_base = path.absolute().parent
    else:
        raise PasarError(
            f"expected a JobSpec, a mapping or a YAML file's path; found {type(spec).__name__}",
            code="invalid_spec",
            field="spec",
        )
    return job, Path(base_dir) if base_dir is not None else default_base


def private_part_of(job: JobSpec, files: list[LocalInput]) -> PrivatePart:
    """The job's private part (:mod:`pasar.core.private_part`) with its input manifest, under
    a fresh random salt: what the order commits to and the market never logs."""
    return PrivatePart.of(job, [f.manifest() for f in files], secrets.token_bytes(32))


@dataclass(frozen=True)
class Uploads:
    """How a launch's blobs reach the market: the small ones attached to the order
    (:mod:`pasar.api.attachments`: one round trip instead of one each), the rest uploaded
    before it."""

    attached: dict[str, bytes]
    separate: list[tuple[str, Path | bytes]]


def uploads_of(files: list[LocalInput], private: PrivatePart) -> Uploads:
    """The inputs and the private part of an order, split into attached and uploaded."""
    from pasar.api.attachments import attachable

    part = private.to_bytes()
    sizes = {f.sha256: f.size for f in files} | {private.commitment: len(part)}
    chosen = attachable(sizes)
    contents: dict[str, Path | bytes] = {f.sha256: f.file for f in files}
    contents[private.commitment] = part
    attached: dict[str, bytes] = {}
    separate: list[tuple[str, Path | bytes]] = []
    for sha256, content in contents.items():
        if sha256 not in chosen:
            separate.append((sha256, content))
        else:
            attached[sha256] = content if isinstance(content, bytes) else content.read_bytes()
    return Uploads(attached, separate)
