"""What a lease asks the provider for, read from the market's view of it: the job (its spec,
inputs, GPUs, gang), the limits its sandbox gets, and the command it runs.

Split from :mod:`pasar.provider.executor` (which runs a lease from start to receipt): the
verifier's re-run and the agent read these without running anything.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pasar.api.base import JSONObject
from pasar.api.leases import Challenge, GpuDeviceView, LeaseView, NodeView
from pasar.api.receipts import FileEntry
from pasar.core.errors import PasarError
from pasar.core.spec import JobSpec
from pasar.provider.runtime.base import GpuGrant, Limits

GIB = 1 << 30
MAX_PROCESSES = 256
SETUP_FILE = ".pasar-setup.sh"
RUN_FILE = ".pasar-run.sh"


def spec_in_view(spec: JSONObject | None, what: str) -> JobSpec:
    """The job spec the market sent with ``what`` (a lease, a check), validated as any job spec
    is; a view without one is the market's fault (502 ``bad_response``). A sealed job's view
    has only the public part: the executor opens the rest (:meth:`LeaseExecutor._unseal`)."""
    if spec is None:
        raise PasarError(
            f"the market's view of {what} carries no spec", code="bad_response", status=502
        )
    if spec.get("privacy") == "sealed":
        return JobSpec.from_public(spec, source=what)
    return JobSpec.from_dict(spec, source=what)


def spec_of_alternative(spec: JobSpec, alternative: int | None, what: str) -> JobSpec:
    """``spec`` as the lease runs it: with ``resources`` the alternative the market matched it
    under (``resources.alternatives[alternative]``), so its limits, GPUs and environment are
    that alternative's, not the base's. A spec without alternatives is itself; an index the
    spec does not have (or none for a spec with alternatives) is the market's fault (502)."""
    choices = spec.choices()
    if spec.resources.alternatives is None and alternative is None:
        return spec
    if alternative is None or not 0 <= alternative < len(choices):
        raise PasarError(
            f"the market's view of {what} names alternative {alternative!r} of a spec with "
            f"{len(choices) if spec.resources.alternatives is not None else 'no'} alternatives",
            code="bad_response",
            status=502,
        )
    return choices[alternative]


@dataclass(frozen=True)
class LeaseJob:
    """What the executor needs of a lease, read from ``GET /v1/leases/{id}``."""

    lease_id: str
    order_id: str
    shard: int
    shards: int
    spec: JobSpec
    inputs: tuple[FileEntry, ...]
    devices: tuple[GpuDeviceView, ...] = ()  # the GPUs the market allocated: [{index, uuid}]
    private: str = ""  # the address of the spec's private part (a sealed job's: ciphertext)
    nodes: tuple[NodeView, ...] = ()  # a multi-node job's gang, in rank order
    cluster_secret: str | None = None  # what the gang's nodes share (PASAR_CLUSTER_SECRET)
    # small inputs' bytes that came with the view, by sha256 (unchecked: the executor checks
    # each against its sha256 as it would a download, and fetches any that does not match)
    inline: Mapping[str, bytes] = field(default_factory=dict)
    # the heartbeat challenge that came with the view (interval 0's, on the feed's match): the
    # first heartbeat answers it without asking (later ones ask for theirs)
    challenge: Challenge | None = None

    @property
    def sealed(self) -> bool:
        return self.spec.privacy == "sealed"

    @classmethod
    def from_view(cls, view: LeaseView) -> LeaseJob:
        """The job of a lease view (its spec: :func:`spec_in_view`, resolved to the alternative
        the lease got: :func:`spec_of_alternative`)."""
        what = f"lease {view.lease_id}"
        return cls(
            lease_id=view.lease_id,
            order_id=view.order_id,
            shard=view.shard,
            shards=view.shards,
            spec=spec_of_alternative(spec_in_view(view.spec, what), view.alternative, what),
            inputs=tuple(view.inputs),
            devices=tuple(view.devices),
            private=view.private or "",
            nodes=tuple(view.nodes),
            cluster_secret=view.cluster_secret,
            inline=decoded(view.inline_inputs),
            challenge=view.challenge
            if view.challenge is not None and view.challenge.lease_id == view.lease_id
            else None,
        )


def decoded(inline: Mapping[str, str]) -> dict[str, bytes]:
    """The inline inputs' bytes (one that is not base64 is left out: it is fetched)."""
    found: dict[str, bytes] = {}
    for sha256, text in inline.items():
        with contextlib.suppress(binascii.Error, ValueError):
            found[sha256] = base64.b64decode(text, validate=True)
    return found


#: Turns a lease's ``devices`` into the runtime's GPU grants, or raises PasarError for a device
#: this machine did not register (:meth:`pasar.provider.inventory.MachineInventory.grants`).
GpuResolver = Callable[[list[dict[str, Any]]], tuple[GpuGrant, ...]]


def no_gpus(devices: list[dict[str, Any]]) -> tuple[GpuGrant, ...]:
    """The resolver of an agent that registered no GPUs: any device is one it does not have."""
    if devices:
        raise PasarError(
            "the lease names GPUs, but this provider registered none", code="unknown_gpu_device"
        )
    return ()


def limits_for(spec: JobSpec, *, allow_network: bool, gpus: tuple[GpuGrant, ...] = ()) -> Limits:
    """The job's limits from its spec: what it asked for is what it gets, nothing more
    (quantities are exact Decimals; a fraction of a GB or CPU rounds down, to at least 1); the
    GPUs are the lease's, as the market allocated them."""
    resources = spec.resources
    memory_gb = int(resources.memory)
    cpus = max(1, int(resources.cpus))
    disk_gb = max(1, int(resources.disk))
    duration = spec.max_duration
    return Limits(
        memory_bytes=max(1, memory_gb) * GIB,
        cpu_seconds=cpus * duration,
        max_processes=MAX_PROCESSES,
        max_file_bytes=disk_gb * GIB,
        wall_seconds=duration,
        network=spec.network and allow_network,
        gpus=gpus,
        cpus=cpus,  # the whole job's CPU share, where a cgroup can enforce it
        disk_bytes=disk_gb * GIB,  # the whole workdir, not just one file
    )


def job_command(spec: JobSpec) -> str:
    """``setup`` then ``run``, each from a script file in the workdir: ``run`` starts only if
    ``setup`` succeeded, and the job's exit code is the first failure's."""
    if spec.setup:
        return f"sh {SETUP_FILE} && exec sh {RUN_FILE}"
    return f"exec sh {RUN_FILE}"
