"""A private network for the nodes of one multi-node job that share this machine (issue 15).

Why: a gang's nodes must reach each other and nothing else of the provider's — not the
market, not the host's services, not other leases. A sandbox normally gets a network namespace
of its own with only a loopback interface (no network at all). For a gang whose nodes all run
on this machine (every node's address is a loopback address, as on a devnet), each node's
sandbox instead joins one **named network namespace per order** (``ip netns``: a loopback
interface and nothing else): the nodes reach each other at 127.0.0.1, and the host's own
127.0.0.1 (where the market listens) is another namespace's, out of reach.

Creating a named namespace needs root, so only a root-mode provider started with
``--allow-cluster`` offers it; the first node to start creates it (the others find it), and the
head removes its name when its lease ends (a namespace lives on while a process is in it).
Nodes on different machines need a network between the machines — an overlay such as
WireGuard, or public ports — which is not built here: see docs/jobspec.md.
"""

from __future__ import annotations

import hashlib
import ipaddress
import subprocess
from collections.abc import Sequence
from pathlib import Path

from pasar.core.errors import PasarError

NETNS_DIR = Path("/run/netns")
PREFIX = "pasar-gang-"


def netns_name(order_id: str) -> str:
    """The namespace of an order's gang: a hash of its id (names are at most 15 characters
    in ``ip``'s listings; the id is not needed to find it)."""
    return PREFIX + hashlib.sha256(order_id.encode()).hexdigest()[:12]


def on_one_machine(addresses: Sequence[str | None]) -> bool:
    """Whether every node of the gang is on this machine: each address is a loopback one."""
    try:
        return bool(addresses) and all(
            a is not None and ipaddress.ip_address(a).is_loopback for a in addresses
        )
    except ValueError:
        return False


def join_gang_network(order_id: str) -> Path:
    """The path of the order's namespace (``nsenter --net=PATH``), created with its loopback
    up unless another node of the gang made it first."""
    name = netns_name(order_id)
    path = NETNS_DIR / name
    if not path.exists():
        made = _ip("netns", "add", name)
        if made.returncode != 0 and not path.exists():  # not a race with another node
            raise PasarError(
                f"could not create the gang's network namespace: {made.stderr.strip()}",
                code="runtime_failed",
                status=500,
                hint="multi-node jobs on one machine need a root provider with iproute2",
            )
        _ip("-n", name, "link", "set", "lo", "up")
    return path


def leave_gang_network(order_id: str) -> None:
    """Remove the namespace's name (the head, at its lease's end); its processes end with
    their leases, and the namespace with the last of them."""
    _ip("netns", "delete", netns_name(order_id))


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=10)
