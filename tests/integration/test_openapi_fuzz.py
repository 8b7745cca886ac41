"""Fuzz every operation of the live market's ``/openapi.json`` with schemathesis.

Whatever schemathesis generates — valid inputs (positive mode) and inputs that break the schema
(negative mode) — the market must answer without a 5xx: bad input is the client's problem and
must be said so, never crash the server. Examples per operation are bounded so the run stays
well under a minute; the server is one real ``pasar market serve`` shared by the module.

The operations are read from the running server, so the coordinator's routes are fuzzed as
soon as ``serve.build_app`` mounts them. (schemathesis's own pytest plugin,
``schemathesis.pytest.from_fixture``, does not work with pytest 9, hence the explicit loop over
``get_all_operations`` with a hypothesis test per operation.) A query parameter named
``timeout`` is taken to be a long poll's wait in seconds and pinned to 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

if TYPE_CHECKING:
    from conftest import MarketProcess

MAX_EXAMPLES = 25
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same inputs every run, so a failure here is reproducible
    database=None,
)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(module_market: MarketProcess, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{module_market.url}/openapi.json")
    failures: list[str] = []
    fuzzed = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        # Long polls (`?timeout=` seconds) would make every example wait: pin them to 0.
        pinned = {"timeout": 0} if any(p.name == "timeout" for p in operation.query) else None

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy(generation_mode=mode, query=pinned))
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call(base_url=module_market.url, timeout=10)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            fuzz()
            fuzzed += 1
        except Unsatisfiable:  # nothing to make invalid (e.g. no parameters, no body)
            continue
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
    if mode is GenerationMode.POSITIVE:
        assert fuzzed >= 3  # healthz, PUT/GET/HEAD blobs at least
