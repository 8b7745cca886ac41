"""A finished job's outputs on local disk, every byte checked against the provider's receipt.

The receipt a provider signs lists its outputs as ``{path, sha256, size}`` and commits to them
with a Merkle root. Before a byte is downloaded the list is checked against the root (so the
list is the one the provider signed); each blob then streams into a temporary file while it is
hashed, and only a file whose digest and size match its receipt entry is renamed into place.
A mismatch deletes the temporary file and raises ``output_mismatch``: the SDK never hands back
bytes it has not verified. (Files verified before the mismatch stay: each was checked.)

**Layout.** A job of one lease writes its outputs straight into ``dest`` at their receipt paths
(``dest/model.pt``). A job of several leases (``shards`` or ``num_nodes`` above 1) writes lease
*i*'s outputs into ``dest/shard-i/`` — the same paths, one folder per shard.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pasar.api.status import awaiting_approval, end_reason
from pasar.core.errors import PasarError
from pasar.crypto.hashing import is_sha256_hex
from pasar.crypto.merkle import check_path, root_of_files


@dataclass(frozen=True)
class OutputFile:
    """One output to fetch: where it comes from, what it must hash to, where it goes."""

    shard: int
    lease_id: str
    provider: str
    path: str
    sha256: str
    size: int
    dest: Path
    parts: tuple[str, ...] = ()  # an output over the blob limit comes in parts, joined here
    plain_sha256: str | None = None  # a sealed job's output: what it must decrypt to

    @property
    def blobs(self) -> list[str]:
        """The blob paths to fetch, in order: the output's own, or each of its parts."""
        return [f"/v1/blobs/{sha}" for sha in (self.parts or (self.sha256,))]


@dataclass(frozen=True)
class ShardResult:
    """What one lease produced: its verified files, the receipt's exit code and, when the job
    did not end by itself, why (``"timeout: it ran past its max_duration"``)."""

    shard: int
    lease_id: str
    provider: str
    exit_code: int
    root: str
    dir: Path
    files: tuple[Path, ...]
    ended_because: str | None = None
    # the optional outputs this lease did not write, one line each (:func:`missing_optional`)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobResult:
    """A finished job's verified outputs, one :class:`ShardResult` per lease (shard order)."""

    order_id: str
    dest: Path
    shards: tuple[ShardResult, ...]

    @property
    def files(self) -> list[Path]:
        return [f for s in self.shards for f in s.files]

    @property
    def exit_codes(self) -> list[int]:
        return [s.exit_code for s in self.shards]

    @property
    def ok(self) -> bool:
        """Every lease exited 0."""
        return all(code == 0 for code in self.exit_codes)

    @property
    def warnings(self) -> list[str]:
        """One line per optional output a lease did not write (a job may skip those; a
        missing required output fails its lease instead)."""
        return [w for s in self.shards for w in s.warnings]


def missing_optional(order: dict[str, Any], lease: dict[str, Any]) -> list[str]:
    """``shard N: missing output PATH (optional)`` for each optional output of the order's
    spec (``{path: ..., optional: true}``) that ``lease``'s receipt does not list, itself or a
    file under it. A sealed order's view has no outputs (they are private): nothing then."""
    declared = order.get("spec", {}).get("outputs", [])
    optional = [o["path"] for o in declared if isinstance(o, dict) and o.get("optional")]
    written = [
        str(o.get("path"))
        for o in (lease.get("receipt") or {}).get("outputs", [])
        if isinstance(o, dict)
    ]
    return [
        f"shard {lease['shard']}: missing output {path} (optional)"
        for path in optional
        if not any(w == path or w.startswith(path.rstrip("/") + "/") for w in written)
    ]


def output_warnings(order: dict[str, Any]) -> list[str]:
    """:func:`missing_optional` for every settled lease of ``order`` (what ``launch --wait``
    says after the bill, as :attr:`JobResult.warnings` does for a fetched result)."""
    return [
        w
        for lease in order.get("leases", [])
        if lease.get("status") in ("settled", "held")
        for w in missing_optional(order, lease)
    ]


def shard_dir(dest: Path, shard: int, leases: int) -> Path:
    return dest / f"shard-{shard}" if leases > 1 else dest


def lease_count(order: dict[str, Any]) -> int:
    spec = order["spec"]
    return int(spec.get("num_nodes", 1)) * int(spec.get("shards", 1))


def _refuse(message: str, code: str, hint: str | None = None) -> PasarError:
    return PasarError(message, code=code, status=502, hint=hint)


def _outputs_of(
    lease: dict[str, Any],
) -> tuple[list[tuple[str, str, int, tuple[str, ...]]], str, int]:
    """The receipt's ``(path, sha256, size, parts)`` list, checked against its root; root; exit
    code. ``parts`` are only where to fetch the bytes: the joined file must hash to ``sha256``,
    which the root commits to."""
    receipt = lease.get("receipt") or {}
    where = f"lease {lease['lease_id']} (provider {lease['provider']})"
    raw = receipt.get("outputs", [])
    if not isinstance(raw, list):
        raise _refuse(f"the receipt of {where} has no output list", "bad_receipt")
    outputs: list[tuple[str, str, int, tuple[str, ...]]] = []
    for item in raw:
        path, sha, size = item.get("path"), item.get("sha256"), item.get("size")
        from pasar.core.tx_parsing import output_parts  # the market's rules: only when fetching

        parts = output_parts(item) if isinstance(item, dict) else None
        if (
            not is_sha256_hex(sha)
            or isinstance(size, bool)
            or not isinstance(size, int)
            or parts is None
        ):
            raise _refuse(
                f"the receipt of {where} lists a malformed output {item!r}", "bad_receipt"
            )
        outputs.append((check_path(path), sha, size, parts))
    root = receipt.get("root")
    if root != root_of_files((p, s) for p, s, _, _ in outputs):
        raise _refuse(
            f"the outputs in the receipt of {where} do not hash to its root {root!r}",
            "bad_root",
            "the receipt was altered after it was signed; do not use this result",
        )
    exit_code = receipt.get("exit_code")
    if isinstance(exit_code, bool) or not isinstance(exit_code, int):
        raise _refuse(f"the receipt of {where} has no exit code", "bad_receipt")
    return outputs, root, exit_code


