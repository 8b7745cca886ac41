"""Reading the fields of transaction bodies: amounts, inventories, asks, input manifests.

Bodies come from the network, so every value is checked for its type and range here and a
problem is a 400 naming the dotted field; the transitions in :mod:`pasar.core.state` then work
with typed values only.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pasar.core.errors import PasarError
from pasar.core.market_records import fail
from pasar.core.money import Money
from pasar.core.pricing.book import Asks
from pasar.core.resources import GpuDevice, Inventory
from pasar.crypto.hashing import is_sha256_hex


def parse_amount(value: object, field: str, currency: str) -> Money:
    amount = Money.parse(value, default_currency=currency, field=field)
    if amount.micros <= 0:
        raise fail(f"{field} must be positive", code="invalid_amount", field=field)
    return amount


def parse_inventory(data: object) -> Inventory:
    """``{gpus, devices, cpus, memory_gb, disk_gb}``. ``gpus`` lists one model name per device
    (or maps names to counts); ``devices``, when given, names those GPUs in the same order as
    ``[{index, uuid}]`` (NVML's index and UUID, as the agent registers them). Without it the
    GPUs are indices ``0..n-1``: old registrations and hand-written inventories still work,
    and a market that does not know ``devices`` ignores it."""
    if not isinstance(data, Mapping):
        raise fail("inventory must be an object", code="invalid_inventory", field="inventory")
    gpus = data.get("gpus", [])
    try:
        cpus = _decimal(data.get("cpus", 0), "inventory.cpus")
        memory = _decimal(data.get("memory_gb", 0), "inventory.memory_gb")
        disk = _decimal(data.get("disk_gb", 0), "inventory.disk_gb")
        if isinstance(gpus, Mapping):
            if data.get("devices") is not None:
                raise fail(
                    "inventory.devices needs inventory.gpus as a list, one name per device",
                    code="invalid_inventory",
                    field="inventory.devices",
                )
            return Inventory.build(
                gpus={str(k): int(v) for k, v in gpus.items()},
                cpus=cpus,
                memory_gb=memory,
                disk_gb=disk,
            )
        if not isinstance(gpus, list):
            raise fail(
                "inventory.gpus must be a list or an object",
                code="invalid_inventory",
                field="inventory.gpus",
            )
        devices = _gpu_devices(data.get("devices"), len(gpus))
        try:
            return Inventory.build(
                gpus=[str(g) for g in gpus],
                cpus=cpus,
                memory_gb=memory,
                disk_gb=disk,
                devices=devices,
            )
        except PasarError as exc:
            if exc.field is None and devices:
                exc.field = "inventory.devices"
            raise
    except PasarError as exc:
        if exc.field is None:
            exc.field = "inventory"
        raise


def _gpu_devices(items: object, count: int) -> list[GpuDevice]:
    """``inventory.devices``: one ``{index, uuid}`` per GPU; errors name the entry."""
    if items is None:
        return []
    if not isinstance(items, list) or len(items) != count:
        raise fail(
            f"inventory.devices must list one {{index, uuid}} per GPU ({count})",
            code="invalid_inventory",
            field="inventory.devices",
            hint='e.g. [{"index": 0, "uuid": "GPU-5f1c..."}], in the order of inventory.gpus',
        )
    devices: list[GpuDevice] = []
    for i, item in enumerate(items):
        where = f"inventory.devices[{i}]"
        if not isinstance(item, Mapping) or "index" not in item or set(item) - {"index", "uuid"}:
            raise fail(
                f"{where} must be {{index, uuid}}",
                code="invalid_inventory",
                field=where,
                hint='e.g. {"index": 0, "uuid": "GPU-5f1c..."}',
            )
        try:
            devices.append(GpuDevice(item["index"], item.get("uuid")))
        except PasarError as exc:
            exc.field = where
            raise
    return devices


def _decimal(value: object, field: str) -> Decimal | int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise fail(
            f"{field} must be a whole number or a decimal string",
            code="invalid_inventory",
            field=field,
        )
    return value


def parse_asks(data: object, currency: str) -> Asks:
    if data is None:
        return Asks()
    if not isinstance(data, Mapping):
        raise fail("asks must be an object", code="invalid_asks", field="asks")
    gpu = data.get("gpu", {})
    if not isinstance(gpu, Mapping):
        raise fail("asks.gpu must map GPU models to prices", code="invalid_asks", field="asks.gpu")
    return Asks.build(
        gpu={str(k): str(v) for k, v in gpu.items()},
        cpu_core=None if data.get("cpu_core") is None else str(data["cpu_core"]),
        currency=currency,
    )


def parse_inputs(data: object) -> tuple[dict[str, Any], ...]:
    """The input manifest: ``[{path, sha256, size}]`` of blobs the client uploaded; each is
    placed at ``path`` in the job's working directory."""
    from pasar.crypto.merkle import check_path, path_conflict

    if not isinstance(data, list):
        raise fail(
            "inputs must be a list of {path, sha256, size}", code="invalid_inputs", field="inputs"
        )
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        where = f"inputs[{i}]"
        if not isinstance(item, Mapping) or set(item) - {"path", "sha256", "size", "plain_sha256"}:
            raise fail(
                f"{where} must be {{path, sha256, size}}", code="invalid_inputs", field=where
            )
        path, sha, size = item.get("path"), item.get("sha256"), item.get("size", 0)
        try:
            check_path(path)
        except PasarError as exc:
            raise fail(
                f"{where}.path: {exc.message}", code="invalid_inputs", field=f"{where}.path"
            ) from None
        if not isinstance(sha, str) or len(sha) != 64 or set(sha) - set("0123456789abcdef"):
            raise fail(
                f"{where}.sha256 must be 64 lower-case hex digits",
                code="invalid_inputs",
                field=f"{where}.sha256",
            )
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise fail(
                f"{where}.size must be a whole number of bytes",
                code="invalid_inputs",
                field=f"{where}.size",
            )
        if path in seen:
            raise fail(
                f"{where}.path {path!r} appears twice", code="invalid_inputs", field=f"{where}.path"
            )
        seen.add(str(path))
        entry = {"path": path, "sha256": sha, "size": size}
        if "plain_sha256" in item:  # a sealed job's input: sha256 is of its ciphertext
            if not is_sha256_hex(item["plain_sha256"]):
                raise fail(
                    f"{where}.plain_sha256 must be 64 lower-case hex digits",
                    code="invalid_inputs",
                    field=f"{where}.plain_sha256",
                )
            entry["plain_sha256"] = item["plain_sha256"]
        out.append(entry)
    conflict = path_conflict(seen)
    if conflict is not None:
        folder, inside = conflict
        where = f"inputs[{[o['path'] for o in out].index(inside)}].path"
        raise fail(
            f"{where}: {inside!r} lies inside {folder!r}, which is also an input file",
            code="invalid_inputs",
            field=where,
            hint="a path cannot be both a file and a folder of other inputs",
        )
    return tuple(out)


MAX_OUTPUT_PARTS = 4096


def output_parts(output: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The blobs an output was uploaded as, in order (None when ``parts`` is malformed).

    An output larger than the market's blob limit travels as consecutive parts, each a blob of
    at most the limit; the output's own ``sha256`` (what the receipt's root commits to) is of
    the whole file, which the client checks after joining the parts. A small output has no
    ``parts``: it is the one blob named by its ``sha256``.
    """
    parts = output.get("parts")
    if parts is None:
        return ()
    if (
        not isinstance(parts, list)
        or not 2 <= len(parts) <= MAX_OUTPUT_PARTS
        or not all(isinstance(p, str) and is_sha256_hex(p) for p in parts)
    ):
        return None
    return tuple(parts)
