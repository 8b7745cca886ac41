"""SkyPilot task files, read as they are: each SkyPilot field becomes pasar's, or is refused
with a reason, or is ignored with one line saying so — never dropped in silence.

Why a translation step before validation, and not SkyPilot's names inside the models: the
normalized spec (what is signed, escrowed and audited) stays one vocabulary, so an order means
the same whichever file it came from, and :meth:`JobSpec.to_dict` is read back unchanged (no
SkyPilot field survives :func:`adapt`). What was decided for the user travels as :class:`Note`
lines, which ``pasar spec check`` and ``pasar launch`` print.

What each field becomes (the table in docs/jobspec.md, "SkyPilot task files"):

- ``setup``/``run`` as a list of lines: joined with newlines;
- ``envs``/``secrets`` entries written ``null`` (SkyPilot's "required, given at launch"): left
  out of the data and listed in :attr:`Adapted.required`; a spec is complete only once
  ``--env``/``--secret`` (or the SDK's mapping) gives each;
- ``resources.max_hourly_cost`` (SkyPilot's price cap, a number of dollars): ``max_price_per_hour``
  in :data:`DOLLAR_CURRENCY`;
- ``resources.disk_size``: ``resources.disk``; ``resources.image_id``: ``image`` (the docker
  runtime runs it; the sandbox runtime refuses it with a hint);
- ``resources.any_of`` / ``candidates`` (pick the cheapest) and ``ordered`` (the first that fits):
  ``resources.alternatives`` with ``pick``, each alternative the base resources overridden by its
  own fields (SkyPilot's merge);
- ``resources.cloud``/``region``/``zone``/``infra``/``use_spot`` and the other cloud knobs: ignored
  (a market has no clouds), one note each;
- ``file_mounts`` with local sources: kept as they are; an absolute destination (``/data``) is
  bound in the job's sandbox by its provider (:mod:`pasar.core.mounts` says which are refused);
- ``resources.ports``, ``service``, ``pool``, volumes, bucket ``file_mounts``, a git ``workdir``:
  refused, naming the field, with what to do instead.

Pure: data in, data and notes out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pasar.core.errors import ErrorDetail
from pasar.core.mounts import is_absolute
from pasar.core.spec_yaml import SpecError, describe_value, dotted, line_of

Path = tuple[str | int, ...]

#: the currency SkyPilot's dollar amounts are read in (its ``max_hourly_cost`` is US dollars)
DOLLAR_CURRENCY = "USDC"
#: alternatives one spec may list: each is quoted at launch and cleared at every match
#: (pasar.core.alternatives), so a long list is a flood
MAX_ALTERNATIVES = 16
PICKS = {"any_of": "cheapest", "candidates": "cheapest", "ordered": "ordered"}

#: resources fields a market cannot honour: accepted, and each says once that it was ignored
_IGNORED_RESOURCES = {
    "cloud": "a market has no clouds: any provider that fits may run the job",
    "region": "a market has no cloud regions: any provider that fits may run the job",
    "zone": "a market has no cloud zones: any provider that fits may run the job",
    "infra": "a market has no clouds: any provider that fits may run the job",
    "use_spot": "a lease is never pre-empted for price; there is no spot tier",
    "instance_type": "providers offer machines, not instance types: cpus/memory/accelerators "
    "decide",
    "disk_tier": "a provider's disk is what it registered; there are no tiers",
    "network_tier": "a provider's network is what it registered; there are no tiers",
    "labels": "a lease carries no cloud labels",
    "autostop": "a lease ends when its job does (or at max_duration)",
    "job_recovery": "a failed lease is settled, not restarted (see on_node_loss for gangs)",
    "priority": "the market's pricing decides the order of jobs, not a priority",
    "accelerator_args": "TPU arguments have no meaning on a provider's GPUs",
    "local_disk": "a provider's disk is what it registered",
}
#: task fields a market cannot honour and that change nothing a job computes
_IGNORED_TOP = {
    "event_callback": "pasar does not call back; follow the job with pasar status/logs",
    "config": "SkyPilot's per-task config overrides have no meaning on a market",
}
#: fields refused outright: (what happened, what to do)
_REFUSED_TOP = {
    "service": (
        "services (SkyServe) do not exist on pasar yet",
        "run the job as a batch task: remove service:",
    ),
    "pool": ("worker pools do not exist on pasar", "remove pool: and launch the task itself"),
    "volumes": (
        "volumes are not available on a market: a provider has only the files you upload",
        "list the data under file_mounts (local paths) or inputs",
    ),
    "volume_mounts": (
        "volumes are not available on a market: a provider has only the files you upload",
        "list the data under file_mounts (local paths) or inputs",
    ),
}
_REFUSED_RESOURCES = {
    "ports": (
        "open ports are refused until pasar has services: a lease serves nothing to the outside",
        "remove resources.ports; write results to outputs instead",
    ),
    "volumes": (
        "volumes are not available on a market: a provider has only the files you upload",
        "list the data under file_mounts (local paths) or inputs",
    ),
}


@dataclass(frozen=True)
class Adapted:
    """pasar's spec data, the lines of the file re-keyed to it, and what was decided."""

    data: Any
    lines: Mapping[Path, int]
    notes: tuple[str, ...]
    # ``envs.NAME`` / ``secrets.NAME`` written ``null``: SkyPilot's "give it at launch"
    required: tuple[str, ...] = ()


