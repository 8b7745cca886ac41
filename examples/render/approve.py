"""Render-style approval on screen: the artist checks every frame tile before anyone is paid.

On a network whose preset verifies by the client's approval (``pasar devnet up --preset render``:
``verification: approve`` is the render preset's default), a shard's result is *held* when its
provider signs the receipt: nobody is paid until the client approves it, or the preset's window
(24 h on render) passes and the market approves it for the client. This script:

1. launches ``render.yaml`` (6 tiles, one shard each);
2. downloads the held tiles (``job.review``), each verified against its signed receipt, and
   checks each one (a valid tile of the right size);
3. rejects a tile (``--reject SHARD``, to see it happen) or any tile that fails the check: that
   run is paid nothing and the shard re-renders, free, on *another* provider;
4. approves the rest, waits for the re-rendered tile, approves it, and prints who was paid.

    pasar devnet up --preset render           # then, in another terminal, its two exports
    python examples/render/approve.py --reject 2
    python examples/render/stitch.py out/approve render.png

After 3 rejected runs of one tile the job ends and its escrow is refunded (``max_reruns``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import pasar
from pasar.client.client import Job

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from stitch import read_tile  # noqa: E402  (the tile reader next to this script)


def check(folder: Path) -> str | None:
    """Why the tile in ``folder`` is not acceptable, or None when it is."""
    try:
        tile = read_tile(folder / "tile.ppm")
    except (OSError, ValueError) as exc:
        return f"unreadable tile: {exc}"
    if not any(tile.pixels):
        return "the tile is black"
    return None


def show(job: Job) -> dict[str, Any]:
    order = job.status()
    for lease in order["leases"]:
        line = f"  shard {lease['shard']}  {lease['lease_id']}  {lease['status']:<8}"
        line += f"  provider {lease['provider'][:12]}…"
        if lease.get("held_until"):
            until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(lease["held_until"] / 1000))
            line += f"  judge by {until} (else approved for you)"
        if lease.get("bill"):
            line += f"  paid {lease['bill']['provider_payout']}"
        print(line)
    return order


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reject", type=int, action="append", default=[], metavar="SHARD")
    parser.add_argument("--out", type=Path, default=Path("out/approve"))
    args = parser.parse_args()
    client = pasar.Client()
    job = client.launch(HERE / "render.yaml")
    print(f"launched {job.id}; waiting for every tile to be rendered and held for approval")
    review = job.review(args.out.with_name(args.out.name + "-review"), timeout=300)
    show(job)
    rejected: dict[int, str] = {}
    for shard in review.shards:
        problem = check(shard.dir)
        if shard.shard in args.reject:
            problem = problem or "rejected on request (--reject), to show a re-render"
        if problem:
            rejected[shard.shard] = problem
    for shard_index, reason in sorted(rejected.items()):
        reply = job.reject(shard_index, reason)
        print(f"rejected shard {shard_index}: {reason} → re-rendered free: {reply['rerun']}")
    for shard in review.shards:
        if shard.shard not in rejected:
            job.approve(shard.shard)
            print(f"approved shard {shard.shard} (provider {shard.provider[:12]}…)")
    if rejected:
        print("waiting for the re-rendered tiles (on other providers)")
        again = job.review(args.out.with_name(args.out.name + "-rerun"), timeout=300)
        for shard in again.shards:
            if shard.shard in rejected:
                problem = check(shard.dir)
                if problem:
                    job.reject(shard.shard, problem)
                else:
                    job.approve(shard.shard)
                    print(f"approved the re-rendered shard {shard.shard}")
    final = job.result(args.out, timeout=300)
    order = show(job)
    print(f"order {job.id}: {order['status']}; {len(final.files)} tiles in {args.out}")
    print(f"stitch them: python {HERE / 'stitch.py'} {args.out} render.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
