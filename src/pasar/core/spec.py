"""The job spec: what to run, on what, for how much, for how long, checked in one pass.

A spec is written in YAML (``pasar spec check job.yaml``) or built in Python by the SDK; both
go through the same pydantic models, so the market, the client and the CLI agree on what a valid
job is. Field names follow SkyPilot where the two overlap (``resources.accelerators``, ``setup``,
``run``, ``workdir``, ``envs``, ``num_nodes``); the market adds money, time, splitting and trust.

**Accelerators.** Any of these mean the same thing; the normalized form is the last one::

    accelerators: A100:2                       # SkyPilot shorthand (count defaults to 1)
    accelerators: {A100: 2, H100: 2}           # any-of, SkyPilot's set form
    accelerators: ["A100:2", "H100:2"]         # any-of, SkyPilot's list form
    accelerators: {models: [A100, H100], count: 2}

Alternatives must ask for the same count (all GPUs of a node come from one model). ``A100``
accepts every A100; ``A100-80GB`` only the 80 GB one. ``{count: 2}`` takes any 2 GPUs, and
``gpu_ram: 24+`` alone asks for one GPU of at least 24 GB.

**Quantities.** ``cpus: 4+``, ``memory: 16+`` (GB), ``disk: 100`` (GB), ``gpu_ram: 24+`` (GB per
GPU) are all minimums; ``+`` is accepted for SkyPilot compatibility and changes nothing.

**Money and time.** ``max_price_per_hour`` is money with its currency, written as text
(``"1.5 USDC"``): an unquoted ``1.5`` is a binary float and is refused. It is the most one
*lease* may cost per hour; a job runs ``num_nodes × shards`` leases, so :meth:`JobSpec.max_escrow`
is that price × ``max_duration`` × the number of leases. ``max_duration`` is ``90s``, ``2m``,
``4h``, ``1h30m``, ``1d`` or a whole number of seconds.

**Errors.** Every problem in a file (unknown key, wrong type, unknown GPU, float money…) is
collected into one :class:`SpecError` whose details give the line, the dotted field, what was
expected, what was found and, for a typo, the nearest valid key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)

from pasar.core.compare import NUMERIC_SUFFIXES, is_numeric_file
from pasar.core.errors import ErrorDetail, PasarError
from pasar.core.gpus import FAMILY_BY_NAME
from pasar.core.money import Money
from pasar.core.pip_requirements import check_requirements
from pasar.core.resources import GpuSelector, ResourceRequest
from pasar.core.skypilot import MAX_ALTERNATIVES, adapt
from pasar.core.spec_fields import (
    SECONDS_PER_HOUR,
    ClusterKind,
    Cpus,
    EnvName,
    EnvValue,
    Gigabytes,
    MoneyField,
    MountSource,
    MountTarget,
    NodeLoss,
    OutputPath,
    PathText,
    Placement,
    Pricing,
    Privacy,
    Seconds,
    Text,
    VramGb,
    _output_path,
    _text,
    choice,
    compare_rule,
    image_name,
    job_name,
    list_of,
    mounts_apart,
    nearest,
    normalize_verification,
    parse_duration,
    placement_choice,
    refuse,
    verification_policy,
)
from pasar.core.spec_memo import ParseMemo
from pasar.core.spec_yaml import SpecError, describe_value, dotted, line_of, load_yaml

Pick = Literal["cheapest", "ordered"]  # how the client chooses among resources.alternatives

__all__ = [
    "Accelerators",
    "JobSpec",
    "Output",
    "Pricing",
    "Privacy",
    "Resources",
    "SpecError",
    "load_spec",
    "normalize_verification",
    "parse_duration",
    "spec_error_from",
]

# -- models ----------------------------------------------------------------------------------------


class _Model(BaseModel):
    # schemas built on first use (see pasar.api.base.WireModel): not every command reads a spec
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False, defer_build=True)


_ACCEL_ITEM = re.compile(r"^\s*(?P<name>[^:]+?)\s*(?::\s*(?P<count>\d+)\s*)?$")


def _split_item(item: object) -> tuple[str, int]:
    """``"A100:2"`` → ``("A100-canonical", 2)``; ``"A100"`` → count 1."""
    if not isinstance(item, str) or not (m := _ACCEL_ITEM.match(item)):
        refuse(
            "invalid_accelerators",
            f"expected a GPU model and count such as A100:2; found {describe_value(item)}",
            'quote names made only of digits: "4090:2"' if isinstance(item, int) else None,
        )
    return _gpu_name(m["name"]), int(m["count"] or 1)


def _gpu_name(name: object) -> str:
    try:
        return GpuSelector.parse(name).canonical
    except PasarError as err:
        refuse(err.code, err.message, err.hint)


class Accelerators(_Model):
    """``count`` GPUs of one of ``models`` (canonical selectors; empty means any model)."""

    models: tuple[str, ...] = ()
    count: StrictInt = Field(default=1, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        if isinstance(value, Accelerators):
            return value
        pairs: list[tuple[str, int]]
        if isinstance(value, str):
            pairs = [_split_item(value)]
        elif isinstance(value, list | tuple):
            if not value:
                refuse(
                    "invalid_accelerators", "expected at least one GPU model; found an empty list"
                )
            pairs = [_split_item(item) for item in value]
        elif isinstance(value, Mapping):
            if "models" in value or "count" in value:  # the structured form
                models = value.get("models", ())
                if isinstance(models, str):
                    models = [models]
                if not isinstance(models, list | tuple):
                    refuse(
                        "invalid_accelerators",
                        f"expected a list of GPU models; found {describe_value(models)}",
                    )
                return {**value, "models": tuple(_gpu_name(m) for m in models)}
            pairs = []
            for name, count in value.items():
                if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                    refuse(
                        "invalid_accelerators",
                        f"expected a GPU count of at least 1 for {name}; "
                        f"found {describe_value(count)}",
                    )
                pairs.append((_gpu_name(name), count))
        else:
            refuse(
                "invalid_accelerators",
                f"expected GPUs such as A100:2; found {describe_value(value)}",
                'quote names made only of digits: "4090:2"' if isinstance(value, int) else None,
            )
        counts = {count for _, count in pairs}
        if len(counts) > 1:
            refuse(
                "invalid_accelerators",
                "alternatives must ask for the same number of GPUs; found "
                + ", ".join(f"{n}:{c}" for n, c in pairs),
                "all GPUs of one node come from one model; e.g. [A100:2, H100:2]",
            )
        models = tuple(dict.fromkeys(name for name, _ in pairs))  # drop repeats, keep order
        return {"models": models, "count": counts.pop()}

    def selectors(self) -> tuple[GpuSelector, ...]:
        return tuple(GpuSelector.parse(m) for m in self.models)


class Resources(_Model):
    """What each node needs. Defaults: no GPU, 1 CPU, 1 GB memory, 1 GB disk."""

    accelerators: Accelerators | None = None
    gpu_ram: VramGb | None = None
    cpus: Cpus = Decimal(1)
    memory: Gigabytes = Decimal(1)
    disk: Gigabytes = Decimal(1)
    # SkyPilot's any_of/ordered (see pasar.core.skypilot): whole resources the job would take
    # instead; ``pick`` says how the market chooses one when it matches (pasar.core.alternatives)
    alternatives: tuple[Resources, ...] | None = None
    pick: Annotated[Pick, BeforeValidator(choice(get_args(Pick), "cheapest or ordered"))] | None = (
        None
    )

    @model_validator(mode="after")
    def _alternatives_flat(self) -> Resources:
        """One level of alternatives, at most :data:`MAX_ALTERNATIVES`, and a pick with them."""
        alts = self.alternatives
        if (alts is None) != (self.pick is None):
            refuse(
                "conflicting_fields",
                "alternatives and pick go together",
                "write resources.any_of: [...] (or ordered:) and pasar sets both",
            )
        if alts is None:
            return self
        if not alts or len(alts) > MAX_ALTERNATIVES:
            refuse(
                "too_many_alternatives",
                f"expected 1 to {MAX_ALTERNATIVES} alternatives; found {len(alts)}",
            )
        if any(alt.alternatives is not None for alt in alts):
            refuse("nested_alternatives", "an alternative cannot list alternatives of its own")
        return self

    def without_alternatives(self) -> Resources:
        return self.model_copy(update={"alternatives": None, "pick": None})

    @model_validator(mode="before")
    @classmethod
    def _gpu_ram_implies_a_gpu(cls, value: object) -> object:
        """``gpu_ram: 24+`` alone asks for one GPU (of any model) with that much VRAM."""
        if (
            isinstance(value, Mapping)
            and value.get("gpu_ram") is not None
            and value.get("accelerators") is None
        ):
            return {**value, "accelerators": {"count": 1}}
        return value

    @model_validator(mode="after")
    def _gpu_ram_reachable(self) -> Resources:
        if self.gpu_ram is None or self.accelerators is None:
            return self
        selectors = self.accelerators.selectors()
        best = {s.canonical: s.vram_gb or max(FAMILY_BY_NAME[s.family].vram_gb) for s in selectors}
        if not best:
            largest = max(max(f.vram_gb) for f in FAMILY_BY_NAME.values())
            best = {"the largest known GPU": largest}
        if all(gb < self.gpu_ram for gb in best.values()):
            refuse(
                "unsatisfiable",
                f"gpu_ram asks for at least {self.gpu_ram} GB per GPU, but "
                + ", ".join(f"{name} has {gb} GB" for name, gb in best.items()),
                "lower gpu_ram or accept a larger GPU model",
            )
        return self


_MEASUREMENT = re.compile(r"^(?:[0-9a-f]{64}|[0-9a-f]{96})$")


def _measurement(value: object) -> str:
    if not isinstance(value, str) or not _MEASUREMENT.match(value.strip().lower()):
        refuse(
            "invalid_value",
            f"expected a measurement in hex (64 hex digits for SGX, 96 for TDX); found "
            f"{describe_value(value)}",
            "copy it from `pasar tee verify QUOTE --collateral FILE` of a trusted build",
        )
    return value.strip().lower()


Measurement = Annotated[str, PlainValidator(_measurement)]
Measurements = Annotated[tuple[Measurement, ...], BeforeValidator(list_of("measurements"))]


class TeePins(_Model):
    """``tee:`` in a spec: the measurements a ``verification: tee`` job accepts, each an any-of
    list (a provider whose attested value is not listed is excluded, with the reason). TDX:
    ``mrtd``, ``rtmr0``-``rtmr3``; SGX: ``mrenclave``, ``mrsigner``. Unset: any measurement."""

    mrtd: Measurements | None = None
    rtmr0: Measurements | None = None
    rtmr1: Measurements | None = None
    rtmr2: Measurements | None = None
    rtmr3: Measurements | None = None
    mrenclave: Measurements | None = None
    mrsigner: Measurements | None = None

    def pinned(self) -> dict[str, tuple[str, ...]]:
        """``{measurement name: accepted values}`` for the ones the spec pins."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


