"""An ``order.create`` body for a raw HTTP client: the private part uploaded, the rest returned.

:meth:`pasar.Client.launch` is how users send orders (it also uploads local inputs). Tools that
speak the HTTP API directly — benchmarks that pre-sign thousands of orders, tests that attack
the API — still need an order's private part (:mod:`pasar.core.private_part`) stored before
the order names it; this is the one place that does it for them.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from pasar.client.transport import Transport
from pasar.core.private_part import PrivatePart, order_fields
from pasar.core.spec import PRIVATE_FIELDS, JobSpec
from pasar.crypto.identity import Identity


def upload_private_part(transport: Transport, identity: Identity, part: PrivatePart) -> None:
    """Store ``part`` at the market under its commitment, uploaded by ``identity``."""
    transport.request(
        "PUT", f"/v1/blobs/{part.commitment}", signer=identity, content=part.to_bytes()
    )


def prepared_order(
    transport: Transport,
    identity: Identity,
    spec: JobSpec | Mapping[str, Any],
    inputs: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The fields of an ``order.create`` body for ``spec`` (type included), once its private
    part — with the input manifest ``inputs`` and a fresh salt — is uploaded by ``identity``.

    A :class:`JobSpec` is sent in its normalized form. A mapping is split as it is, without
    checking it here: a raw client's spec is for the market to judge (that is what tests of
    its refusals need)."""
    salt = secrets.token_bytes(32)
    if isinstance(spec, JobSpec):
        part = PrivatePart.of(spec, [dict(i) for i in inputs], salt)
        fields = order_fields(spec, part)
    else:
        private = {k: v for k, v in spec.items() if k in PRIVATE_FIELDS}
        part = PrivatePart(salt.hex(), private, tuple(dict(i) for i in inputs))
        public = {k: v for k, v in spec.items() if k not in PRIVATE_FIELDS}
        fields = {"spec": public, "private": part.commitment, "tolerant": bool(spec.get("compare"))}
    upload_private_part(transport, identity, part)
    return {"type": "order.create", **fields}


def send_order(
    transport: Transport,
    identity: Identity,
    spec: JobSpec | Mapping[str, Any],
    inputs: Sequence[Mapping[str, Any]] = (),
    **extra: Any,
) -> Any:
    """:func:`prepared_order`, signed and posted (``extra``: more body fields, e.g. ``ttl_s``);
    the market's answer."""
    body = {**prepared_order(transport, identity, spec, inputs), **extra}
    return transport.post_signed("/v1/orders", body, identity)
