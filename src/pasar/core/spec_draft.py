"""A job spec as written, before the client completes it: a SkyPilot task may leave out its
price cap and duration (:mod:`pasar.client.defaults` decides them, said out loud) and name
``null`` envs and secrets given at launch. Only a complete :class:`~pasar.core.spec.JobSpec`
is ever signed; a :class:`Draft` is checked field by field all the same, so ``pasar spec
check`` reports every other problem before anything is decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pasar.core.errors import ErrorDetail
from pasar.core.skypilot import adapt
from pasar.core.spec import JobSpec, validate_adapted
from pasar.core.spec_yaml import SpecError, line_of, load_yaml

#: what a draft without a price cap or a duration is checked with (:meth:`Draft.checked`)
_PLACEHOLDERS = {"max_price_per_hour": "1 USDC", "max_duration": 3600}
DEFAULTED_FIELDS = tuple(_PLACEHOLDERS)


@dataclass(frozen=True)
class Draft:
    """A spec as written, before the client fills what a SkyPilot task leaves out (its price
    cap and duration: :mod:`pasar.client.defaults`). Only a complete spec is ever signed."""

    data: Mapping[str, Any]
    source: str
    lines: Mapping[tuple[str | int, ...], int]
    notes: tuple[str, ...] = ()
    required: tuple[str, ...] = ()  # envs.X / secrets.X the file leaves to launch (null)

    @classmethod
    def of(
        cls,
        data: object,
        source: str = "<spec>",
        lines: Mapping[tuple[str | int, ...], int] | None = None,
    ) -> Draft:
        """Translate SkyPilot's fields (:func:`pasar.core.skypilot.adapt`) and check the rest:
        every problem but a missing price cap or duration is raised now."""
        adapted = adapt(data, lines or {}, source)
        draft = cls(
            adapted.data if isinstance(adapted.data, Mapping) else {},
            source,
            adapted.lines,
            adapted.notes,
            adapted.required,
        )
        if not isinstance(adapted.data, Mapping):
            validate_adapted(adapted.data, source, adapted.lines)  # raises, naming the type
        draft.checked()
        return draft

    @property
    def missing(self) -> tuple[str, ...]:
        """The fields the client must decide (in :data:`DEFAULTED_FIELDS`' order)."""
        return tuple(k for k in DEFAULTED_FIELDS if k not in self.data)

    def with_fields(self, **fields: Any) -> Draft:
        return replace(self, data={**self.data, **fields})

    def unmet(self) -> SpecError | None:
        """The ``null`` envs and secrets still without a value, as one error naming each."""
        details = []
        for field in self.required:
            key, _, name = field.partition(".")
            if name not in (self.data.get(key) or {}):
                flag = "--env" if key == "envs" else "--secret"
                details.append(
                    ErrorDetail(
                        "missing_value",
                        f"{field} has no value in the file (null): it is given at launch",
                        field,
                        f"pass {flag} {name}=VALUE to pasar launch (or set it in the spec)",
                        line_of(self.lines, (key, name)),
                    )
                )
        return SpecError.of(self.source, details) if details else None

    def spec(self, **fill: Any) -> JobSpec:
        """The complete spec; ``fill`` gives fields the draft lacks (a missing one is refused,
        with the hint that launch would decide it)."""
        if (unmet := self.unmet()) is not None:
            raise unmet
        data = {**self.data, **{k: v for k, v in fill.items() if k not in self.data}}
        return validate_adapted(data, self.source, self.lines).with_notes(self.notes)

    def checked(self) -> JobSpec:
        """The spec with placeholders for the fields the client decides: every other field
        checked, for ``pasar spec check`` (the placeholders are never sent; ``null`` envs may
        stay unmet)."""
        return replace(self, required=()).spec(**_PLACEHOLDERS)


def load_draft(text: str, source: str = "<spec>") -> Draft:
    """Parse YAML text into a checked :class:`Draft` (SpecError for any problem)."""
    loaded = load_yaml(text, source)
    return Draft.of(loaded.data, source, loaded.lines)