class _Adapter:
    def __init__(self, lines: Mapping[Path, int], source: str) -> None:
        self.lines = dict(lines)
        self.source = source
        self.notes: list[str] = []
        self.errors: list[ErrorDetail] = []
        self.required: list[str] = []

    def refuse(self, path: Path, code: str, message: str, hint: str | None = None) -> None:
        field = dotted(path)
        self.errors.append(ErrorDetail(code, message, field, hint, line_of(self.lines, path)))

    def note(self, path: Path, text: str) -> None:
        self.notes.append(f"{dotted(path)}: {text}")

    def move(self, old: Path, new: Path) -> None:
        """Re-key the lines under ``old`` to ``new``, so an error names the file's line."""
        for path, line in list(self.lines.items()):
            if path[: len(old)] == old:
                self.lines.setdefault((*new, *path[len(old) :]), line)

    # -- the task --------------------------------------------------------------------------------

    def task(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(data)
        for key in ("setup", "run"):
            value = out.get(key)
            if isinstance(value, list):
                if not all(isinstance(line, str) for line in value):
                    self.refuse((key,), "invalid_type", "expected a list of lines of text")
                else:
                    out[key] = "\n".join(value)
                    self.note((key,), f"a list of {len(value)} line(s), run as one script")
        for key, why in _IGNORED_TOP.items():
            if key in out:
                out.pop(key)
                self.note((key,), f"ignored: {why}")
        for key, (why, hint) in _REFUSED_TOP.items():
            if key in out:
                self.refuse((key,), "unsupported_field", why, hint)
        workdir = out.get("workdir")
        if isinstance(workdir, Mapping):
            self.refuse(
                ("workdir",),
                "unsupported_source",
                "a git repository as workdir is not fetched by pasar: providers get only the "
                "files you upload",
                "clone it here and set workdir: to the local folder",
            )
        mounts = out.get("file_mounts")
        if isinstance(mounts, Mapping):
            for target, source in mounts.items():
                if isinstance(source, Mapping):
                    self.refuse(
                        ("file_mounts", str(target)),
                        "unsupported_source",
                        "a storage mount (bucket) is not available on a market: providers get "
                        "only the files you upload",
                        f"download the data and mount the local copy, e.g. {target}: ./data",
                    )
                elif isinstance(target, str) and is_absolute(target):
                    self.note(
                        ("file_mounts", target),
                        f"uploaded, and copied to {target} in the job's sandbox (read-write, a "
                        "copy per lease)",
                    )
        for key, flag in (("envs", "--env"), ("secrets", "--secret")):
            values = out.get(key)
            if not isinstance(values, Mapping):
                continue
            nulls = [str(name) for name, value in values.items() if value is None]
            if nulls:
                out[key] = {name: value for name, value in values.items() if value is not None}
            for name in nulls:
                self.required.append(f"{key}.{name}")
                self.note(
                    (key, name), f"no value in the file: give it at launch ({flag} {name}=...)"
                )
        secrets = out.get("secrets")
        if isinstance(secrets, list):
            self.refuse(
                ("secrets",),
                "unsupported_field",
                "managed secret names need SkyPilot's secret store, which pasar does not have",
                "give each secret's value: secrets: {HF_TOKEN: ...} or --secret HF_TOKEN=...",
            )
        if isinstance(secrets, Mapping) and secrets:
            self.note(
                ("secrets",),
                f"{len(secrets)} value(s) set in the job's environment; sent only in the job's "
                "private part (never on the public chain) and never printed",
            )
        resources = out.get("resources")
        if isinstance(resources, Mapping):
            out["resources"] = self.resources(resources, out)
        return out

    # -- resources -------------------------------------------------------------------------------

    def resources(self, data: Mapping[str, Any], task: dict[str, Any]) -> dict[str, Any]:
        at: Path = ("resources",)
        out = self.one_resources(data, at, task, top=True)
        picks = [key for key in PICKS if key in out]
        if len(picks) > 1:
            self.refuse(
                at,
                "conflicting_fields",
                f"{' and '.join(picks)} both list alternatives",
                "keep one list: any_of (the cheapest that fits) or ordered (the first that fits)",
            )
            return out
        if not picks:
            return out
        key = picks[0]
        alternatives = out.pop(key)
        base = {k: v for k, v in out.items() if k not in ("alternatives", "pick")}
        if not isinstance(alternatives, list):
            self.refuse(
                (*at, key),
                "invalid_type",
                f"expected a list of resources; found {describe_value(alternatives)}",
                f"e.g. {key}: [{{accelerators: A100:1}}, {{accelerators: H100:1}}]",
            )
            return out
        if not alternatives:
            self.refuse(
                (*at, key),
                "invalid_value",
                "expected at least one alternative; found an empty list",
                f"remove {key}: or list the resources that would do",
            )
            return out
        if len(alternatives) > MAX_ALTERNATIVES:
            self.refuse(
                (*at, key),
                "too_many_alternatives",
                f"{len(alternatives)} alternatives; at most {MAX_ALTERNATIVES}",
                "keep the alternatives you would really accept",
            )
            return out
        merged: list[Any] = []
        for i, alt in enumerate(alternatives):
            path = (*at, key, i)
            if not isinstance(alt, Mapping):
                self.refuse(
                    path, "invalid_type", f"expected resources; found {describe_value(alt)}"
                )
                continue
            nested = [k for k in (*PICKS, "alternatives", "pick") if k in alt]
            if nested:
                self.refuse(
                    (*path, nested[0]),
                    "nested_alternatives",
                    "an alternative cannot list alternatives of its own",
                    f"flatten them into one {key} list",
                )
                continue
            own = self.one_resources(alt, path, task, top=False)
            merged.append({**base, **own})
            self.move(path, (*at, "alternatives", len(merged) - 1))
        out["alternatives"] = merged
        out["pick"] = PICKS[key]
        how = "the cheapest that fits" if PICKS[key] == "cheapest" else "the first that fits"
        self.note((*at, key), f"{len(merged)} alternatives; the market takes {how} when it matches")
        return out

    def one_resources(
        self, data: Mapping[str, Any], at: Path, task: dict[str, Any], *, top: bool
    ) -> dict[str, Any]:
        out = dict(data)
        for key, why in _IGNORED_RESOURCES.items():
            if key in out:
                value = out.pop(key)
                self.note((*at, key), f"ignored ({key}: {json.dumps(value, default=str)}): {why}")
        for key, (why, hint) in _REFUSED_RESOURCES.items():
            if key in out:
                self.refuse((*at, key), "unsupported_field", why, hint)
                out.pop(key)
        if "disk_size" in out:
            if "disk" in out:
                self.refuse((*at, "disk_size"), "conflicting_fields", "disk is set too")
            out["disk"] = out.pop("disk_size")
            self.move((*at, "disk_size"), (*at, "disk"))
        if "image_id" in out:
            self.image(out.pop("image_id"), (*at, "image_id"), task, top=top)
        if "max_hourly_cost" in out:
            self.price(out.pop("max_hourly_cost"), (*at, "max_hourly_cost"), task, top=top)
        return out

    def image(self, value: object, path: Path, task: dict[str, Any], *, top: bool) -> None:
        if not top:
            self.refuse(
                path,
                "unsupported_field",
                "an image per alternative is not supported",
                "set image_id once, in resources",
            )
            return
        if not isinstance(value, str):
            self.refuse(
                path,
                "unsupported_field",
                f"expected one image name; found {describe_value(value)} (images per region "
                "have no meaning on a market)",
                "e.g. image_id: docker:pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime",
            )
            return
        if "image" in task:
            self.refuse(path, "conflicting_fields", "image is set too", "keep one of them")
            return
        task["image"] = value.removeprefix("docker:")
        self.move(path, ("image",))
        self.note(
            path,
            "run in that container image by a docker-runtime provider (the sandbox "
            "runtime refuses image jobs)",
        )

    def price(self, value: object, path: Path, task: dict[str, Any], *, top: bool) -> None:
        if not top:
            self.refuse(
                path,
                "unsupported_field",
                "a price cap per alternative is not supported",
                "set max_hourly_cost once, in resources",
            )
            return
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.refuse(
                path,
                "invalid_amount",
                f"expected a number of dollars above zero; found {describe_value(value)}",
            )
            return
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        money = f"{amount.normalize():f} {DOLLAR_CURRENCY}"
        if "max_price_per_hour" in task:
            self.refuse(
                path,
                "conflicting_fields",
                "max_price_per_hour is set too",
                "keep one price cap: max_price_per_hour (pasar's) or resources.max_hourly_cost",
            )
            return
        task["max_price_per_hour"] = money
        self.move(path, ("max_price_per_hour",))
        self.note(
            path, f"price cap {money} per lease and hour (SkyPilot's dollars, as {DOLLAR_CURRENCY})"
        )


def adapt(data: object, lines: Mapping[Path, int], source: str) -> Adapted:
    """A SkyPilot (or pasar) task's data as pasar's spec data; raises one :class:`SpecError`
    for every field refused. Data that is not a mapping is left for the spec to refuse."""
    if not isinstance(data, Mapping):
        return Adapted(data, lines, ())
    adapter = _Adapter(lines, source)
    out = adapter.task(data)
    if adapter.errors:
        raise SpecError.of(source, adapter.errors)
    return Adapted(out, adapter.lines, tuple(adapter.notes), tuple(adapter.required))
