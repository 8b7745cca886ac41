"""Failure receipts: how a lease that ran but could not deliver a result ends.

Why a receipt and not silence: before failure receipts, an executor that raised after the job
ran (an output named ``a\\b``, an output over the blob limit) sent nothing, so the market marked
the lease *lost* — the provider went unpaid, lost reputation, was taken off the market, and the
order walked to the next provider, which failed the same way, until the whole fleet was out.

A failure receipt is an ordinary signed receipt with one more field::

    "failure": {"reason": "output_rejected", "fault": "job", "detail": "output 'a\\\\b': ..."}

``reason`` is one of :data:`FAILURE_FAULTS`; ``fault`` must be the one this table assigns to
that reason (the provider signs what it accepts as the cause, and the market checks it, so a
receipt cannot both say ``internal_error`` and dodge the reputation cost); ``detail`` is free
text for people, at most :data:`MAX_DETAIL_CHARS`.

What each fault means at the market (:func:`pasar.core.lease_handlers.on_receipt`):

- ``job``: the job itself cannot produce a result (a bad output name, a FIFO as output, an
  output over the blob limit, conflicting inputs, a required output a job exiting 0 never
  wrote, a ``pip:`` requirement with no binary wheel the provider can install). The provider
  is paid for its verified seconds and keeps its reputation (``completed``, as for a job that
  exits non-zero); the shard is **not** re-queued: every provider would fail it the same way.
- ``provider``: the provider's own machinery broke (``internal_error``). It is paid for its
  verified seconds, takes a ``failed`` reputation event, and the shard is re-queued on what is
  left of its escrow, as for a ``lease.release``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pasar.core.market_records import fail

Fault = Literal["job", "provider"]

#: Every failure reason a receipt may carry, and whose fault it is (fixed: an audit must agree).
FAILURE_FAULTS: Mapping[str, Fault] = {
    "output_rejected": "job",  # an output name or file type no result can carry
    "output_too_large": "job",  # an output file over the market's blob limit
    "input_conflict": "job",  # inputs such as 'a' and 'a/b': one path is the other's folder
    "missing_outputs": "job",  # the job exited 0 without writing a required output
    "pip_install_failed": "job",  # a pip requirement has no binary wheel, or none was found
    "internal_error": "provider",  # the provider's executor failed on its own
    "client_key_missing": "job",  # a sealed job's client never sealed the data key to the lease
    "sealed_data_invalid": "job",  # a sealed job's key or data does not open (any provider)
}
#: Failures whose receipt carries what the job *did* write (and its root), held for a check
#: like any result under a re-running policy. Why: "the job did not write out.txt" is a claim a
#: provider could make to keep an output it did not want to upload (or compute); a verifier's
#: re-run then writes the same files, or more, and the roots decide.
CHECKED_FAILURES = frozenset({"missing_outputs"})
MAX_DETAIL_CHARS = 2000
_KEYS = frozenset({"reason", "fault", "detail"})


@dataclass(frozen=True)
class Failure:
    """A receipt's checked ``failure`` field."""

    reason: str
    fault: Fault
    detail: str

    def summary(self) -> str:
        """``output_rejected (job's fault): detail`` — what an order's note says."""
        text = f"{self.reason} ({self.fault}'s fault)"
        return f"{text}: {self.detail}" if self.detail else text


def parse_failure(data: object) -> Failure | None:
    """The ``failure`` field of a receipt body, checked strictly (a 400 naming the field)."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise _bad("failure must be an object {reason, fault, detail}", "failure")
    unknown = sorted(str(k) for k in data if k not in _KEYS)
    if unknown:
        raise _bad(f"unknown field {unknown[0]!r} in failure", f"failure.{unknown[0]}")
    reason: Any = data.get("reason")
    if not isinstance(reason, str) or reason not in FAILURE_FAULTS:
        raise fail(
            f"unknown failure reason {reason!r}",
            code="invalid_receipt",
            field="failure.reason",
            hint="one of: " + ", ".join(sorted(FAILURE_FAULTS)),
        )
    fault = FAILURE_FAULTS[reason]
    if data.get("fault") != fault:
        raise fail(
            f"a {reason!r} failure is the {fault}'s fault, not {data.get('fault')!r}",
            code="invalid_receipt",
            field="failure.fault",
            hint=f'send "fault": "{fault}"',
        )
    detail = data.get("detail", "")
    if not isinstance(detail, str) or len(detail) > MAX_DETAIL_CHARS:
        raise _bad(
            f"failure.detail must be text of at most {MAX_DETAIL_CHARS} characters",
            "failure.detail",
        )
    return Failure(reason=reason, fault=fault, detail=detail)


def _bad(message: str, field: str) -> Exception:
    return fail(message, code="invalid_receipt", field=field)
