"""One error shape for the whole of pasar.

Every user-facing failure is a :class:`PasarError`: the CLI prints it and exits 2, the API
returns it as ``{"error": {"code", "message", "field"?, "hint"?}}`` with a 4xx status. Keeping
a single type means no layer needs to translate between error families, and a hint written once
reaches the user whichever way they came in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorDetail:
    """One problem among several (e.g. every mistake of a job spec, reported in one run)."""

    code: str
    message: str
    field: str | None = None
    hint: str | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        if self.hint is not None:
            out["hint"] = self.hint
        if self.line is not None:
            out["line"] = self.line
        return out


class PasarError(Exception):
    """A failure the user can act on: what went wrong, where, and what to do about it."""

    default_status = 400  # the HTTP status the API answers with, unless told otherwise

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        field: str | None = None,
        hint: str | None = None,
        details: list[ErrorDetail] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.hint = hint
        self.details: list[ErrorDetail] = list(details or [])
        self.status = status if status is not None else self.default_status

    def __str__(self) -> str:
        """The message and, when there is one, the hint: an SDK user who only sees the
        exception (a traceback, a log line) gets the way out too, as the CLI shows it."""
        return self.message if self.hint is None else f"{self.message} (hint: {self.hint})"

    def to_dict(self) -> dict[str, Any]:
        """The wire shape: ``{"error": {...}}``."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.hint is not None:
            body["hint"] = self.hint
        if self.details:
            body["details"] = [d.to_dict() for d in self.details]
        return {"error": body}

    def render(self) -> str:
        """A one-paragraph plain-text form for terminals and logs."""
        lines = [f"error: {self.message}"]
        for d in self.details:
            where = f"line {d.line}, " if d.line is not None else ""
            at = f"{where}{d.field}: " if d.field else where
            lines.append(f"  - {at}{d.message}" + (f" (hint: {d.hint})" if d.hint else ""))
        if self.field is not None and not self.details:
            lines.append(f"  field: {self.field}")
        if self.hint is not None:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)