def plan(
    order: dict[str, Any], dest: Path, *, held: bool = False, partial: bool = False
) -> list[tuple[ShardResult, list[OutputFile]]]:
    """For each shard, its settled lease's result (files not yet fetched) and what to fetch
    (nothing is written: ``dest`` names where the files would go).

    Refuses an order that did not finish (``no_result``), a shard with no settled lease
    (``missing_shards``) and a receipt whose output list does not match its root (``bad_root``).
    With ``held`` (a review under ``verification: approve``), a result waiting for the client's
    approval counts as well, and an order still running for want of that approval is accepted.
    With ``partial`` (a ``.map``, which re-launches only what failed), a shard with no settled
    lease is left out instead of refusing the whole order.
    """
    order_id = order["order_id"]
    kept = ("settled", "held") if held else ("settled",)
    if order["status"] != "done" and not (held and awaiting_approval(order)):
        raise PasarError(
            f"order {order_id} is {order['status']}, so it has no result"
            + (f" ({order['note']})" if order.get("note") else ""),
            code="no_result",
            status=409,
            hint=f"see why with `pasar explain {order_id}`"
            if order["status"] == "expired"
            else None,
        )
    count = lease_count(order)
    settled: dict[int, dict[str, Any]] = {}
    for lease in order["leases"]:
        if lease["status"] in kept:
            settled[int(lease["shard"])] = lease
    missing = [i for i in range(count) if i not in settled]
    if missing and not partial:
        failures = [
            f"shard {x['shard']}: {f.get('reason')}: {f.get('detail', '')}"
            for x in order["leases"]
            if int(x["shard"]) in missing
            and isinstance(f := (x.get("receipt") or {}).get("failure"), dict)
        ]
        raise PasarError(
            f"order {order_id} ended without a result for shard(s) "
            + ", ".join(map(str, missing))
            + (f" ({'; '.join(failures)})" if failures else ""),
            code="missing_shards",
            status=409,
            hint="those shards failed (see `pasar status`), expired unmatched or were "
            "cancelled; launch them again",
        )
    out: list[tuple[ShardResult, list[OutputFile]]] = []
    for shard in sorted(settled):
        lease = settled[shard]
        outputs, root, exit_code = _outputs_of(lease)
        folder = shard_dir(dest, shard, count)
        plain = {
            o.get("path"): o.get("plain_sha256")
            for o in (lease.get("receipt") or {}).get("outputs", [])
            if isinstance(o, dict)
        }
        files = [
            OutputFile(
                shard,
                lease["lease_id"],
                lease["provider"],
                p,
                s,
                n,
                folder / p,
                parts,
                plain.get(p),
            )
            for p, s, n, parts in outputs
        ]
        result = ShardResult(
            shard,
            lease["lease_id"],
            lease["provider"],
            exit_code,
            root,
            folder,
            tuple(f.dest for f in files),
            end_reason(lease),
            tuple(missing_optional(order, lease)),
        )
        out.append((result, files))
    return out


def accept(item: OutputFile, sha256: str, size: int, tmp: Path) -> None:
    """Move a downloaded file into place if it is what the receipt says; else delete it."""
    try:
        check_output(item, sha256, size)
    except PasarError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, item.dest)


def check_output(item: OutputFile, sha256: str, size: int) -> None:
    """Refuse (502 ``output_mismatch``) bytes that are not what the receipt says of ``item``."""
    if sha256 != item.sha256 or size != item.size:
        raise _refuse(
            f"output {item.path!r} of lease {item.lease_id} (provider {item.provider}) does not "
            f"match its receipt: got sha256 {sha256[:16]}… ({size} bytes), the receipt says "
            f"{item.sha256[:16]}… ({item.size} bytes); it was not kept",
            "output_mismatch",
            "the market's copy of this blob is corrupt or was replaced; report it to the "
            "market operator",
        )


def output_in_each_shard(
    order: dict[str, Any], path: str, *, partial: bool = False
) -> list[tuple[ShardResult, OutputFile | None]]:
    """Each settled shard's result and its receipt's entry for output ``path`` (None where
    the receipt lists no such file): what :meth:`pasar.Client.job`'s ``read`` reads."""
    return [
        (result, next((f for f in files if f.path == path), None))
        for result, files in plan(order, Path(), partial=partial)
    ]


def inline_bytes(inline: object, item: OutputFile) -> bytes | None:
    """The bytes of an output the order's view carried inline (``inline_outputs``), not yet
    checked (:func:`check_output`); None if it did not carry them (or not as base64)."""
    encoded = inline.get(item.sha256) if isinstance(inline, dict) and not item.parts else None
    if not isinstance(encoded, str):
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:
        return None
