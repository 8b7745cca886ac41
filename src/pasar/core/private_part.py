"""A job's private part: what the chain commits to but never carries (issue 12, DESIGN.md §4).

An order transaction is public: anyone may read the chain, and an audit replays it. So it
carries only what matching and audit need — the spec's public requirements (resources, price,
duration, mechanism, verification, shards) — and a **commitment** to the rest::

    private = canonical_json({"salt": 64 hex, "spec": {run, setup, envs, ...}, "inputs": [...]})
    order.create body: {"spec": <public part>, "private": sha256_hex(private), ...}

- ``spec`` holds the spec's :data:`~pasar.core.spec.PRIVATE_FIELDS` (command, setup, workdir,
  environment, local input paths, outputs, tolerances); ``inputs`` is the input manifest
  (``[{path, sha256, size}]``: names and hashes of the uploaded files).
- The **salt** (32 random bytes the client draws) is why the commitment is safe to publish:
  without it, anyone could hash a guessed command or a guessed input file and compare.
- The private part is stored as a blob whose address *is* the commitment, so it travels like an
  input: uploaded by the client, read by the order's parties through authorized reads
  (:mod:`pasar.market.access`), never in a block. Its content address makes the reader's
  download its own check of the commitment.

This module is pure: the client draws the salt, the market reads the blob.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pasar.core.errors import PasarError
from pasar.core.spec import PRIVATE_FIELDS, JobSpec
from pasar.core.tx_parsing import parse_inputs
from pasar.crypto.canonical import CanonicalError, canonical_json, parse_json
from pasar.crypto.hashing import sha256_hex

SALT_HEX_CHARS = 64
#: A private part is a command and its environment, not data: data travels as input blobs.
MAX_PRIVATE_BYTES = 1 << 20
_KEYS = frozenset({"salt", "spec", "inputs"})


def _bad(message: str, field: str, hint: str | None = None) -> PasarError:
    return PasarError(
        message,
        code="invalid_private_part",
        status=422,
        field=f"private.{field}" if field else "private",
        hint=hint or "let the SDK or the CLI build the private part (pasar launch does)",
    )


@dataclass(frozen=True)
class PrivatePart:
    """The private fields of one job spec, its input manifest, and the commitment's salt."""

    salt: str
    spec: Mapping[str, Any]
    inputs: tuple[dict[str, Any], ...] = ()

    @classmethod
    def of(cls, spec: JobSpec, inputs: list[dict[str, Any]], salt: bytes) -> PrivatePart:
        """The private part of ``spec`` with its input manifest, salted with ``salt``."""
        private = {k: v for k, v in spec.to_dict().items() if k in PRIVATE_FIELDS}
        return cls(salt=salt.hex(), spec=private, inputs=parse_inputs(list(inputs)))

    def to_bytes(self) -> bytes:
        """The canonical bytes: what is stored, and what :attr:`commitment` hashes."""
        doc = {"salt": self.salt, "spec": dict(self.spec), "inputs": list(self.inputs)}
        return canonical_json(doc)

    @property
    def commitment(self) -> str:
        return sha256_hex(self.to_bytes())

    def job_spec(self, public: Mapping[str, Any], *, source: str = "<private part>") -> JobSpec:
        """The whole spec: the chain's public part with this private part laid over it."""
        return JobSpec.from_dict({**public, **self.spec}, source=source)

    @classmethod
    def parse(cls, data: bytes) -> PrivatePart:
        """A private part from its stored bytes, strictly checked (a 422 naming the field)."""
        if len(data) > MAX_PRIVATE_BYTES:
            raise _bad(
                f"the private part is {len(data)} bytes; at most {MAX_PRIVATE_BYTES} are taken",
                "",
                "send data as input files, not in envs or the command",
            )
        try:
            doc = parse_json(data, what="the private part")
        except CanonicalError as exc:
            raise _bad(exc.message, exc.field or "") from None
        if not isinstance(doc, Mapping):
            raise _bad("the private part must be an object {salt, spec, inputs}", "")
        unknown = sorted(str(k) for k in doc if k not in _KEYS)
        if unknown:
            raise _bad(f"unknown field {unknown[0]!r} in the private part", unknown[0])
        salt = doc.get("salt")
        if (
            not isinstance(salt, str)
            or len(salt) != SALT_HEX_CHARS
            or set(salt) - set("0123456789abcdef")
        ):
            raise _bad("salt must be 64 lower-case hex digits (32 random bytes)", "salt")
        spec = doc.get("spec")
        if not isinstance(spec, Mapping):
            raise _bad("spec must be an object of the spec's private fields", "spec")
        public = sorted(str(k) for k in spec if k not in PRIVATE_FIELDS)
        if public:
            raise _bad(
                f"spec.{public[0]} is public: it belongs in the order's spec, not here",
                f"spec.{public[0]}",
            )
        try:
            inputs = parse_inputs(doc.get("inputs", []))
        except PasarError as exc:
            raise _bad(exc.message, str(exc.field or "inputs")) from None
        part = cls(salt=salt, spec=dict(spec), inputs=inputs)
        if part.to_bytes() != bytes(data):
            raise _bad("the private part must be canonical JSON (sorted keys, no spaces)", "")
        return part


def private_fields_in(public: Mapping[str, Any]) -> list[str]:
    """The private fields a would-be public spec carries (sorted): none may reach the chain."""
    return sorted(k for k in public if k in PRIVATE_FIELDS)


def is_tolerant(spec: JobSpec | Mapping[str, Any]) -> bool:
    """Whether a verifier compares the outputs itself (the spec has ``compare:`` rules) and
    answers ``matches``: public, so the market checks a verdict without the private part.
    ``spec`` may be a validated spec's :meth:`~JobSpec.to_dict` form."""
    return bool(spec.get("compare") if isinstance(spec, Mapping) else spec.compare)


def order_fields(
    spec: JobSpec | Mapping[str, Any], private: PrivatePart | None = None
) -> dict[str, Any]:
    """The fields of an ``order.create`` body for ``spec``: its public part, the commitment to
    ``private`` and whether verifiers compare within tolerances. What the SDK signs; code that
    drives the state machine without a market (simulations, tests) passes no ``private`` and
    gets a part with no inputs and an all-zero salt (it has no secret to keep)."""
    job = spec if isinstance(spec, JobSpec) else JobSpec.from_dict(spec)
    part = private or PrivatePart.of(job, [], bytes(32))
    return {"spec": job.public_dict(), "private": part.commitment, "tolerant": is_tolerant(job)}