PRIVATE_FIELDS = frozenset(
    {
        "setup",
        "run",
        "workdir",
        "file_mounts",
        "envs",
        "secrets",
        "inputs",
        "outputs",
        "compare",
        "pip",
    }
)
"""Parts of a spec only the job's parties may read (DESIGN.md §4, "Reads")."""
PRIVATE_COMMAND = "# private: only the lease's provider reads the command"


class Output(_Model):
    """One entry of ``outputs``: a path (``model.pt``) or ``{path: log.txt, optional: true}``.

    Why a mapping and not a marker in the name: a path may contain any character, and YAML
    users already write ``{key: value}`` everywhere in a spec. A required output the job does
    not write fails the lease (``missing_outputs``, the job's fault); a missing optional one is
    a warning. A required output is serialized as its bare path, so every spec written before
    optional outputs existed keeps its canonical form (and its digest)."""

    path: OutputPath
    optional: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _bare_path(cls, value: object) -> object:
        if isinstance(value, Mapping):
            return value
        if isinstance(value, str):  # checked here, so an error names the entry (outputs[0])
            return {"path": _output_path(_text("a path")(value))}
        refuse(
            "invalid_type",
            f"expected a path or {{path: ..., optional: true}}; found {describe_value(value)}",
            "e.g. outputs: [model.pt, {path: debug.log, optional: true}]",
        )

    @model_serializer(mode="plain")
    def _serialize(self) -> str | dict[str, Any]:
        return {"path": self.path, "optional": True} if self.optional else self.path

    def __str__(self) -> str:
        return self.path


