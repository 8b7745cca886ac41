"""The one HTTP transport of the SDK and CLI: JSON in, JSON out, errors as PasarError.

Everything that talks to a market goes through :class:`Transport`, so tests can swap in
httpx's ``MockTransport`` and every caller gets the market's error shape back as the same
:class:`~pasar.core.errors.PasarError` the market raised — code, field and hint intact.
"""

from __future__ import annotations

from typing import Any

import httpx

from pasar.core.errors import ErrorDetail, PasarError
from pasar.crypto.envelope import sign, wall_clock_ms
from pasar.crypto.identity import Identity

DEFAULT_TIMEOUT_S = 30.0


def _error_from(response: httpx.Response) -> PasarError:
    try:
        data = response.json()
        err = data["error"]
        details = [
            ErrorDetail(
                code=str(d.get("code", "invalid")),
                message=str(d.get("message", "")),
                field=d.get("field"),
                hint=d.get("hint"),
                line=d.get("line"),
            )
            for d in err.get("details", [])
            if isinstance(d, dict)
        ]
        return PasarError(
            str(err.get("message", "")),
            code=str(err.get("code", "error")),
            field=err.get("field"),
            hint=err.get("hint"),
            details=details,
            status=response.status_code,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return PasarError(
            f"the market answered {response.status_code}: {response.text[:200]}",
            code="bad_response",
            status=response.status_code,
        )


class Transport:
    """A market's HTTP API at ``base_url``."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http or httpx.Client(base_url=self.base_url, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise PasarError(
                f"the market at {self.base_url} did not answer in time ({type(exc).__name__})",
                code="timeout",
                status=504,
            ) from None
        except httpx.TransportError as exc:
            raise PasarError(
                f"cannot reach the market at {self.base_url}: {exc}",
                code="unreachable",
                status=503,
                hint="check the URL (PASAR_MARKET) and that the market is running",
            ) from None
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    def get(self, path: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.request("GET", path, params=params or {}, **kwargs).json()

    def post_signed(
        self, path: str, body: dict[str, Any], identity: Identity, **kwargs: Any
    ) -> Any:
        """POST ``body`` as a signed envelope (fresh nonce, the wall clock's ``ts``)."""
        envelope = sign(body, identity, now_ms=wall_clock_ms())
        return self.request("POST", path, json=envelope, **kwargs).json()
