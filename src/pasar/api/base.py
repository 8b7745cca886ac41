"""What every wire model shares: strict on the server, tolerant in clients.

The market builds its answers from these models, so a misspelt or stray field is a bug there
(``extra="forbid"``). A client may talk to a newer market that added a field: :func:`parse`
validates with ``extra="ignore"``, so an older client keeps working. A reply that does not have
the shape the client needs is the market's fault: a 502 ``bad_response``, never a KeyError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from pasar.core.errors import PasarError

# A JSON object whose shape another component owns (a job spec, which core validates; a block;
# an error's details). Named once so that each such boundary is visible and deliberate.
JSONObject = dict[str, Any]

M = TypeVar("M", bound=BaseModel)


class WireModel(BaseModel):
    """A model of something on the wire (server side: no unknown fields)."""

    # built on first use, not at import: a CLI command that parses one answer does not pay
    # for the schemas of every model it could meet (issue 14.10: the CLI starts in < 300 ms)
    model_config = ConfigDict(extra="forbid", defer_build=True)

    def wire(self) -> JSONObject:
        """The JSON form, with only the fields that were set (omitted stays omitted)."""
        return self.model_dump(mode="json", exclude_unset=True)


class OpenModel(WireModel):
    """A model whose answer carries more than its named fields (a transaction's result, a feed
    event's data): the named ones are typed, the rest pass through."""

    model_config = ConfigDict(extra="allow")


def parse(model: type[M], data: object, *, what: str | None = None) -> M:
    """``data`` (a decoded JSON answer) as ``model``, ignoring fields this version does not know.

    Raises PasarError ``bad_response`` (502) naming the first field that is wrong or missing.
    """
    # a newer market's extra fields are ignored, except in open models (a transaction's answer),
    # whose extra fields are the point
    extra: Literal["ignore"] | None = (
        None if model.model_config.get("extra") == "allow" else "ignore"
    )
    try:
        return model.model_validate(data, extra=extra)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or None
        raise PasarError(
            f"the market's {what or model.__name__} answer is malformed at {where or 'the top'}: "
            f"{first.get('msg')}",
            code="bad_response",
            status=502,
            field=where,
            hint="the market may run an incompatible version of pasar",
        ) from None


def parse_rows(model: type[M], rows: object, *, what: str | None = None) -> list[M]:
    """A JSON list of ``model`` objects (see :func:`parse`)."""
    if not isinstance(rows, list):
        raise PasarError(
            f"the market's {what or model.__name__} answer is not a list",
            code="bad_response",
            status=502,
        )
    return [parse(model, row, what=what) for row in rows]


def as_mapping(data: object) -> Mapping[str, Any]:
    """``data`` if it is a JSON object, else a 502 ``bad_response``."""
    if not isinstance(data, Mapping):
        raise PasarError(
            "the market's answer is not a JSON object", code="bad_response", status=502
        )
    return data