def _pip(value: object) -> tuple[str, ...]:
    """``pip:`` checked by :func:`pasar.core.pip_requirements.check_requirements` (no options,
    URLs, paths or markers: the provider alone chooses where wheels come from), normalised."""
    try:
        return check_requirements(value, "pip")
    except PasarError as exc:
        refuse("bad_requirement" if exc.code == "invalid" else exc.code, exc.message, exc.hint)


_OUTPUTS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "anyOf": [
            {"type": "string"},
            {
                "type": "object",
                "properties": {"path": {"type": "string"}, "optional": {"type": "boolean"}},
                "required": ["path"],
                "additionalProperties": False,
            },
        ]
    },
}


#: ``JobSpec.from_public``'s recent results (a bounded memo: see pasar.core.spec_memo)
_PUBLIC_SPECS: ParseMemo[JobSpec] = ParseMemo()


class JobSpec(_Model):
    """A job: see the module docstring for the YAML forms each field accepts."""

    name: Annotated[Text, AfterValidator(job_name)] | None = None
    resources: Resources = Field(default_factory=Resources)
    image: Annotated[Text, AfterValidator(image_name)] | None = None
    setup: Text | None = None
    run: Text
    workdir: PathText | None = None
    # SkyPilot's: {destination in the job: local file or folder}, uploaded like inputs
    file_mounts: Annotated[dict[MountTarget, MountSource], AfterValidator(mounts_apart)] | None = (
        None
    )
    envs: dict[EnvName, EnvValue] = Field(default_factory=dict)
    # pip requirements the provider installs (binary wheels only) and puts on PYTHONPATH
    pip: Annotated[tuple[str, ...], BeforeValidator(_pip)] | None = None
    # SkyPilot's: set in the job's environment like envs, but private (never on the public
    # chain: PRIVATE_FIELDS) and never printed by pasar
    secrets: dict[EnvName, EnvValue] | None = None
    inputs: Annotated[tuple[PathText, ...], BeforeValidator(list_of("local paths"))] = ()
    # a path, or {path: ..., optional: true}: see :class:`Output`
    outputs: Annotated[
        tuple[Output, ...], BeforeValidator(list_of("paths")), WithJsonSchema(_OUTPUTS_SCHEMA)
    ] = ()
    max_price_per_hour: MoneyField
    max_duration: Seconds
    num_nodes: StrictInt = Field(default=1, ge=1)
    shards: StrictInt = Field(default=1, ge=1)
    pricing: (
        Annotated[Pricing, BeforeValidator(choice(get_args(Pricing), "a pricing mechanism"))] | None
    ) = None
    verification: Annotated[str, PlainValidator(verification_policy)] | None = None
    # per output: how a verifier's re-run is compared with it ("exact", "numeric:rtol=1e-5")
    compare: dict[OutputPath, Annotated[str, PlainValidator(compare_rule)]] | None = None
    privacy: Annotated[Privacy, BeforeValidator(choice(get_args(Privacy), "a privacy mode"))] = (
        "none"
    )
    network: StrictBool = False
    # a Ray cluster across the nodes, started before run (providers that offer it only)
    cluster: (
        Annotated[ClusterKind, BeforeValidator(choice(get_args(ClusterKind), "a cluster kind"))]
        | None
    ) = None
    # a lost node of a multi-node job: end the job (fail, the default: None) or lease another
    on_node_loss: (
        Annotated[NodeLoss, BeforeValidator(choice(get_args(NodeLoss), "fail or replace"))] | None
    ) = None
    # accepted TEE measurements (verification: tee); see :class:`TeePins`
    tee: TeePins | None = None
    # a multi-node job's nodes: each on a provider of its own (strict_spread, the default:
    # None) or several on one provider where it ranks best (spread); see :attr:`shares_providers`
    placement: Annotated[Placement, BeforeValidator(placement_choice)] | None = None

    # what reading the file decided for the user (pasar.core.skypilot): shown, never signed
    _notes: tuple[str, ...] = PrivateAttr(default=())

    FIELD_HINTS: ClassVar[dict[str, str]] = {
        "run": "add the command to run, e.g. run: python train.py",
        "max_price_per_hour": (
            'add the most one lease may cost per hour, e.g. max_price_per_hour: "1.5 USDC" '
            "(pasar launch decides it from the market's quote when the file has none)"
        ),
        "max_duration": (
            "add how long the job may run, e.g. max_duration: 2h (pasar launch takes "
            "default_duration from pasar config when the file has none)"
        ),
    }

    @field_validator("file_mounts", mode="before")
    @classmethod
    def _mounts_mapping(cls, value: object) -> object:
        if value is None or isinstance(value, Mapping):
            return value
        refuse(
            "invalid_type",
            f"expected a mapping of destination: local path; found {describe_value(value)}",
            "e.g. file_mounts: {/data: ./data, ~/.config/app.toml: app.toml}",
        )

    @field_validator("envs", "secrets", mode="before")
    @classmethod
    def _envs_mapping(cls, value: object) -> object:
        if isinstance(value, Mapping) or value is None:
            return value
        refuse(
            "invalid_type",
            f"expected a mapping of NAME: value; found {describe_value(value)}",
            "e.g. envs: {EPOCHS: 10}",
        )

    @field_validator("placement", mode="after")
    @classmethod
    def _placement_of_nodes(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A placement places the nodes of a gang; a one-node job has nothing to place, and
        silently ignoring the field would hide a spec that lost its ``num_nodes``."""
        nodes = info.data.get("num_nodes")
        if value is not None and nodes == 1:
            refuse(
                "conflicting_fields",
                f"placement: {value} places the nodes of a multi-node job, and this job has "
                "one node (num_nodes: 1)",
                "set num_nodes above 1, or leave placement out",
            )
        return value

    @field_validator("envs", "secrets", mode="after")
    @classmethod
    def _envs_sorted(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else dict(sorted(value.items()))

    @model_validator(mode="after")
    def _compare_outputs(self) -> JobSpec:
        """A tolerance is for an output the job declares, and for a file of numbers."""
        for path, rule in (self.compare or {}).items():
            declared = any(
                path == out.path or path.startswith(out.path.rstrip("/") + "/")
                for out in self.outputs
            )
            if not declared:
                refuse(
                    "invalid_value",
                    f"compare names {path!r}, which is not one of the job's outputs",
                    "list it under outputs, or remove it from compare",
                )
            if rule != "exact" and not is_numeric_file(path):
                refuse(
                    "invalid_value",
                    f"compare: a numeric tolerance applies to files of numbers "
                    f"({', '.join(NUMERIC_SUFFIXES)}), not {path!r}",
                    f"compare {path!r} exactly (leave it out of compare) or write the numbers "
                    "to a .csv or .npy file",
                )
        return self

    @model_validator(mode="after")
    def _pip_without_image(self) -> JobSpec:
        """pip installs for the provider's own Python; an image brings its own Python."""
        if self.pip and self.image is not None:
            refuse(
                "conflicting_fields",
                "pip installs packages for the provider's Python, which an image job does not run",
                "install the packages in the image, or leave image out",
            )
        return self

    @model_validator(mode="after")
    def _one_split(self) -> JobSpec:
        if self.num_nodes > 1 and self.shards > 1:
            refuse(
                "conflicting_fields",
                f"a job is either one cluster of num_nodes ({self.num_nodes}) or independent "
                f"shards ({self.shards}), not both",
                "set num_nodes for a multi-node cluster, or shards for independent parts",
            )
        return self

    # -- building --------------------------------------------------------------------------------

    @classmethod
    def build(cls, **fields: Any) -> JobSpec:
        """The SDK's constructor: like ``JobSpec(**fields)`` but every problem is one SpecError
        (direct construction raises pydantic's ValidationError, as any pydantic model does)."""
        return _validate(fields, "<python>", {})

    @classmethod
    def from_dict(cls, data: object, *, source: str = "<spec>") -> JobSpec:
        """Validate plain data (the SDK's or a parsed file's); every problem in one SpecError."""
        return _validate(data, source, {})

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<yaml>") -> JobSpec:
        return load_spec(text, source)

    # -- normalized form -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON-able form: money as text, duration in seconds, defaults explicit,
        unset optional fields left out. :func:`load_spec` reads it back to an equal spec."""
        return self.model_dump(mode="json", exclude_none=True)

    def public_dict(self) -> dict[str, Any]:
        """What anyone deciding whether to bid may see: requirements, price, duration, policy
        — never the command, setup, environment, inputs or outputs (:data:`PRIVATE_FIELDS`)."""
        return {k: v for k, v in self.to_dict().items() if k not in PRIVATE_FIELDS}

    @classmethod
    def from_public(cls, data: object, *, source: str = "<public spec>") -> JobSpec:
        """A spec from its :meth:`public_dict` (or a full one): enough to fit, price and bid.

        The command is private, so a public part has none; it stands in as
        :data:`PRIVATE_COMMAND`, which nothing ever runs (a lease's provider reads the full spec).
        """
        if isinstance(data, Mapping) and "run" not in data:
            data = {**data, "run": PRIVATE_COMMAND}
        # the market parses one for every order; equal plain data gives an equal (immutable)
        # spec, so recent ones are reused (pasar.core.spec_memo says what keeps that exact)
        parsed = data
        return _PUBLIC_SPECS.parse(data, source, lambda: cls.from_dict(parsed, source=source))

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    # -- what the market needs -------------------------------------------------------------------

    @property
    def notes(self) -> tuple[str, ...]:
        """One line per field the file's reader translated, ignored or defaulted."""
        return self._notes

    def with_notes(self, notes: tuple[str, ...]) -> JobSpec:
        spec = self.model_copy()
        spec._notes = notes
        return spec

    def choices(self) -> tuple[JobSpec, ...]:
        """The specs an order may carry: one per alternative of ``resources`` (in the file's
        order), or this spec itself: what a lease runs under the alternative it got."""
        alts = self.resources.alternatives
        if alts is None:
            return (self,)
        return tuple(
            self.model_copy(update={"resources": alt.without_alternatives()}) for alt in alts
        )

    @property
    def shares_providers(self) -> bool:
        """Whether several nodes of this job may run on one provider (``placement: spread``)."""
        return self.num_nodes > 1 and self.placement == "spread"

    @property
    def lease_count(self) -> int:
        """How many leases the job runs at once: one per node, or one per shard."""
        return self.num_nodes * self.shards

    def to_request(self) -> ResourceRequest:
        """What each lease needs, for :func:`pasar.core.resources.fit`."""
        res = self.resources
        acc = res.accelerators
        return ResourceRequest(
            gpu_count=acc.count if acc else 0,
            gpu_models=acc.selectors() if acc else (),
            min_vram_gb=res.gpu_ram,
            cpus=res.cpus,
            memory_gb=res.memory,
            disk_gb=res.disk,
        )

    def max_escrow_per_lease(self) -> Money:
        """``max_price_per_hour × max_duration``, rounded down to a micro-unit (money.py's rule)."""
        return self.max_price_per_hour.scale(Fraction(self.max_duration, SECONDS_PER_HOUR))

    def max_escrow(self) -> Money:
        """What the market escrows for the whole job: the per-lease cap × :attr:`lease_count`."""
        return self.max_escrow_per_lease() * self.lease_count

    @property
    def replication_rate(self) -> Fraction | None:
        """The share of jobs re-run by a verifier under ``replicate:RATE``; None otherwise."""
        if self.verification is None or not self.verification.startswith("replicate:"):
            return None
        return Fraction(Decimal(self.verification.partition(":")[2]))


# -- loading and error reporting -------------------------------------------------------------------

_MODELS_AT: dict[tuple[str, ...], type[BaseModel]] = {
    (): JobSpec,
    ("resources",): Resources,
    ("resources", "accelerators"): Accelerators,
}
_SKYPILOT_KEYS = {  # SkyPilot's names: a typo of one is pointed at it, which adapt() reads
    (): ("secrets", "event_callback", "service", "config"),
    ("resources",): (
        "any_of", "ordered", "candidates", "disk_size", "image_id", "max_hourly_cost",
        "use_spot", "cloud", "region", "zone", "infra", "instance_type",
    ),
}  # fmt: skip


#: field names people bring from other tools (Kubernetes, SkyPilot, Modal), and ours
_SAID_INSTEAD = {
    "gpus": "accelerators",
    "gpu": "accelerators",
    "accelerator": "accelerators",
    "ram": "memory",
    "mem": "memory",
    "vram": "gpu_ram",
    "cpu": "cpus",
    "command": "run",
    "cmd": "run",
    "env": "envs",
    "environment": "envs",
}


def _detail(err: Any, lines: Mapping[tuple[str | int, ...], int]) -> ErrorDetail:
    loc = tuple(p for p in err["loc"] if p != "[key]")
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    hint: str | None = ctx.get("hint")
    found = describe_value(err.get("input"))
    field = dotted(loc) or None
    if kind == "extra_forbidden":
        key = str(loc[-1])
        at = tuple(str(p) for p in loc[:-1])
        if len(at) >= 3 and at[:2] == ("resources", "alternatives"):
            at = ("resources",)  # resources.alternatives[i] is a Resources
        model = _MODELS_AT.get(at)
        valid = sorted(model.model_fields) if model is not None else []
        near_valid = [*valid, *_SKYPILOT_KEYS.get(at, ())]
        near = _SAID_INSTEAD.get(key.lower()) if _SAID_INSTEAD.get(key.lower()) in valid else None
        near = near or nearest(key, near_valid)
        message = f"unknown field {key!r}" + (
            f"; expected one of: {', '.join(valid)}" if valid else ""
        )
        hint = f"did you mean {near!r}?" if near else None
        return ErrorDetail("unknown_field", message, field, hint, line_of(lines, loc))
    if kind == "missing":
        key = str(loc[-1]) if loc else ""
        return ErrorDetail(
            "missing_field",
            f"missing required field {key!r}",
            field,
            JobSpec.FIELD_HINTS.get(key),
            line_of(lines, loc[:-1]),
        )
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        message = f"expected a mapping of fields; found {found}"
        return ErrorDetail("invalid_type", message, field, hint, line_of(lines, loc))
    message = str(err["msg"])
    if kind.startswith(
        ("int_", "bool_", "greater_than", "less_than", "string_", "list_", "tuple_")
    ):
        text = message.removeprefix("Input should be ")
        message = (
            f"expected {text}; found {found}" if text != message else f"{message}; found {found}"
        )
        kind = "invalid_value"
    return ErrorDetail(kind, message, field, hint, line_of(lines, loc))


def _validate(data: object, source: str, lines: Mapping[tuple[str | int, ...], int]) -> JobSpec:
    adapted = adapt(data, lines, source)  # SkyPilot's fields as pasar's, with notes
    if adapted.required:  # a null env: only a draft may leave it open (to launch's --env)
        from pasar.core.spec_draft import Draft  # it builds on this module

        draft = Draft({}, source, adapted.lines, adapted.notes, adapted.required)
        if (unmet := draft.unmet()) is not None:
            raise unmet
    return validate_adapted(adapted.data, source, adapted.lines).with_notes(adapted.notes)


def validate_adapted(
    data: object, source: str, lines: Mapping[tuple[str | int, ...], int]
) -> JobSpec:
    if not isinstance(data, Mapping):
        raise SpecError.of(
            source,
            [
                ErrorDetail(
                    "invalid_type",
                    f"expected a mapping of fields at the top level; found {describe_value(data)}",
                    hint="a job spec is key: value pairs, e.g. run: echo hello",
                    line=lines.get(()),
                )
            ],
        )
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise spec_error_from(exc, source, lines) from None


def spec_error_from(
    exc: ValidationError,
    source: str = "<spec>",
    lines: Mapping[tuple[str | int, ...], int] | None = None,
) -> SpecError:
    """Turn pydantic's ValidationError for a JobSpec (e.g. an API body) into our SpecError."""
    lines = lines or {}
    details = [_detail(err, lines) for err in exc.errors(include_url=False)]
    details.sort(key=lambda d: (d.line if d.line is not None else 0, d.field or ""))
    return SpecError.of(source, details)


def load_spec(text: str, source: str = "<spec>") -> JobSpec:
    """Parse and validate YAML text; ``source`` (usually the file name) is named in errors.
    The spec must be complete (:func:`pasar.core.spec_draft.load_draft` reads one that leaves
    its price cap and duration to the client)."""
    loaded = load_yaml(text, source)
    return _validate(loaded.data, source, loaded.lines)
